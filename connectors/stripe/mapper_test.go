package stripe_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/pipeline/event"
)

// mapValid maps one record and asserts every event passes the contract.
func mapValid(t *testing.T, stream string, raw json.RawMessage) []event.Event {
	t.Helper()
	evs, err := stripe.Mapper{}.Map(stream, raw)
	require.NoError(t, err)
	for _, ev := range evs {
		require.NoError(t, ev.Validate(), "event %s", ev.ID)
		assert.Equal(t, stripe.Service, ev.Source)
		assert.Equal(t, stripe.Service, ev.Data.Customer.Source)
	}
	return evs
}

// want is the part of an event a rule decides.
type want struct {
	id, kind, amount, customer string
	time                       int64
	void                       bool
}

func check(t *testing.T, got []event.Event, wants []want) {
	t.Helper()
	require.Len(t, got, len(wants))
	for i, w := range wants {
		ev := got[i]
		assert.Equal(t, w.id, ev.ID, "event %d id", i)
		assert.Equal(t, w.customer, ev.Data.Customer.ExternalID, "%s customer", ev.ID)
		assert.Equal(t, w.void, ev.Data.Void, "%s void", ev.ID)
		if w.kind != "" {
			assert.Equal(t, w.kind, ev.Data.Kind, "%s kind", ev.ID)
		}
		if w.amount != "" {
			require.NotNil(t, ev.Data.Amount, "%s amount", ev.ID)
			assert.Equal(t, w.amount, ev.Data.Amount.StringFixed(2), "%s amount", ev.ID)
			assert.Equal(t, "USD", ev.Data.Currency, "%s currency", ev.ID)
		}
		if w.time != 0 {
			assert.Equal(t, time.Unix(w.time, 0).UTC(), ev.Time, "%s time", ev.ID)
		}
	}
}

func TestInvoiceRules(t *testing.T) {
	paid := sample(t, "invoices", "in_1MX2yFEcXtiJtvvhMXhUCgKx")
	var line map[string]any
	{
		var inv struct {
			Lines struct{ Data []map[string]any } `json:"lines"`
		}
		require.NoError(t, json.Unmarshal(paid, &inv))
		line = inv.Lines.Data[0]
	}
	// The old-form line with 37.80 of tax included in its price.
	taxed := map[string]any{}
	for k, v := range line {
		taxed[k] = v
	}
	taxed["tax_amounts"] = []map[string]any{{"amount": 3780, "inclusive": true, "tax_rate": "txr_1MX2yfEcXtiJtvvhVcMEMTRj", "taxability_reason": "standard_rated", "taxable_amount": 18900}}

	tests := []struct {
		name   string
		record json.RawMessage
		want   []want
	}{
		{"paid: one event per line, net of its discount, at paid_at", paid, []want{
			{id: "in_1MX2yFEcXtiJtvvhMXhUCgKx/il_1MX2yfEcXtiJtvvhiunY2j1x", kind: event.KindInvoicePaid, amount: "226.80", customer: "cus_NGoTFiJFVbSsvZ", time: 1675345122},
		}},
		{"paid with a credit note before payment: lines still count (the credit note is its own event)",
			sample(t, "invoices", "in_1K9GK0EcXtiJtvvhSo2LvGqT"), []want{
				{id: "in_1K9GK0EcXtiJtvvhSo2LvGqT/il_1K9GKLEcXtiJtvvhhHaYMebN", kind: event.KindInvoicePaid, amount: "84.00", customer: "cus_Kou8knsO3qQOwU", time: 1686158100},
			}},
		{"draft", with(t, paid, map[string]any{"status": "draft"}), nil},
		{"open", with(t, paid, map[string]any{"status": "open"}), nil},
		{"void", with(t, paid, map[string]any{"status": "void"}), nil},
		{"uncollectible", with(t, paid, map[string]any{"status": "uncollectible"}), nil},
		{"no customer: booked to unmapped", with(t, paid, map[string]any{"customer": nil}), []want{
			{id: "in_1MX2yFEcXtiJtvvhMXhUCgKx/il_1MX2yfEcXtiJtvvhiunY2j1x", amount: "226.80", customer: source.UnmappedCustomer},
		}},
		{"inclusive tax leaves the line", with(t, paid, map[string]any{
			"lines":               map[string]any{"object": "list", "data": []any{taxed}, "has_more": false},
			"total_excluding_tax": 18900, "tax": 3780,
		}), []want{
			{id: "in_1MX2yFEcXtiJtvvhMXhUCgKx/il_1MX2yfEcXtiJtvvhiunY2j1x", amount: "189.00", customer: "cus_NGoTFiJFVbSsvZ"},
		}},
		{"lines beyond the record: the rest of the total is one event", with(t, paid, map[string]any{
			"lines": map[string]any{"object": "list", "data": []any{}, "has_more": true},
		}), []want{
			{id: "in_1MX2yFEcXtiJtvvhMXhUCgKx/rest", kind: event.KindInvoicePaid, amount: "226.80", customer: "cus_NGoTFiJFVbSsvZ"},
		}},
		{"no paid_at: effective_at", with(t, paid, map[string]any{"status_transitions": map[string]any{"paid_at": nil}}), []want{
			{id: "in_1MX2yFEcXtiJtvvhMXhUCgKx/il_1MX2yfEcXtiJtvvhiunY2j1x", amount: "226.80", customer: "cus_NGoTFiJFVbSsvZ", time: 1675345090},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, mapValid(t, "invoices", tt.record), tt.want)
		})
	}
}

