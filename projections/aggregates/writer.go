// Package aggregates keeps the daily aggregates exact under duplicates, late
// events, corrections and voids (docs/design/daily-aggregates.md):
//
//   - Writer, called by the projector's batcher before each raw insert,
//     copies every version of the batch's usage and revenue events into
//     usage_by_day and revenue_by_day under its own day, and its cash and
//     accrual days into revenue_lines_by_day (lines.go); appends the
//     versions above the first (and the voids) to revisions; and records the
//     days it touched in dirty_days, with the days the identities of those
//     revisions were current on before;
//   - the readers of the by-day tables count a row when it is not void and
//     its identity has no revision or the row's rev is its highest
//     (CountedSQL): a correction, a void, a first version arriving after its
//     correction are resolved by rev when a day is read, so the writer reads
//     nothing for the events that never change (almost all of them);
//   - Aggregator recomputes each dirty day of daily_usage and daily_revenue
//     from the by-day tables, a whole day at a time, and reconciles a day on
//     demand;
//   - Reader answers the dashboard from the aggregates only.
//
// The write order per batch (look up the revisions' current days → by-day
// rows → revisions → dirty days → raw rows → ack) is what makes redelivery
// harmless: every write is idempotent (same keys, same revs), a crash
// before the ack redelivers the whole batch, which writes and marks again,
// and the raw tables, which tell the writer which days a revision leaves,
// take a version only after its by-day rows and marks are in.
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
	TableRevisions    = "revisions"
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

// byDayRow is one row of usage_by_day or revenue_by_day: an event version
// under one of its days.
type byDayRow struct {
	day rawevents.Date
	row *rawevents.Row
}

// WriteBefore writes the batch's by-day rows, then its revisions, then the
// dirty days: those of its rows and, for each revision, those its identity
// was current on before (looked up in the raw tables, which the batch's own
// raw rows reach only after this returns). Customer events have no by-day
// copy.
func (w *Writer) WriteBefore(ctx context.Context, rows []rawevents.Row) error {
	usage, revenue := rowsOfType(rows, event.TypeUsage), rowsOfType(rows, event.TypeRevenue)
	if len(usage)+len(revenue) == 0 {
		return nil
	}
	dirty := map[dirtyKey]struct{}{}
	mark := func(kind Kind, days ...rawevents.Date) {
		for _, d := range days {
			dirty[dirtyKey{kind, d}] = struct{}{}
		}
	}
	// The days the revisions leave: their identities' current versions.
	usageRevisions, revenueRevisions := revisionsOf(usage), revisionsOf(revenue)
	usageBefore, err := w.lookup(ctx, rawevents.TableUsage, usageRevisions)
	if err != nil {
		return err
	}
	for _, day := range usageBefore {
		mark(KindUsage, day)
	}
	linesBefore, err := w.lookupLines(ctx, revenueRevisions)
	if err != nil {
		return err
	}
	for _, l := range linesBefore {
		mark(KindRevenue, l.cashDay)
		mark(KindRevenueLines, l.days...)
	}

	usageOut, revenueOut := byDay(usage), byDay(revenue)
	linesOut := linesOf(revenue)
	if len(usageOut) > 0 {
		if err := w.insertUsage(ctx, usageOut); err != nil {
			return err
		}
	}
	if len(revenueOut) > 0 {
		if err := w.insertRevenue(ctx, revenueOut); err != nil {
			return err
		}
	}
	if err := insertLines(ctx, w.conn, linesOut); err != nil {
		return err
	}
	// After the by-day rows: a revision whose rows failed to insert (a
	// value no table holds, set aside as a dead letter) must not hide the
	// version before it.
	if err := w.insertRevisions(ctx, slices.Concat(usageRevisions, revenueRevisions)); err != nil {
		return err
	}
	for _, r := range usageOut {
		mark(KindUsage, r.day)
	}
	for _, r := range revenueOut {
		mark(KindRevenue, r.day)
	}
	for _, r := range linesOut {
		mark(KindRevenueLines, r.day)
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

// firstRev is the rev of an event's first, unvoided version (Row.Rev:
// version*2 + void, versions from 1): the only rev that is no revision.
const firstRev = 2

// IsRevision reports whether r may supersede another version of its event:
// a version above the first, or a void.
func IsRevision(r *rawevents.Row) bool { return r.Rev() > firstRev }

// revisionsOf returns the rows of batch that are revisions.
func revisionsOf(batch []*rawevents.Row) []*rawevents.Row {
	var out []*rawevents.Row
	for _, r := range batch {
		if IsRevision(r) {
			out = append(out, r)
		}
	}
	return out
}

// byDay returns each row under its own day.
func byDay(batch []*rawevents.Row) []byDayRow {
	out := make([]byDayRow, len(batch))
	for i, r := range batch {
		out[i] = byDayRow{day: r.Day(), row: r}
	}
	return out
}

// lookup reads the day the current version of each of batch's identities
// counts on in rawTable.
func (w *Writer) lookup(ctx context.Context, rawTable string, batch []*rawevents.Row) (map[identity]rawevents.Date, error) {
	ids := identitiesOf(batch)
	cur := make(map[identity]rawevents.Date, len(ids))
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

func (w *Writer) lookupChunk(ctx context.Context, rawTable string, ids []identity, cur map[identity]rawevents.Date) error {
	sql, args := currentSQL(rawTable, ids)
	return chstore.QueryRows(ctx, w.conn, sql, args, func(scan func(...any) error) error {
		var (
			id  identity
			day time.Time
		)
		if err := scan(&id.source, &id.id, &day); err != nil {
			return fmt.Errorf("look up current versions in %s: %w", rawTable, err)
		}
		cur[id] = rawevents.DateOf(day)
		return nil
	})
}

// insertRevisions appends the revisions of a batch.
func (w *Writer) insertRevisions(ctx context.Context, rows []*rawevents.Row) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	types, sources, ids, revs := make([]string, n), make([]string, n), make([]string, n), make([]uint64, n)
	for i, r := range rows {
		types[i], sources[i], ids[i], revs[i] = r.Event.Type, r.Event.Source, r.Event.ID, r.Rev()
	}
	if err := chstore.InsertColumns(ctx, w.conn, TableRevisions, []string{"type", "source", "id", "rev"},
		[]any{types, sources, ids, revs}); err != nil {
		return fmt.Errorf("insert %d revisions: %w", n, err)
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
	byDayCol("rev", func(r *byDayRow) uint64 { return r.row.Rev() }),
	byDayCol("void", func(r *byDayRow) uint8 { return flag(r.row.Event.Data.Void) }),
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
