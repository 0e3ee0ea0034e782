package revenue

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/pricing"
)

var _ Converter = (*pricing.FX)(nil)

func TestMonthlyAmount(t *testing.T) {
	tests := []struct {
		name       string
		amount     string
		start, end string
		want       string
	}{
		{"monthly", "49.00", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z", "49"},
		{"monthly anchored mid-day", "49.00", "2025-01-15T13:22:05Z", "2025-02-15T13:22:05Z", "49"},
		{"two months", "98.00", "2025-03-01T00:00:00Z", "2025-05-01T00:00:00Z", "49"},
		{"quarterly", "300.00", "2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z", "100"},
		{"yearly", "1200.00", "2025-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "100"},
		{"yearly from a leap day", "1200.00", "2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z", "100"},
		{"anchor 31, into February", "49.00", "2025-01-31T00:00:00Z", "2025-02-28T00:00:00Z", "49"},
		{"anchor 31, out of February", "49.00", "2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z", "49"},
		{"anchor 28", "49.00", "2025-02-28T00:00:00Z", "2025-03-28T00:00:00Z", "49"},
		{"anchor 31, leap February", "49.00", "2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "49"},
		{"a 28-day February is a month, not 4 weeks", "49.00", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z", "49"},
		// 10 × 52 / 12 = 43.333…
		{"weekly", "10.00", "2025-03-03T00:00:00Z", "2025-03-10T00:00:00Z", "43.333333333"},
		{"two-weekly", "20.00", "2025-03-03T00:00:00Z", "2025-03-17T00:00:00Z", "43.333333333"},
		{"weekly, negative", "-10.00", "2025-03-03T00:00:00Z", "2025-03-10T00:00:00Z", "-43.333333333"},
		// Stripe proration of a change on May 21 on a plan billed
		// [May 1, Jun 1): 11 of 31 days. Normalised over the 31-day month
		// that ends on Jun 1: the old plan's and the new plan's full prices.
		{"unused time on 310", "-110.00", "2025-05-21T00:00:00Z", "2025-06-01T00:00:00Z", "-310"},
		{"remaining time on 620", "220.00", "2025-05-21T00:00:00Z", "2025-06-01T00:00:00Z", "620"},
		// Stripe rounds 499 × 12/31 = 193.1612… to cents; the cents stay:
		// -193.16 × 31/12 = -498.99666…
		{"proration rounded by the source", "-193.16", "2025-03-20T00:00:00Z", "2025-04-01T00:00:00Z", "-498.996666667"},
		// 11.5 days of the 31-day March: 10 × 31 / 11.5 = 26.9565217391…
		{"proration from mid-day", "10.00", "2025-03-20T12:00:00Z", "2025-04-01T00:00:00Z", "26.956521739"},
		// One day; the month ending Mar 2 is [Feb 2, Mar 2), 28 days.
		{"a daily line", "1.00", "2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z", "28"},
		// Half to even at the 10th place.
		{"tie rounds to even, down", "0.000000001", "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z", "0"},
		{"tie rounds to even, up", "0.000000003", "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z", "0.000000002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MonthlyAmount(d(tt.amount), ts(tt.start), ts(tt.end))
			require.NoError(t, err)
			assert.Truef(t, got.Equal(d(tt.want)), "MRR %s, want %s", got, tt.want)
		})
	}
	for _, p := range [][2]string{
		{"2025-03-01T00:00:00Z", "2025-03-01T00:00:00Z"},
		{"2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z"},
		{"1900-01-01T00:00:00Z", "2025-03-01T00:00:00Z"},
	} {
		_, err := MonthlyAmount(d("1"), ts(p[0]), ts(p[1]))
		assert.True(t, errors.Is(err, ErrPeriod), "%v", p)
	}
}

func TestLineState(t *testing.T) {
	fx, err := pricing.NewFX("USD", []pricing.FXRate{{Day: day("2025-03-01"), Base: "EUR", Quote: "USD", Rate: d("1.1")}})
	require.NoError(t, err)
	withSub := revenueEvent(event.KindInvoicePaid, "2025-03-01T09:00:00Z", "49.00", "USD", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z")
	withSub.Data.Attributes = map[string]string{"subscription_id": "sub_1"}
	tests := []struct {
		name string
		ev   event.Event
		fx   Converter
		want *State
		err  string
	}{
		{"invoice line", withSub, nil, &State{Customer: "stripe/cus_1", Subscription: "sub_1", From: day("2025-03-01"), To: day("2025-04-01"), MRR: d("49")}, ""},
		{"yearly charge", revenueEvent(event.KindCharge, "2025-03-01T09:00:00Z", "1200.00", "USD", "2025-03-01T00:00:00Z", "2026-03-01T00:00:00Z"), nil,
			&State{Customer: "stripe/cus_1", From: day("2025-03-01"), To: day("2026-03-01"), MRR: d("100")}, ""},
		{"proration credit note", revenueEvent(event.KindCreditNote, "2025-05-21T09:00:00Z", "-110.00", "USD", "2025-05-21T00:00:00Z", "2025-06-01T00:00:00Z"), nil,
			&State{Customer: "stripe/cus_1", From: day("2025-05-21"), To: day("2025-06-01"), MRR: d("-310")}, ""},
		// 90 EUR × 1.1 = 99 USD a quarter = 33 USD a month.
		{"converted at the period's first day", revenueEvent(event.KindInvoicePaid, "2025-03-05T09:00:00Z", "90.00", "EUR", "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z"), fx,
			&State{Customer: "stripe/cus_1", From: day("2025-03-01"), To: day("2025-06-01"), MRR: d("33")}, ""},
		{"no rate", revenueEvent(event.KindInvoicePaid, "2025-03-05T09:00:00Z", "90.00", "GBP", "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z"), fx,
			nil, "MRR of stripe/ev-invoice_paid-2025-03-05T09:00:00Z: convert GBP to USD: GBP/USD on or before 2025-03-01"},
		{"no FX table", revenueEvent(event.KindInvoicePaid, "2025-03-05T09:00:00Z", "90.00", "EUR", "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z"), nil,
			nil, "amount in EUR, reporting currency USD, and no FX table"},
		{"one-off charge", revenueEvent(event.KindCharge, "2025-03-05T09:00:00Z", "20.00", "USD", "", ""), nil, nil, ""},
		{"refund with a period", revenueEvent(event.KindRefund, "2025-03-05T09:00:00Z", "-20.00", "USD", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"), nil, nil, ""},
		{"dispute", revenueEvent(event.KindDispute, "2025-03-05T09:00:00Z", "-49.00", "USD", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"), nil, nil, ""},
		{"subscription started", revenueEvent(event.KindSubscriptionStarted, "2025-03-01T00:00:00Z", "49.00", "USD", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"), nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok, err := LineState(tt.ev, "USD", tt.fx)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			if tt.want == nil {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Truef(t, s.MRR.Equal(tt.want.MRR), "MRR %s, want %s", s.MRR, tt.want.MRR)
			s.MRR = tt.want.MRR
			assert.Equal(t, *tt.want, s)
		})
	}
}

func st(customer, from, to, mrr string) State {
	return State{Customer: customer, From: day(from), To: day(to), MRR: d(mrr)}
}

func monthly(customer string, from string, n int, mrr string) []State {
	var out []State
	for i := range n {
		s := day(from).AddDate(0, i, 0)
		out = append(out, State{Customer: customer, From: s, To: s.AddDate(0, 1, 0), MRR: d(mrr)})
	}
	return out
}

// scenario is a hand-computed book of six months (see TestMovements).
func scenario() []State {
	var s []State
	s = append(s, monthly("A", "2025-01-01", 3, "100")...) // expands to 150 in April
	s = append(s, monthly("A", "2025-04-01", 3, "150")...)
	s = append(s, st("B", "2025-02-01", "2026-02-01", "100")) // yearly 1200 from February
	s = append(s, monthly("C", "2025-01-01", 2, "50")...)     // churns in March, back in May
	s = append(s, monthly("C", "2025-05-01", 2, "50")...)
	s = append(s, monthly("D", "2025-01-01", 3, "80")...) // contracts to 30 in April
	s = append(s, monthly("D", "2025-04-01", 3, "30")...)
	for w := range 12 { // weekly 10 from Jan 6; the last week ends Mar 31
		from := day("2025-01-06").AddDate(0, 0, 7*w)
		s = append(s, State{Customer: "E", From: from, To: from.AddDate(0, 0, 7), MRR: d("43.333333333")})
	}
	s = append(s, st("F", "2025-06-01", "2025-07-01", "-20")) // a credit alone: no MRR
	s = append(s, st("G", "2025-05-01", "2025-06-01", "310"), // new in May at 310, upgraded on May 21
		st("G", "2025-05-21", "2025-06-01", "-310"), st("G", "2025-05-21", "2025-06-01", "620"),
		st("G", "2025-06-01", "2025-07-01", "620"))
	return s
}

func jan() Month { return Month{2025, time.January} }

func TestCustomerMRR(t *testing.T) {
	got := CustomerMRR(scenario(), Month{2025, time.March}, Month{2025, time.May})
	var lines []string
	for _, cm := range got {
		lines = append(lines, fmt.Sprintf("%s %s %s", cm.Month, cm.Customer, cm.MRR))
	}
	assert.Equal(t, []string{
		"2025-03 A 100", "2025-03 B 100", "2025-03 D 80",
		"2025-04 A 150", "2025-04 B 100", "2025-04 D 30",
		"2025-05 A 150", "2025-05 B 100", "2025-05 C 50", "2025-05 D 30", "2025-05 G 620",
	}, lines)
}

func TestCustomerMovements(t *testing.T) {
	var lines []string
	for _, mv := range CustomerMovements(scenario(), jan(), Month{2025, time.June}) {
		lines = append(lines, fmt.Sprintf("%s %s %s %s", mv.Month, mv.Customer, mv.Kind, mv.Amount))
	}
	assert.Equal(t, []string{
		"2025-01 A new 100", "2025-01 C new 50", "2025-01 D new 80", "2025-01 E new 43.333333333",
		"2025-02 B new 100",
		"2025-03 C churn -50", "2025-03 E churn -43.333333333",
		"2025-04 A expansion 50", "2025-04 D contraction -50",
		"2025-05 C reactivation 50", "2025-05 G new 620",
	}, lines)
}

func TestMovements(t *testing.T) {
	type row struct {
		month, mrr                                       string
		customers                                        int
		new, expansion, contraction, churn, reactivation string
		counts                                           [5]int // new, expansion, contraction, churned, reactivated
	}
	want := []row{
		{"2025-01", "273.333333333", 4, "273.333333333", "0", "0", "0", "0", [5]int{4, 0, 0, 0, 0}},
		{"2025-02", "373.333333333", 5, "100", "0", "0", "0", "0", [5]int{1, 0, 0, 0, 0}},
		{"2025-03", "280", 3, "0", "0", "0", "-93.333333333", "0", [5]int{0, 0, 0, 2, 0}},
		{"2025-04", "280", 3, "0", "50", "-50", "0", "0", [5]int{0, 1, 1, 0, 0}},
		{"2025-05", "950", 5, "620", "0", "0", "0", "50", [5]int{1, 0, 0, 0, 1}},
		{"2025-06", "950", 5, "0", "0", "0", "0", "0", [5]int{}},
	}
	check := func(t *testing.T, got []MonthMovements, want []row) {
		t.Helper()
		require.Len(t, got, len(want))
		for i, w := range want {
			g := got[i]
			assert.Equal(t, w.month, g.Month.String())
			for _, c := range []struct {
				name      string
				got, want decimal.Decimal
			}{
				{"mrr", g.MRR, d(w.mrr)}, {"new", g.New, d(w.new)}, {"expansion", g.Expansion, d(w.expansion)},
				{"contraction", g.Contraction, d(w.contraction)}, {"churn", g.Churn, d(w.churn)}, {"reactivation", g.Reactivation, d(w.reactivation)},
			} {
				assert.Truef(t, c.got.Equal(c.want), "%s %s = %s, want %s", w.month, c.name, c.got, c.want)
			}
			assert.Equal(t, w.customers, g.Customers, w.month)
			assert.Equal(t, w.counts, [5]int{g.NewCustomers, g.ExpansionCustomers, g.ContractionCustomers, g.ChurnedCustomers, g.ReactivatedCustomers}, w.month)
		}
	}
	check(t, Movements(scenario(), jan(), Month{2025, time.June}), want)
	// A later window still compares April with March and knows C's history.
	check(t, Movements(scenario(), Month{2025, time.April}, Month{2025, time.June}), want[3:])
	// A window before any state: months without MRR.
	check(t, Movements(scenario(), Month{2024, time.November}, Month{2024, time.December}), []row{
		{"2024-11", "0", 0, "0", "0", "0", "0", "0", [5]int{}},
		{"2024-12", "0", 0, "0", "0", "0", "0", "0", [5]int{}},
	})
	assert.Nil(t, Movements(scenario(), Month{2025, time.June}, jan()))
	assert.Len(t, Movements(nil, jan(), Month{2025, time.February}), 2)
}

// From LineState to movements: a Stripe-like book with a mid-cycle upgrade
// and a yearly plan in EUR.
func TestMRRFromEvents(t *testing.T) {
	fx, err := pricing.NewFX("USD", []pricing.FXRate{{Day: day("2025-01-01"), Base: "EUR", Quote: "USD", Rate: d("1.08")}})
	require.NoError(t, err)
	line := func(customer, kind, amount, currency, start, end string) event.Event {
		ps := start
		if end == "" {
			ps = "" // no service period
		}
		ev := revenueEvent(kind, start, amount, currency, ps, end)
		ev.ID += customer
		ev.Data.Customer.ExternalID = customer
		return ev
	}
	evs := []event.Event{
		line("cus_a", event.KindInvoicePaid, "310.00", "USD", "2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z"),
		line("cus_a", event.KindCreditNote, "-110.00", "USD", "2025-05-21T00:00:00Z", "2025-06-01T00:00:00Z"),
		line("cus_a", event.KindInvoicePaid, "220.00", "USD", "2025-05-21T00:00:00Z", "2025-06-01T00:00:00Z"),
		line("cus_a", event.KindInvoicePaid, "620.00", "USD", "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z"),
		line("cus_b", event.KindInvoicePaid, "1000.00", "EUR", "2025-05-15T00:00:00Z", "2026-05-15T00:00:00Z"),
		line("cus_b", event.KindCharge, "50.00", "EUR", "2025-05-15T00:00:00Z", ""), // one-off: no MRR
	}
	var states []State
	for _, ev := range evs {
		s, ok, err := LineState(ev, "USD", fx)
		require.NoError(t, err)
		if ok {
			states = append(states, s)
		}
	}
	require.Len(t, states, 5)
	got := Movements(states, Month{2025, time.May}, Month{2025, time.June})
	// cus_a: 620 at the end of May; cus_b: 1000 EUR × 1.08 / 12 = 90 USD.
	assert.True(t, got[0].MRR.Equal(d("710")), "May MRR %s", got[0].MRR)
	assert.True(t, got[0].New.Equal(d("710")))
	assert.True(t, got[1].MRR.Equal(d("710")))
	assert.True(t, got[1].Expansion.IsZero())
}

// Over random books, each month's MRR is the previous month's plus its
// movements, and the customer counts add up the same way.
func TestMovementsAddUp(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 200 {
		var states []State
		for c := range 1 + r.IntN(12) {
			customer := fmt.Sprintf("c%d", c)
			for range 1 + r.IntN(8) {
				from := day("2024-01-01").Add(time.Duration(r.IntN(700*24)) * time.Hour)
				to := from.Add(time.Duration(1+r.IntN(400*24)) * time.Hour)
				mrr := decimal.New(r.Int64N(2_000_000_000_000)-400_000_000_000, -9)
				s := State{Customer: customer, From: from, To: to, MRR: mrr}
				if r.IntN(10) == 0 {
					s.To = time.Time{} // open-ended
				}
				states = append(states, s)
			}
		}
		first := MonthOf(day("2024-01-01"))
		ms := Movements(states, first, Month{2026, time.June})
		prev, customers := decimal.Zero, 0
		for _, m := range ms {
			sum := prev.Add(m.New).Add(m.Expansion).Add(m.Contraction).Add(m.Churn).Add(m.Reactivation)
			require.Truef(t, sum.Equal(m.MRR), "book %d, %s: %s + movements = %s, MRR %s", i, m.Month, prev, sum, m.MRR)
			require.Equal(t, customers+m.NewCustomers+m.ReactivatedCustomers-m.ChurnedCustomers, m.Customers)
			require.True(t, m.Contraction.Sign() <= 0 && m.Churn.Sign() <= 0 && m.Expansion.Sign() >= 0 && m.New.Sign() >= 0 && m.Reactivation.Sign() >= 0)
			prev, customers = m.MRR, m.Customers
		}
	}
}
