package event_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// The two examples of the public contract, verbatim from the README.
const usageExample = `{"specversion":"1.0","id":"evt-123","source":"billing-api","type":"uvr.usage.v1",
 "time":"2026-11-01T10:00:00Z","subject":"proj_1",
 "data":{"customer":{"source":"openai","external_id":"proj_1","email":"ops@acme.io","name":"Acme"},
         "feature":"gpt-4o.input_tokens","quantity":"125000","unit":"tokens",
         "cost":"0.3125","currency":"USD","window_end":"2026-11-01T11:00:00Z",
         "version":1,"attributes":{"model":"gpt-4o"}}}`

const revenueExample = `{"specversion":"1.0","id":"in_1","source":"stripe","type":"uvr.revenue.v1","time":"2026-11-01T10:00:00Z",
 "data":{"customer":{"source":"stripe","external_id":"cus_42","email":"billing@acme.io"},
         "kind":"invoice_paid","amount":"49.00","currency":"USD",
         "period_start":"2026-11-01T00:00:00Z","period_end":"2026-12-01T00:00:00Z",
         "plan":"pro","invoice_id":"in_1","version":1}}`

func TestParseExamples(t *testing.T) {
	ev, err := event.Parse([]byte(usageExample))
	require.NoError(t, err)
	assert.Equal(t, event.TypeUsage, ev.Type)
	assert.Equal(t, "openai/proj_1", ev.PartitionKey())
	assert.Equal(t, "125000", ev.Data.Quantity.String())
	assert.Equal(t, "0.3125", ev.Data.Cost.String())
	assert.Equal(t, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), ev.Time)
	assert.Equal(t, map[string]string{"model": "gpt-4o"}, ev.Data.Attributes)

	rev, err := event.Parse([]byte(revenueExample))
	require.NoError(t, err)
	assert.Equal(t, "49", rev.Data.Amount.String())
	assert.Equal(t, uint32(1), rev.Data.Version)
	assert.Equal(t, "pro", rev.Data.Plan)

	// The canonical form parses back to the same event.
	for _, e := range []event.Event{ev, rev} {
		b, err := e.Marshal()
		require.NoError(t, err)
		again, err := event.Parse(b)
		require.NoError(t, err)
		b2, err := again.Marshal()
		require.NoError(t, err)
		assert.JSONEq(t, string(b), string(b2))
		require.NoError(t, again.Validate())
	}
}

