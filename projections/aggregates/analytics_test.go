package aggregates

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Golden SQL of the analytics builders, with and without a snapshot.
func TestAnalyticsSQL(t *testing.T) {
	r := Range{Start: day("2026-03-01"), End: day("2026-03-09"), Currency: "USD"}
	m := newMapping(map[customers.Ref]string{{Source: "stripe", ExternalID: "cus_1"}: "c1", {Source: "ab", ExternalID: "c"}: "c2"})
	assert.Equal(t, []string{"2:abc", "6:stripecus_1"}, m.keys)
	assert.Equal(t, []string{"c2", "c1"}, m.ids)

	sql, args := usageSQL(r, m, true, allCurrencies)
	assert.Equal(t, `SELECT day, transform(concat(toString(length(customer_source)), ':', customer_source, customer_external_id), ?, ?, '') AS customer, if(customer = '', customer_source, '') AS src, if(customer = '', customer_external_id, '') AS ext, feature, currency, sum(quantity) AS quantity, sum(unpriced_quantity) AS unpriced_quantity, sum(cost) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, customer, src, ext, feature, currency
ORDER BY day, customer, src, ext, feature, currency`, sql)
	assert.Equal(t, []any{m.keys, m.ids, "2026-03-01", "2026-03-09"}, args)

	sql, args = revenueSQL(Range{Start: r.Start, End: r.End, Currency: "USD", Basis: BasisCash}, mapping{}, true, allCurrencies)
	assert.Equal(t, `SELECT day, '' AS customer, customer_source AS src, customer_external_id AS ext, plan, currency, sum(cash) AS revenue
FROM daily_revenue_lines FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, customer, src, ext, plan, currency
ORDER BY day, customer, src, ext, plan, currency`, sql)
	assert.Equal(t, []any{"2026-03-01", "2026-03-09"}, args)
	sql, _ = revenueSQL(r, mapping{}, true, allCurrencies)
	assert.Contains(t, sql, "sum(accrual) AS revenue", "accrual is the default basis")

	// Summed over customers: no directory in the query, no customer key.
	sql, args = usageSQL(r, mapping{}, false, onlyCurrency)
	assert.Equal(t, `SELECT day, '' AS customer, '' AS src, '' AS ext, feature, currency, sum(quantity) AS quantity, sum(unpriced_quantity) AS unpriced_quantity, sum(cost) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?) AND currency IN (?, '')
GROUP BY day, feature, currency
ORDER BY day, feature, currency`, sql)
	assert.Equal(t, []any{"2026-03-01", "2026-03-09", "USD"}, args)
	sql, args = revenueSQL(r, m, true, otherCurrencies)
	assert.Contains(t, sql, "AND currency NOT IN (?, '')\nGROUP BY day, customer, src, ext, plan, currency")
	assert.Equal(t, []any{m.keys, m.ids, "2026-03-01", "2026-03-09", "USD"}, args)

	sql, args = revenueItemsSQL(r, m)
	assert.Equal(t, `SELECT day, transform(concat(toString(length(customer_source)), ':', customer_source, customer_external_id), ?, ?, '') AS customer, customer_source AS src, customer_external_id AS ext, source, id, kind, currency, amount
FROM revenue_by_day FINAL
WHERE void = 0 AND ((source, id) NOT IN (SELECT source, id FROM revisions WHERE type = 'uvr.revenue.v1')
  OR (source, id, rev) IN (SELECT source, id, rev FROM revisions FINAL WHERE type = 'uvr.revenue.v1')) AND day >= toDate(?) AND day <= toDate(?) AND kind IN ('charge', 'invoice_paid', 'refund', 'credit_note', 'dispute')
ORDER BY day, source, id`, sql)
	assert.Equal(t, []any{m.keys, m.ids, "2026-03-01", "2026-03-09"}, args)

	_, err := periodExpr("year")
	assert.ErrorIs(t, err, rawevents.ErrInvalidQuery)
}

