package aggregates

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
	"github.com/uvrhq/uvr/projections/revenue"
)

// settings is a fixed FX table and plan mapping.
type settings struct {
	fx    *pricing.FX
	plans map[string]string
}

func (s *settings) FX(context.Context) (*pricing.FX, error)                 { return s.fx, nil }
func (s *settings) PlanFeatures(context.Context) (map[string]string, error) { return s.plans, nil }

func period(start, end string) opt {
	return func(e *event.Event) {
		s, _ := time.Parse(time.DateOnly, start)
		t, _ := time.Parse(time.DateOnly, end)
		e.Data.PeriodStart, e.Data.PeriodEnd = &s, &t
	}
}

func onPlan(p string) opt          { return func(e *event.Event) { e.Data.Plan = p } }
func currency(c string) opt        { return func(e *event.Event) { e.Data.Currency = c } }
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// revenueByDay is the revenue of each day of r in r's currency and basis.
func revenueByDay(t *testing.T, a *Analytics, r Range) map[string]string {
	t.Helper()
	points, err := a.Series(testCtx(t), r, PeriodDay, "")
	require.NoError(t, err)
	out := map[string]decimal.Decimal{}
	for _, p := range points {
		if !p.Revenue.IsZero() {
			out[p.Period.String()] = out[p.Period.String()].Add(p.Revenue)
		}
	}
	s := map[string]string{}
	for k, v := range out {
		s[k] = v.String()
	}
	return s
}

// An invoice line accrues evenly over its period; a correction shortening
// the period moves its accrual off the days it left (tombstones), a void
// removes it, and cash stays on the day money moved. EUR converts to USD
// with each day's rate; plans attribute revenue to features.
func TestAccrualFollowsCorrectionsWithFXAndAttribution(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.add(t,
		mk(event.TypeRevenue, "inv", "2026-03-01", pay(event.KindInvoicePaid, "30"), period("2026-03-01", "2026-03-31"), onPlan("pro")),
		mk(event.TypeRevenue, "eur", "2026-03-05", pay(event.KindCharge, "10"), currency("EUR")),
		mk(event.TypeRevenue, "gone", "2026-03-06", pay(event.KindCharge, "7"), period("2026-03-06", "2026-03-08")),
	)
	fx, err := pricing.NewFX("USD", []pricing.FXRate{
		{Day: day("2026-03-01").Midnight(), Base: "EUR", Quote: "USD", Rate: dec("1.1")},
		{Day: day("2026-03-05").Midnight(), Base: "EUR", Quote: "USD", Rate: dec("1.2")},
	})
	require.NoError(t, err)
	s := &settings{fx: fx, plans: map[string]string{"pro": "tokens"}}
	a, err := NewAnalytics(f.conn, nil, s)
	require.NoError(t, err)
	r := Range{Start: day("2026-03-01"), End: day("2026-03-31"), Currency: "USD"}

	got := revenueByDay(t, a, r)
	assert.Equal(t, "1", got["2026-03-30"], "30 over 30 days")
	assert.Equal(t, "13", got["2026-03-05"], "1 of the line + 10 EUR at 1.2")
	assert.Equal(t, "4.5", got["2026-03-06"], "1 + 7/2")

	// The line is corrected to 10 days, the 7 is voided.
	f.add(t,
		mk(event.TypeRevenue, "inv", "2026-03-01", pay(event.KindInvoicePaid, "30"), period("2026-03-01", "2026-03-11"), onPlan("pro"), ver(2)),
		mk(event.TypeRevenue, "gone", "2026-03-06", pay(event.KindCharge, "7"), period("2026-03-06", "2026-03-08"), voided()),
	)
	got = revenueByDay(t, a, r)
	want := map[string]string{"2026-03-05": "15"}
	for d := 1; d <= 10; d++ {
		k := day("2026-03-01").AddDays(d - 1).String()
		want[k] = decimal.NewFromInt(3).Add(dec(map[bool]string{true: "12", false: "0"}[d == 5])).String()
	}
	assert.Equal(t, want, got, "accrual after the correction and the void")

	r.Basis = BasisCash
	assert.Equal(t, map[string]string{"2026-03-01": "30", "2026-03-05": "12"}, revenueByDay(t, a, r), "cash")

	feats, err := a.Features(testCtx(t), r, "")
	require.NoError(t, err)
	require.Len(t, feats, 2)
	assert.Equal(t, rawevents.UnattributedFeature, feats[0].Feature)
	assert.Equal(t, "12", feats[0].Revenue.String())
	assert.Equal(t, "tokens", feats[1].Feature)
	assert.Equal(t, "30", feats[1].Revenue.String())

	// In EUR: USD amounts convert through the inverse rate.
	r.Currency = "EUR"
	assert.Equal(t, map[string]string{"2026-03-01": dec("30").Div(dec("1.1")).Round(9).String(), "2026-03-05": "10"}, revenueByDay(t, a, r))

	// Without a table the EUR charge cannot be summed in USD: an error
	// naming the currency, never a silent drop.
	s.fx = nil
	_, err = a.Customers(testCtx(t), Range{Start: r.Start, End: r.End, Currency: "USD"})
	require.ErrorIs(t, err, pricing.ErrNoRate)
	assert.ErrorIs(t, err, rawevents.ErrInvalidQuery)
	assert.Contains(t, err.Error(), "EUR on 2026-03-05")

	_, err = a.Customers(testCtx(t), Range{Start: r.Start, End: r.End, Currency: "USD", Basis: "daily"})
	assert.ErrorIs(t, err, rawevents.ErrInvalidQuery)

	d, err := f.agg.Reconcile(testCtx(t), day("2026-03-20"))
	require.NoError(t, err)
	assert.True(t, d.Empty(), d.String())
}