func TestInvoiceLineFieldsOldForm(t *testing.T) {
	evs := mapValid(t, "invoices", sample(t, "invoices", "in_1MX37hEcXtiJtvvhRSl1KbQm"))
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, "in_1MX37hEcXtiJtvvhRSl1KbQm", ev.Data.InvoiceID)
	assert.Equal(t, "price_1MX364EcXtiJtvvhE3WgTl4O", ev.Data.Plan)
	assert.Equal(t, "prod_NHcKselSHfKdfc", ev.Data.Attributes["product"])
	assert.Equal(t, "invoiceitem", ev.Data.Attributes["line_type"])
	assert.Equal(t, "3", ev.Data.Attributes["quantity"])
	assert.Equal(t, "user1.sample@zohomail.eu", ev.Data.Customer.Email)
	assert.Equal(t, "Test Customer 2", ev.Data.Customer.Name)
	assert.Nil(t, ev.Data.PeriodStart, "a one-off item's period has start == end: no period")
}

// The 2025-03-31.basil form: parent, pricing.price_details, taxes and
// pretax_credit_amounts; a proration credit line is negative.
func TestInvoiceBasilForm(t *testing.T) {
	inv := testdata(t, "invoice_basil_paid.json")
	evs := mapValid(t, "invoices", inv)
	check(t, evs, []want{
		{id: "in_basil_paid/il_basil_unused", kind: event.KindCreditNote, amount: "-10.00", customer: "cus_QXg1o8vcGmoR32", time: 1721954100},
		{id: "in_basil_paid/il_basil_remaining", kind: event.KindInvoicePaid, amount: "37.50", customer: "cus_QXg1o8vcGmoR32", time: 1721954100},
		{id: "in_basil_paid/il_basil_setup", kind: event.KindInvoicePaid, amount: "20.00", customer: "cus_QXg1o8vcGmoR32", time: 1721954100},
	})
	unused, remaining, setup := evs[0], evs[1], evs[2]
	assert.Equal(t, "price_starter", unused.Data.Plan)
	assert.Equal(t, "true", unused.Data.Attributes["proration"])
	assert.Equal(t, "true", remaining.Data.Attributes["proration"])
	assert.Equal(t, "sub_basil", remaining.Data.Attributes["subscription"])
	assert.Equal(t, "subscription_item_details", remaining.Data.Attributes["line_type"])
	assert.Equal(t, "prod_pro", remaining.Data.Attributes["product"])
	require.NotNil(t, remaining.Data.PeriodStart)
	assert.Equal(t, time.Unix(1721954054, 0).UTC(), *remaining.Data.PeriodStart)
	assert.Equal(t, time.Unix(1724632454, 0).UTC(), *remaining.Data.PeriodEnd)
	assert.Empty(t, setup.Data.Attributes["proration"])
	assert.Equal(t, "sub_basil", setup.Data.Attributes["subscription"], "from the invoice's parent")
	for _, ev := range evs {
		assert.Equal(t, "in_basil_paid", ev.Data.InvoiceID)
		assert.Equal(t, "billing@example.com", ev.Data.Customer.Email)
	}
	// The lines sum to the invoice's total excluding tax.
	var inv2 struct {
		TotalExcludingTax int64 `json:"total_excluding_tax"`
	}
	require.NoError(t, json.Unmarshal(inv, &inv2))
	assert.Equal(t, source.FromMinor(inv2.TotalExcludingTax, "usd").String(), sum(evs).String())
}

