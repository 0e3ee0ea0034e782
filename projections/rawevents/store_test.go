package rawevents

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

func TestInsertBatchStoresEveryColumn(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)

	u := ev(t, event.TypeUsage, "u1", "2026-02-03T04:05:06.789Z", usage("gpt-4o", "12345678901234567890123456789.123456789", "-0.000000001", "USD"), version(7), func(e *event.Event) {
		e.Subject = "project-9"
		e.Data.Customer = event.Customer{Source: "crm", ExternalID: "cus_9", Email: "a@b.c", Name: "Ada"}
		e.Data.Unit = "tokens"
		we := at("2026-02-03T05:00:00Z")
		e.Data.WindowEnd = &we
		e.Data.Attributes = map[string]string{"model": "gpt-4o", "b": "2", "a": "1"}
	})
	r := ev(t, event.TypeRevenue, "r1", "2026-02-04T00:00:00Z", revenue(event.KindRefund, "-999999999.999999999", "EUR"), func(e *event.Event) {
		ps, pe := at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z")
		e.Data.PeriodStart, e.Data.PeriodEnd = &ps, &pe
		e.Data.Plan = "pro"
		e.Data.InvoiceID = "in_1"
	})
	sub := ev(t, event.TypeRevenue, "r2", "2026-02-04T00:00:00Z", revenue(event.KindSubscriptionStarted, "", ""), void())
	c := ev(t, event.TypeCustomer, "c1", "2026-02-05T00:00:00Z", func(e *event.Event) {
		e.Data.Plan = "pro"
		e.Data.Environment = "prod"
		e.Data.Metadata = map[string]string{"z": "26", "tier": "gold"}
	})
	rows := rowsOf(t, u, r, sub, c)
	rows[0].KafkaPartition, rows[0].KafkaOffset = 3, 1234567890123
	rows[0].IngestedAt = at("2026-02-03T04:05:07.5Z")
	require.NoError(t, store.InsertBatch(ctx, rows))

	var (
		source, id, custSource, custID, email, name, subject, feature, unit, currency string
		ver                                                                           uint32
		voidFlag, hasCost                                                             uint8
		rev                                                                           uint64
		tm, day, ingested                                                             time.Time
		quantity, cost                                                                decimal.Decimal
		windowEnd                                                                     *time.Time
		keys, values                                                                  []string
		partition                                                                     int32
		offset                                                                        int64
	)
	require.NoError(t, conn.QueryRow(ctx, `SELECT source, id, version, void, rev, time, day, customer_source, customer_external_id,
		customer_email, customer_name, subject, feature, quantity, unit, cost, has_cost, currency, window_end,
		attr_keys, attr_values, ingested_at, kafka_partition, kafka_offset FROM usage_events`).Scan(
		&source, &id, &ver, &voidFlag, &rev, &tm, &day, &custSource, &custID, &email, &name, &subject, &feature,
		&quantity, &unit, &cost, &hasCost, &currency, &windowEnd, &keys, &values, &ingested, &partition, &offset))
	assert.Equal(t, []any{"test", "u1", uint32(7), uint8(0), uint64(14), "crm", "cus_9", "a@b.c", "Ada", "project-9", "gpt-4o", "tokens", uint8(1), "USD"},
		[]any{source, id, ver, voidFlag, rev, custSource, custID, email, name, subject, feature, unit, hasCost, currency})
	assert.Equal(t, at("2026-02-03T04:05:06Z"), tm.UTC(), "DateTime keeps whole seconds")
	assert.Equal(t, "2026-02-03", DateOf(day).String())
	assert.Equal(t, "12345678901234567890123456789.123456789", quantity.StringFixed(9))
	assert.Equal(t, "-0.000000001", cost.StringFixed(9))
	require.NotNil(t, windowEnd)
	assert.Equal(t, at("2026-02-03T05:00:00Z"), windowEnd.UTC())
	assert.Equal(t, []string{"a", "b", "model"}, keys)
	assert.Equal(t, []string{"1", "2", "gpt-4o"}, values)
	assert.Equal(t, at("2026-02-03T04:05:07Z"), ingested.UTC())
	assert.Equal(t, int32(3), partition)
	assert.Equal(t, int64(1234567890123), offset)

	type revenueRow struct {
		id, kind, currency, plan, invoice string
		rev                               uint64
		amount                            decimal.Decimal
		periodStart, periodEnd            *time.Time
		partition                         int32
		offset                            int64
	}
	rs, err := conn.Query(ctx, `SELECT id, kind, currency, plan, invoice_id, rev, amount, period_start, period_end, kafka_partition, kafka_offset
		FROM revenue_events ORDER BY id`)
	require.NoError(t, err)
	var got []revenueRow
	for rs.Next() {
		var x revenueRow
		require.NoError(t, rs.Scan(&x.id, &x.kind, &x.currency, &x.plan, &x.invoice, &x.rev, &x.amount, &x.periodStart, &x.periodEnd, &x.partition, &x.offset))
		got = append(got, x)
	}
	require.NoError(t, rs.Err())
	require.Len(t, got, 2)
	assert.Equal(t, "-999999999.999999999", got[0].amount.StringFixed(9))
	assert.Equal(t, at("2026-02-01T00:00:00Z"), got[0].periodStart.UTC())
	assert.Equal(t, at("2026-03-01T00:00:00Z"), got[0].periodEnd.UTC())
	assert.Equal(t, []any{"refund", "EUR", "pro", "in_1", uint64(2), int32(-1), int64(-1)},
		[]any{got[0].kind, got[0].currency, got[0].plan, got[0].invoice, got[0].rev, got[0].partition, got[0].offset})
	assert.Equal(t, []any{"subscription_started", "", uint64(3), true, (*time.Time)(nil), (*time.Time)(nil)},
		[]any{got[1].kind, got[1].currency, got[1].rev, got[1].amount.IsZero(), got[1].periodStart, got[1].periodEnd})

	var plan, env string
	var mkeys, mvalues, akeys []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT plan, environment, metadata_keys, metadata_values, attr_keys FROM customer_events").
		Scan(&plan, &env, &mkeys, &mvalues, &akeys))
	assert.Equal(t, "pro", plan)
	assert.Equal(t, "prod", env)
	assert.Equal(t, []string{"tier", "z"}, mkeys)
	assert.Equal(t, []string{"gold", "26"}, mvalues)
	assert.Empty(t, akeys)

	require.NoError(t, store.Ping(ctx))
}

