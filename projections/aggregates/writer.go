// Package aggregates keeps the daily aggregates exact under duplicates, late
// events, corrections and voids (docs/design/daily-aggregates.md):
//
//   - Writer, called by the projector's batcher before each raw insert,
//     copies the batch's usage and revenue rows into usage_by_day and
//     revenue_by_day (ordered by day), with a tombstone under the old day when
//     a correction moves an event to another day, and each revenue event's
//     cash and accrual days into revenue_lines_by_day (lines.go), and records
//     the days it touched in dirty_days;
//   - Aggregator recomputes each dirty day of daily_usage and daily_revenue
//     from the by-day tables, a whole day at a time, and reconciles a day on
//     demand;
//   - Reader answers the dashboard from the aggregates only.
//
// The write order per batch (lookup → trails → by-day rows → dirty days →
// raw rows → ack) is what makes redelivery harmless: a crash before the raw
// insert repeats the same by-day writes (same keys, same revs), and the
// trails (trail.go) written before them keep their days known whatever
// order the redelivered versions come in; a crash after it finds the new
// version current and rewrites only its own by-day row, whose tombstone was
// written before.
package aggregates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Tables of the package (created by chstore's migration 0005; 0007 adds the
// pricing columns).
const (
	TableUsageByDay   = "usage_by_day"
	TableRevenueByDay = "revenue_by_day"
	TableDirtyDays    = "dirty_days"
	TableDailyUsage   = "daily_usage"
	TableDailyRevenue = "daily_revenue"
)

// Kind names an aggregate in dirty_days.
type Kind string

// The aggregates.
const (
	KindUsage   Kind = "usage"
	KindRevenue Kind = "revenue"
)

// refundKinds are the revenue kinds daily_revenue.refunds sums.
var refundKinds = []string{event.KindRefund, event.KindCreditNote}

// Writer writes the by-day copy of each batch and marks its days dirty. It
// implements rawevents.PreWriter and is safe for concurrent use (it keeps no
// state between batches).
type Writer struct {
	conn driver.Conn
	now  func() time.Time
}

var _ rawevents.PreWriter = (*Writer)(nil)

// WriterConfig configures NewWriter.
type WriterConfig struct {
	// Conn is open on the migrated database. Required.
	Conn driver.Conn
	// Now stamps dirty_days.changed_ns. Default time.Now.
	Now func() time.Time
}

// NewWriter returns a Writer.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.Conn == nil {
		return nil, errors.New("aggregates writer: conn is required")
	}
	return &Writer{conn: cfg.Conn, now: orNow(cfg.Now)}, nil
}

// byDayRow is one row of usage_by_day or revenue_by_day.
type byDayRow struct {
	day  rawevents.Date
	rev  uint64
	void bool
	tomb bool           // a tombstone under a day the version left
	row  *rawevents.Row // the event version whose values the row carries
}

// current is what the by-day table may hold of an identity: the highest rev
// written under any day, and every day a version of it may be live under.
//
// The raw tables give the current version and its day. But a flush whose
// by-day rows were written and whose raw insert failed leaves a by-day row
// the raw tables do not know, and a later version of the event may be
// flushed before the failed one is redelivered: by a process that goes on,
// or after a restart, where the redelivered batches need not flush in their
// first order. So each flush first records in by_day_trails the days and
// rev of the by-day rows it is about to write, and a new version tombstones
// every day the trails and the raw tables name. A tombstone under a day
// where nothing of the identity is live is harmless, and so is a trail of a
// write that never happened (its version is redelivered, being unacked).
type current struct {
	rev  uint64
	days []rawevents.Date
}

