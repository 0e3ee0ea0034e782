package chargebee

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

// want is the part of an event a rule decides.
type want struct {
	id, kind, amount, customer string
	void                       bool
}

func summarize(evs []event.Event) []want {
	if len(evs) == 0 {
		return nil
	}
	out := make([]want, len(evs))
	for i, ev := range evs {
		w := want{id: ev.ID, kind: ev.Data.Kind, customer: ev.Data.Customer.ExternalID, void: ev.Data.Void}
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
		name   string
		stream string
		record json.RawMessage
		want   []want
	}{
		{"paid invoice: one invoice_paid per line item", "invoice", variant("invoice", "24", nil), []want{
			{id: "invoice/24/li_6olOsTTHieX6YB", kind: "invoice_paid", amount: "10.00", customer: "cbdemo_tyler"},
			{id: "invoice/24/li_6olOsTTHieXBYC", kind: "invoice_paid", amount: "500.00", customer: "cbdemo_tyler"},
		}},
		{"plural stream name (API path) maps the same", "invoices", variant("invoice", "24", nil), []want{
			{id: "invoice/24/li_6olOsTTHieX6YB", kind: "invoice_paid", amount: "10.00", customer: "cbdemo_tyler"},
			{id: "invoice/24/li_6olOsTTHieXBYC", kind: "invoice_paid", amount: "500.00", customer: "cbdemo_tyler"},
		}},
		{"paid invoice with an adjustment credit note counts net of it", "invoice", variant("invoice", "cbdemo_inv_003", nil), []want{
			{id: "invoice/cbdemo_inv_003/li_AzZlweSefvesUUyx", kind: "invoice_paid", amount: "600.00", customer: "cbdemo_tyler"},
			{id: "invoice/cbdemo_inv_003/li_AzZlweSefvesZUyy", kind: "invoice_paid", amount: "200.00", customer: "cbdemo_tyler"},
			{id: "invoice/cbdemo_inv_003/adjustments", kind: "credit_note", amount: "-30.00", customer: "cbdemo_tyler"},
		}},
		{"written-off part of a paid invoice is not revenue", "invoice", variant("invoice", "24", func(m map[string]any) {
			m["write_off_amount"] = 1000
		}), []want{
			{id: "invoice/24/li_6olOsTTHieX6YB", kind: "invoice_paid", amount: "10.00", customer: "cbdemo_tyler"},
			{id: "invoice/24/li_6olOsTTHieXBYC", kind: "invoice_paid", amount: "500.00", customer: "cbdemo_tyler"},
			{id: "invoice/24/adjustments", kind: "credit_note", amount: "-10.00", customer: "cbdemo_tyler"},
		}},
		{"tax on a tax-exclusive line is part of what was paid", "invoice", variant("invoice", "24", func(m map[string]any) {
			m["line_items"].([]any)[0].(map[string]any)["tax_amount"] = 80
			m["total"] = 51080
		}), []want{
			{id: "invoice/24/li_6olOsTTHieX6YB", kind: "invoice_paid", amount: "10.80", customer: "cbdemo_tyler"},
			{id: "invoice/24/li_6olOsTTHieXBYC", kind: "invoice_paid", amount: "500.00", customer: "cbdemo_tyler"},
		}},
		{"unpaid invoice moves no money and voids any paid version", "invoice", variant("invoice", "24", func(m map[string]any) {
			m["status"] = "payment_due"
		}), []want{
			{id: "invoice/24/li_6olOsTTHieX6YB", kind: "invoice_paid", amount: "0.00", customer: "cbdemo_tyler", void: true},
			{id: "invoice/24/li_6olOsTTHieXBYC", kind: "invoice_paid", amount: "0.00", customer: "cbdemo_tyler", void: true},
			{id: "invoice/24/adjustments", kind: "invoice_paid", amount: "0.00", customer: "cbdemo_tyler", void: true},
		}},
		{"deleted invoice is voided", "invoice", variant("invoice", "23", func(m map[string]any) { m["deleted"] = true }), []want{
			{id: "invoice/23/li_AzZTZgTTHdIUcNR", kind: "invoice_paid", amount: "0.00", customer: "cbdemo_douglas", void: true},
			{id: "invoice/23/adjustments", kind: "invoice_paid", amount: "0.00", customer: "cbdemo_douglas", void: true},
		}},
		{"invoice without a customer is booked to unmapped", "invoice", variant("invoice", "23", func(m map[string]any) { delete(m, "customer_id") }), []want{
			{id: "invoice/23/li_AzZTZgTTHdIUcNR", kind: "invoice_paid", amount: "500.00", customer: source.UnmappedCustomer},
		}},
		{"refundable credit note is money given back", "credit_note", variant("credit_note", "TEST-CN-5", nil), []want{
			{id: "credit_note/TEST-CN-5", kind: "credit_note", amount: "-800.00", customer: "cbdemo_simon"},
		}},
		{"refund_due credit note already reduces revenue", "credit_note", variant("credit_note", "TEST-CN-6", func(m map[string]any) {
			m["status"] = "refund_due"
		}), []want{
			{id: "credit_note/TEST-CN-6", kind: "credit_note", amount: "-2.00", customer: "cbdemo_simon"},
		}},
		{"adjustment credit note is counted on its invoice instead", "credit_note", variant("credit_note", "TEST-CN-5", func(m map[string]any) {
			m["type"], m["status"] = "adjustment", "adjusted"
		}), nil},
		{"voided credit note is voided", "credit_note", variant("credit_note", "TEST-CN-7", func(m map[string]any) { m["status"] = "voided" }), []want{
			{id: "credit_note/TEST-CN-7", kind: "credit_note", amount: "0.00", customer: "cbdemo_simon", void: true},
		}},
		{"successful payment transaction is its invoice's payment", "transaction", variant("transaction", "txn_16CLzOTTHe3QSDF", nil), nil},
		{"failed payment transaction moves nothing", "transaction", variant("transaction", "txn_16CQyCTTHdwAAwZq", nil), nil},
		{"refund transaction mirrors its credit note", "transaction", variant("transaction", "txn_AzZTZgTTHbgFlKJ", func(m map[string]any) {
			m["type"] = "refund"
		}), nil},
		{"cancelled subscription: started and canceled", "subscription", variant("subscription", "AzZTZgTTHdIU1NP", nil), []want{
			{id: "subscription/AzZTZgTTHdIU1NP/started", kind: "subscription_started", customer: "cbdemo_douglas"},
			{id: "subscription/AzZTZgTTHdIU1NP/canceled", kind: "subscription_canceled", customer: "cbdemo_douglas"},
		}},
		{"live subscription voids an earlier cancellation", "subscription", variant("subscription", "AzZTZgTTHdIU1NP", func(m map[string]any) {
			m["status"] = "active"
			delete(m, "cancelled_at")
		}), []want{
			{id: "subscription/AzZTZgTTHdIU1NP/started", kind: "subscription_started", customer: "cbdemo_douglas"},
			{id: "subscription/AzZTZgTTHdIU1NP/canceled", kind: "subscription_canceled", customer: "cbdemo_douglas", void: true},
		}},
		{"customer is an identity observation", "customer", variant("customer", "cbdemo_simon", nil), []want{
			{id: "customer/cbdemo_simon", kind: "customer", customer: "cbdemo_simon"},
		}},
		{"other streams move no money", "item_price", json.RawMessage(`{"id":"x"}`), nil},
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

func TestMapInvoiceDetails(t *testing.T) {
	evs, err := Mapper{}.Map("invoice", sourcetest.MustJSON(t, sampleObject(t, "invoice", "24")))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	ev := evs[0]
	assert.Equal(t, ServiceType, ev.Source)
	assert.Equal(t, time.Unix(1674036524, 0).UTC(), ev.Time, "paid_at: when the money moved")
	assert.Equal(t, uint32(1674036524), ev.Data.Version, "updated_at is the revision")
	assert.Equal(t, "USD", ev.Data.Currency)
	assert.Equal(t, "24", ev.Data.InvoiceID)
	assert.Equal(t, "Test-Plan-1-USD-Daily", ev.Data.Plan)
	require.NotNil(t, ev.Data.PeriodStart)
	assert.Equal(t, time.Unix(1674036523, 0).UTC(), *ev.Data.PeriodStart)
	assert.Equal(t, time.Unix(1674122923, 0).UTC(), *ev.Data.PeriodEnd)
	assert.Empty(t, evs[1].Data.Plan, "a charge is not a plan")

	// Credit note line items have date_from == date_to: no period, and the
	// event day is the note's date.
	cn, err := Mapper{}.Map("credit_note", sourcetest.MustJSON(t, sampleObject(t, "credit_note", "TEST-CN-5")))
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1674033113, 0).UTC(), cn[0].Time)
	assert.Equal(t, "19", cn[0].Data.InvoiceID)

	cust, err := Mapper{}.Map("customer", sourcetest.MustJSON(t, sampleObject(t, "customer", "Test-Custome-1")))
	require.NoError(t, err)
	assert.Equal(t, event.Customer{Source: "chargebee", ExternalID: "Test-Custome-1", Email: "name2@example.com", Name: "Sample Name 2 Sample Lastname 2"}, cust[0].Data.Customer)
	assert.Equal(t, "Test Customer Org", cust[0].Data.Metadata["company"])
}