// dashboardFixture is hand-computed in TestDashboardTotals.
func dashboardFixture(t *testing.T) []Row {
	return rowsOf(t,
		ev(t, event.TypeUsage, "u1", "2026-05-01T10:00:00Z", usage("gpt", "1000", "12.345678901", "USD")),
		ev(t, event.TypeUsage, "u2", "2026-05-01T23:59:59.999Z", usage("gpt", "0.000000001", "0.000000001", "USD")),
		ev(t, event.TypeUsage, "u3", "2026-05-02T00:00:00Z", usage("embed", "99999999999999999999999999999.999999999", "999999999.999999999", "USD")),
		ev(t, event.TypeUsage, "u4", "2026-05-03T12:00:00Z", usage("gpt", "5", "7.5", "EUR")),
		ev(t, event.TypeUsage, "u5", "2026-05-03T12:00:00Z", usage("gpt", "2", "", "")),
		ev(t, event.TypeUsage, "u6", "2026-04-30T23:59:59Z", usage("gpt", "100", "100", "USD")),
		ev(t, event.TypeUsage, "u7", "2026-05-05T00:00:00Z", usage("old", "100", "100", "USD")),
		ev(t, event.TypeRevenue, "r1", "2026-05-01T08:00:00Z", revenue(event.KindCharge, "100.000000001", "USD")),
		ev(t, event.TypeRevenue, "r2", "2026-05-02T08:00:00Z", revenue(event.KindInvoicePaid, "999999999.999999999", "USD")),
		ev(t, event.TypeRevenue, "r3", "2026-05-02T09:00:00Z", revenue(event.KindRefund, "-0.5", "USD")),
		ev(t, event.TypeRevenue, "r4", "2026-05-03T09:00:00Z", revenue(event.KindCreditNote, "-20", "USD")),
		ev(t, event.TypeRevenue, "r5", "2026-05-03T10:00:00Z", revenue(event.KindDispute, "-1.25", "USD")),
		ev(t, event.TypeRevenue, "r6", "2026-05-01T08:00:00Z", revenue(event.KindSubscriptionStarted, "50", "USD")),
		ev(t, event.TypeRevenue, "r7", "2026-05-01T08:00:00Z", revenue(event.KindCharge, "30", "EUR")),
		ev(t, event.TypeRevenue, "r8", "2026-05-06T00:00:00Z", revenue(event.KindCharge, "30", "USD")),
		ev(t, event.TypeCustomer, "c1", "2026-05-01T00:00:00Z"),
	)
}