func TestParseNumbersStayExact(t *testing.T) {
	// 0.1+0.2 style values and long quantities must survive without floats.
	body := strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":12345678901234567890.123456789`, 1)
	body = strings.Replace(body, `"cost":"0.3125"`, `"cost":0.1`, 1)
	ev, err := event.Parse([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, "12345678901234567890.123456789", ev.Data.Quantity.String())
	assert.Equal(t, "0.1", ev.Data.Cost.String())
}

func TestParseDefaults(t *testing.T) {
	body := `{"specversion":"1.0","id":"u1","source":"api","type":"uvr.usage.v1","time":"2026-11-01T10:00:00+02:00",
	 "data":{"customer":{"external_id":"c1"},"feature":"calls","quantity":3}}`
	ev, err := event.Parse([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, "api", ev.Data.Customer.Source, "customer source defaults to the event source")
	assert.Equal(t, uint32(1), ev.Data.Version, "version defaults to 1")
	assert.Equal(t, time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), ev.Time, "time is normalised to UTC")
	assert.Nil(t, ev.Data.Cost)
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // "field: reason fragment"
	}{
		{"malformed json", `{"specversion":`, []string{"(event): must be a JSON object: malformed JSON"}},
		{"not an object", `[1]`, []string{"(event): must be a JSON object"}},
		{"empty object", `{}`, []string{"specversion: is required", "id: is required", "source: is required", "type: is required", "time: is required", "data: is required"}},
		{"unknown type", `{"specversion":"1.0","id":"x","source":"s","type":"uvr.bogus.v1","time":"2026-11-01T00:00:00Z","data":{}}`,
			[]string{`type: unknown event type "uvr.bogus.v1"`}},
		{"wrong spec version", strings.Replace(usageExample, `"specversion":"1.0"`, `"specversion":"0.3"`, 1),
			[]string{`specversion: must be "1.0"`}},
		{"wrong types", `{"specversion":"1.0","id":7,"source":"s","type":"uvr.usage.v1","time":"yesterday",
			"data":{"customer":{"external_id":5},"feature":"f","quantity":true,"version":"2","void":"no"}}`,
			[]string{"id: must be a string", "time: must be an RFC 3339 timestamp", "data.customer.external_id: must be a string",
				"data.quantity: must be a decimal string or number", "data.version: must be a positive integer", "data.void: must be true or false"}},
		{"missing usage fields", `{"specversion":"1.0","id":"x","source":"s","type":"uvr.usage.v1","time":"2026-11-01T00:00:00Z","data":{"customer":{"external_id":"c"}}}`,
			[]string{"data.feature: is required", "data.quantity: is required"}},
		{"cost needs currency", strings.Replace(usageExample, `"currency":"USD",`, ``, 1),
			[]string{"data.currency: is required with a money amount"}},
		{"bad currency", strings.Replace(usageExample, `"currency":"USD"`, `"currency":"usd"`, 1),
			[]string{"data.currency: must be an ISO 4217 code"}},
		{"too precise", strings.Replace(usageExample, `"cost":"0.3125"`, `"cost":"0.0000000001"`, 1),
			[]string{"data.cost: has more than 9 decimal places"}},
		{"too large", strings.Replace(usageExample, `"cost":"0.3125"`, `"cost":"1000000000"`, 1),
			[]string{"data.cost: is too large"}},
		{"negative quantity", strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":"-1"`, 1),
			[]string{"data.quantity: must not be negative"}},
		{"not a decimal", strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":"12,5"`, 1),
			[]string{`data.quantity: must be a decimal number such as "12.50", got "12,5"`}},
		{"unknown data field", strings.Replace(usageExample, `"unit":"tokens"`, `"units":"tokens"`, 1),
			[]string{"data.units: unknown field for uvr.usage.v1"}},
		{"positive refund", strings.Replace(strings.Replace(revenueExample, `"invoice_paid"`, `"refund"`, 1), `"49.00"`, `"5.00"`, 1),
			[]string{"data.amount: must be negative or zero for a refund"}},
		{"negative charge", strings.Replace(strings.Replace(revenueExample, `"invoice_paid"`, `"charge"`, 1), `"49.00"`, `"-5.00"`, 1),
			[]string{"data.amount: must not be negative for a charge"}},
		{"unknown kind", strings.Replace(revenueExample, `"invoice_paid"`, `"payment"`, 1),
			[]string{`data.kind: must be one of charge, invoice_paid`}},
		{"period order", strings.Replace(revenueExample, `"period_end":"2026-12-01T00:00:00Z"`, `"period_end":"2026-10-01T00:00:00Z"`, 1),
			[]string{"data.period_end: must be after period_start"}},
		{"attribute object", strings.Replace(usageExample, `{"model":"gpt-4o"}`, `{"model":{"x":1}}`, 1),
			[]string{"data.attributes.model: must be a string, number or boolean"}},
		{"huge negative exponent", strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":"1e-30000000"`, 1),
			[]string{"data.quantity: has an exponent beyond what the field holds"}},
		{"huge exponent as a JSON number", strings.Replace(usageExample, `"cost":"0.3125"`, `"cost":9e99999999`, 1),
			[]string{"data.cost: has an exponent beyond what the field holds"}},
		{"huge amount exponent", strings.Replace(revenueExample, `"49.00"`, `"1e999999999999"`, 1),
			[]string{"data.amount: has an exponent beyond what the field holds"}},
		{"null time", strings.Replace(usageExample, `"time":"2026-11-01T10:00:00Z"`, `"time":null`, 1),
			[]string{"time: is required"}},
		{"time before 1970", strings.Replace(usageExample, `"time":"2026-11-01T10:00:00Z"`, `"time":"1969-12-31T23:59:59Z"`, 1),
			[]string{"time: 1969-12-31T23:59:59Z is outside the accepted range 1970-01-01T00:00:00Z to "}},
		{"time in 2999", strings.Replace(usageExample, `"time":"2026-11-01T10:00:00Z"`, `"time":"2999-01-01T00:00:00Z"`, 1),
			[]string{"time: 2999-01-01T00:00:00Z is outside the accepted range"}},
		{"window_end after 2106", strings.Replace(usageExample, `"window_end":"2026-11-01T11:00:00Z"`, `"window_end":"2107-01-01T00:00:00Z"`, 1),
			[]string{"data.window_end: 2107-01-01T00:00:00Z is outside the accepted range"}},
		{"period_start far ahead", strings.Replace(strings.Replace(revenueExample, `"period_start":"2026-11-01T00:00:00Z"`, `"period_start":"2100-11-01T00:00:00Z"`, 1), `"period_end":"2026-12-01T00:00:00Z"`, `"period_end":"2100-12-01T00:00:00Z"`, 1),
			[]string{"data.period_start: 2100-11-01T00:00:00Z is outside", "data.period_end: 2100-12-01T00:00:00Z is outside"}},
		{"zero version", strings.Replace(usageExample, `"version":1`, `"version":0`, 1),
			[]string{"data.version: must be a positive integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := event.Parse([]byte(tt.body))
			var verr *event.ValidationError
			require.True(t, errors.As(err, &verr), "want a ValidationError, got %v", err)
			got := make([]string, len(verr.Problems))
			for i, p := range verr.Problems {
				assert.Equal(t, -1, p.Index)
				got[i] = p.Field + ": " + p.Reason
			}
			for _, w := range tt.want {
				assert.True(t, containsPrefix(got, w), "want a problem starting %q, got %q", w, got)
			}
			assert.Len(t, got, len(tt.want), "exactly the expected problems: %q", got)
		})
	}
}