func TestChargeRules(t *testing.T) {
	standalone := sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc")
	tests := []struct {
		name   string
		record json.RawMessage
		want   []want
	}{
		{"standalone, succeeded, captured: a charge at created", standalone, []want{
			{id: "ch_3K9FSOEcXtiJtvvh0zxb7clc", kind: event.KindCharge, amount: "53.00", customer: source.UnmappedCustomer, time: 1640120473},
		}},
		{"with a customer", with(t, standalone, map[string]any{"customer": "cus_Kou8knsO3qQOwU"}), []want{
			{id: "ch_3K9FSOEcXtiJtvvh0zxb7clc", amount: "53.00", customer: "cus_Kou8knsO3qQOwU"},
		}},
		{"partial capture counts what was captured", with(t, standalone, map[string]any{"amount_captured": 3000}), []want{
			{id: "ch_3K9FSOEcXtiJtvvh0zxb7clc", amount: "30.00", customer: source.UnmappedCustomer},
		}},
		{"pays an invoice: the invoice counts it", with(t, standalone, map[string]any{"invoice": "in_1MX37hEcXtiJtvvhRSl1KbQm"}), nil},
		{"failed", sample(t, "charges", "ch_3K9F4mEcXtiJtvvh1kUzxjwN"), nil},
		{"pending", with(t, standalone, map[string]any{"status": "pending"}), nil},
		{"uncaptured authorization", with(t, standalone, map[string]any{"captured": false, "amount_captured": 0}), nil},
		{"refunded later: still the charge; the refund is its own event", with(t, standalone, map[string]any{"refunded": true, "amount_refunded": 5300}), []want{
			{id: "ch_3K9FSOEcXtiJtvvh0zxb7clc", amount: "53.00", customer: source.UnmappedCustomer},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, mapValid(t, "charges", tt.record), tt.want)
		})
	}
	t.Run("basil form without the invoice link is refused by name", func(t *testing.T) {
		_, err := stripe.Mapper{}.Map("charges", with(t, standalone, map[string]any{"invoice": del}))
		require.ErrorIs(t, err, stripe.ErrNoInvoiceLink)
		assert.Contains(t, err.Error(), "ch_3K9FSOEcXtiJtvvh0zxb7clc")
	})
}

