package aggregates

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/pricing"
)

// tokens is a usage event without a cost (and without a currency).
func tokens(feature, qty string) opt {
	return func(e *event.Event) {
		q := decimal.RequireFromString(qty)
		e.Data.Feature, e.Data.Quantity, e.Data.Unit = feature, &q, "tokens"
	}
}

func reportedBy(source string) opt {
	return func(e *event.Event) { e.Data.Attributes = map[string]string{AttrCostReportedBy: source} }
}

// usageRow is one daily_usage row as the test reads it.
type usageRow struct {
	Customer, Feature, Currency          string
	Quantity, Cost, PricedCost, Unpriced string
	Events                               uint64
}

func (f *fixture) dailyUsage(t *testing.T, d string) map[string]usageRow {
	t.Helper()
	out := map[string]usageRow{}
	err := chstore.QueryRows(testCtx(t), f.conn, `SELECT customer_external_id, feature, currency, quantity, cost, priced_cost, unpriced_quantity, events
FROM daily_usage FINAL WHERE day = toDate(?) AND events > 0`, []any{d}, func(scan func(...any) error) error {
		var (
			r          usageRow
			q, c, p, u decimal.Decimal
		)
		if err := scan(&r.Customer, &r.Feature, &r.Currency, &q, &c, &p, &u, &r.Events); err != nil {
			return err
		}
		r.Quantity, r.Cost, r.PricedCost, r.Unpriced = q.String(), c.String(), p.String(), u.String()
		out[r.Customer+" "+r.Feature+" "+r.Currency] = r
		return nil
	})
	require.NoError(t, err)
	return out
}

// perMillion is the test's own price: a list price per 1M tokens (as the
// default card's file states it) times a quantity, rounded half to even to
// 9 decimal places.
func perMillion(price, qty string) string {
	return decimal.RequireFromString(qty).Mul(decimal.RequireFromString(price)).Div(decimal.NewFromInt(1_000_000)).RoundBank(9).String()
}

