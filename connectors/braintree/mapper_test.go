package braintree

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

type want struct {
	id, kind, amount, currency, customer string
	void                                 bool
}

func summarize(evs []event.Event) []want {
	if len(evs) == 0 {
		return nil
	}
	out := make([]want, len(evs))
	for i, ev := range evs {
		w := want{id: ev.ID, kind: ev.Data.Kind, customer: ev.Data.Customer.ExternalID, void: ev.Data.Void, currency: ev.Data.Currency}
		if ev.Type == event.TypeCustomer {
			w.kind = "customer"
		}
		if ev.Data.Amount != nil {
			w.amount = ev.Data.Amount.StringFixed(2)
		}
		out[i] = w
	}
	return out
}

func TestMapRules(t *testing.T) {
	variant := func(stream, id string, change func(m map[string]any)) json.RawMessage {
		m := sampleObject(t, stream, id)
		if change != nil {
			change(m)
		}
		return sourcetest.MustJSON(t, m)
	}
	tests := []struct {
		name, stream string
		record       json.RawMessage
		want         []want
	}{
		{"settled sale is a charge, exact from the decimal string", "transaction_stream", variant("transaction_stream", "hncnkbsy", nil), []want{
			{id: "transaction/hncnkbsy", kind: "charge", amount: "500.00", currency: "USD", customer: "896865626"},
		}},
		{"plural stream name maps the same", "transactions", variant("transaction_stream", "hncnkbsy", nil), []want{
			{id: "transaction/hncnkbsy", kind: "charge", amount: "500.00", currency: "USD", customer: "896865626"},
		}},
		{"submitted_for_settlement sale is already a charge", "transaction_stream", variant("transaction_stream", "2cdqmzsg", func(m map[string]any) {
			m["status"] = "submitted_for_settlement"
		}), []want{
			{id: "transaction/2cdqmzsg", kind: "charge", amount: "2.00", currency: "USD", customer: source.UnmappedCustomer},
		}},
		{"authorized sale is not captured yet", "transaction_stream", variant("transaction_stream", "ccqytq62", nil), nil},
		{"failed sale moves nothing", "transaction_stream", variant("transaction_stream", "2cdqmzsg", func(m map[string]any) { m["status"] = "failed" }), nil},
		{"gateway_rejected sale moves nothing", "transaction_stream", variant("transaction_stream", "2cdqmzsg", func(m map[string]any) { m["status"] = "gateway_rejected" }), nil},
		{"processor_declined sale moves nothing", "transaction_stream", variant("transaction_stream", "2cdqmzsg", func(m map[string]any) { m["status"] = "processor_declined" }), nil},
		{"voided sale voids an earlier capture", "transaction_stream", variant("transaction_stream", "2cdqmzsg", func(m map[string]any) { m["status"] = "voided" }), []want{
			{id: "transaction/2cdqmzsg", kind: "charge", amount: "0.00", currency: "USD", customer: source.UnmappedCustomer, void: true},
		}},
		{"credit transaction is a refund", "transaction_stream", variant("transaction_stream", "hncnkbsy", func(m map[string]any) {
			m["id"], m["type"], m["amount"], m["refunded_transaction_id"] = "cr3d1t01", "credit", "120.50", "hncnkbsy"
		}), []want{
			{id: "transaction/cr3d1t01", kind: "refund", amount: "-120.50", currency: "USD", customer: "896865626"},
		}},
		{"lost chargeback inside its transaction is a dispute, once", "transaction_stream", variant("transaction_stream", "rb476y0x", nil), []want{
			{id: "transaction/rb476y0x", kind: "charge", amount: "666.00", currency: "USD", customer: source.UnmappedCustomer},
			{id: "dispute/yxnc73mfsvc9bzt3", kind: "dispute", amount: "-666.00", currency: "USD", customer: source.UnmappedCustomer},
		}},
		{"won chargeback gives the money back", "transaction_stream", variant("transaction_stream", "rb476y0x", func(m map[string]any) {
			d := m["disputes"].([]any)[0].(map[string]any)
			d["status"], d["amount_won"] = "won", 666.0
		}), []want{
			{id: "transaction/rb476y0x", kind: "charge", amount: "666.00", currency: "USD", customer: source.UnmappedCustomer},
			{id: "dispute/yxnc73mfsvc9bzt3", kind: "dispute", amount: "0.00", currency: "USD", customer: source.UnmappedCustomer},
		}},
		{"retrieval moves no money", "transaction_stream", variant("transaction_stream", "rb476y0x", func(m map[string]any) {
			m["disputes"].([]any)[0].(map[string]any)["kind"] = "retrieval"
		}), []want{
			{id: "transaction/rb476y0x", kind: "charge", amount: "666.00", currency: "USD", customer: source.UnmappedCustomer},
		}},
		{"dispute stream is counted through the transaction instead", "dispute_stream", variant("dispute_stream", "yxnc73mfsvc9bzt3", nil), nil},
		{"customer is an identity observation", "customer_stream", variant("customer_stream", "896865626", nil), []want{
			{id: "customer/896865626", kind: "customer", customer: "896865626"},
		}},
		{"plans move no money", "plan_stream", variant("plan_stream", "eqweqw", nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Mapper{}.Map(tt.stream, tt.record)
			require.NoError(t, err)
			sourcetest.RequireValid(t, evs)
			assert.Equal(t, tt.want, summarize(evs))
		})
	}
}