// WriteBefore looks up the current versions of the batch's usage and revenue
// identities in the raw tables and the trails, writes the trails of the
// by-day rows it plans, then the by-day rows (new versions and tombstones),
// then the dirty days. Customer events have no by-day copy.
func (w *Writer) WriteBefore(ctx context.Context, rows []rawevents.Row) error {
	usage, revenue := rowsOfType(rows, event.TypeUsage), rowsOfType(rows, event.TypeRevenue)
	if len(usage)+len(revenue) == 0 {
		return nil
	}
	trails, err := w.lookupTrails(ctx, identitiesOf(slices.Concat(usage, revenue)))
	if err != nil {
		return err
	}
	planned := func(kind Kind, raw string, batch []*rawevents.Row) ([]byDayRow, error) {
		if len(batch) == 0 {
			return nil, nil
		}
		cur, err := w.lookup(ctx, raw, batch)
		if err != nil {
			return nil, err
		}
		mergeTrails(kind, trails, cur)
		return plan(batch, cur), nil
	}
	usageOut, err := planned(KindUsage, rawevents.TableUsage, usage)
	if err != nil {
		return err
	}
	revenueOut, err := planned(KindRevenue, rawevents.TableRevenue, revenue)
	if err != nil {
		return err
	}
	linesOut, err := w.planLines(ctx, revenue, trails)
	if err != nil {
		return err
	}
	self := func(r *byDayRow) *byDayRow { return r }
	if err := w.insertTrails(ctx, slices.Concat(
		trailsOf(KindUsage, usageOut, self),
		trailsOf(KindRevenue, revenueOut, self),
		trailsOf(KindRevenueLines, linesOut, func(r *lineRow) *byDayRow { return &r.byDayRow }),
	)); err != nil {
		return err
	}
	dirty := map[dirtyKey]struct{}{}
	for _, k := range []struct {
		kind   Kind
		out    []byDayRow
		insert func(context.Context, []byDayRow) error
	}{
		{KindUsage, usageOut, w.insertUsage},
		{KindRevenue, revenueOut, w.insertRevenue},
	} {
		if len(k.out) == 0 {
			continue
		}
		if err := k.insert(ctx, k.out); err != nil {
			return err
		}
		for _, r := range k.out {
			dirty[dirtyKey{k.kind, r.day}] = struct{}{}
		}
	}
	if err := insertLines(ctx, w.conn, linesOut); err != nil {
		return err
	}
	for _, r := range linesOut {
		dirty[dirtyKey{KindRevenueLines, r.day}] = struct{}{}
	}
	return w.markDirty(ctx, dirty)
}

// rowsOfType returns the rows of rows whose event is of type typ.
func rowsOfType(rows []rawevents.Row, typ string) []*rawevents.Row {
	var out []*rawevents.Row
	for i := range rows {
		if rows[i].Event.Type == typ {
			out = append(out, &rows[i])
		}
	}
	return out
}

// plan turns a batch's versions into by-day rows given what the by-day
// table may hold (cur, updated in place). Versions of one identity are
// applied in rev order, each against the one before it:
//   - newer than the current, or equal to it (a redelivery): its row under
//     its day, and a tombstone (void, same rev) under every other day a
//     version may be live under (rewriting an identical row or tombstone is
//     harmless);
//   - older (it arrived after a newer one): nothing, since writing it under a
//     day the newer version never visited would count it there.
func plan(batch []*rawevents.Row, cur map[identity]current) []byDayRow {
	sorted := inRevOrder(batch)
	var out []byDayRow
	for _, r := range sorted {
		id := identity{r.Event.Source, r.Event.ID}
		rev, day := r.Rev(), r.Day()
		c, ok := cur[id]
		if ok && rev < c.rev {
			continue
		}
		out = append(out, byDayRow{day: day, rev: rev, void: r.Event.Data.Void, row: r})
		for _, d := range c.days {
			if d != day {
				out = append(out, byDayRow{day: d, rev: rev, void: true, tomb: true, row: r})
			}
		}
		days := c.days
		if !slices.Contains(days, day) {
			days = append(slices.Clone(days), day)
		}
		cur[id] = current{rev: rev, days: days}
	}
	return out
}