// Usage events without a cost are priced from the default card, exactly:
// gpt-4o input ($2.50/1M) and cached input ($1.25/1M), gpt-4o-mini output
// ($0.60/1M). A given cost is kept; an event whose cost another event
// reports is not priced; an unknown feature stays at zero cost and shows as
// unpriced. A correction and a void re-cost exactly.
func TestUsageIsPricedFromTheRateCard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := event.TypeUsage
	const d = "2026-03-02"
	f.add(t,
		mk(u, "in-1", d, tokens("gpt-4o.input_tokens", "1234567.891")),
		mk(u, "in-2", d, tokens("gpt-4o.input_tokens", "1000")),
		mk(u, "cached", d, tokens("gpt-4o.cached_input_tokens", "333333")),
		mk(u, "out", d, tokens("gpt-4o-mini.output_tokens", "7777777")),
		mk(u, "given", d, use("gpt-4o.output_tokens", "500", "0.123456789")),
		mk(u, "reported", d, tokens("gpt-4o.output_tokens", "900"), reportedBy("openai_costs")),
		mk(u, "unknown", d, tokens("api.calls", "42")),
	)
	got := f.dailyUsage(t, d)
	inputQty := "1235567.891"
	want := map[string]usageRow{
		"cus_1 gpt-4o.input_tokens USD": {"cus_1", "gpt-4o.input_tokens", "USD", inputQty,
			perMillion("2.50", inputQty), perMillion("2.50", inputQty), "0", 2},
		"cus_1 gpt-4o.cached_input_tokens USD": {"cus_1", "gpt-4o.cached_input_tokens", "USD", "333333",
			perMillion("1.25", "333333"), perMillion("1.25", "333333"), "0", 1},
		"cus_1 gpt-4o-mini.output_tokens USD": {"cus_1", "gpt-4o-mini.output_tokens", "USD", "7777777",
			perMillion("0.60", "7777777"), perMillion("0.60", "7777777"), "0", 1},
		"cus_1 gpt-4o.output_tokens USD": {"cus_1", "gpt-4o.output_tokens", "USD", "500", "0.123456789", "0", "0", 1},
		// Reported by cost events: no currency, no cost, nothing unpriced.
		"cus_1 gpt-4o.output_tokens ": {"cus_1", "gpt-4o.output_tokens", "", "900", "0", "0", "0", 1},
		"cus_1 api.calls ":            {"cus_1", "api.calls", "", "42", "0", "0", "42", 1},
	}
	assert.Equal(t, want, got)
	assert.Equal(t, "3.088919728", got["cus_1 gpt-4o.input_tokens USD"].Cost, "1235567.891 × 2.5e-6, half to even")

	// Analytics carries the unpriced quantity per feature and customer, so
	// api.calls' zero cost reads as unpriced, not free.
	a, err := NewAnalytics(f.conn, nil)
	require.NoError(t, err)
	r := Range{Start: day(d), End: day(d), Currency: "USD"}
	feats, err := a.Features(testCtx(t), r, "")
	require.NoError(t, err)
	unpriced := map[string]string{}
	for _, ft := range feats {
		unpriced[ft.Feature] = ft.Quantity.String() + " unpriced " + ft.UnpricedQuantity.String() + " cost " + ft.Cost.String()
	}
	assert.Equal(t, map[string]string{
		"gpt-4o.input_tokens":        inputQty + " unpriced 0 cost " + perMillion("2.50", inputQty),
		"gpt-4o.cached_input_tokens": "333333 unpriced 0 cost " + perMillion("1.25", "333333"),
		"gpt-4o-mini.output_tokens":  "7777777 unpriced 0 cost " + perMillion("0.60", "7777777"),
		"gpt-4o.output_tokens":       "1400 unpriced 0 cost 0.123456789",
		"api.calls":                  "42 unpriced 42 cost 0",
	}, unpriced)
	totals, err := a.Customers(testCtx(t), r)
	require.NoError(t, err)
	require.Len(t, totals, 1)
	assert.Equal(t, "42", totals[0].UnpricedQuantity.String())

	// A correction (higher version, new quantity) and a void re-cost exactly.
	f.add(t, mk(u, "in-1", d, tokens("gpt-4o.input_tokens", "2000000"), ver(2)), mk(u, "cached", d, tokens("gpt-4o.cached_input_tokens", "333333"), ver(2), voided()))
	got = f.dailyUsage(t, d)
	assert.Equal(t, usageRow{"cus_1", "gpt-4o.input_tokens", "USD", "2001000", "5.0025", "5.0025", "0", 2}, got["cus_1 gpt-4o.input_tokens USD"])
	assert.NotContains(t, got, "cus_1 gpt-4o.cached_input_tokens USD")

	diff, err := f.agg.Reconcile(testCtx(t), day(d))
	require.NoError(t, err)
	assert.True(t, diff.Empty(), diff.String())
}

// A price change effective from a mid-range day re-costs exactly the days
// from it: Affected gives the range, the Recoster marks the days holding
// priced usage in it, and the aggregator recomputes them with the new card.
// Days before keep the old price. Reconcile compares with the current card.
func TestPriceChangeReCostsTheDaysItCovers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	def, err := pricing.LoadWithDefault()
	require.NoError(t, err)
	var card atomic.Pointer[pricing.RateCard]
	card.Store(def)
	f.agg, err = New(Config{Conn: f.conn, Pricer: func(context.Context) (*pricing.RateCard, error) { return card.Load(), nil }})
	require.NoError(t, err)

	days := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"}
	for i, d := range days {
		f.add(t, mk(event.TypeUsage, "in-"+d, d, tokens("gpt-4o.input_tokens", "1000000")),
			mk(event.TypeUsage, "given-"+d, d, use("other.calls", "1", "1")))
		assert.Equal(t, "2.5", f.dailyUsage(t, d)["cus_1 gpt-4o.input_tokens USD"].Cost, i)
	}

	override, err := pricing.Parse("override", []byte(`cards:
  - provider: openai
    version: cut
    effective_from: 2026-03-03
    source: test
    as_of: 2026-03-01
    per: 1000000
    models:
      - model: gpt-4o
        prices: {input_tokens: "1.75"}
`))
	require.NoError(t, err)
	defCards, err := pricing.DefaultCards()
	require.NoError(t, err)
	next, err := pricing.New(defCards, override)
	require.NoError(t, err)
	ranges := pricing.Affected(def, next)
	require.Len(t, ranges, 1)
	assert.Equal(t, "openai/gpt-4o.input_tokens [2026-03-03, …)", ranges[0].String())

	// Reconcile with the new card sees the difference before any re-costing.
	card.Store(next)
	diff, err := f.agg.Reconcile(testCtx(t), day("2026-03-04"))
	require.NoError(t, err)
	assert.Len(t, diff.Lines, 1)
	card.Store(def)
	_, err = f.agg.Reconcile(testCtx(t), day("2026-03-04")) // back to the old price
	require.NoError(t, err)

	card.Store(next)
	rc, err := NewRecoster(f.conn, nil)
	require.NoError(t, err)
	n, err := rc.MarkRecost(testCtx(t), ranges)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "2026-03-03 and 2026-03-04 hold priced usage")
	recomputed, err := f.agg.RecomputePending(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, 2, recomputed)
	for d, want := range map[string]string{"2026-03-01": "2.5", "2026-03-02": "2.5", "2026-03-03": "1.75", "2026-03-04": "1.75"} {
		got := f.dailyUsage(t, d)
		assert.Equal(t, want, got["cus_1 gpt-4o.input_tokens USD"].Cost, d)
		assert.Equal(t, "1", got["cus_1 other.calls USD"].Cost, d)
	}
}