// The window follows the clock: one year ahead for the event's time, ten
// for the end of a service period (multi-year contracts).
func TestParseTimeWindowIsRelativeToNow(t *testing.T) {
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	body := func(when, periodEnd string) string {
		b := strings.Replace(revenueExample, `"time":"2026-11-01T10:00:00Z"`, `"time":"`+when+`"`, 1)
		b = strings.Replace(b, `"period_start":"2026-11-01T00:00:00Z"`, `"period_start":"`+when+`"`, 1)
		return strings.Replace(b, `"period_end":"2026-12-01T00:00:00Z"`, `"period_end":"`+periodEnd+`"`, 1)
	}
	_, err := event.Parse([]byte(body(at(360*24*time.Hour), at(9*366*24*time.Hour))))
	require.NoError(t, err, "a year ahead and a nine-year contract are accepted")
	_, err = event.Parse([]byte(body(at(368*24*time.Hour), at(400*24*time.Hour))))
	require.ErrorContains(t, err, "time: ")
	require.ErrorContains(t, err, "(the Unix epoch to one year from now)")
	_, err = event.Parse([]byte(body(at(0), at(11*366*24*time.Hour))))
	require.ErrorContains(t, err, "data.period_end: ")
	require.ErrorContains(t, err, "(the Unix epoch to 10 years from now)")
}

// Decode reads what the log holds: the window's upper end, which moves
// with the clock, is not applied again (a consumer whose clock runs behind
// the API's, a replay); the rest of the rules are.
func TestDecodeKeepsWhatWasAccepted(t *testing.T) {
	ahead := strings.NewReplacer(`"time":"2026-11-01T10:00:00Z"`, `"time":"2200-01-01T00:00:00Z"`,
		`"window_end":"2026-11-01T11:00:00Z"`, `"window_end":"2200-01-01T01:00:00Z"`).Replace(usageExample)
	_, err := event.Parse([]byte(ahead))
	require.ErrorContains(t, err, "outside the accepted range")
	ev, err := event.Decode([]byte(ahead))
	require.NoError(t, err)
	assert.Equal(t, 2200, ev.Time.Year())
	_, err = event.Decode([]byte(strings.Replace(usageExample, `"time":"2026-11-01T10:00:00Z"`, `"time":"1969-01-01T00:00:00Z"`, 1)))
	require.ErrorContains(t, err, "time: 1969-01-01T00:00:00Z is before 1970-01-01T00:00:00Z")
	_, err = event.Decode([]byte(strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":"1e-30000000"`, 1)))
	require.ErrorContains(t, err, "has an exponent beyond")
}

func TestParseBatch(t *testing.T) {
	good := usageExample
	bad := strings.Replace(usageExample, `"feature":"gpt-4o.input_tokens",`, ``, 1)

	events, err := event.ParseBatch([]byte("["+good+","+good+"]"), 10)
	require.NoError(t, err)
	assert.Len(t, events, 2)

	_, err = event.ParseBatch([]byte("["+good+","+bad+","+bad+"]"), 10)
	var verr *event.ValidationError
	require.True(t, errors.As(err, &verr))
	require.Len(t, verr.Problems, 2)
	assert.Equal(t, event.Problem{Index: 1, Field: "data.feature", Reason: "is required"}, verr.Problems[0])
	assert.Equal(t, 2, verr.Problems[1].Index)

	_, err = event.ParseBatch([]byte("["+good+","+good+","+good+"]"), 2)
	var tooLarge *event.TooLargeError
	require.True(t, errors.As(err, &tooLarge))
	assert.Equal(t, 3, tooLarge.Count)

	for _, body := range []string{`[]`, `{"a":1}`, `[`} {
		_, err = event.ParseBatch([]byte(body), 10)
		require.True(t, errors.As(err, &verr), body)
		assert.Equal(t, "(body)", verr.Problems[0].Field)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func BenchmarkParse(b *testing.B) {
	body := []byte(usageExample)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