// lookup reads the current rev and day of the batch's identities.
func (w *Writer) lookup(ctx context.Context, rawTable string, batch []*rawevents.Row) (map[identity]current, error) {
	ids := identitiesOf(batch)
	cur := make(map[identity]current, len(ids))
	for _, chunk := range chunkIdentities(ids, maxLookupBytes) {
		if err := w.lookupChunk(ctx, rawTable, chunk, cur); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// maxLookupBytes bounds the identities' text in one lookup query: ClickHouse
// refuses a query longer than max_query_size (256 KiB by default), and a
// batch of 5,000 events with long ids would exceed it.
const maxLookupBytes = 96 << 10

// chunkIdentities splits ids into runs whose quoted text stays under max
// bytes (each identity counts its lengths plus the quotes, commas and
// parentheses around it; escaping may add a little, well within the margin).
func chunkIdentities(ids []identity, max int) [][]identity {
	var (
		chunks [][]identity
		start  int
		size   int
	)
	for i, id := range ids {
		n := len(id.source) + len(id.id) + 10
		if i > start && size+n > max {
			chunks = append(chunks, ids[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(ids) {
		chunks = append(chunks, ids[start:])
	}
	return chunks
}

func (w *Writer) lookupChunk(ctx context.Context, rawTable string, ids []identity, cur map[identity]current) error {
	sql, args := currentSQL(rawTable, ids)
	rows, err := w.conn.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("look up %d current versions in %s: %w", len(ids), rawTable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  identity
			rev uint64
			day time.Time
		)
		if err := rows.Scan(&id.source, &id.id, &rev, &day); err != nil {
			return fmt.Errorf("look up current versions in %s: %w", rawTable, err)
		}
		cur[id] = current{rev: rev, days: []rawevents.Date{rawevents.DateOf(day)}}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up current versions in %s: %w", rawTable, err)
	}
	return nil
}

func (w *Writer) insertUsage(ctx context.Context, rows []byDayRow) error {
	return insertColumns(ctx, w.conn, TableUsageByDay, rows, []byDayColumn{
		byDayCol("feature", func(r *byDayRow) string { return r.row.Event.Data.Feature }),
		byDayCol("currency", func(r *byDayRow) string { return r.row.Event.Data.Currency }),
		byDayCol("quantity", func(r *byDayRow) decimal.Decimal { return orZero(r.row.Event.Data.Quantity) }),
		byDayCol("cost", func(r *byDayRow) decimal.Decimal { return orZero(r.row.Event.Data.Cost) }),
		byDayCol("price", func(r *byDayRow) uint8 { return flag(Priced(r.row.Event.Data)) }),
	})
}

// AttrCostReportedBy is the usage attribute of events whose money the source
// reports as separate cost events (connectors/openai, connectors/anthropic).
const AttrCostReportedBy = "cost_reported_by"

// Priced reports whether a usage event's quantity is priced from the rate
// card: it carries no cost, and no other event reports its cost (pricing
// those would count their money twice).
func Priced(d event.Data) bool {
	_, reported := d.Attributes[AttrCostReportedBy]
	return d.Cost == nil && !reported
}

func (w *Writer) insertRevenue(ctx context.Context, rows []byDayRow) error {
	return insertColumns(ctx, w.conn, TableRevenueByDay, rows, []byDayColumn{
		byDayCol("kind", func(r *byDayRow) string { return r.row.Event.Data.Kind }),
		byDayCol("currency", func(r *byDayRow) string { return r.row.Event.Data.Currency }),
		byDayCol("amount", func(r *byDayRow) decimal.Decimal { return orZero(r.row.Event.Data.Amount) }),
		byDayCol("period_start", func(r *byDayRow) *time.Time { return optionalSeconds(r.row.Event.Data.PeriodStart) }),
		byDayCol("period_end", func(r *byDayRow) *time.Time { return optionalSeconds(r.row.Event.Data.PeriodEnd) }),
	})
}

type byDayColumn struct {
	name   string
	values func(rows []byDayRow) any
}

func byDayCol[T any](name string, value func(r *byDayRow) T) byDayColumn {
	return byDayColumn{name: name, values: func(rows []byDayRow) any {
		out := make([]T, len(rows))
		for i := range rows {
			out[i] = value(&rows[i])
		}
		return out
	}}
}

var byDayIdentity = []byDayColumn{
	byDayCol("day", func(r *byDayRow) time.Time { return r.day.Midnight() }),
	byDayCol("source", func(r *byDayRow) string { return r.row.Event.Source }),
	byDayCol("id", func(r *byDayRow) string { return r.row.Event.ID }),
	byDayCol("rev", func(r *byDayRow) uint64 { return r.rev }),
	byDayCol("void", func(r *byDayRow) uint8 { return flag(r.void) }),
	byDayCol("customer_source", func(r *byDayRow) string { return r.row.Event.Data.Customer.Source }),
	byDayCol("customer_external_id", func(r *byDayRow) string { return r.row.Event.Data.Customer.ExternalID }),
}

// insertColumns writes rows with one columnar insert (the driver's fastest
// path, and the only insert ClickHouse 18.16 takes over the native protocol).
func insertColumns(ctx context.Context, conn driver.Conn, table string, rows []byDayRow, extra []byDayColumn) error {
	cols := slices.Concat(byDayIdentity, extra)
	names := make([]string, len(cols))
	values := make([]any, len(cols))
	for i, c := range cols {
		names[i], values[i] = c.name, c.values(rows)
	}
	return chstore.InsertColumns(ctx, conn, table, names, values)
}

type dirtyKey struct {
	kind Kind
	day  rawevents.Date
}

// markDirty records the days a batch touched, after their by-day rows: the
// aggregator must never see a day dirty before the rows that made it so.
//
// changed_ns is read from the clock after the by-day insert returned. So when
// the aggregator, having seen a mark at changed_ns X, recomputes the day and
// marks it done at X, every mark at or below X that it may thereby hide
// belongs to by-day rows inserted before X, before the recompute read the
// day: nothing is lost. This holds on one clock; across hosts it holds up to
// their clock skew (the design's reconcile covers what slips through).
func (w *Writer) markDirty(ctx context.Context, dirty map[dirtyKey]struct{}) error {
	if len(dirty) == 0 {
		return nil
	}
	ns := uint64(w.now().UnixNano())
	keys := slices.SortedFunc(maps.Keys(dirty), func(a, b dirtyKey) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.day.String(), b.day.String()))
	})
	marks := make([]dirtyMark, len(keys))
	for i, k := range keys {
		marks[i] = dirtyMark{kind: k.kind, day: k.day, changedNS: ns}
	}
	return insertMarks(ctx, w.conn, marks)
}

// dirtyMark is one row of dirty_days.
type dirtyMark struct {
	kind      Kind
	day       rawevents.Date
	changedNS uint64
	done      bool
}

func insertMarks(ctx context.Context, conn driver.Conn, marks []dirtyMark) error {
	var (
		kinds   = make([]string, len(marks))
		days    = make([]time.Time, len(marks))
		changed = make([]uint64, len(marks))
		done    = make([]uint8, len(marks))
		ver     = make([]uint64, len(marks))
	)
	for i, m := range marks {
		kinds[i], days[i], changed[i], done[i] = string(m.kind), m.day.Midnight(), m.changedNS, flag(m.done)
		// A done mark beats the change it saw; any later change beats it.
		ver[i] = m.changedNS*2 + uint64(flag(m.done))
	}
	if err := chstore.InsertColumns(ctx, conn, TableDirtyDays, []string{"kind", "day", "changed_ns", "done", "ver"},
		[]any{kinds, days, changed, done, ver}); err != nil {
		return fmt.Errorf("mark %d days dirty: %w", len(marks), err)
	}
	return nil
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func orZero(d *decimal.Decimal) decimal.Decimal {
	if d == nil {
		return decimal.Zero
	}
	return *d
}

// The DateTime columns hold whole seconds.
func optionalSeconds(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := t.UTC().Truncate(time.Second)
	return &s
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// inRevOrder sorts a copy of batch by identity, then rev: the planners apply
// the versions of one identity oldest first, each against the one before it.
func inRevOrder(batch []*rawevents.Row) []*rawevents.Row {
	sorted := slices.Clone(batch)
	slices.SortStableFunc(sorted, func(a, b *rawevents.Row) int {
		return cmp.Or(
			cmp.Compare(a.Event.Source, b.Event.Source),
			cmp.Compare(a.Event.ID, b.Event.ID),
			cmp.Compare(a.Rev(), b.Rev()))
	})
	return sorted
}