func TestRefundRules(t *testing.T) {
	refund := sample(t, "refunds", "re_3MngeoEcXtiJtvvh0c4KeMOd")
	charge := with(t, sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc"), map[string]any{"customer": "cus_NGoTFiJFVbSsvZ"})
	var chargeObj map[string]any
	require.NoError(t, json.Unmarshal(charge, &chargeObj))
	uncaptured := map[string]any{}
	for k, v := range chargeObj {
		uncaptured[k] = v
	}
	uncaptured["captured"] = false

	tests := []struct {
		name   string
		record json.RawMessage
		want   []want
	}{
		{"succeeded: negative refund at created, customer unknown without the charge", refund, []want{
			{id: "re_3MngeoEcXtiJtvvh0c4KeMOd", kind: event.KindRefund, amount: "-5.40", customer: source.UnmappedCustomer, time: 1683889626},
		}},
		{"expanded charge gives the customer", with(t, refund, map[string]any{"charge": chargeObj}), []want{
			{id: "re_3MngeoEcXtiJtvvh0c4KeMOd", amount: "-5.40", customer: "cus_NGoTFiJFVbSsvZ"},
		}},
		{"pending has left the balance", with(t, refund, map[string]any{"status": "pending"}), []want{
			{id: "re_3MngeoEcXtiJtvvh0c4KeMOd", amount: "-5.40", customer: source.UnmappedCustomer},
		}},
		{"failed voids it", with(t, refund, map[string]any{"status": "failed"}), []want{
			{id: "re_3MngeoEcXtiJtvvh0c4KeMOd", amount: "-5.40", customer: source.UnmappedCustomer, void: true},
		}},
		{"canceled voids it", with(t, refund, map[string]any{"status": "canceled"}), []want{
			{id: "re_3MngeoEcXtiJtvvh0c4KeMOd", customer: source.UnmappedCustomer, void: true},
		}},
		{"requires_action: nothing moved yet", with(t, refund, map[string]any{"status": "requires_action"}), nil},
		{"of an uncaptured charge: an authorization released", with(t, refund, map[string]any{"charge": uncaptured}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, mapValid(t, "refunds", tt.record), tt.want)
		})
	}
}

