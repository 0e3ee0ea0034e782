package recurly

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
			w.amount = ev.Data.Amount.String()
		}
		out[i] = w
	}
	return out
}

func seedTransaction(t *testing.T, idPrefix string, change func(m map[string]any)) json.RawMessage {
	t.Helper()
	for _, r := range seedRows(t, "transaction_data") {
		if len(r["id"]) >= len(idPrefix) && r["id"][:len(idPrefix)] == idPrefix {
			m := v3Transaction(r)
			if change != nil {
				change(m)
			}
			return sourcetest.MustJSON(t, m)
		}
	}
	t.Fatalf("no transaction %s in the seeds", idPrefix)
	return nil
}

func TestMapRules(t *testing.T) {
	const acct = "51bccf87e2571558b3da93688e17469f"
	const purchase = "571096af8e160294851c9189309ba52f"
	tests := []struct {
		name, stream string
		record       json.RawMessage
		want         []want
	}{
		{"successful purchase is a charge, exact from the JSON number", "transactions", seedTransaction(t, "571096af", nil), []want{
			{id: "transaction/" + purchase, kind: "charge", amount: "5", customer: acct},
		}},
		{"capture counts like a purchase", "transactions", seedTransaction(t, "571096af", func(m map[string]any) {
			m["type"], m["amount"] = "capture", json.Number("10.9")
		}), []want{
			{id: "transaction/" + purchase, kind: "charge", amount: "10.9", customer: acct},
		}},
		{"voided purchase voids an earlier success", "transactions", seedTransaction(t, "660f729d", nil), []want{
			{id: "transaction/660f729d818a9cbf075a293c613ec979", kind: "charge", amount: "0", customer: "4458762633d912919d7ff692cab13b69", void: true},
		}},
		{"successful refund gives money back", "transactions", seedTransaction(t, "571096af", func(m map[string]any) {
			m["id"], m["type"], m["original_transaction_id"] = "r3fund", "refund", purchase
		}), []want{
			{id: "transaction/r3fund", kind: "refund", amount: "-5", customer: acct},
		}},
		{"charged-back purchase keeps its charge and adds the dispute", "transactions", seedTransaction(t, "571096af", func(m map[string]any) {
			m["status"] = "chargeback"
		}), []want{
			{id: "transaction/" + purchase, kind: "charge", amount: "5", customer: acct},
			{id: "transaction/" + purchase + "/chargeback", kind: "dispute", amount: "-5", customer: acct},
		}},
		{"declined purchase moves nothing", "transactions", seedTransaction(t, "571096af", func(m map[string]any) { m["status"] = "declined" }), nil},
		{"scheduled purchase moves nothing yet", "transactions", seedTransaction(t, "571096af", func(m map[string]any) { m["status"] = "scheduled" }), nil},
		{"verification moves nothing", "transactions", seedTransaction(t, "0750672d", nil), nil},
		{"transaction without an account is booked to unmapped", "transactions", seedTransaction(t, "571096af", func(m map[string]any) { delete(m, "account") }), []want{
			{id: "transaction/" + purchase, kind: "charge", amount: "5", customer: source.UnmappedCustomer},
		}},
	}
	for _, r := range seedRows(t, "account_history_data")[:1] {
		tests = append(tests, struct {
			name, stream string
			record       json.RawMessage
			want         []want
		}{"account is an identity observation", "accounts", sourcetest.MustJSON(t, v3Account(r)), []want{{id: "account/" + r["id"], kind: "customer", customer: r["id"]}}})
	}
	for _, r := range seedRows(t, "subscription_history_data")[:3] {
		w := []want{{id: "subscription/" + r["id"] + "/started", kind: "subscription_started", customer: r["account_id"]}}
		if r["state"] == "expired" {
			w = append(w, want{id: "subscription/" + r["id"] + "/canceled", kind: "subscription_canceled", customer: r["account_id"]})
		} else {
			w = append(w, want{id: "subscription/" + r["id"] + "/canceled", kind: "subscription_canceled", customer: r["account_id"], void: true})
		}
		tests = append(tests, struct {
			name, stream string
			record       json.RawMessage
			want         []want
		}{"subscription " + r["state"], "subscriptions", sourcetest.MustJSON(t, v3Subscription(r)), w})
	}
	for _, stream := range []string{"invoices", "line_items", "credit_payments"} {
		tests = append(tests, struct {
			name, stream string
			record       json.RawMessage
			want         []want
		}{stream + " move no money of their own", stream, json.RawMessage(`{"id":"x","object":"` + stream + `","total":10.0}`), nil})
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
	evs, err := Mapper{}.Map("transactions", seedTransaction(t, "571096af", func(m map[string]any) {
		m["updated_at"] = "2015-02-12T00:00:00Z"
		m["invoice"] = map[string]any{"id": "7309c58e6f43bfac36d6ce06c62cac66", "number": "1036"}
	}))
	require.NoError(t, err)
	ev := evs[0]
	assert.Equal(t, time.Date(2015, 2, 11, 8, 19, 59, 0, time.UTC), ev.Time, "collected_at")
	assert.Equal(t, uint32(time.Date(2015, 2, 12, 0, 0, 0, 0, time.UTC).Unix()), ev.Data.Version)
	assert.Equal(t, "1036", ev.Data.InvoiceID)
	assert.Equal(t, "USD", ev.Data.Currency)
}

func TestMapMalformedRecordNamesIt(t *testing.T) {
	_, err := Mapper{}.Map("transactions", seedTransaction(t, "571096af", func(m map[string]any) { m["amount"] = "five" }))
	require.ErrorContains(t, err, "transaction 571096af8e160294851c9189309ba52f: amount")
	_, err = Mapper{}.Map("transactions", seedTransaction(t, "571096af", func(m map[string]any) { m["amount"] = json.Number("0.0000000001") }))
	require.ErrorContains(t, err, "more than 9 decimal places")
	_, err = Mapper{}.Map("transactions", seedTransaction(t, "571096af", func(m map[string]any) { m["collected_at"] = "2015-02-11 08:19:59" }))
	require.ErrorContains(t, err, "collected_at")
	_, err = Mapper{}.Map("subscriptions", json.RawMessage(`{"id":"s1","state":"active","activated_at":"soon"}`))
	require.ErrorContains(t, err, "subscription s1")
}

// TestMapSeedsPerCustomerRevenue maps every seed transaction (as its v3 JSON)
// and checks per-account, per-currency revenue against an independent
// computation from the CSV: successful purchases and captures +amount,
// successful refunds −amount, everything else nothing.
func TestMapSeedsPerCustomerRevenue(t *testing.T) {
	rows := seedRows(t, "transaction_data")
	expected := map[string]decimal.Decimal{}
	for _, r := range rows {
		if r["status"] != "success" {
			continue
		}
		key := r["account_id"] + "/" + r["currency"]
		switch r["type"] {
		case "purchase", "capture":
			expected[key] = expected[key].Add(decimal.RequireFromString(r["amount"]))
		case "refund":
			expected[key] = expected[key].Sub(decimal.RequireFromString(r["amount"]))
		}
	}
	require.NotEmpty(t, expected)
	got := map[string]decimal.Decimal{}
	for _, r := range rows {
		evs, err := Mapper{}.Map("transactions", sourcetest.MustJSON(t, v3Transaction(r)))
		require.NoError(t, err, r["id"])
		sourcetest.RequireValid(t, evs)
		for _, ev := range evs {
			if !ev.Data.Void {
				key := ev.Data.Customer.ExternalID + "/" + ev.Data.Currency
				got[key] = got[key].Add(*ev.Data.Amount)
			}
		}
	}
	require.Len(t, got, len(expected))
	for k, v := range expected {
		assert.Equal(t, v.StringFixed(2), got[k].StringFixed(2), k)
	}

	// Accounts and subscriptions of the seeds all map to valid events.
	for _, r := range seedRows(t, "account_history_data") {
		evs, err := Mapper{}.Map("accounts", sourcetest.MustJSON(t, v3Account(r)))
		require.NoError(t, err)
		sourcetest.RequireValid(t, evs)
	}
	for _, r := range seedRows(t, "subscription_history_data") {
		evs, err := Mapper{}.Map("subscriptions", sourcetest.MustJSON(t, v3Subscription(r)))
		require.NoError(t, err)
		sourcetest.RequireValid(t, evs)
	}
}