// want is a compact, exact expectation: decimals as strings compared with
// decimal equality, margins "" for nil.
type wantDay struct{ date, cost, revenue, profit string }
type wantFeature struct{ name, quantity, cost, revenue, margin string }

func assertDashboard(t *testing.T, got Dashboard, total [4]string, days []wantDay, features []wantFeature) {
	t.Helper()
	assertDec(t, total[0], got.Summary.TotalUsageCost, "total usage cost")
	assertDec(t, total[1], got.Summary.TotalRevenue, "total revenue")
	assertDec(t, total[2], got.Summary.TotalProfit, "total profit")
	assertOptDec(t, total[3], got.Summary.ProfitMarginPercentage, "profit margin")
	require.Len(t, got.TimeSeries, len(days))
	for i, w := range days {
		d := got.TimeSeries[i]
		assert.Equal(t, w.date, d.Date.String())
		assertDec(t, w.cost, d.UsageCost, w.date+" cost")
		assertDec(t, w.revenue, d.Revenue, w.date+" revenue")
		assertDec(t, w.profit, d.Profit, w.date+" profit")
	}
	require.Len(t, got.FeatureMetrics, len(features))
	for i, w := range features {
		f := got.FeatureMetrics[i]
		assert.Equal(t, w.name, f.FeatureName)
		assertDec(t, w.quantity, f.UsageCount, w.name+" usage count")
		assertDec(t, w.cost, f.TotalCost, w.name+" cost")
		assertDec(t, w.revenue, f.Revenue, w.name+" revenue")
		assertOptDec(t, w.margin, f.ProfitMargin, w.name+" margin")
	}
}

func assertDec(t *testing.T, want string, got decimal.Decimal, what string) {
	t.Helper()
	assert.True(t, decimal.RequireFromString(want).Equal(got), "%s: want %s, got %s", what, want, got)
}

func assertOptDec(t *testing.T, want string, got *decimal.Decimal, what string) {
	t.Helper()
	if want == "" {
		assert.Nil(t, got, what)
		return
	}
	if assert.NotNil(t, got, what) {
		assertDec(t, want, *got, what)
	}
}

func TestDashboardTotals(t *testing.T) {
	store, _ := newStore(t)
	ctx := testCtx(t)
	require.NoError(t, store.InsertBatch(ctx, dashboardFixture(t)))

	got, err := store.Dashboard(ctx, DashboardQuery{Start: date("2026-05-01"), End: date("2026-05-04"), Currency: "USD"})
	require.NoError(t, err)

	// Hand-computed. Out of range: u6 (04-30 23:59:59), u7 (05-05), r8 (05-06).
	// Not USD: u4's cost (its quantity counts), r7. No money moved: r6.
	//   05-01 cost 12.345678901 + 0.000000001 = 12.345678902; revenue r1 100.000000001
	//   05-02 cost 999999999.999999999; revenue 999999999.999999999 - 0.5 = 999999999.499999999
	//   05-03 cost 0 (u4 EUR, u5 no cost); revenue -20 - 1.25 = -21.25
	//   05-04 nothing
	//   cost 1000000012.345678901, revenue 1000000078.25, profit 65.904321099,
	//   margin 65.904321099 / 1000000078.25 × 100 = 0.00000659… → 0.0000
	assertDashboard(t, got,
		[4]string{"1000000012.345678901", "1000000078.25", "65.904321099", "0"},
		[]wantDay{
			{"2026-05-01", "12.345678902", "100.000000001", "87.654321099"},
			{"2026-05-02", "999999999.999999999", "999999999.499999999", "-0.5"},
			{"2026-05-03", "0", "-21.25", "-21.25"},
			{"2026-05-04", "0", "0", "0"},
		},
		[]wantFeature{
			{"embed", "99999999999999999999999999999.999999999", "999999999.999999999", "0", ""},
			{"gpt", "1007.000000001", "12.345678902", "0", ""},
			{UnattributedFeature, "0", "0", "1000000078.25", "100"},
		})
}