func TestCreditNoteRules(t *testing.T) {
	cn := sample(t, "credit_notes", "cn_1NGPwmEcXtiJtvvhNXwHpgJF")
	tests := []struct {
		name   string
		record json.RawMessage
		want   []want
	}{
		{"issued before payment: negative, at effective_at", cn, []want{
			{id: "cn_1NGPwmEcXtiJtvvhNXwHpgJF", kind: event.KindCreditNote, amount: "-84.00", customer: "cus_Kou8knsO3qQOwU", time: 1686158100},
		}},
		{"voided", with(t, cn, map[string]any{"status": "void"}), []want{
			{id: "cn_1NGPwmEcXtiJtvvhNXwHpgJF", amount: "-84.00", customer: "cus_Kou8knsO3qQOwU", void: true},
		}},
		{"wholly refunded (old form): the refund carries it", with(t, cn, map[string]any{"refund": "re_3MngeoEcXtiJtvvh0c4KeMOd", "type": "post_payment"}), nil},
		{"basil: half refunded, half credited", with(t, cn, map[string]any{"type": "post_payment", "refunds": []map[string]any{{"amount_refunded": 4200, "refund": "re_x", "type": "refund"}}}), []want{
			{id: "cn_1NGPwmEcXtiJtvvhNXwHpgJF", amount: "-42.00", customer: "cus_Kou8knsO3qQOwU"},
		}},
		{"basil: no refunds", with(t, cn, map[string]any{"refunds": []any{}}), []want{
			{id: "cn_1NGPwmEcXtiJtvvhNXwHpgJF", amount: "-84.00", customer: "cus_Kou8knsO3qQOwU"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := mapValid(t, "credit_notes", tt.record)
			check(t, evs, tt.want)
			for _, ev := range evs {
				assert.Equal(t, "in_1K9GK0EcXtiJtvvhSo2LvGqT", ev.Data.InvoiceID)
			}
		})
	}
	t.Run("partly refunded, partly credited, refund not expanded: refused by name", func(t *testing.T) {
		_, err := stripe.Mapper{}.Map("credit_notes", with(t, cn, map[string]any{"refund": "re_x", "customer_balance_transaction": "cbtxn_x"}))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cn_1NGPwmEcXtiJtvvhNXwHpgJF")
	})
}

func TestDisputeRules(t *testing.T) {
	lost := sample(t, "disputes", "dp_1MSI78EcXtiJtvvhxC77m2kh")
	charge := with(t, sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc"), map[string]any{"customer": "cus_NGoTFiJFVbSsvZ"})
	var chargeObj map[string]any
	require.NoError(t, json.Unmarshal(charge, &chargeObj))
	tests := []struct {
		name   string
		record json.RawMessage
		want   []want
	}{
		{"lost: negative at created", lost, []want{
			{id: "dp_1MSI78EcXtiJtvvhxC77m2kh", kind: event.KindDispute, amount: "-7.00", customer: source.UnmappedCustomer, time: 1674211590},
		}},
		{"lost, expanded charge", with(t, lost, map[string]any{"charge": chargeObj}), []want{
			{id: "dp_1MSI78EcXtiJtvvhxC77m2kh", amount: "-7.00", customer: "cus_NGoTFiJFVbSsvZ"},
		}},
		{"won", with(t, lost, map[string]any{"status": "won"}), nil},
		{"under review", with(t, lost, map[string]any{"status": "under_review"}), nil},
		{"inquiry", with(t, lost, map[string]any{"status": "warning_needs_response"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, mapValid(t, "disputes", tt.record), tt.want)
		})
	}
}

func TestCustomerRules(t *testing.T) {
	c := sample(t, "customers", "cus_NGoTFiJFVbSsvZ")
	evs := mapValid(t, "customers", with(t, c, map[string]any{"metadata": map[string]any{"uvr_customer_id": "acme-42", "tier": "gold"}}))
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, event.TypeCustomer, ev.Type)
	assert.Equal(t, "cus_NGoTFiJFVbSsvZ", ev.ID)
	assert.Equal(t, event.Customer{Source: "stripe", ExternalID: "cus_NGoTFiJFVbSsvZ", Email: "user1.sample@zohomail.eu", Name: "Test Customer 2"}, ev.Data.Customer)
	assert.Equal(t, map[string]string{"uvr_customer_id": "acme-42", "tier": "gold"}, ev.Data.Metadata)
	assert.Equal(t, "test", ev.Data.Environment)
	assert.Equal(t, uint32(1675160053), ev.Data.Version)
	assert.Equal(t, time.Unix(1675160053, 0).UTC(), ev.Time)

	later := mapValid(t, "customers", with(t, c, map[string]any{"email": "new@example.com", "updated": 1700000000}))
	assert.Greater(t, later[0].Data.Version, ev.Data.Version, "a later state replaces the earlier")

	deleted := mapValid(t, "customers", with(t, c, map[string]any{"deleted": true, "updated": 1700000000}))
	require.Len(t, deleted, 1)
	assert.True(t, deleted[0].Data.Void)
	assert.Empty(t, mapValid(t, "customers", json.RawMessage(`{"id":"cus_gone","object":"customer","deleted":true}`)))
	assert.Empty(t, mapValid(t, "customers", with(t, c, map[string]any{"email": "not-an-email"}))[0].Data.Customer.Email)
}

func TestSubscriptionRules(t *testing.T) {
	sub := sample(t, "subscriptions", "sub_1POL30EcXtiJtvvh4UdCl3kj")
	started := mapValid(t, "subscriptions", sub)
	require.Len(t, started, 1)
	ev := started[0]
	assert.Equal(t, "sub_1POL30EcXtiJtvvh4UdCl3kj", ev.ID)
	assert.Equal(t, event.KindSubscriptionStarted, ev.Data.Kind)
	assert.Nil(t, ev.Data.Amount, "subscriptions move no money")
	assert.Equal(t, "cus_Kou8knsO3qQOwU", ev.Data.Customer.ExternalID)
	assert.Equal(t, "price_1PDtzkEcXtiJtvvhY4aqjMSq", ev.Data.Plan)
	assert.Equal(t, "week", ev.Data.Attributes["interval"])
	assert.Equal(t, time.Unix(1717598562, 0).UTC(), ev.Time)
	require.NotNil(t, ev.Data.PeriodStart)
	assert.Equal(t, time.Unix(1720017762, 0).UTC(), *ev.Data.PeriodStart)
	assert.Equal(t, time.Unix(1720622562, 0).UTC(), *ev.Data.PeriodEnd, "Airbyte's float seconds 1720622562.0")

	canceled := mapValid(t, "subscriptions", with(t, sub, map[string]any{"status": "canceled", "canceled_at": 1721000000, "ended_at": 1721000000}))
	require.Len(t, canceled, 1)
	assert.Equal(t, "sub_1POL30EcXtiJtvvh4UdCl3kj", canceled[0].ID, "same identity: replaces the earlier state")
	assert.Equal(t, event.KindSubscriptionCanceled, canceled[0].Data.Kind)
	assert.Equal(t, time.Unix(1721000000, 0).UTC(), canceled[0].Time)
	assert.Greater(t, canceled[0].Data.Version, ev.Data.Version)

	var obj map[string]any
	require.NoError(t, json.Unmarshal(sub, &obj))
	items := obj["items"].(map[string]any)
	item := items["data"].([]any)[0].(map[string]any)
	item["created"] = 1722000000 // an item added later: a plan change
	changed := mapValid(t, "subscriptions", with(t, sub, map[string]any{"items": items}))
	require.Len(t, changed, 1)
	assert.Equal(t, event.KindSubscriptionChanged, changed[0].Data.Kind)
	assert.Equal(t, time.Unix(1722000000, 0).UTC(), changed[0].Time)
	assert.Greater(t, changed[0].Data.Version, ev.Data.Version)

	assert.Empty(t, mapValid(t, "subscriptions", with(t, sub, map[string]any{"status": "incomplete"})))

	// The basil form (stripe-mock's fixture): periods on the items.
	basil := mapValid(t, "subscriptions", with(t, stripeMockResource(t, "subscription"), map[string]any{"status": "active"}))
	require.Len(t, basil, 1)
	assert.Equal(t, "price_1PgafmB7WZ01zgkW6dKueIc5", basil[0].Data.Plan)
	assert.Equal(t, "month", basil[0].Data.Attributes["interval"])
}

// Streams that describe money another stream carries, and streams uvr does
// not use, give nothing: the balance transactions of charges and refunds,
// invoice line items (carried by their invoice), Stripe events.
func TestStreamsWithoutEvents(t *testing.T) {
	for _, r := range airbyteRecords(t) {
		switch r.Stream {
		case "customers", "invoices", "charges", "refunds", "credit_notes", "disputes", "subscriptions":
			continue
		}
		evs, err := stripe.Mapper{}.Map(r.Stream, r.Data)
		require.NoError(t, err, r.Stream)
		assert.Empty(t, evs, r.Stream)
	}
	for _, stream := range []string{"events", "balance_transactions", "no_such_stream"} {
		evs, err := stripe.Mapper{}.Map(stream, stripeMockResource(t, "event"))
		require.NoError(t, err)
		assert.Empty(t, evs)
	}
}

func TestMalformedRecords(t *testing.T) {
	paid := sample(t, "invoices", "in_1MX2yFEcXtiJtvvhMXhUCgKx")
	tests := []struct {
		name, stream string
		record       json.RawMessage
		wantErr      []string
	}{
		{"not JSON", "charges", json.RawMessage(`{"id":"ch_1",`), []string{"stripe charges record", "malformed"}},
		{"no id", "refunds", json.RawMessage(`{"object":"refund","amount":100,"currency":"usd","status":"succeeded","created":1}`), []string{"no id"}},
		{"bad currency", "invoices", with(t, paid, map[string]any{"currency": "dollars"}), []string{"in_1MX2yFEcXtiJtvvhMXhUCgKx", "currency"}},
		{"fractional minor units", "charges", with(t, sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc"), map[string]any{"amount_captured": 53.5}), []string{"ch_3K9FSOEcXtiJtvvh0zxb7clc", "53.5"}},
		{"line amount not a number", "invoices", with(t, paid, map[string]any{"lines": map[string]any{"data": []any{map[string]any{"id": "il_1", "amount": "abc"}}}}), []string{"in_1MX2yFEcXtiJtvvhMXhUCgKx", "abc"}},
		{"too large for the contract", "charges", with(t, sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc"), map[string]any{"amount_captured": int64(1) << 60}), []string{"ch_3K9FSOEcXtiJtvvh0zxb7clc", "too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := stripe.Mapper{}.Map(tt.stream, tt.record)
			require.Error(t, err)
			assert.Nil(t, evs)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
	_, err := stripe.Mapper{}.Map("charges", json.RawMessage(`[]`))
	require.Error(t, err)
	assert.False(t, errors.Is(err, stripe.ErrNoInvoiceLink))
}
