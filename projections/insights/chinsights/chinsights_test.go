package chinsights

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/insightstest"
)

func openDB(t *testing.T) (context.Context, driver.Conn) {
	t.Helper()
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	return ctx, conn
}

// The ClickHouse store passes the one suite of insights.Store and
// insights.DeliveryLog (insightstest), each on a database of its own.
func TestStoreContract(t *testing.T) {
	ctx, conn := openDB(t)
	s, err := NewStore(conn)
	require.NoError(t, err)
	insightstest.StoreContract(t, ctx, s)
}

func TestDeliveryLogContract(t *testing.T) {
	ctx, conn := openDB(t)
	s, err := NewStore(conn)
	require.NoError(t, err)
	insightstest.DeliveryLogContract(t, ctx, s)
}

type directory struct {
	snap map[customers.Ref]string
	list []customers.Customer
}

func (d directory) Snapshot() map[customers.Ref]string { return d.snap }
func (d directory) List(context.Context, string, int, int) ([]customers.Customer, int, error) {
	return d.list, len(d.list), nil
}

// TestSourceReadsTheDailyAggregates writes daily_usage and daily_revenue rows
// as the aggregator does (a replaced version, a zero row, another currency, a
// day outside the window) and checks the series.
func TestSourceReadsTheDailyAggregates(t *testing.T) {
	ctx, conn := openDB(t)
	d := func(s string) time.Time {
		return time.Date(2026, 11, 0, 0, 0, 0, 0, time.UTC).AddDate(0, 0, mustAtoi(s))
	}
	dec := decimal.RequireFromString
	usage := []struct {
		day                 time.Time
		src, ext, feat, cur string
		qty, cost           string
		events, computed    uint64
	}{
		{d("10"), "stripe", "cus_a", "gpt-4o.input_tokens", "USD", "1000", "1.5", 2, 1},
		{d("10"), "stripe", "cus_a", "gpt-4o.input_tokens", "USD", "2000", "3.25", 3, 2}, // replaces the row above
		{d("10"), "openai", "proj_a", "api.calls", "USD", "7", "0.7", 1, 1},              // linked to the same customer
		{d("10"), "stripe", "cus_a", "old.feature", "USD", "0", "0", 0, 1},               // a key gone from the day
		{d("11"), "stripe", "cus_a", "gpt-4o.input_tokens", "EUR", "5", "9", 1, 1},       // cost in another currency
		{d("11"), "stripe", "cus_b", "gpt-4o.input_tokens", "USD", "10", "0.01", 1, 1},
		{d("20"), "stripe", "cus_b", "gpt-4o.input_tokens", "USD", "10", "100", 1, 1}, // after the window
	}
	var (
		days                    []time.Time
		srcs, exts, feats, curs []string
		qtys, costs             []decimal.Decimal
		events, computed        []uint64
	)
	for _, u := range usage {
		days, srcs, exts, feats, curs = append(days, u.day), append(srcs, u.src), append(exts, u.ext), append(feats, u.feat), append(curs, u.cur)
		qtys, costs = append(qtys, dec(u.qty)), append(costs, dec(u.cost))
		events, computed = append(events, u.events), append(computed, u.computed)
	}
	require.NoError(t, chstore.InsertColumns(ctx, conn, "daily_usage",
		[]string{"day", "customer_source", "customer_external_id", "feature", "currency", "quantity", "events", "cost", "computed_at"},
		[]any{days, srcs, exts, feats, curs, qtys, events, costs, computed}))
	require.NoError(t, chstore.InsertColumns(ctx, conn, "daily_revenue",
		[]string{"day", "customer_source", "customer_external_id", "currency", "cash", "refunds", "events", "computed_at"},
		[]any{[]time.Time{d("10"), d("10"), d("12")}, []string{"stripe", "stripe", "stripe"}, []string{"cus_a", "cus_a", "cus_b"},
			[]string{"USD", "EUR", "USD"}, []decimal.Decimal{dec("2"), dec("50"), dec("8.5")}, []decimal.Decimal{dec("0"), dec("0"), dec("-1.5")},
			[]uint64{1, 1, 2}, []uint64{1, 1, 1}}))
	// Lines with a service period (in revenue_by_day, whose cash the rows
	// above include): an invoice paid before the window for days 5–14, one
	// paid on day 12 for days 12–14, and a voided one.
	ptr := func(t time.Time) *time.Time { return &t }
	require.NoError(t, chstore.InsertColumns(ctx, conn, "revenue_by_day",
		[]string{"day", "source", "id", "rev", "void", "customer_source", "customer_external_id", "kind", "currency", "amount", "period_start", "period_end"},
		[]any{[]time.Time{d("5"), d("12"), d("12")}, []string{"s", "s", "s"}, []string{"inv1", "inv2", "inv3"}, []uint64{2, 2, 3}, []uint8{0, 0, 1},
			[]string{"stripe", "stripe", "stripe"}, []string{"cus_b", "cus_b", "cus_b"}, []string{"invoice_paid", "invoice_paid", "invoice_paid"},
			[]string{"USD", "USD", "USD"}, []decimal.Decimal{dec("30"), dec("10"), dec("99")},
			[]*time.Time{ptr(d("5")), ptr(d("12")), ptr(d("12"))}, []*time.Time{ptr(d("15")), ptr(d("15")), ptr(d("15"))}}))

	dir := directory{
		snap: map[customers.Ref]string{{Source: "stripe", ExternalID: "cus_a"}: "cust_a", {Source: "openai", ExternalID: "proj_a"}: "cust_a"},
		list: []customers.Customer{{ID: "cust_a", Name: "Acme", Plan: "pro"}},
	}
	src, err := NewSource(SourceConfig{Conn: conn, Customers: dir, ReportingCurrency: "USD",
		Plans: []Plan{{Name: "starter", Tier: 0, IncludedQuota: dec("5")}, {Name: "pro", Tier: 1, IncludedQuota: dec("100")}}})
	require.NoError(t, err)
	w := insights.Window{Start: d("10"), End: d("20")}

	series, err := src.CustomerDays(ctx, w)
	require.NoError(t, err)
	bID := customers.SelfID(customers.Ref{Source: "stripe", ExternalID: "cus_b"})
	require.Len(t, series, 2)
	byID := map[string]insights.CustomerSeries{series[0].CustomerID: series[0], series[1].CustomerID: series[1]}

	a := byID["cust_a"]
	assert.Equal(t, "Acme", a.Name)
	assert.Equal(t, "pro", a.Plan)
	assert.Equal(t, 1, a.PlanTier)
	assert.Equal(t, "100", a.IncludedQuota.String())
	require.Len(t, a.Days, 2)
	assert.Equal(t, d("10"), a.Days[0].Day)
	assert.Equal(t, "3.95", a.Days[0].Cost.String())
	assert.Equal(t, "2", a.Days[0].Revenue.String())
	assert.Equal(t, "2000", a.Days[0].MeteredUsage.String())
	assert.Equal(t, "7", a.Days[0].Usage["api.calls"].Quantity.String())
	assert.NotContains(t, a.Days[0].Usage, "old.feature")
	assert.Equal(t, "0", a.Days[1].Cost.String()) // EUR cost is not USD cost
	assert.Equal(t, "5", a.Days[1].MeteredUsage.String())

	b := byID[bID]
	assert.Equal(t, "", b.Plan)
	require.Len(t, b.Days, 5) // accrual: the invoices spread over days 10–14
	var revs []string
	for _, day := range b.Days {
		revs = append(revs, day.Revenue.String())
	}
	assert.Equal(t, []string{"3", "3", "4.84", "6.33", "6.33"}, revs)
	assert.Equal(t, "0.01", b.Days[1].Cost.String())

	features, err := src.FeatureDays(ctx, w)
	require.NoError(t, err)
	require.Len(t, features, 2)
	assert.Equal(t, "api.calls", features[0].Feature)
	assert.Equal(t, "gpt-4o.input_tokens", features[1].Feature)
	assert.False(t, features[1].Attributed)
	total := decimal.Zero
	for _, fd := range features[1].Days {
		total = total.Add(fd.Cost)
	}
	assert.Equal(t, "3.26", total.String())
}

func TestSpreadIsExact(t *testing.T) {
	for _, tc := range []struct {
		amount string
		n      int
		want   []string
	}{
		{"10", 3, []string{"3.34", "3.33", "3.33"}},
		{"-10", 3, []string{"-3.34", "-3.33", "-3.33"}},
		{"0.001", 2, []string{"0.001", "0"}},
		{"49", 30, nil},
	} {
		got := spread(decimal.RequireFromString(tc.amount), tc.n)
		total := decimal.Zero
		var ss []string
		for _, g := range got {
			total = total.Add(g)
			ss = append(ss, g.String())
		}
		assert.Equal(t, tc.amount, total.String())
		if tc.want != nil {
			assert.Equal(t, tc.want, ss)
		}
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
