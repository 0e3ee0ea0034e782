package mapping_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// airbyteRecord is an Airbyte RECORD body as the samples store it.
type airbyteRecord struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

func readRecords(t *testing.T, path string) []airbyteRecord {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []airbyteRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r airbyteRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

func mustParse(t *testing.T, y string) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Parse([]byte(y))
	require.NoError(t, err)
	return m
}

func requireValid(t *testing.T, evs []event.Event) {
	t.Helper()
	for _, ev := range evs {
		require.NoError(t, ev.Validate(), "%s/%s", ev.Source, ev.ID)
	}
}

// TestFakerExample maps the real output of source-faker 7.2.1 (testdata,
// see testdata/README.md) with the shipped example and checks the revenue
// against an independent sum over faker's own product price list.
func TestFakerExample(t *testing.T) {
	m, err := mapping.Load("examples/faker.yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{"purchases", "users"}, m.Streams())
	assert.Equal(t, "faker", m.Source())

	var products []struct {
		ID    int             `json:"id"`
		Price json.RawMessage `json:"price"`
	}
	b, err := os.ReadFile("testdata/faker-products.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &products))
	price := map[int]decimal.Decimal{}
	for _, p := range products {
		price[p.ID] = decimal.RequireFromString(string(p.Price))
	}

	wantCharges, wantRefunds := decimal.Zero, decimal.Zero
	var wantUsers, wantChargeCount, wantRefundCount int
	gotCharges, gotRefunds := decimal.Zero, decimal.Zero
	customers := map[string]event.Event{}
	for _, rec := range readRecords(t, "testdata/faker-records.jsonl") {
		var p struct {
			ProductID   int     `json:"product_id"`
			PurchasedAt *string `json:"purchased_at"`
			ReturnedAt  *string `json:"returned_at"`
		}
		require.NoError(t, json.Unmarshal(rec.Data, &p))
		switch rec.Stream {
		case "purchases":
			if p.PurchasedAt != nil {
				wantCharges = wantCharges.Add(price[p.ProductID])
				wantChargeCount++
				if p.ReturnedAt != nil {
					wantRefunds = wantRefunds.Sub(price[p.ProductID])
					wantRefundCount++
				}
			}
		case "users":
			wantUsers++
		}

		evs, err := m.Map(rec.Stream, rec.Data)
		require.NoError(t, err)
		requireValid(t, evs)
		for _, ev := range evs {
			assert.Equal(t, "faker", ev.Source)
			assert.Greater(t, ev.Data.Version, uint32(1), "version from updated_at")
			switch ev.Type {
			case event.TypeRevenue:
				assert.Equal(t, "USD", ev.Data.Currency)
				if ev.Data.Kind == event.KindRefund {
					gotRefunds = gotRefunds.Add(*ev.Data.Amount)
				} else {
					gotCharges = gotCharges.Add(*ev.Data.Amount)
				}
			case event.TypeCustomer:
				customers[ev.ID] = ev
			}
		}
	}
	require.Positive(t, wantChargeCount)
	require.Positive(t, wantRefundCount, "the recorded sample has returns")
	assert.True(t, wantCharges.Equal(gotCharges), "charges %s, want %s", gotCharges, wantCharges)
	assert.True(t, wantRefunds.Equal(gotRefunds), "refunds %s, want %s", gotRefunds, wantRefunds)
	require.Len(t, customers, wantUsers)
	u := customers["user/1"]
	assert.Equal(t, event.Customer{Source: "faker", ExternalID: "1", Email: "know2036+1@duck.com", Name: "Conception"}, u.Data.Customer)
	assert.Equal(t, "MX", u.Data.Metadata["country_code"])

	// The products stream is not mapped: no events, no error.
	evs, err := m.Map("products", json.RawMessage(`{"id":1,"price":15001}`))
	assert.NoError(t, err)
	assert.Empty(t, evs)
}

// TestFakerLookupIsFakersPriceList keeps the example's lookup equal to the
// price list faker ships (testdata/faker-products.json).
func TestFakerLookupIsFakersPriceList(t *testing.T) {
	m, err := mapping.Load("examples/faker.yaml")
	require.NoError(t, err)
	b, err := os.ReadFile("testdata/faker-products.json")
	require.NoError(t, err)
	var products []struct {
		ID    int             `json:"id"`
		Price json.RawMessage `json:"price"`
	}
	require.NoError(t, json.Unmarshal(b, &products))
	require.Len(t, products, 100)
	for _, p := range products {
		rec := json.RawMessage(`{"id":7,"user_id":3,"product_id":` + itoa(p.ID) + `,"purchased_at":"2024-01-02T03:04:05+00:00","updated_at":"2026-01-01T00:00:00+00:00"}`)
		evs, err := m.Map("purchases", rec)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Equal(t, string(p.Price), evs[0].Data.Amount.String(), "product %d", p.ID)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// stripeMapping maps Airbyte's Stripe charges and refunds: minor units,
// lower-case currency, a status filter, a missing customer.
const stripeMapping = `
version: 1
source: stripe
streams:
  charges:
    - type: revenue
      filter: [{path: status, equals: succeeded}]
      id: {path: id}
      time: {path: created, format: unix}
      customer: {external_id: {path: customer, default: unmapped}}
      kind: {const: charge}
      amount: {path: amount, units: minor}
      currency: {path: currency}
  refunds:
    - type: revenue
      filter: [{path: status, in: [succeeded, pending]}]
      id: {path: id}
      time: {path: created, format: unix}
      customer: {external_id: {path: customer, default: unmapped}}
      kind: {const: refund}
      amount: {path: amount, units: minor, sign: negative}
      currency: {path: currency}
      attributes: {charge: {path: charge}, reason: {path: reason}}
`

func TestStripeSampleRecords(t *testing.T) {
	m := mustParse(t, stripeMapping)
	var got []event.Event
	for _, rec := range readRecords(t, sourcetest.Samples(t, "airbyte-stripe", "expected_records.jsonl")) {
		evs, err := m.Map(rec.Stream, rec.Data)
		require.NoError(t, err, rec.Stream)
		got = append(got, evs...)
	}
	requireValid(t, got)
	sums := map[string]decimal.Decimal{}
	for _, ev := range got {
		assert.Equal(t, source.UnmappedCustomer, ev.Data.Customer.ExternalID)
		assert.Equal(t, "USD", ev.Data.Currency)
		sums[ev.Data.Kind] = sums[ev.Data.Kind].Add(*ev.Data.Amount)
	}
	// charges: 5300 + 4200 cents succeeded, 4200 failed (filtered out);
	// refunds: 200000 + 600 + 540 cents, all succeeded.
	require.Len(t, got, 5)
	assert.Equal(t, "95", sums[event.KindCharge].String())
	assert.Equal(t, "-2011.4", sums[event.KindRefund].String())
	byID := map[string]event.Event{}
	for _, ev := range got {
		byID[ev.ID] = ev
	}
	ref := byID["re_3MVuZyEcXtiJtvvh0A6rSbeJ"]
	assert.Equal(t, time.Unix(1675074488, 0).UTC(), ref.Time)
	assert.Equal(t, map[string]string{"charge": "ch_3MVuZyEcXtiJtvvh0tiVC7DI", "reason": "fraudulent"}, ref.Data.Attributes)
}

// usageRule is a usage rule whose quantity/cost/time modifiers a test sets.
func usageMapping(quantity, cost, tm string) string {
	return `
version: 1
source: test
streams:
  s:
    - type: usage
      id: {template: "{{bucket}}/{{project_id}}/{{model}}"}
      time: ` + tm + `
      customer: {external_id: {path: project_id}}
      feature: {template: "{{model}}.input_tokens"}
      quantity: ` + quantity + `
      cost: ` + cost + `
      currency: {path: currency, default: USD}
`
}

func TestDecimalRules(t *testing.T) {
	tests := []struct {
		name      string
		quantity  string
		cost      string
		record    string
		wantQty   string
		wantCost  string
		wantError string
	}{
		{"exact float text", `{path: n}`, `{path: v}`, `{"n": 1200, "v": 0.06}`, "1200", "0.06", ""},
		{"beyond float64 precision", `{path: n}`, `{path: v}`, `{"n": "123456789012345678901", "v": 12345678.123456789}`, "123456789012345678901", "12345678.123456789", ""},
		{"string numbers", `{path: n}`, `{path: v}`, `{"n": "5", "v": "0.10"}`, "5", "0.1", ""},
		{"minor units USD", `{path: n}`, `{path: v, units: minor}`, `{"n": 1, "v": 4900}`, "1", "49", ""},
		{"minor units JPY", `{path: n}`, `{path: v, units: minor}`, `{"n": 1, "v": 4900, "currency": "jpy"}`, "1", "4900", ""},
		{"minor units KWD", `{path: n}`, `{path: v, units: minor}`, `{"n": 1, "v": 4900, "currency": "KWD"}`, "1", "4.9", ""},
		{"minor units not integer", `{path: n}`, `{path: v, units: minor}`, `{"n": 1, "v": 49.5}`, "", "", "cost: 49.5 is not an integer amount of minor units"},
		{"multiply", `{path: n, multiply: "1000"}`, `{path: v, multiply: "0.5"}`, `{"n": 1.5, "v": 3}`, "1500", "1.5", ""},
		{"divide exact", `{path: n, divide: "1000000"}`, `{path: v, divide: 4}`, `{"n": 1234567, "v": 1}`, "1.234567", "0.25", ""},
		{"divide inexact is an error", `{path: n, divide: 3}`, `{path: v}`, `{"n": 1, "v": 1}`, "", "", "quantity: 1 / 3 has more than 9 decimals"},
		{"divide with round", `{path: n, divide: 3, round: 2}`, `{path: v, divide: 8, round: 2}`, `{"n": 2, "v": 1}`, "0.67", "0.12", ""},
		{"round half even up", `{path: n, divide: 8, round: 2}`, `{path: v, divide: 8, round: 2}`, `{"n": 3, "v": 1}`, "0.38", "0.12", ""},
		{"round negative half even", `{path: n}`, `{path: v, divide: 8, round: 2, sign: negate}`, `{"n": 3, "v": 3}`, "3", "-0.38", ""},
		{"round without divide", `{path: n, round: 0}`, `{path: v, round: 9}`, `{"n": 2.5, "v": 0.1234567894}`, "2", "0.123456789", ""},
		{"too many decimals", `{path: n}`, `{path: v}`, `{"n": 1, "v": 0.0000000001}`, "", "", "cost: 0.0000000001 has more than 9 decimals"},
		{"sign abs", `{path: n, sign: abs}`, `{path: v, sign: negative}`, `{"n": -4, "v": -2}`, "4", "-2", ""},
		{"sign negate of negative", `{path: n, sign: negate}`, `{path: v, sign: negative}`, `{"n": -4, "v": 2}`, "4", "-2", ""},
		{"not a number", `{path: n}`, `{path: v}`, `{"n": "lots", "v": 1}`, "", "", `quantity: "lots" is not a decimal number`},
		{"hostile exponent", `{path: n}`, `{path: v}`, `{"n": 1e-30000000, "v": 1}`, "", "", `quantity: "1e-30000000" is not a decimal number: has an exponent beyond what the field holds`},
		{"missing quantity", `{path: n}`, `{path: v}`, `{"v": 1}`, "", "", `quantity: path "n" is missing or null`},
		{"null quantity", `{path: n}`, `{path: v}`, `{"n": null, "v": 1}`, "", "", `quantity: path "n" is missing or null`},
		{"object quantity", `{path: n}`, `{path: v}`, `{"n": {"a": 1}, "v": 1}`, "", "", `path "n" is a JSON object or array`},
		{"missing cost is fine", `{path: n}`, `{path: v}`, `{"n": 1}`, "1", "", ""},
		{"negative quantity fails validation", `{path: n}`, `{path: v}`, `{"n": -1, "v": 1}`, "", "", "data.quantity: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, usageMapping(tt.quantity, tt.cost, `{path: t}`))
			rec := `{"bucket":"b1","project_id":"proj_1","model":"gpt-4o","t":"2026-11-01T10:00:00Z",` + strings.TrimPrefix(tt.record, "{")
			evs, err := m.Map("s", json.RawMessage(rec))
			if tt.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "streams.s[0]")
				assert.Contains(t, err.Error(), tt.wantError)
				assert.Empty(t, evs)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, 1)
			requireValid(t, evs)
			ev := evs[0]
			assert.Equal(t, "b1/proj_1/gpt-4o", ev.ID)
			assert.Equal(t, "gpt-4o.input_tokens", ev.Data.Feature)
			assert.Equal(t, tt.wantQty, ev.Data.Quantity.String())
			if tt.wantCost == "" {
				assert.Nil(t, ev.Data.Cost)
				assert.Empty(t, ev.Data.Currency)
			} else {
				require.NotNil(t, ev.Data.Cost)
				assert.Equal(t, tt.wantCost, ev.Data.Cost.String())
				assert.Regexp(t, `^[A-Z]{3}$`, ev.Data.Currency)
			}
		})
	}
}

func TestTimeFormats(t *testing.T) {
	tests := []struct {
		name      string
		spec      string
		value     string
		want      string
		wantError string
	}{
		{"rfc3339", `{path: t}`, `"2026-11-01T10:00:00+02:00"`, "2026-11-01T08:00:00Z", ""},
		{"rfc3339 explicit", `{path: t, format: rfc3339}`, `"2026-11-01T10:00:00.5Z"`, "2026-11-01T10:00:00.5Z", ""},
		{"unix seconds", `{path: t, format: unix}`, `1730419200`, "2024-11-01T00:00:00Z", ""},
		{"unix seconds as string", `{path: t, format: unix}`, `"1730419200"`, "2024-11-01T00:00:00Z", ""},
		{"unix fractional", `{path: t, format: unix}`, `1730419200.25`, "2024-11-01T00:00:00.25Z", ""},
		{"unix ms", `{path: t, format: unix_ms}`, `1701882752716`, "2023-12-06T17:12:32.716Z", ""},
		{"date", `{path: t, format: date}`, `"2026-11-01"`, "2026-11-01T00:00:00Z", ""},
		{"layout without zone is UTC", `{path: t, format: layout, layout: "2006-01-02 15:04:05"}`, `"2023-06-01 12:30:00"`, "2023-06-01T12:30:00Z", ""},
		{"const", `{const: "2026-01-01T00:00:00Z"}`, `0`, "2026-01-01T00:00:00Z", ""},
		{"wrong format", `{path: t, format: unix}`, `"2026-11-01"`, "", `time: "2026-11-01" is not a unix timestamp`},
		{"not rfc3339", `{path: t}`, `"2026-11-01 10:00"`, "", `time: "2026-11-01 10:00" is not a time in format rfc3339`},
		{"ms read as seconds", `{path: t, format: unix}`, `1701882752716`, "", "outside the years 1970-2999"},
		{"hostile exponent", `{path: t, format: unix}`, `9e99999999`, "", `time: "9e99999999" is not a unix timestamp: has an exponent beyond`},
		{"missing", `{path: nope}`, `0`, "", `time: path "nope" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, usageMapping(`{const: "1"}`, `{path: v}`, tt.spec))
			rec := `{"bucket":"b","project_id":"p","model":"m","t":` + tt.value + `}`
			evs, err := m.Map("s", json.RawMessage(rec))
			if tt.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantError)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, 1)
			requireValid(t, evs)
			assert.Equal(t, tt.want, evs[0].Time.Format(time.RFC3339Nano))
		})
	}
}

const filterMapping = `
version: 1
source: test
streams:
  s:
    - type: customer
      filter: [%s]
      id: {path: id}
      time: {const: "2026-01-01T00:00:00Z"}
      customer: {external_id: {path: id}}
`

func TestFilters(t *testing.T) {
	tests := []struct {
		filter string
		record string
		want   bool
	}{
		{`{path: status, equals: succeeded}`, `{"status":"succeeded"}`, true},
		{`{path: status, equals: succeeded}`, `{"status":"failed"}`, false},
		{`{path: status, equals: succeeded}`, `{}`, false},
		{`{path: paid, equals: true}`, `{"paid":true}`, true},
		{`{path: paid, equals: "true"}`, `{"paid":"true"}`, true},
		{`{path: n, equals: 5}`, `{"n":5}`, true},
		{`{path: status, not_equals: draft}`, `{"status":"open"}`, true},
		{`{path: status, not_equals: draft}`, `{"status":"draft"}`, false},
		{`{path: status, not_equals: draft}`, `{}`, true},
		{`{path: status, in: [paid, open]}`, `{"status":"open"}`, true},
		{`{path: status, in: [paid, open]}`, `{"status":"void"}`, false},
		{`{path: status, not_in: [void, draft]}`, `{"status":"paid"}`, true},
		{`{path: status, not_in: [void, draft]}`, `{"status":"void"}`, false},
		{`{path: returned_at, exists: true}`, `{"returned_at":"2024-01-01"}`, true},
		{`{path: returned_at, exists: true}`, `{"returned_at":null}`, false},
		{`{path: returned_at, exists: false}`, `{}`, true},
		{`{path: a.b, equals: x}`, `{"a":{"b":"x"}}`, true},
		{`{path: status, equals: paid}, {path: amount, exists: true}`, `{"status":"paid"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.record, func(t *testing.T) {
			m := mustParse(t, strings.Replace(filterMapping, "%s", tt.filter, 1))
			rec := `{"id":"c1",` + strings.TrimPrefix(tt.record, "{")
			if tt.record == `{}` {
				rec = `{"id":"c1"}`
			}
			evs, err := m.Map("s", json.RawMessage(rec))
			require.NoError(t, err)
			requireValid(t, evs)
			assert.Equal(t, tt.want, len(evs) == 1)
		})
	}
}

func TestValuesTemplatesLookupsVersions(t *testing.T) {
	m := mustParse(t, `
version: 1
source: billing-api
lookups:
  plan_name: {p1: Starter, p2: Pro}
streams:
  accounts:
    - type: customer
      id: {template: "acct/{{org.id}}/{{ id }}"}
      time: {path: created, format: unix_ms}
      version: {path: revision}
      void: {path: deleted}
      customer:
        source: {const: crm}
        external_id: {path: id}
        email: {path: contact.email}
        name: {path: name, default: "(no name)"}
      plan: {path: plan_id, lookup: plan_name}
      environment: {const: production}
      metadata: {region: {path: region}, tier: {path: tier, default: free}}
      attributes: {org: {path: org.id}, seats: {path: seats}}
  subscriptions:
    - type: revenue
      id: {path: id}
      time: {path: updated_at}
      version: {path: updated_at, format: rfc3339}
      customer: {external_id: {path: account}}
      kind: {const: subscription_started}
      amount: {path: mrr}
      currency: {const: EUR}
      period_start: {path: start, format: date}
      period_end: {path: end, format: date}
      plan: {path: plan}
      invoice_id: {path: invoice}
`)
	evs, err := m.Map("accounts", json.RawMessage(`{"id":"a1","org":{"id":"o9"},"created":1701882752716,"revision":3,"deleted":false,
		"contact":{"email":"ops@acme.io"},"name":null,"plan_id":"p2","region":"eu","seats":12}`))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	requireValid(t, evs)
	ev := evs[0]
	assert.Equal(t, "acct/o9/a1", ev.ID)
	assert.Equal(t, "billing-api", ev.Source)
	assert.Equal(t, uint32(3), ev.Data.Version)
	assert.False(t, ev.Data.Void)
	assert.Equal(t, event.Customer{Source: "crm", ExternalID: "a1", Email: "ops@acme.io", Name: "(no name)"}, ev.Data.Customer)
	assert.Equal(t, "Pro", ev.Data.Plan)
	assert.Equal(t, "production", ev.Data.Environment)
	assert.Equal(t, map[string]string{"region": "eu", "tier": "free"}, ev.Data.Metadata)
	assert.Equal(t, map[string]string{"org": "o9", "seats": "12"}, ev.Data.Attributes)

	evs, err = m.Map("accounts", json.RawMessage(`{"id":"a2","org":{"id":"o9"},"created":1701882752716,"deleted":true,"plan_id":"p1"}`))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.True(t, evs[0].Data.Void)
	assert.Equal(t, uint32(1), evs[0].Data.Version, "default version")

	// A template placeholder that is missing names itself.
	_, err = m.Map("accounts", json.RawMessage(`{"id":"a3","created":1}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "streams.accounts[0].id: template placeholder {{org.id}} is missing")
	// A value missing from a lookup is an error, not a silent pass-through.
	_, err = m.Map("accounts", json.RawMessage(`{"id":"a4","org":{"id":"o"},"created":1,"plan_id":"p7"}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `streams.accounts[0].plan: value "p7" is not in lookup "plan_name"`)
	// An invalid event (bad email) is refused with the validation problem.
	_, err = m.Map("accounts", json.RawMessage(`{"id":"a5","org":{"id":"o"},"created":1,"contact":{"email":"nope"}}`))
	require.Error(t, err)
	var ve *event.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	assert.Contains(t, err.Error(), "data.customer.email")
	// Bad version and void values.
	_, err = m.Map("accounts", json.RawMessage(`{"id":"a6","org":{"id":"o"},"created":1,"revision":0}`))
	assert.ErrorContains(t, err, `streams.accounts[0].version: "0" is not a positive integer`)
	_, err = m.Map("accounts", json.RawMessage(`{"id":"a7","org":{"id":"o"},"created":1,"deleted":"yes"}`))
	assert.ErrorContains(t, err, `streams.accounts[0].void: must be true or false, got "yes"`)

	evs, err = m.Map("subscriptions", json.RawMessage(`{"id":"sub_1","updated_at":"2026-02-01T00:00:00Z","account":"a1","start":"2026-02-01","end":"2026-03-01","plan":"pro","invoice":"in_1"}`))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	requireValid(t, evs)
	s := evs[0].Data
	assert.Nil(t, s.Amount, "amount is optional for subscription kinds")
	assert.Empty(t, s.Currency)
	assert.Equal(t, uint32(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Unix()), s.Version)
	assert.Equal(t, "2026-03-01T00:00:00Z", s.PeriodEnd.Format(time.RFC3339))

	// Not a JSON object; unknown stream.
	_, err = m.Map("accounts", json.RawMessage(`[1,2]`))
	assert.ErrorContains(t, err, "stream accounts: record is not a JSON object")
	_, err = m.Map("accounts", json.RawMessage(`{"id":`))
	assert.ErrorContains(t, err, "record is not a JSON object")
	evs, err = m.Map("nope", json.RawMessage(`{}`))
	assert.NoError(t, err)
	assert.Nil(t, evs)
}

// TestMapImplementsSourceMapper: the Airbyte import and the custom source
// hold it as a source.Mapper.
func TestMapImplementsSourceMapper(t *testing.T) {
	var _ source.Mapper = mustParse(t, stripeMapping)
}

func TestLoadErrors(t *testing.T) {
	_, err := mapping.Load("testdata/does-not-exist.yaml")
	assert.ErrorContains(t, err, "read mapping file")

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: 2\nsource: s\nstreams: {}\n"), 0o600))
	_, err = mapping.Load(bad)
	var le *mapping.LoadError
	require.True(t, errors.As(err, &le))
	assert.Equal(t, bad, le.File)
	assert.Contains(t, err.Error(), bad+": 2 problem(s)")

	// JSON is accepted too.
	js := filepath.Join(dir, "m.json")
	require.NoError(t, os.WriteFile(js, []byte(`{"version":1,"source":"s","streams":{"x":[{"type":"customer","id":{"path":"id"},"time":{"path":"t"},"customer":{"external_id":{"path":"id"}}}]}}`), 0o600))
	m, err := mapping.Load(js)
	require.NoError(t, err)
	assert.Equal(t, []string{"x"}, m.Streams())
}

// base is a valid usage rule's body in flow style; validation cases write
// their own rule.
const (
	head     = "version: 1\nsource: s\nlookups: {t: {a: b}}\nstreams:\n  st:\n    - "
	baseRule = `id: {path: id}, time: {path: t}, customer: {external_id: {path: c}}`
	usage    = `type: usage, ` + baseRule + `, feature: {const: f}, quantity: {path: q}`
	revenue  = `type: revenue, ` + baseRule + `, kind: {const: charge}, amount: {path: a}, currency: {const: USD}`
)

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		where string
		want  string
	}{
		{"yaml syntax", "version: [1", "(file)", "yaml:"},
		{"unknown key", head + "{" + usage + ", quantitty: {path: q}}", "(file)", "field quantitty not found"},
		{"value is not a mapping", head + "{" + usage + ", unit: tokens}", "(file)", "cannot unmarshal"},
		{"format version", "version: 2\nsource: s\nstreams: {st: [{" + usage + "}]}", "version", "must be 1, got 2"},
		{"no streams", "version: 1\nsource: s\n", "streams", "at least one stream is required"},
		{"empty lookup", "version: 1\nsource: s\nlookups: {t: {}}\nstreams: {st: [{" + usage + "}]}", "lookups.t", "is empty"},
		{"stream without rules", "version: 1\nsource: s\nstreams: {st: []}", "streams.st", "has no rules"},
		{"empty stream name", "version: 1\nsource: s\nstreams: {\"\": [{" + usage + "}]}", "streams", "a stream name is empty"},
		{"no source", "version: 1\nstreams: {st: [{" + usage + "}]}", "streams.st[0].source", "is required"},
		{"bad type", head + "{type: invoice, " + baseRule + "}", "streams.st[0].type", `must be usage, revenue or customer, got "invoice"`},
		{"rule name in location", head + "{name: tokens, type: invoice, " + baseRule + "}", "streams.st[tokens].type", "must be usage"},
		{"filter without path", head + "{" + usage + ", filter: [{equals: x}]}", "streams.st[0].filter[0].path", "is required"},
		{"filter without test", head + "{" + usage + ", filter: [{path: x}]}", "streams.st[0].filter[0]", "needs exactly one of equals, not_equals, in, not_in, exists (has 0)"},
		{"filter with two tests", head + "{" + usage + ", filter: [{path: x, equals: a, exists: true}]}", "streams.st[0].filter[0]", "(has 2)"},
		{"id missing", head + "{type: usage, time: {path: t}, customer: {external_id: {path: c}}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].id", "is required: give one of path, const, template"},
		{"time missing", head + "{type: usage, id: {path: id}, customer: {external_id: {path: c}}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].time", "is required"},
		{"customer missing", head + "{type: usage, id: {path: id}, time: {path: t}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].customer.external_id", "is required"},
		{"two value sources", head + "{" + usage + ", unit: {path: u, const: tokens}}", "streams.st[0].unit", "give only one of path, const, template"},
		{"template without placeholder", head + "{" + usage + ", unit: {template: tokens}}", "streams.st[0].unit.template", "has no {{path}} placeholder"},
		{"empty placeholder", head + "{" + usage + ", unit: {template: \"x{{}}\"}}", "streams.st[0].unit.template", "has an empty placeholder"},
		{"unknown lookup", head + "{" + usage + ", unit: {path: u, lookup: nope}}", "streams.st[0].unit.lookup", `unknown lookup "nope"`},
		{"decimal option on text", head + "{" + usage + ", unit: {path: u, sign: abs}}", "streams.st[0].unit.sign", "applies only to decimal fields"},
		{"time option on text", head + "{" + usage + ", unit: {path: u, format: unix}}", "streams.st[0].unit.format", "applies only to time fields"},
		{"time option on decimal", head + "{" + usage + ", cost: {path: c, layout: x}, currency: {const: USD}}", "streams.st[0].cost.layout", "applies only to time fields"},
		{"bad units", head + "{type: revenue, " + baseRule + ", kind: {const: charge}, amount: {path: a, units: cents}, currency: {const: USD}}", "streams.st[0].amount.units", `must be major or minor, got "cents"`},
		{"bad multiply", head + "{" + usage + ", cost: {path: c, multiply: x}, currency: {const: USD}}", "streams.st[0].cost.multiply", `must be a decimal number, got "x"`},
		{"bad divide", head + "{" + usage + ", cost: {path: c, divide: x}, currency: {const: USD}}", "streams.st[0].cost.divide", `must be a decimal number, got "x"`},
		{"zero divide", head + "{" + usage + ", cost: {path: c, divide: 0.0}, currency: {const: USD}}", "streams.st[0].cost.divide", "must not be zero"},
		{"bad sign", head + "{" + usage + ", cost: {path: c, sign: minus}, currency: {const: USD}}", "streams.st[0].cost.sign", `must be negate, abs or negative, got "minus"`},
		{"bad round", head + "{" + usage + ", cost: {path: c, round: 10}, currency: {const: USD}}", "streams.st[0].cost.round", "must be between 0 and 9 decimals, got 10"},
		{"bad decimal const", head + "{type: usage, " + baseRule + ", feature: {const: f}, quantity: {const: many}}", "streams.st[0].quantity.const", `must be a decimal number, got "many"`},
		{"bad format", head + "{type: usage, id: {path: id}, time: {path: t, format: iso}, customer: {external_id: {path: c}}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].time.format", `must be rfc3339, unix, unix_ms, date or layout, got "iso"`},
		{"layout without format", head + "{type: usage, id: {path: id}, time: {path: t, layout: x}, customer: {external_id: {path: c}}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].time.layout", "needs format: layout"},
		{"format layout without layout", head + "{type: usage, id: {path: id}, time: {path: t, format: layout}, customer: {external_id: {path: c}}, feature: {const: f}, quantity: {path: q}}", "streams.st[0].time.layout", "is required with format: layout"},
		{"bad version const", head + "{" + usage + ", version: {const: 0}}", "streams.st[0].version.const", `must be a positive integer, got "0"`},
		{"bad void const", head + "{" + usage + ", void: {const: maybe}}", "streams.st[0].void.const", `must be true or false, got "maybe"`},
		{"field of another type", head + "{" + usage + ", amount: {path: a}}", "streams.st[0].amount", "is not a field of usage events"},
		{"metadata on usage", head + "{" + usage + ", metadata: {a: {path: a}}}", "streams.st[0].metadata", "is not a field of usage events"},
		{"empty attribute key", head + "{" + usage + ", attributes: {\"\": {path: a}}}", "streams.st[0].attributes", "has an empty key"},
		{"attribute value invalid", head + "{" + usage + ", attributes: {a: {}}}", "streams.st[0].attributes.a", "is required"},
		{"usage without feature", head + "{type: usage, " + baseRule + ", quantity: {path: q}}", "streams.st[0].feature", "is required"},
		{"usage without quantity", head + "{type: usage, " + baseRule + ", feature: {const: f}}", "streams.st[0].quantity", "is required"},
		{"cost without currency", head + "{" + usage + ", cost: {path: c}}", "streams.st[0].currency", "is required with cost"},
		{"revenue without kind", head + "{type: revenue, " + baseRule + ", amount: {path: a}, currency: {const: USD}}", "streams.st[0].kind", "is required"},
		{"revenue without currency", head + "{type: revenue, " + baseRule + ", kind: {const: charge}, amount: {path: a}}", "streams.st[0].currency", "is required"},
		{"revenue without amount", head + "{type: revenue, " + baseRule + ", kind: {const: charge}, currency: {const: USD}}", "streams.st[0].amount", "is required (except for a constant subscription_* kind)"},
		{"bad kind const", head + "{type: revenue, " + baseRule + ", kind: {const: sale}, amount: {path: a}, currency: {const: USD}}", "streams.st[0].kind.const", `got "sale"`},
		{"period start alone", head + "{" + revenue + ", period_start: {path: s}}", "streams.st[0].period_end", "period_start and period_end go together"},
		{"minor quantity", head + "{type: usage, " + baseRule + ", feature: {const: f}, quantity: {path: q, units: minor}}", "streams.st[0].quantity.units", "minor units apply to money"},
		{"minor without currency", head + "{" + usage + ", cost: {path: c, units: minor}}", "streams.st[0].cost.units", "minor units need the rule's currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mapping.Parse([]byte(tt.file))
			var le *mapping.LoadError
			require.True(t, errors.As(err, &le), "want a *LoadError, got %v", err)
			found := false
			for _, p := range le.Problems {
				if p.Where == tt.where && strings.Contains(p.Reason, tt.want) {
					found = true
				}
			}
			assert.True(t, found, "want %s: …%s…; got %v", tt.where, tt.want, le.Problems)
		})
	}
}

// TestValidationNamesEveryProblem: one pass reports all problems, each with
// its location.
func TestValidationNamesEveryProblem(t *testing.T) {
	_, err := mapping.Parse([]byte(head + "{type: usage, id: {}, time: {path: t, format: iso}, customer: {external_id: {path: c}}, quantity: {path: q, sign: up}}\n" +
		"    - {type: revenue, " + baseRule + ", kind: {const: sale}, amount: {path: a}}\n"))
	var le *mapping.LoadError
	require.True(t, errors.As(err, &le))
	var where []string
	for _, p := range le.Problems {
		where = append(where, p.Where)
	}
	assert.ElementsMatch(t, []string{
		"streams.st[0].id", "streams.st[0].time.format", "streams.st[0].feature", "streams.st[0].quantity.sign",
		"streams.st[1].kind.const", "streams.st[1].currency",
	}, where)
}