// TestDashboardCountsEachIdentityOnce stores every version of an identity in
// its own part, with merges stopped, so the totals can only be right if the
// reads collapse versions themselves (FINAL) rather than rely on a merge.
func TestDashboardCountsEachIdentityOnce(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	for _, table := range Tables {
		require.NoError(t, conn.Exec(ctx, "SYSTEM STOP MERGES "+table))
	}

	api := func(q, cost string) func(*event.Event) { return usage("api", q, cost, "USD") }
	inserts := [][]event.Event{
		// a: the same version twice: counts once.
		{ev(t, event.TypeUsage, "a", "2026-06-01T10:00:00Z", api("1", "10"))},
		{ev(t, event.TypeUsage, "a", "2026-06-01T10:00:00Z", api("1", "10"))},
		// b: corrected to another day: counts on the new day only.
		{ev(t, event.TypeUsage, "b", "2026-06-01T10:00:00Z", api("1", "5"))},
		{ev(t, event.TypeUsage, "b", "2026-06-02T10:00:00Z", api("2", "7"), version(2))},
		// c: voided by a later version.
		{ev(t, event.TypeUsage, "c", "2026-06-01T10:00:00Z", api("1", "3"))},
		{ev(t, event.TypeUsage, "c", "2026-06-01T10:00:00Z", api("1", "3"), version(2), void())},
		// d: an older version arriving late does not replace the newer one.
		{ev(t, event.TypeUsage, "d", "2026-06-02T10:00:00Z", api("4", "4"), version(3))},
		{ev(t, event.TypeUsage, "d", "2026-06-02T10:00:00Z", api("100", "100"), version(2))},
		// e: a void at the same version wins.
		{ev(t, event.TypeUsage, "e", "2026-06-03T10:00:00Z", api("1", "2"))},
		{ev(t, event.TypeUsage, "e", "2026-06-03T10:00:00Z", api("1", "2"), void())},
		// f: ... whatever the arrival order.
		{ev(t, event.TypeUsage, "f", "2026-06-03T10:00:00Z", api("1", "2"), version(2), void())},
		{ev(t, event.TypeUsage, "f", "2026-06-03T10:00:00Z", api("1", "2"), version(2))},
		// g: corrected out of the range.
		{ev(t, event.TypeUsage, "g", "2026-06-02T10:00:00Z", api("1", "50"))},
		{ev(t, event.TypeUsage, "g", "2026-07-15T10:00:00Z", api("1", "50"), version(2))},
		// h: corrected into the range, from another month.
		{ev(t, event.TypeUsage, "h", "2026-05-15T10:00:00Z", api("1", "8"))},
		{ev(t, event.TypeUsage, "h", "2026-06-03T10:00:00Z", api("8", "9"), version(2))},
		// R1: duplicate, then corrected: 120.
		{ev(t, event.TypeRevenue, "R1", "2026-06-01T10:00:00Z", revenue(event.KindCharge, "100", "USD"))},
		{ev(t, event.TypeRevenue, "R1", "2026-06-01T10:00:00Z", revenue(event.KindCharge, "100", "USD"))},
		{ev(t, event.TypeRevenue, "R1", "2026-06-01T10:00:00Z", revenue(event.KindCharge, "120", "USD"), version(2))},
		// R2: voided at the same version.
		{ev(t, event.TypeRevenue, "R2", "2026-06-02T10:00:00Z", revenue(event.KindRefund, "-10", "USD"))},
		{ev(t, event.TypeRevenue, "R2", "2026-06-02T10:00:00Z", revenue(event.KindRefund, "-10", "USD"), void())},
	}
	for _, events := range inserts {
		require.NoError(t, store.InsertBatch(ctx, rowsOf(t, events...)))
	}

	// The parts of the raw tables only: migrations write parts of their own
	// elsewhere (e.g. dirty marks).
	parts := func() (n uint64) {
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table IN ('usage_events', 'revenue_events') AND active").Scan(&n))
		return n
	}
	require.Equal(t, uint64(len(inserts)), parts(), "one part per insert: nothing merged")
	require.Equal(t, uint64(16), count(t, conn, TableUsage), "every copy is physically there")

	got, err := store.Dashboard(ctx, DashboardQuery{Start: date("2026-06-01"), End: date("2026-06-03"), Currency: "USD"})
	require.NoError(t, err)
	require.Equal(t, uint64(len(inserts)), parts(), "still nothing merged")

	// 06-01: a 10 | R1 120.  06-02: b 7 + d 4 = 11.  06-03: h 9.
	// Quantity: a 1 + b 2 + d 4 + h 8 = 15.
	assertDashboard(t, got,
		[4]string{"30", "120", "90", "75"},
		[]wantDay{
			{"2026-06-01", "10", "120", "110"},
			{"2026-06-02", "11", "0", "-11"},
			{"2026-06-03", "9", "0", "-9"},
		},
		[]wantFeature{
			{"api", "15", "30", "0", ""},
			{UnattributedFeature, "0", "0", "120", "100"},
		})
}