func TestMapTransactionDetails(t *testing.T) {
	evs, err := Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, sampleObject(t, "transaction_stream", "hncnkbsy")))
	require.NoError(t, err)
	ev := evs[0]
	assert.Equal(t, time.Date(2020, 12, 2, 6, 30, 6, 0, time.UTC), ev.Time, "capture (submitted_for_settlement) time, zone-less = UTC")
	assert.Equal(t, uint32(time.Date(2020, 12, 2, 8, 20, 40, 0, time.UTC).Unix()), ev.Data.Version, "updated_at is the revision")
	assert.Equal(t, event.Customer{Source: "braintree", ExternalID: "896865626", Email: "customer@test.com", Name: "test test"}, ev.Data.Customer)

	// A delayed capture moves the day to the capture.
	m := sampleObject(t, "transaction_stream", "2cdqmzsg")
	m["status_history"].([]any)[1].(map[string]any)["timestamp"] = "2021-08-12T09:00:00"
	evs, err = Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, m))
	require.NoError(t, err)
	assert.Equal(t, time.Date(2021, 8, 12, 9, 0, 0, 0, time.UTC), evs[0].Time)

	// Dispute created_at carries +00:00.
	evs, err = Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, sampleObject(t, "transaction_stream", "rb476y0x")))
	require.NoError(t, err)
	assert.Equal(t, time.Date(2021, 8, 10, 14, 32, 40, 0, time.UTC), evs[1].Time)
	assert.Equal(t, "lost", evs[1].Data.Attributes["status"])
}

func TestMapMalformedRecordNamesIt(t *testing.T) {
	m := sampleObject(t, "transaction_stream", "hncnkbsy")
	m["amount"] = "5OO.00"
	_, err := Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, m))
	require.ErrorContains(t, err, "transaction hncnkbsy: amount")

	m = sampleObject(t, "transaction_stream", "hncnkbsy")
	m["created_at"] = "yesterday"
	_, err = Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, m))
	require.ErrorContains(t, err, "transaction hncnkbsy: created_at")

	m = sampleObject(t, "transaction_stream", "rb476y0x")
	m["disputes"].([]any)[0].(map[string]any)["amount_disputed"] = nil
	_, err = Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, m))
	require.ErrorContains(t, err, "dispute yxnc73mfsvc9bzt3: amount_disputed")

	_, err = Mapper{}.Map("payments", json.RawMessage(`{"__typename":"Transaction","legacyId":"x1","status":"SETTLED","amount":{"value":"1.00","currencyCode":"USD"},"createdAt":"2021-01-01T00:00:00Z","statusHistory":"no"}`))
	require.ErrorContains(t, err, "payment")
}

