package aggregates

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// fixture is a fresh migrated database with the projector's pieces on it.
type fixture struct {
	conn    driver.Conn
	raw     *rawevents.ClickHouseStore
	writer  *Writer
	agg     *Aggregator
	reader  *Reader
	batcher *rawevents.Batcher
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx := testCtx(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	f := &fixture{conn: conn, raw: rawevents.NewClickHouseStore(conn)}
	f.writer, err = NewWriter(WriterConfig{Conn: conn})
	require.NoError(t, err)
	f.agg, err = New(Config{Conn: conn})
	require.NoError(t, err)
	f.reader, err = NewReader(conn)
	require.NoError(t, err)
	f.batcher, err = rawevents.NewBatcher(rawevents.BatcherConfig{
		Inserter: f.raw, Before: f.writer, FlushInterval: 10 * time.Millisecond, DedupeSize: -1,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.batcher.Close() })
	return f
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// add stores events as one batch (one Add: one flush) and recomputes the
// dirty days.
func (f *fixture) add(t *testing.T, events ...event.Event) {
	t.Helper()
	rows := make([]rawevents.Row, len(events))
	for i, e := range events {
		require.NoError(t, e.Validate(), e.ID)
		r, err := rawevents.NewRow(e, time.Now(), -1, -1)
		require.NoError(t, err)
		rows[i] = r
	}
	require.NoError(t, f.batcher.Add(testCtx(t), rows))
	_, err := f.agg.RecomputePending(testCtx(t))
	require.NoError(t, err)
}

type opt func(*event.Event)

func mk(typ, id, day string, opts ...opt) event.Event {
	tm, err := time.Parse(time.DateOnly, day)
	if err != nil {
		panic(err)
	}
	e := event.Event{SpecVersion: event.SpecVersion, ID: id, Source: "test", Type: typ, Time: tm.Add(13 * time.Hour),
		Data: event.Data{Customer: event.Customer{Source: "test", ExternalID: "cus_1"}, Version: 1}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func use(feature, qty, cost string) opt {
	return func(e *event.Event) {
		q, c := decimal.RequireFromString(qty), decimal.RequireFromString(cost)
		e.Data.Feature, e.Data.Quantity, e.Data.Unit, e.Data.Cost, e.Data.Currency = feature, &q, "units", &c, "USD"
	}
}

func pay(kind, amount string) opt {
	return func(e *event.Event) {
		e.Data.Kind = kind
		if amount != "" {
			a := decimal.RequireFromString(amount)
			e.Data.Amount, e.Data.Currency = &a, "USD"
		}
	}
}

func ver(v uint32) opt { return func(e *event.Event) { e.Data.Version = v } }
func voided() opt      { return func(e *event.Event) { e.Data.Void = true } }
func cust(id string) opt {
	return func(e *event.Event) { e.Data.Customer.ExternalID = id }
}

func day(s string) rawevents.Date {
	d, err := rawevents.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// Duplicates, a correction moving the day and the amount, a void, an older
// version after a newer one, two versions in one batch: the aggregates give
// the dashboard the raw events give, to the last digit, and a reconcile finds
// nothing to repair.
func TestAggregatesFollowCorrectionsAndVoids(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u, r := event.TypeUsage, event.TypeRevenue

	f.add(t,
		mk(u, "u1", "2026-03-01", use("a", "10", "1.5")),
		mk(u, "u2", "2026-03-02", use("a", "5", "3")),
		mk(u, "u4", "2026-03-01", use("b", "1", "0.000000001"), cust("cus_2")),
		mk(r, "r1", "2026-03-01", pay(event.KindInvoicePaid, "10.00")),
		mk(r, "r3", "2026-03-01", pay(event.KindSubscriptionStarted, "")),
	)
	f.add(t, mk(u, "u2", "2026-03-02", use("a", "5", "3")))                                                        // duplicate
	f.add(t, mk(u, "u1", "2026-03-03", use("a", "20", "2.25"), ver(2)))                                            // moves day and amount
	f.add(t, mk(u, "u2", "2026-03-02", use("a", "5", "3"), ver(2), voided()))                                      // void
	f.add(t, mk(u, "u3", "2026-03-04", use("b", "4", "4"), ver(2)))                                                // newer first…
	f.add(t, mk(u, "u3", "2026-03-02", use("b", "100", "100")))                                                    // …older after it
	f.add(t, mk(u, "u5", "2026-03-01", use("a", "1", "7")), mk(u, "u5", "2026-03-02", use("a", "2", "8"), ver(2))) // one batch
	f.add(t, mk(r, "r1", "2026-03-05", pay(event.KindInvoicePaid, "12.00"), ver(2)), mk(r, "r2", "2026-03-05", pay(event.KindRefund, "-3.00")))
	// Other currencies: their quantity counts, their money does not (no FX yet).
	eur := func(e *event.Event) { e.Data.Currency = "EUR" }
	f.add(t, mk(u, "u6", "2026-03-04", use("a", "6", "600"), eur), mk(r, "r4", "2026-03-04", pay(event.KindCharge, "50"), eur))

	q := rawevents.DashboardQuery{Start: day("2026-02-28"), End: day("2026-03-06"), Currency: "USD"}
	got, err := f.reader.Dashboard(testCtx(t), q)
	require.NoError(t, err)
	want, err := f.raw.Dashboard(testCtx(t), q)
	require.NoError(t, err)
	assert.Equal(t, want, got, "aggregates and raw events disagree")

	costs := map[string]string{}
	revenue := map[string]string{}
	for _, d := range got.TimeSeries {
		costs[d.Date.String()], revenue[d.Date.String()] = d.UsageCost.String(), d.Revenue.String()
	}
	assert.Equal(t, map[string]string{"2026-02-28": "0", "2026-03-01": "0.000000001", "2026-03-02": "8", "2026-03-03": "2.25",
		"2026-03-04": "4", "2026-03-05": "0", "2026-03-06": "0"}, costs)
	assert.Equal(t, map[string]string{"2026-02-28": "0", "2026-03-01": "0", "2026-03-02": "0", "2026-03-03": "0",
		"2026-03-04": "0", "2026-03-05": "9", "2026-03-06": "0"}, revenue)
	assert.Equal(t, "14.250000001", got.Summary.TotalUsageCost.String())

	// The key that left 2026-03-01 (cus_1, feature a) is a zero row there.
	var events uint64
	require.NoError(t, f.conn.QueryRow(testCtx(t), `SELECT events FROM daily_usage FINAL
WHERE day = toDate('2026-03-01') AND customer_external_id = 'cus_1' AND feature = 'a'`).Scan(&events))
	assert.Zero(t, events)

	var refunds decimal.Decimal
	require.NoError(t, f.conn.QueryRow(testCtx(t), `SELECT refunds FROM daily_revenue FINAL WHERE day = toDate('2026-03-05')`).Scan(&refunds))
	assert.Equal(t, "-3", refunds.String())

	pending, err := f.agg.Pending(testCtx(t))
	require.NoError(t, err)
	assert.Zero(t, pending)
	for _, d := range []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-05"} {
		diff, err := f.agg.Reconcile(testCtx(t), day(d))
		require.NoError(t, err)
		assert.True(t, diff.Empty(), diff.String())
	}
}

// A stored aggregate that drifted (here: written by hand) is reported by
// Reconcile, which repairs it.
func TestReconcileReportsAndRepairs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.add(t, mk(event.TypeUsage, "u1", "2026-03-03", use("a", "10", "1.5")))

	ctx := testCtx(t)
	require.NoError(t, f.conn.Exec(ctx, `INSERT INTO daily_usage (day, customer_source, customer_external_id, feature, currency, quantity, events, cost, computed_at)
SELECT toDate('2026-03-03'), 'test', 'cus_1', 'a', 'USD', toDecimal128(10, 9), toUInt64(1), toDecimal128(99, 9), toUInt64(4000000000000000000)`))

	diff, err := f.agg.Reconcile(ctx, day("2026-03-03"))
	require.NoError(t, err)
	require.Len(t, diff.Lines, 1)
	assert.Equal(t, DiffLine{Kind: KindUsage, Key: "customer_source=test customer_external_id=cus_1 feature=a currency=USD",
		Stored: "quantity=10 cost=99 priced_cost=0 unpriced_quantity=0 events=1", Recomputed: "quantity=10 cost=1.5 priced_cost=0 unpriced_quantity=0 events=1"}, diff.Lines[0])
	assert.Contains(t, diff.String(), "1 difference(s)")

	again, err := f.agg.Reconcile(ctx, day("2026-03-03"))
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}

// The idempotency argument of the write order: a flush that wrote the by-day
// rows and died before the raw insert, then its redelivery; and a flush
// redelivered after its raw insert. Neither loses nor doubles anything.
func TestRedeliveredFlushesCountOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := testCtx(t)
	f.add(t, mk(event.TypeUsage, "u1", "2026-03-01", use("a", "1", "1")))

	moved, err := rawevents.NewRow(mk(event.TypeUsage, "u1", "2026-03-02", use("a", "2", "2"), ver(2)), time.Now(), -1, -1)
	require.NoError(t, err)
	failing, err := rawevents.NewBatcher(rawevents.BatcherConfig{Inserter: failInserter{}, Before: f.writer, FlushInterval: time.Millisecond})
	require.NoError(t, err)
	require.Error(t, failing.Add(ctx, []rawevents.Row{moved})) // by-day written, raw not
	require.NoError(t, failing.Close())
	require.NoError(t, f.batcher.Add(ctx, []rawevents.Row{moved})) // the redelivery
	// And once more after the raw insert, straight through the writer.
	require.NoError(t, f.writer.WriteBefore(ctx, []rawevents.Row{moved}))
	_, err = f.agg.RecomputePending(ctx)
	require.NoError(t, err)

	q := rawevents.DashboardQuery{Start: day("2026-03-01"), End: day("2026-03-02"), Currency: "USD"}
	got, err := f.reader.Dashboard(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, "0", got.TimeSeries[0].UsageCost.String())
	assert.Equal(t, "2", got.TimeSeries[1].UsageCost.String())
	assert.Equal(t, "2", got.Summary.TotalUsageCost.String())
}

// failFlush flushes rows through writer to a raw store that fails: the
// by-day rows are written, the raw rows are not.
func failFlush(t *testing.T, writer *Writer, rows []rawevents.Row) {
	t.Helper()
	failing, err := rawevents.NewBatcher(rawevents.BatcherConfig{Inserter: failInserter{}, Before: writer, FlushInterval: time.Millisecond})
	require.NoError(t, err)
	require.Error(t, failing.Add(testCtx(t), rows))
	require.NoError(t, failing.Close())
}

// dashboardMatchesRaw recomputes the dirty days and asserts that the
// aggregates' dashboard of start..end is the raw tables' one; it returns it.
func (f *fixture) dashboardMatchesRaw(t *testing.T, start, end string) rawevents.Dashboard {
	t.Helper()
	ctx := testCtx(t)
	_, err := f.agg.RecomputePending(ctx)
	require.NoError(t, err)
	q := rawevents.DashboardQuery{Start: day(start), End: day(end), Currency: "USD"}
	got, err := f.reader.Dashboard(ctx, q)
	require.NoError(t, err)
	want, err := f.raw.Dashboard(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	return got
}

type failInserter struct{}

func (failInserter) InsertBatch(context.Context, []rawevents.Row) error {
	return errors.New("clickhouse went away")
}

// rowsOf turns events into the rows the projector stores.
func rowsOf(t *testing.T, es ...event.Event) []rawevents.Row {
	t.Helper()
	var out []rawevents.Row
	for _, e := range es {
		r, err := rawevents.NewRow(e, time.Now(), -1, -1)
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

func TestIsRevision(t *testing.T) {
	tests := []struct {
		version uint32
		void    bool
		want    bool
	}{
		{1, false, false},
		{1, true, true},
		{2, false, true},
		{7, true, true},
	}
	for _, tt := range tests {
		e := mk(event.TypeUsage, "x", "2026-03-01", use("a", "1", "1"), ver(tt.version))
		e.Data.Void = tt.void
		r, err := rawevents.NewRow(e, time.Now(), -1, -1)
		require.NoError(t, err)
		assert.Equal(t, tt.want, IsRevision(&r), "version %d void %t", tt.version, tt.void)
	}
}

// A full batch of events with long ids: the lookup query would exceed
// ClickHouse's max_query_size (256 KiB) in one piece, so it is chunked; the
// corrections that follow find every current version.
func TestLargeBatchWithLongIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 5000
	long := strings.Repeat("x", 120)
	first, moved := make([]event.Event, n), make([]event.Event, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", long, i)
		first[i] = mk(event.TypeUsage, id, "2026-03-01", use("a", "1", "0.5"))
		moved[i] = mk(event.TypeUsage, id, "2026-03-02", use("a", "1", "0.25"), ver(2))
	}
	f.add(t, first...)
	f.add(t, moved...)

	q := rawevents.DashboardQuery{Start: day("2026-03-01"), End: day("2026-03-02"), Currency: "USD"}
	got, err := f.reader.Dashboard(testCtx(t), q)
	require.NoError(t, err)
	assert.Equal(t, "0", got.TimeSeries[0].UsageCost.String())
	assert.Equal(t, "1250", got.TimeSeries[1].UsageCost.String())
}

func TestChunkIdentities(t *testing.T) {
	ids := []identity{{"s", "1234"}, {"s", "5678"}, {"s", "9"}}
	// Each of the first two counts 1+4+10 = 15 bytes, the last 12.
	assert.Equal(t, [][]identity{ids}, chunkIdentities(ids, 100))
	assert.Equal(t, [][]identity{ids[:2], ids[2:]}, chunkIdentities(ids, 30))
	assert.Equal(t, [][]identity{ids[:1], ids[1:2], ids[2:]}, chunkIdentities(ids, 1), "one identity per chunk at least")
	assert.Empty(t, chunkIdentities(nil, 100))
}

// A flush that wrote its by-day rows and then failed its raw insert, then a
// restart (a new writer: nothing of the failed flush is in memory): a later
// version of the same event, flushed before the failed one is redelivered,
// supersedes the failed version's by-day rows, which the raw tables do not
// know, by its higher revision. The same for revenue and its lines, whose
// accrual days move with the period.
func TestLaterVersionAfterAFailedFlushAndARestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := testCtx(t)
	f.add(t,
		mk(event.TypeUsage, "u1", "2026-03-01", use("a", "1", "1")),
		mk(event.TypeRevenue, "r1", "2026-03-01", pay(event.KindInvoicePaid, "10"), period("2026-03-01", "2026-03-03")))

	v2 := rowsOf(t,
		mk(event.TypeUsage, "u1", "2026-03-02", use("a", "2", "2"), ver(2)),
		mk(event.TypeRevenue, "r1", "2026-03-05", pay(event.KindInvoicePaid, "20"), period("2026-03-05", "2026-03-07"), ver(2)))
	v3 := rowsOf(t,
		mk(event.TypeUsage, "u1", "2026-03-03", use("a", "3", "3"), ver(3)),
		mk(event.TypeRevenue, "r1", "2026-03-09", pay(event.KindInvoicePaid, "30"), ver(3)))
	before, err := NewWriter(WriterConfig{Conn: f.conn}) // the process that dies
	require.NoError(t, err)
	failFlush(t, before, v2)                   // by-day rows under 03-02 and 03-05..07 written, raw not
	require.NoError(t, f.batcher.Add(ctx, v3)) // after the restart the later version goes first
	require.NoError(t, f.batcher.Add(ctx, v2)) // then the redelivery
	got := f.dashboardMatchesRaw(t, "2026-03-01", "2026-03-09")
	assert.Equal(t, "3", got.Summary.TotalUsageCost.String())

	var cash, accrual decimal.Decimal
	require.NoError(t, f.conn.QueryRow(ctx, `SELECT sum(cash), sum(accrual) FROM revenue_lines_by_day FINAL WHERE `+CountedSQL(event.TypeRevenue)).Scan(&cash, &accrual))
	assert.Equal(t, "30", cash.String(), "cash: the last version only")
	assert.Equal(t, "30", accrual.String(), "accrual: the last version only, none of v2's period")
}

// A flush of v3 writes its by-day rows and revision and fails before its raw
// insert; v2, older, is flushed before v3's redelivery and lands in the raw
// tables. After v3's redelivery nothing of v1 or v2 counts, though their
// rows stay under their days: v3's revision supersedes them.
func TestOlderVersionBetweenAFailedFlushAndItsRedelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := testCtx(t)
	f.add(t,
		mk(event.TypeUsage, "u1", "2026-03-01", use("a", "1", "7")),
		mk(event.TypeRevenue, "r1", "2026-03-01", pay(event.KindInvoicePaid, "10")))
	v2 := rowsOf(t,
		mk(event.TypeUsage, "u1", "2026-03-02", use("a", "1", "7"), ver(2)),
		mk(event.TypeRevenue, "r1", "2026-03-02", pay(event.KindInvoicePaid, "10"), ver(2)))
	v3 := rowsOf(t,
		mk(event.TypeUsage, "u1", "2026-03-03", use("a", "1", "7"), ver(3)),
		mk(event.TypeRevenue, "r1", "2026-03-03", pay(event.KindInvoicePaid, "10"), ver(3)))
	failFlush(t, f.writer, v3)                 // by-day rows under 03-03 written, raw not
	require.NoError(t, f.batcher.Add(ctx, v2)) // the older version, before the redelivery
	require.NoError(t, f.batcher.Add(ctx, v3)) // the redelivery
	got := f.dashboardMatchesRaw(t, "2026-03-01", "2026-03-03")
	assert.Equal(t, "7", got.Summary.TotalUsageCost.String(), "usage: v3 alone")
	assert.Equal(t, "10", got.Summary.TotalRevenue.String(), "revenue: v3 alone")
	var cash decimal.Decimal
	require.NoError(t, f.conn.QueryRow(ctx, `SELECT sum(cash) FROM revenue_lines_by_day FINAL WHERE `+CountedSQL(event.TypeRevenue)).Scan(&cash))
	assert.Equal(t, "10", cash.String(), "revenue lines: v3 alone")
}

// Ten years of daily history in one batch through the projector's write
// path (by-day copy, dirty days, raw rows): 120 monthly partitions
// per by-day table, more than a current ClickHouse takes in one insert
// (chstore.MaxPartitionsPerInsert), so the writer's inserts are split by
// month. Every row lands once, the totals are exact, and every day is
// marked dirty for the aggregator (whose own inserts are split the same
// way; its recompute of 3,653 days is left out to keep the test light).
func TestTenYearsOfDailyHistoryInOneBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	const days = 3653 // to 2025-12-31
	rows := make([]rawevents.Row, days)
	for i := range rows {
		ev := mk(event.TypeUsage, fmt.Sprintf("u%d", i), first.AddDate(0, 0, i).Format(time.DateOnly), use("api.calls", "1", "0.5"))
		r, err := rawevents.NewRow(ev, time.Now(), -1, -1)
		require.NoError(t, err)
		rows[i] = r
	}
	require.NoError(t, f.batcher.Add(testCtx(t), rows), "one Add: one flush")
	for _, q := range []string{
		"SELECT count(), uniqExact(toYYYYMM(day)), toString(sum(cost)) FROM " + TableUsageByDay + " FINAL WHERE void = 0",
		"SELECT count(), uniqExact(toYYYYMM(day)), toString(sum(cost)) FROM " + rawevents.TableUsage + " FINAL WHERE void = 0",
		"SELECT count(), uniqExact(toYYYYMM(day)), '' FROM " + TableDirtyDays + " FINAL WHERE kind = 'usage' AND done = 0",
	} {
		var (
			n, months uint64
			sum       string
		)
		require.NoError(t, f.conn.QueryRow(testCtx(t), q).Scan(&n, &months, &sum), q)
		assert.EqualValues(t, days, n, q)
		assert.EqualValues(t, 120, months, q)
		if sum != "" {
			assert.Equal(t, "1826.500000000", sum, q)
		}
	}
}