func TestDashboardCurrencyFilter(t *testing.T) {
	store, _ := newStore(t)
	ctx := testCtx(t)
	require.NoError(t, store.InsertBatch(ctx, rowsOf(t,
		ev(t, event.TypeUsage, "u1", "2026-07-01T00:00:00Z", usage("api", "1", "1.5", "USD")),
		ev(t, event.TypeUsage, "u2", "2026-07-01T00:00:00Z", usage("api", "2", "2.5", "EUR")),
		ev(t, event.TypeRevenue, "r1", "2026-07-01T00:00:00Z", revenue(event.KindCharge, "10", "USD")),
		ev(t, event.TypeRevenue, "r2", "2026-07-01T00:00:00Z", revenue(event.KindCharge, "20", "EUR")),
	)))
	day := date("2026-07-01")
	tests := []struct {
		currency string
		total    [4]string
		features []wantFeature
	}{
		{"USD", [4]string{"1.5", "10", "8.5", "85"}, []wantFeature{{"api", "3", "1.5", "0", ""}, {UnattributedFeature, "0", "0", "10", "100"}}},
		{"EUR", [4]string{"2.5", "20", "17.5", "87.5"}, []wantFeature{{"api", "3", "2.5", "0", ""}, {UnattributedFeature, "0", "0", "20", "100"}}},
		{"GBP", [4]string{"0", "0", "0", ""}, []wantFeature{{"api", "3", "0", "0", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			got, err := store.Dashboard(ctx, DashboardQuery{Start: day, End: day, Currency: tt.currency})
			require.NoError(t, err)
			assertDashboard(t, got, tt.total,
				[]wantDay{{"2026-07-01", tt.total[0], tt.total[1], tt.total[2]}}, tt.features)
		})
	}
}

func TestDashboardEmptyDaysAndEmptyTables(t *testing.T) {
	store, _ := newStore(t)
	ctx := testCtx(t)

	got, err := store.Dashboard(ctx, DashboardQuery{Start: date("2024-02-27"), End: date("2024-03-01"), Currency: "USD"})
	require.NoError(t, err)
	assertDashboard(t, got, [4]string{"0", "0", "0", ""},
		[]wantDay{
			{"2024-02-27", "0", "0", "0"},
			{"2024-02-28", "0", "0", "0"},
			{"2024-02-29", "0", "0", "0"}, // leap day
			{"2024-03-01", "0", "0", "0"},
		}, nil)

	require.NoError(t, store.InsertBatch(ctx, rowsOf(t,
		ev(t, event.TypeUsage, "u1", "2024-02-28T12:00:00Z", usage("api", "1", "4", "USD")))))
	got, err = store.Dashboard(ctx, DashboardQuery{Start: date("2024-02-27"), End: date("2024-03-01"), Currency: "USD"})
	require.NoError(t, err)
	assertDashboard(t, got, [4]string{"4", "0", "-4", ""},
		[]wantDay{
			{"2024-02-27", "0", "0", "0"},
			{"2024-02-28", "4", "0", "-4"},
			{"2024-02-29", "0", "0", "0"},
			{"2024-03-01", "0", "0", "0"},
		}, []wantFeature{{"api", "1", "4", "0", ""}})
}

func TestDashboardRejectsInvalidQuery(t *testing.T) {
	store, _ := newStore(t)
	_, err := store.Dashboard(testCtx(t), DashboardQuery{Start: date("2026-01-02"), End: date("2026-01-01"), Currency: "usd"})
	require.ErrorIs(t, err, ErrInvalidQuery)
}
