package stripe_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/pipeline/event"
)

func sum(evs []event.Event) decimal.Decimal {
	total := decimal.Zero
	for _, ev := range evs {
		if ev.Data.Amount != nil && !ev.Data.Void {
			total = total.Add(*ev.Data.Amount)
		}
	}
	return total
}

// independentRevenue computes each customer's net revenue in cents from the
// raw sample records, without the Mapper, by the documented rules:
//
//   - total_excluding_tax of each paid invoice
//   - amount_captured of each succeeded, captured charge that pays no invoice
//   - amount of each succeeded or pending refund
//   - total_excluding_tax of each issued credit note with no refund
//   - amount of each lost dispute
//
// A record without a customer (refunds and disputes name only a charge) is
// booked to "unmapped".
func independentRevenue(t *testing.T, records []record) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, r := range records {
		dec := json.NewDecoder(bytes.NewReader(r.Data))
		dec.UseNumber()
		var o map[string]any
		require.NoError(t, dec.Decode(&o))
		cents := func(k string) int64 {
			n, ok := o[k].(json.Number)
			require.True(t, ok, "%s.%s", r.Stream, k)
			d, err := decimal.NewFromString(n.String())
			require.NoError(t, err)
			require.True(t, d.IsInteger())
			return d.IntPart()
		}
		customer := "unmapped"
		if c, ok := o["customer"].(string); ok && c != "" {
			customer = c
		}
		switch r.Stream {
		case "invoices":
			if o["status"] == "paid" {
				out[customer] += cents("total_excluding_tax")
			}
		case "charges":
			if o["status"] == "succeeded" && o["captured"] == true && o["invoice"] == nil {
				out[customer] += cents("amount_captured")
			}
		case "refunds":
			if o["status"] == "succeeded" || o["status"] == "pending" {
				out[customer] -= cents("amount")
			}
		case "credit_notes":
			if o["status"] == "issued" && o["refund"] == nil {
				out[customer] -= cents("total_excluding_tax")
			}
		case "disputes":
			if o["status"] == "lost" {
				out[customer] -= cents("amount")
			}
		}
	}
	return out
}

// The whole Airbyte sample through the Mapper: per-customer revenue equals
// the independent computation to the cent, every event is valid, and no
// money is counted twice across streams.
func TestSampleRevenueMatchesIndependentComputation(t *testing.T) {
	records := airbyteRecords(t)
	want := independentRevenue(t, records)

	got := map[string]decimal.Decimal{}
	ids := map[string]string{}
	var invoiceCharges []string
	for _, r := range records {
		evs, err := stripe.Mapper{}.Map(r.Stream, r.Data)
		require.NoError(t, err, "%s %s", r.Stream, r.Data[:60])
		for _, ev := range evs {
			require.NoError(t, ev.Validate(), ev.ID)
			if prev, dup := ids[ev.ID]; dup {
				t.Errorf("event id %s from both %s and %s", ev.ID, prev, r.Stream)
			}
			ids[ev.ID] = r.Stream
			if ev.Type != event.TypeRevenue || ev.Data.Amount == nil || ev.Data.Void {
				continue
			}
			assert.Equal(t, "USD", ev.Data.Currency)
			c := ev.Data.Customer.ExternalID
			got[c] = got[c].Add(*ev.Data.Amount)
		}
		if r.Stream == "invoices" {
			var inv struct{ Charge string }
			require.NoError(t, json.Unmarshal(r.Data, &inv))
			if inv.Charge != "" {
				invoiceCharges = append(invoiceCharges, inv.Charge)
			}
		}
	}

	require.NotEmpty(t, want)
	for customer, cents := range want {
		assert.Equal(t, decimal.New(cents, -2).StringFixed(2), got[customer].StringFixed(2), "customer %s", customer)
	}
	assert.Len(t, got, len(want), "no customer beyond the computed ones")
	// The figures themselves, so a change to both computations shows.
	assert.Equal(t, "0.00", got["cus_Kou8knsO3qQOwU"].StringFixed(2), "84.00 invoice, -84.00 credit note before payment: paid 0")
	assert.Equal(t, "281.80", got["cus_NGoTFiJFVbSsvZ"].StringFixed(2), "226.80 + 55.00; the 500.00 starting balance is not this invoice's revenue")
	assert.Equal(t, "-1923.40", got["unmapped"].StringFixed(2), "53 + 42 charges - 2000 - 6 - 5.40 refunds - 7 lost dispute")

	// An invoice's payment is not a second event, and the streams that only
	// describe money carried elsewhere gave none.
	require.NotEmpty(t, invoiceCharges)
	for _, ch := range invoiceCharges {
		assert.NotContains(t, ids, ch)
	}
	for id, stream := range ids {
		assert.Contains(t, []string{"customers", "invoices", "charges", "refunds", "credit_notes", "disputes", "subscriptions"}, stream, id)
	}
}