func TestMergeRanges(t *testing.T) {
	d := func(s string) time.Time { tm, _ := time.Parse(time.DateOnly, s); return tm }
	k := pricing.Key{Provider: "p", Model: "m", Unit: "u"}
	got := mergeRanges([]pricing.DateRange{
		{Key: k, From: d("2026-03-05"), To: d("2026-03-07")},
		{Key: k, From: d("2026-03-01"), To: d("2026-03-03")},
		{Key: k, From: d("2026-03-03"), To: d("2026-03-04")}, // touches the one before
		{Key: k, From: d("2026-04-01")},                      // open-ended
		{Key: k, From: d("2026-04-10"), To: d("2026-04-11")}, // inside it
	})
	assert.Equal(t, []span{{d("2026-03-01"), d("2026-03-04")}, {d("2026-03-05"), d("2026-03-07")}, {d("2026-04-01"), time.Time{}}}, got)
	assert.Empty(t, mergeRanges(nil))
}

// priceUsage moves priced quantities into the card's currency, merging them
// with the reported costs of the same key, and keeps what no card prices
// under its own currency as unpriced.
func TestPriceUsage(t *testing.T) {
	card, err := pricing.LoadWithDefault()
	require.NoError(t, err)
	dec := decimal.RequireFromString
	row := func(feature, currency, price, qty, cost string, events uint64) aggRow {
		return aggRow{key: []string{"test", "cus_1", feature, currency, price}, sums: []decimal.Decimal{dec(qty), dec(cost)}, events: events}
	}
	fresh := map[string]aggRow{}
	for _, r := range []aggRow{
		row("gpt-4o.input_tokens", "USD", "0", "10", "0.5", 2),    // reported
		row("gpt-4o.input_tokens", "", "1", "1000000", "0", 3),    // priced into USD, merged
		row("gpt-4o.output_tokens", "EUR", "1", "100000", "0", 1), // priced: the card's USD, not EUR
		row("o3.reasoning_tokens", "", "1", "1000", "0", 1),       // a unit alias: output tokens
		row("api.calls", "", "1", "42", "0", 4),                   // no card: unpriced
		row("gpt-4o.input_tokens", "", "0", "7", "0", 1),          // reported by other events
	} {
		fresh[r.id()] = r
	}
	got := map[string]string{}
	for _, r := range priceUsage(card, day("2026-03-02"), fresh) {
		got[r.key[2]+" "+r.key[3]] = fmt.Sprintf("q=%s cost=%s priced=%s unpriced=%s events=%d", r.sums[0], r.sums[1], r.sums[2], r.sums[3], r.events)
	}
	assert.Equal(t, map[string]string{
		"gpt-4o.input_tokens USD":  "q=1000010 cost=3 priced=2.5 unpriced=0 events=5",
		"gpt-4o.output_tokens USD": "q=100000 cost=1 priced=1 unpriced=0 events=1",
		"o3.reasoning_tokens USD":  "q=1000 cost=0.008 priced=0.008 unpriced=0 events=1", // $8/1M since 2025-06-10
		"api.calls ":               "q=42 cost=0 priced=0 unpriced=42 events=4",
		"gpt-4o.input_tokens ":     "q=7 cost=0 priced=0 unpriced=0 events=1",
	}, got)
}
