package revenue

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// revenueEvent builds a revenue event; amount "" leaves it out, and start
// and end "" leave the period out.
func revenueEvent(kind, at, amount, currency, start, end string) event.Event {
	ev := event.Event{
		SpecVersion: event.SpecVersion, ID: "ev-" + kind + "-" + at, Source: "stripe", Type: event.TypeRevenue, Time: ts(at),
		Data: event.Data{Customer: event.Customer{Source: "stripe", ExternalID: "cus_1"}, Version: 1, Kind: kind},
	}
	if amount != "" {
		a := d(amount)
		ev.Data.Amount, ev.Data.Currency = &a, currency
	}
	if start != "" {
		s, e := ts(start), ts(end)
		ev.Data.PeriodStart, ev.Data.PeriodEnd = &s, &e
	}
	return ev
}

func TestCashAndAccrualViews(t *testing.T) {
	usage := event.Event{Type: event.TypeUsage, Time: ts("2025-03-05T10:00:00Z")}
	q := d("10")
	usage.Data.Quantity = &q
	tests := []struct {
		name    string
		ev      event.Event
		cash    string // "" = no cash amount
		accrual []string
	}{
		{"invoice for a service period",
			revenueEvent(event.KindInvoicePaid, "2025-03-01T09:12:00Z", "31.00", "USD", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"),
			"2025-03-01 31", repeat("2025-03-01", 31, "1")},
		{"invoice paid late, accrues over its period",
			revenueEvent(event.KindInvoicePaid, "2025-04-20T09:12:00Z", "3.00", "USD", "2025-03-01T00:00:00Z", "2025-03-04T00:00:00Z"),
			"2025-04-20 3", []string{"2025-03-01 1", "2025-03-02 1", "2025-03-03 1"}},
		{"one-off charge: accrues on its day (UTC)",
			revenueEvent(event.KindCharge, "2025-03-05T23:30:00-05:00", "49.99", "USD", "", ""),
			"2025-03-06 49.99", []string{"2025-03-06 49.99"}},
		{"refund without a period",
			revenueEvent(event.KindRefund, "2025-03-07T12:00:00Z", "-20.00", "USD", "", ""),
			"2025-03-07 -20", []string{"2025-03-07 -20"}},
		{"proration credit note with a period",
			revenueEvent(event.KindCreditNote, "2025-03-20T08:00:00Z", "-12.00", "USD", "2025-03-20T00:00:00Z", "2025-04-01T00:00:00Z"),
			"2025-03-20 -12", repeat("2025-03-20", 12, "-1")},
		{"lifecycle event without an amount", revenueEvent(event.KindSubscriptionStarted, "2025-03-01T00:00:00Z", "", "", "", ""), "", nil},
		{"usage event", usage, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cash, ok := CashDay(tt.ev)
			if tt.cash == "" {
				assert.False(t, ok)
			} else {
				require.True(t, ok)
				assert.Equal(t, tt.cash, days([]DayAmount{cash})[0])
			}
			acc, err := AccrualDays(tt.ev)
			require.NoError(t, err)
			if tt.accrual == nil {
				assert.Empty(t, acc)
			} else {
				assert.Equal(t, tt.accrual, days(acc))
			}
		})
	}

	// A period that cannot be spread names the event.
	bad := revenueEvent(event.KindInvoicePaid, "2025-03-01T00:00:00Z", "1", "USD", "2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z")
	_, err := AccrualDays(bad)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrPeriod))
	assert.Contains(t, err.Error(), "accrue stripe/ev-invoice_paid-2025-03-01T00:00:00Z")
}

// Over any set of events, the cash and the accrual views hold the same total.
func TestViewsAgreeInTotal(t *testing.T) {
	evs := []event.Event{
		revenueEvent(event.KindInvoicePaid, "2025-01-31T10:00:00Z", "499.00", "USD", "2025-01-31T10:00:00Z", "2025-02-28T10:00:00Z"),
		revenueEvent(event.KindCreditNote, "2025-02-10T10:00:00Z", "-100.01", "USD", "2025-02-10T00:00:00Z", "2025-02-28T10:00:00Z"),
		revenueEvent(event.KindCharge, "2025-02-11T10:00:00Z", "20.00", "USD", "", ""),
		revenueEvent(event.KindRefund, "2025-02-12T10:00:00Z", "-5.00", "USD", "", ""),
	}
	cash, accrual := d("0"), d("0")
	for _, ev := range evs {
		c, _ := CashDay(ev)
		cash = cash.Add(c.Amount)
		acc, err := AccrualDays(ev)
		require.NoError(t, err)
		for _, a := range acc {
			accrual = accrual.Add(a.Amount)
		}
	}
	assert.True(t, cash.Equal(d("413.99")))
	assert.True(t, accrual.Equal(cash))
}