// A database projected before migration 0008: the backfill mark spreads
// the revenue events already in revenue_events.
func TestRevenueLinesBackfill(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var rows []rawevents.Row
	for _, e := range []event.Event{
		mk(event.TypeRevenue, "inv", "2026-03-01", pay(event.KindInvoicePaid, "10"), period("2026-03-01", "2026-03-04")),
		mk(event.TypeRevenue, "ref", "2026-03-02", pay(event.KindRefund, "-1")),
	} {
		r, err := rawevents.NewRow(e, time.Now(), -1, -1)
		require.NoError(t, err)
		rows = append(rows, r)
	}
	require.NoError(t, f.raw.InsertBatch(testCtx(t), rows)) // raw only, as before 0008
	require.NoError(t, insertMarks(testCtx(t), f.conn, []dirtyMark{{kind: kindLinesBackfill, day: day("1970-01-02"), changedNS: 1}}))
	_, err := f.agg.RecomputePending(testCtx(t))
	require.NoError(t, err)
	pending, err := f.agg.Pending(testCtx(t))
	require.NoError(t, err)
	assert.Zero(t, pending)

	a, err := NewAnalytics(f.conn, nil)
	require.NoError(t, err)
	got := revenueByDay(t, a, Range{Start: day("2026-03-01"), End: day("2026-03-31"), Currency: "USD"})
	assert.Equal(t, map[string]string{"2026-03-01": "3.333333334", "2026-03-02": "2.333333333", "2026-03-03": "3.333333333"}, got)
}

// MRR movements over months: new, expansion, contraction, churn and a
// reactivation, from monthly lines.
func TestMRRMovements(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	line := func(id, cus, start, end, amount string) event.Event {
		return mk(event.TypeRevenue, id, start, cust(cus), pay(event.KindInvoicePaid, amount), period(start, end))
	}
	f.add(t,
		line("a1", "cus_a", "2026-01-01", "2026-02-01", "100"),
		line("a2", "cus_a", "2026-02-01", "2026-03-01", "150"), // expansion in Feb
		line("a3", "cus_a", "2026-03-01", "2026-04-01", "120"), // contraction in Mar, churn in Apr
		line("b1", "cus_b", "2026-02-01", "2026-03-01", "50"),  // new in Feb, churn in Mar
		line("b2", "cus_b", "2026-04-01", "2026-05-01", "60"),  // reactivation in Apr
	)
	a, err := NewAnalytics(f.conn, nil)
	require.NoError(t, err)
	m, err := a.MRR(testCtx(t), Range{Start: day("2026-01-01"), End: day("2026-04-30"), Currency: "USD"}, "")
	require.NoError(t, err)
	require.Len(t, m.Months, 4)
	type mv struct{ mrr, nw, exp, con, churn, react string }
	of := func(x revenue.MonthMovements) mv {
		return mv{x.MRR.String(), x.New.String(), x.Expansion.String(), x.Contraction.String(), x.Churn.String(), x.Reactivation.String()}
	}
	assert.Equal(t, mv{"100", "100", "0", "0", "0", "0"}, of(m.Months[0]))
	assert.Equal(t, mv{"200", "50", "50", "0", "0", "0"}, of(m.Months[1]))
	assert.Equal(t, mv{"120", "0", "0", "-30", "-50", "0"}, of(m.Months[2]))
	assert.Equal(t, mv{"60", "0", "0", "0", "-120", "60"}, of(m.Months[3]))
	assert.Len(t, m.Customers, 5)
}

// lineDays: the cash day and each accrual day, merged when they coincide;
// a period over MaxAccrualDays and an event without a period accrue on the
// cash day; an event without an amount keeps its cash day with zeros.
func TestLineDays(t *testing.T) {
	type got struct{ day, cash, accrual string }
	days := func(e event.Event) []got {
		var out []got
		for _, l := range lineDays(e) {
			out = append(out, got{l.day.String(), l.cash.String(), l.accrual.String()})
		}
		return out
	}
	inv := mk(event.TypeRevenue, "i", "2026-03-05", pay(event.KindInvoicePaid, "10"), period("2026-03-04", "2026-03-06"))
	assert.Equal(t, []got{{"2026-03-04", "0", "5"}, {"2026-03-05", "10", "5"}}, days(inv))
	long := mk(event.TypeRevenue, "l", "2026-03-05", pay(event.KindInvoicePaid, "10"), period("2026-01-01", "2029-01-10"))
	if l := days(long); assert.Equal(t, 1, len(l), "over MaxAccrualDays: not spread") {
		assert.Equal(t, got{"2026-03-05", "10", "10"}, l[0])
	}
	within := mk(event.TypeRevenue, "w", "2026-03-05", pay(event.KindInvoicePaid, "10"), period("2026-01-01", "2029-01-01"))
	assert.Equal(t, 3*365+1, len(lineDays(within)), "three years (2028 is a leap year), the cash day among them")
	charge := mk(event.TypeRevenue, "c", "2026-03-05", pay(event.KindCharge, "-0"))
	assert.Equal(t, []got{{"2026-03-05", "0", "0"}}, days(charge))
	started := mk(event.TypeRevenue, "s", "2026-03-05", pay("subscription_started", ""))
	assert.Equal(t, []got{{"2026-03-05", "0", "0"}}, days(started))
}