// Contract on the real ClickHouse: references group into the snapshot's
// customers, an unknown reference is its own customer, and a new snapshot
// (a merge) re-groups all history with nothing re-ingested.
func TestAnalyticsGroupsReferencesByTheSnapshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.add(t,
		mk(event.TypeUsage, "u1", "2026-03-02", cust("cus_1"), use("tokens", "10", "1.5")),
		mk(event.TypeUsage, "u2", "2026-03-03", cust("cus_2"), use("tokens", "5", "0.25")),
		mk(event.TypeUsage, "u3", "2026-03-03", cust("cus_2"), use("images", "2", "0.1")),
		mk(event.TypeUsage, "u4", "2026-03-10", cust("cus_3"), use("tokens", "7", "0.7")),
		mk(event.TypeRevenue, "r1", "2026-03-02", cust("cus_1"), pay("charge", "20")),
		mk(event.TypeRevenue, "r2", "2026-03-09", cust("cus_2"), pay("refund", "-3")),
		mk(event.TypeRevenue, "r3", "2026-03-10", cust("cus_3"), pay("charge", "4.125")),
		mk(event.TypeUsage, "u5", "2026-04-01", cust("cus_1"), use("tokens", "100", "9")), // outside the range
	)
	snap := map[customers.Ref]string{{Source: "test", ExternalID: "cus_1"}: "acme", {Source: "test", ExternalID: "cus_2"}: "acme"}
	a, err := NewAnalytics(f.conn, func(context.Context) (map[customers.Ref]string, error) { return snap, nil })
	require.NoError(t, err)
	ctx := testCtx(t)
	r := Range{Start: day("2026-03-01"), End: day("2026-03-31"), Currency: "USD"}
	d := decimal.RequireFromString
	self3 := customers.SelfID(customers.Ref{Source: "test", ExternalID: "cus_3"})

	totals, err := a.Customers(ctx, r)
	require.NoError(t, err)
	want := []CustomerTotal{
		{CustomerID: "acme", Quantity: d("17"), Cost: d("1.85"), Revenue: d("17")},
		{CustomerID: self3, Quantity: d("7"), Cost: d("0.7"), Revenue: d("4.125")},
	}
	if self3 < "acme" {
		want[0], want[1] = want[1], want[0]
	}
	requireTotals(t, want, totals)

	feats, err := a.Features(ctx, r, "acme")
	require.NoError(t, err)
	require.Len(t, feats, 3)
	assert.Equal(t, rawevents.UnattributedFeature, feats[0].Feature)
	assert.True(t, d("17").Equal(feats[0].Revenue))
	assert.Equal(t, "images", feats[1].Feature)
	assert.True(t, d("15").Equal(feats[2].Quantity) && d("1.75").Equal(feats[2].Cost), "%+v", feats[2])

	weeks, err := a.Series(ctx, r, PeriodWeek, "acme")
	require.NoError(t, err)
	var periods []string
	for _, p := range weeks {
		periods = append(periods, p.Period.String()+" "+p.Feature)
	}
	assert.Equal(t, []string{"2026-03-02 (unattributed)", "2026-03-02 images", "2026-03-02 tokens", "2026-03-09 (unattributed)"}, periods)

	// Totals: the same money per day × feature as every customer's series
	// summed, without reading the customer dimension.
	all, err := a.Series(ctx, r, PeriodDay, "")
	require.NoError(t, err)
	type dayFeature struct{ day, feature string }
	sum := map[dayFeature]Point{}
	for _, p := range all {
		k := dayFeature{p.Period.String(), p.Feature}
		s := sum[k]
		s.Quantity, s.Cost, s.Revenue = s.Quantity.Add(p.Quantity), s.Cost.Add(p.Cost), s.Revenue.Add(p.Revenue)
		sum[k] = s
	}
	byDay, err := a.Totals(ctx, r, PeriodDay)
	require.NoError(t, err)
	require.Len(t, byDay, len(sum))
	for _, p := range byDay {
		s := sum[dayFeature{p.Period.String(), p.Feature}]
		assert.Empty(t, p.CustomerID)
		assert.True(t, s.Quantity.Equal(p.Quantity) && s.Cost.Equal(p.Cost) && s.Revenue.Equal(p.Revenue), "%s %s: %+v, summed %+v", p.Period, p.Feature, p, s)
	}

	items, err := a.RevenueItems(ctx, r, "acme")
	require.NoError(t, err)
	require.Len(t, items, 2)
	assert.Equal(t, "r1", items[0].ID)
	assert.True(t, d("-3").Equal(items[1].Amount))

	// Merge cus_3's customer into acme: the same rows, one customer.
	snap = map[customers.Ref]string{{Source: "test", ExternalID: "cus_1"}: "acme", {Source: "test", ExternalID: "cus_2"}: "acme", {Source: "test", ExternalID: "cus_3"}: "acme"}
	totals, err = a.Customers(ctx, r)
	require.NoError(t, err)
	requireTotals(t, []CustomerTotal{{CustomerID: "acme", Quantity: d("24"), Cost: d("2.55"), Revenue: d("21.125")}}, totals)

	// A snapshot far beyond the default max_query_size (256 KiB) still
	// loads: the query raises its own limit.
	big := map[customers.Ref]string{{Source: "test", ExternalID: "cus_1"}: "acme"}
	for i := range 20000 {
		big[customers.Ref{Source: "other", ExternalID: fmt.Sprintf("ref-%06d-%s", i, strings.Repeat("x", 20))}] = fmt.Sprintf("cust_%06d", i)
	}
	snap = big
	totals, err = a.Customers(ctx, r)
	require.NoError(t, err)
	require.Len(t, totals, 3)
	assert.Equal(t, "acme", totals[0].CustomerID)

	// No snapshot at all: every reference is its own customer.
	snap = nil
	totals, err = a.Customers(ctx, r)
	require.NoError(t, err)
	assert.Len(t, totals, 3)

	_, err = a.Customers(ctx, Range{Start: day("2026-03-02"), End: day("2026-03-01"), Currency: "USD"})
	assert.ErrorIs(t, err, rawevents.ErrInvalidQuery)
}

func requireTotals(t *testing.T, want, got []CustomerTotal) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].CustomerID, got[i].CustomerID)
		assert.True(t, want[i].Quantity.Equal(got[i].Quantity), "quantity %s: %s", want[i].CustomerID, got[i].Quantity)
		assert.True(t, want[i].Cost.Equal(got[i].Cost), "cost %s: %s", want[i].CustomerID, got[i].Cost)
		assert.True(t, want[i].Revenue.Equal(got[i].Revenue), "revenue %s: %s", want[i].CustomerID, got[i].Revenue)
	}
}