func TestMapMalformedRecordNamesIt(t *testing.T) {
	inv := sampleObject(t, "invoice", "24")
	inv["currency_code"] = "US"
	_, err := Mapper{}.Map("invoice", sourcetest.MustJSON(t, inv))
	require.ErrorContains(t, err, "invoice 24: currency_code")

	inv = sampleObject(t, "invoice", "24")
	inv["line_items"].([]any)[1].(map[string]any)["amount"] = nil
	_, err = Mapper{}.Map("invoice", sourcetest.MustJSON(t, inv))
	require.ErrorContains(t, err, "invoice 24: line_items[1]")

	_, err = Mapper{}.Map("credit_note", json.RawMessage(`{"id":"CN-1","type":"refundable","total":"12"}`))
	require.ErrorContains(t, err, "credit_note")

	_, err = Mapper{}.Map("invoice", json.RawMessage(`[1,2]`))
	require.Error(t, err)
}

// TestMapSampleFilesPerCustomerRevenue maps each whole Airbyte sample and
// checks per-customer revenue against a second, independent computation from
// the raw records: Σ paid invoices' (total − amount_adjusted −
// write_off_amount) − Σ non-voided refundable credit notes' total, in cents.
func TestMapSampleFilesPerCustomerRevenue(t *testing.T) {
	for _, file := range []string{"expected_records.jsonl", "expected_records.69da92e6.jsonl"} {
		t.Run(file, func(t *testing.T) {
			records := sourcetest.ReadRecords(t, sourcetest.Samples(t, "airbyte-chargebee", file))
			expected := map[string]int64{}
			for _, r := range records {
				var m map[string]any
				require.NoError(t, json.Unmarshal(r.Data, &m))
				cents := func(k string) int64 { v, _ := m[k].(float64); return int64(v) }
				cust, _ := m["customer_id"].(string)
				switch r.Stream {
				case "invoice":
					if m["status"] == "paid" && m["deleted"] != true {
						expected[cust] += cents("total") - cents("amount_adjusted") - cents("write_off_amount")
					}
				case "credit_note":
					if m["type"] == "refundable" && m["status"] != "voided" && m["deleted"] != true {
						expected[cust] -= cents("total")
					}
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
				if ev.Type != event.TypeRevenue || ev.Data.Void || ev.Data.Amount == nil {
					continue
				}
				got[ev.Data.Customer.ExternalID] = got[ev.Data.Customer.ExternalID].Add(*ev.Data.Amount)
			}
			require.Len(t, got, len(expected))
			for cust, c := range expected {
				assert.Equal(t, decimal.New(c, -2).StringFixed(2), got[cust].StringFixed(2), "customer %s", cust)
			}
		})
	}
}