func TestMapGraphQLPaymentMatchesTheSDKRecord(t *testing.T) {
	// The same payment through both APIs gives the same event identity and
	// money, so importing it twice counts it once.
	sdk, err := Mapper{}.Map("transaction_stream", sourcetest.MustJSON(t, sampleObject(t, "transaction_stream", "hncnkbsy")))
	require.NoError(t, err)
	var page paymentsAnswer
	b, err := readFixture("payments_page1.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &page))
	gql, err := Mapper{}.Map("payments", page.Data.Search.Payments.Edges[0].Node)
	require.NoError(t, err)
	require.Len(t, gql, 1)
	assert.Equal(t, sdk[0].ID, gql[0].ID)
	assert.Equal(t, sdk[0].Time, gql[0].Time)
	assert.Equal(t, sdk[0].Data.Version, gql[0].Data.Version)
	assert.Equal(t, sdk[0].Data.Amount.String(), gql[0].Data.Amount.String())
	assert.Equal(t, sdk[0].Data.Customer, gql[0].Data.Customer)
}

// TestMapSampleFilePerCustomerRevenue maps the whole Airbyte sample and checks
// per-customer, per-currency revenue against an independent computation from
// the raw records: captured sales +amount, captured credits −amount, nested
// chargebacks −(amount_disputed − amount_won).
func TestMapSampleFilePerCustomerRevenue(t *testing.T) {
	records := sourcetest.ReadRecords(t, sourcetest.Samples(t, "airbyte-braintree", "expected_records.jsonl"))
	expected := map[string]decimal.Decimal{}
	for _, r := range records {
		if r.Stream != "transaction_stream" {
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(bytesReader(r.Data))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&m))
		cust := source.UnmappedCustomer
		if id, ok := m["customer_details"].(map[string]any)["id"].(string); ok && id != "" {
			cust = id
		}
		key := cust + "/" + m["currency_iso_code"].(string)
		switch m["status"] {
		case "submitted_for_settlement", "settling", "settlement_pending", "settled", "settlement_confirmed":
			amt := decimal.RequireFromString(m["amount"].(string))
			if m["type"] == "credit" {
				amt = amt.Neg()
			}
			expected[key] = expected[key].Add(amt)
		}
		for _, d := range m["disputes"].([]any) {
			d := d.(map[string]any)
			if d["kind"] != "chargeback" {
				continue
			}
			disputed := decimal.RequireFromString(d["amount_disputed"].(json.Number).String())
			won := decimal.RequireFromString(d["amount_won"].(json.Number).String())
			dkey := cust + "/" + d["currency_iso_code"].(string)
			expected[dkey] = expected[dkey].Sub(disputed).Add(won)
		}
	}
	require.NotEmpty(t, expected)

	latest := map[string]event.Event{}
	for _, r := range records {
		evs, err := Mapper{}.Map(r.Stream, r.Data)
		require.NoError(t, err, "%s", r.Stream)
		sourcetest.RequireValid(t, evs)
		for _, ev := range evs {
			if old, ok := latest[ev.ID]; !ok || ev.Data.Version > old.Data.Version {
				latest[ev.ID] = ev
			}
		}
	}
	got := map[string]decimal.Decimal{}
	for _, ev := range latest {
		if ev.Type == event.TypeRevenue && !ev.Data.Void && ev.Data.Amount != nil {
			key := ev.Data.Customer.ExternalID + "/" + ev.Data.Currency
			got[key] = got[key].Add(*ev.Data.Amount)
		}
	}
	require.Len(t, got, len(expected))
	for k, v := range expected {
		assert.Equal(t, v.StringFixed(2), got[k].StringFixed(2), k)
	}
	assert.Equal(t, "500.00", got["896865626/USD"].StringFixed(2))
	assert.Equal(t, "4.00", got[source.UnmappedCustomer+"/USD"].StringFixed(2), "666 charged, 666 charged back, 2+2 settled")
}
