package aggregates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Defaults of Config.
const (
	DefaultInterval = 2 * time.Second
	DefaultDebounce = time.Second
	DefaultMaxDays  = 500
)

// Config configures an Aggregator. A zero field takes its default.
type Config struct {
	// Conn is open on the migrated database. Required.
	Conn driver.Conn
	// Interval between two passes over the dirty days when nothing triggers
	// one sooner. Default 2s.
	Interval time.Duration
	// Debounce is the shortest time between the starts of two passes: the
	// triggers of every flush in between fold into one pass, so a day that
	// each flush touches is recomputed once per Debounce, not once per
	// flush. Default 1s.
	Debounce time.Duration
	// MaxDays bounds the days one query of the pending list returns; a pass
	// goes on until none is left. Default 500.
	MaxDays int
	// Now versions the recomputed days (computed_at). Default time.Now.
	Now func() time.Time
	// Pricer gives the rate card that prices usage events without a cost.
	// Default: the embedded default card alone (pricing.LoadWithDefault).
	Pricer Pricer
	// Metrics default to unregistered ones.
	Metrics *Metrics
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Pricer returns the rate card to price usage with; every projector instance
// must get the same one (projections/pricing.Store reads it from its Kafka
// topic). The aggregator calls it once per batch of dirty days, after reading
// them: a card change is written before the days it re-costs are marked
// dirty, so a pass that sees those marks must see the new card, and an
// implementation over a shared log therefore syncs with the log on each
// call. Safe for concurrent use.
type Pricer func(ctx context.Context) (*pricing.RateCard, error)

// StaticPricer always returns card.
func StaticPricer(card *pricing.RateCard) Pricer {
	return func(context.Context) (*pricing.RateCard, error) { return card, nil }
}

// Aggregator recomputes the daily aggregates of dirty days. Its methods are
// safe for concurrent use, and several aggregators (one per projector
// process) may work on one database: a recompute is idempotent, and of two
// recomputes of a day the one that started later writes the higher
// computed_at. Known limit (as in the design): if a key leaves a day between
// two overlapping recomputes, the later one may not know the key the earlier
// one wrote and leave it without its zero row; Reconcile finds and repairs it.
type Aggregator struct {
	conn     driver.Conn
	interval time.Duration
	debounce time.Duration
	maxDays  int
	now      func() time.Time
	pricer   Pricer
	metrics  *Metrics
	log      *slog.Logger
	trigger  chan struct{}
}

// New returns an Aggregator; Run it.
func New(cfg Config) (*Aggregator, error) {
	var errs []error
	if cfg.Conn == nil {
		errs = append(errs, errors.New("aggregator: conn is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, errors.New("aggregator: interval must not be negative"))
	}
	if cfg.Debounce < 0 {
		errs = append(errs, errors.New("aggregator: debounce must not be negative"))
	}
	if cfg.MaxDays < 0 {
		errs = append(errs, errors.New("aggregator: max days must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &Aggregator{
		conn:     cfg.Conn,
		interval: cmp.Or(cfg.Interval, DefaultInterval),
		debounce: cmp.Or(cfg.Debounce, DefaultDebounce),
		maxDays:  cmp.Or(cfg.MaxDays, DefaultMaxDays),
		now:      orNow(cfg.Now),
		pricer:   cfg.Pricer,
		metrics:  cfg.Metrics,
		log:      cfg.Logger,
		trigger:  make(chan struct{}, 1),
	}
	if a.pricer == nil {
		card, err := pricing.LoadWithDefault()
		if err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		a.pricer = StaticPricer(card)
	}
	if a.metrics == nil {
		a.metrics, _ = NewMetrics(nil) // cannot fail without a registry
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "aggregator")
	return a, nil
}

// Trigger asks Run for a pass now (the batcher calls it after each flush).
// It never blocks: triggers arriving during a pass fold into one more pass.
func (a *Aggregator) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run recomputes the dirty days every Interval and after each Trigger, but
// starts passes at least Debounce apart, until ctx ends, then returns nil. A
// failed pass is logged and counted, and the next one retries: a day stays
// dirty until its recompute was written.
func (a *Aggregator) Run(ctx context.Context) error {
	ticker := time.NewTicker(a.interval)
	defer ticker.Stop()
	for {
		started := time.Now()
		if _, err := a.RecomputePending(ctx); err != nil && ctx.Err() == nil {
			a.metrics.errors.Inc()
			a.log.Error("recompute dirty days failed; retrying on the next pass", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-a.trigger:
		}
		if wait := a.debounce - time.Since(started); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// RecomputePending recomputes every dirty day, oldest first, and marks each
// done at the change it saw. It returns how many days it recomputed.
func (a *Aggregator) RecomputePending(ctx context.Context) (int, error) {
	total := 0
	defer func() { _ = a.updatePending(ctx) }()
	for {
		marks, err := a.pending(ctx)
		if err != nil {
			return total, err
		}
		if len(marks) == 0 {
			return total, nil
		}
		// After reading the marks (see Pricer).
		card, err := a.card(ctx)
		if err != nil {
			return total, err
		}
		var backfill bool
		byKind := map[Kind][]dirtyMark{}
		for _, m := range marks {
			if m.kind == kindLinesBackfill {
				backfill = true
				if err := a.backfillLines(ctx); err != nil {
					return total, err
				}
				m.done = true
				if err := a.markDone(ctx, []dirtyMark{m}); err != nil {
					return total, err
				}
				total++
				continue
			}
			byKind[m.kind] = append(byKind[m.kind], m)
		}
		for _, kind := range slices.Sorted(maps.Keys(byKind)) {
			for chunk := range slices.Chunk(byKind[kind], daysPerRecompute) {
				days := make([]rawevents.Date, len(chunk))
				for i, m := range chunk {
					days[i] = m.day
				}
				if _, _, err := a.recompute(ctx, tableOf(kind), days, card, true); err != nil {
					// The chunks recomputed so far are marked; these stay dirty.
					return total, err
				}
				done := make([]dirtyMark, len(chunk))
				for i, m := range chunk {
					m.done = true
					done[i] = m
				}
				if err := a.markDone(ctx, done); err != nil {
					return total, err
				}
				total += len(chunk)
			}
		}
		// A backfill marks new days dirty: one more pass takes them.
		if len(marks) < a.maxDays && !backfill {
			return total, nil
		}
	}
}

func (a *Aggregator) card(ctx context.Context) (*pricing.RateCard, error) {
	card, err := a.pricer(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the rate card: %w", err)
	}
	return card, nil
}

// Pending counts the dirty days not yet recomputed.
func (a *Aggregator) Pending(ctx context.Context) (int, error) {
	var n uint64
	if err := a.conn.QueryRow(ctx, pendingCountSQL()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dirty days: %w", err)
	}
	return int(n), nil
}

func (a *Aggregator) updatePending(ctx context.Context) error {
	n, err := a.Pending(ctx)
	if err != nil {
		return err
	}
	a.metrics.pending.Set(float64(n))
	return nil
}

func (a *Aggregator) pending(ctx context.Context) ([]dirtyMark, error) {
	sql, args := pendingSQL(a.maxDays)
	rows, err := a.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read dirty days: %w", err)
	}
	defer rows.Close()
	var marks []dirtyMark
	for rows.Next() {
		var (
			kind string
			day  time.Time
			ns   uint64
		)
		if err := rows.Scan(&kind, &day, &ns); err != nil {
			return nil, fmt.Errorf("read dirty days: %w", err)
		}
		if tableOf(Kind(kind)) == nil && Kind(kind) != kindLinesBackfill {
			a.log.Warn("dirty day of an unknown kind ignored", "kind", kind, "day", rawevents.DateOf(day).String())
			continue
		}
		marks = append(marks, dirtyMark{kind: Kind(kind), day: rawevents.DateOf(day), changedNS: ns})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dirty days: %w", err)
	}
	return marks, nil
}

func (a *Aggregator) markDone(ctx context.Context, done []dirtyMark) error {
	if len(done) == 0 {
		return nil
	}
	return insertMarks(ctx, a.conn, done)
}

// Diff is what a reconcile found: the keys of a day whose stored aggregate
// differs from a recompute from the by-day tables. Empty when they agree.
type Diff struct {
	Day   rawevents.Date
	Lines []DiffLine
}

// DiffLine is one differing key. Stored or Recomputed is "" when the key is
// absent on that side.
type DiffLine struct {
	Kind       Kind
	Key        string // the key's columns, name=value, space-separated
	Stored     string // the values, name=value, space-separated
	Recomputed string
}

// Empty reports whether the stored aggregate matched.
func (d Diff) Empty() bool { return len(d.Lines) == 0 }

// String is one line per difference, or a line saying the day matches.
func (d Diff) String() string {
	if d.Empty() {
		return d.Day.String() + ": the stored aggregates match a recompute from the by-day tables\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d difference(s) between the stored aggregates and a recompute:\n", d.Day, len(d.Lines))
	for _, l := range d.Lines {
		fmt.Fprintf(&b, "  %s %s: stored {%s} recomputed {%s}\n", l.Kind, l.Key, l.Stored, l.Recomputed)
	}
	return b.String()
}

// Reconcile recomputes day (every kind) from the by-day tables, pricing
// usage with the current rate card, compares it with the stored aggregates
// and, when they differ, writes the recompute (repairing the day). The Diff
// is what was stored before.
func (a *Aggregator) Reconcile(ctx context.Context, day rawevents.Date) (Diff, error) {
	d := Diff{Day: day}
	card, err := a.card(ctx)
	if err != nil {
		return Diff{}, err
	}
	for _, t := range aggregateTables {
		stored, fresh, err := a.recompute(ctx, t, []rawevents.Date{day}, card, false)
		if err != nil {
			return Diff{}, err
		}
		lines := diff(t, stored[day], fresh[day])
		if len(lines) > 0 {
			if _, _, err := a.recompute(ctx, t, []rawevents.Date{day}, card, true); err != nil {
				return Diff{}, fmt.Errorf("repair %s of %s: %w", t.name, day, err)
			}
		}
		d.Lines = append(d.Lines, lines...)
	}
	return d, nil
}

// aggregateTable describes one daily aggregate: its key columns, its summed
// Decimal columns (then events UInt64 and computed_at UInt64), and the SQL
// that recomputes and reads days (its first column is the day). When price is set, the fresh query has
// freshKeys and freshSums columns instead and price turns its rows into the
// table's.
type aggregateTable struct {
	kind   Kind
	name   string
	keys   []string
	sums   []string
	fresh  func([]rawevents.Date) (string, []any)
	stored func([]rawevents.Date) (string, []any)

	freshKeys, freshSums int
	price                func(card *pricing.RateCard, day rawevents.Date, fresh map[string]aggRow) map[string]aggRow
}

var aggregateTables = []*aggregateTable{
	{
		kind: KindUsage, name: TableDailyUsage,
		keys:  []string{"customer_source", "customer_external_id", "feature", "currency"},
		sums:  []string{"quantity", "cost", "priced_cost", "unpriced_quantity"},
		fresh: usageDaySQL, stored: storedUsageSQL,
		freshKeys: 5, freshSums: 2, price: priceUsage,
	},
	{
		kind: KindRevenue, name: TableDailyRevenue,
		keys:  []string{"customer_source", "customer_external_id", "currency"},
		sums:  []string{"cash", "refunds"},
		fresh: revenueDaySQL, stored: storedRevenueSQL,
	},
	{
		kind: KindRevenueLines, name: TableDailyRevenueLines,
		keys:  []string{"customer_source", "customer_external_id", "currency", "plan"},
		sums:  []string{"cash", "accrual", "refunds"},
		fresh: linesDaySQL, stored: storedLinesSQL,
	},
}

func tableOf(k Kind) *aggregateTable {
	for _, t := range aggregateTables {
		if t.kind == k {
			return t
		}
	}
	return nil
}

// aggRow is one key of a day's aggregate.
type aggRow struct {
	key    []string
	sums   []decimal.Decimal
	events uint64
}

func (r aggRow) id() string { return strings.Join(r.key, "\x00") }

func (r aggRow) equal(o aggRow) bool {
	if r.events != o.events {
		return false
	}
	for i := range r.sums {
		if !r.sums[i].Equal(o.sums[i]) {
			return false
		}
	}
	return true
}

// daysPerRecompute bounds the days one recompute reads and writes at once:
// one query per aggregate for all of them (a pass over many dirty days costs
// a few queries, not a few per day), while the rows held in memory stay
// those of a few days.
const daysPerRecompute = 16

// dayRows is the aggregate of each day, by key id.
type dayRows map[rawevents.Date]map[string]aggRow

// recompute reads the stored aggregate of days and a fresh one from the
// by-day table; with write, it writes the fresh one as whole days: every
// fresh key plus a zero row for each stored key that left its day, each day
// at a computed_at above every one stored for it. The stored maps hold only
// keys with events.
func (a *Aggregator) recompute(ctx context.Context, t *aggregateTable, days []rawevents.Date, card *pricing.RateCard, write bool) (stored, fresh dayRows, err error) {
	start := time.Now()
	// computed_at is taken before reading the by-day rows: of two recomputes
	// of a day, the one that read later wins.
	computedAt := uint64(a.now().UnixNano())
	stored, maxComputed, err := a.read(ctx, t.stored, len(t.keys), len(t.sums), days, true)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s of %d days from %s: %w", t.name, len(days), days[0], err)
	}
	if t.price == nil {
		fresh, _, err = a.read(ctx, t.fresh, len(t.keys), len(t.sums), days, false)
	} else {
		fresh, _, err = a.read(ctx, t.fresh, t.freshKeys, t.freshSums, days, false)
		if err == nil {
			for day, rows := range fresh {
				fresh[day] = t.price(card, day, rows)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recompute %s of %d days from %s: %w", t.name, len(days), days[0], err)
	}
	if !write {
		return stored, fresh, nil
	}
	var out []versionedRow
	for _, day := range days {
		version := max(computedAt, maxComputed[day]+1)
		for _, r := range fresh[day] {
			out = append(out, versionedRow{day: day, computedAt: version, aggRow: r})
		}
		for id, s := range stored[day] {
			if _, ok := fresh[day][id]; !ok {
				zero := aggRow{key: s.key, sums: repeat(decimal.Zero, len(t.sums))}
				out = append(out, versionedRow{day: day, computedAt: version, aggRow: zero})
			}
		}
	}
	if len(out) > 0 {
		if err := a.write(ctx, t, out); err != nil {
			return nil, nil, err
		}
	}
	a.metrics.recomputed.WithLabelValues(string(t.kind)).Add(float64(len(days)))
	a.metrics.duration.WithLabelValues(string(t.kind)).Observe(time.Since(start).Seconds())
	return stored, fresh, nil
}

// read runs a query over days whose columns are the day, nKeys keys, nSums
// sums, events and, when withVersion, computed_at. Rows without events (zero
// rows) are left out; the highest computed_at of each day is returned.
func (a *Aggregator) read(ctx context.Context, query func([]rawevents.Date) (string, []any), nKeys, nSums int, days []rawevents.Date, withVersion bool) (dayRows, map[rawevents.Date]uint64, error) {
	sql, args := query(days)
	rows, err := a.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out := dayRows{}
	maxVersion := map[rawevents.Date]uint64{}
	for rows.Next() {
		r := aggRow{key: make([]string, nKeys), sums: make([]decimal.Decimal, nSums)}
		var (
			at      time.Time
			version uint64
		)
		dest := make([]any, 0, nKeys+nSums+3)
		dest = append(dest, &at)
		for i := range r.key {
			dest = append(dest, &r.key[i])
		}
		for i := range r.sums {
			dest = append(dest, &r.sums[i])
		}
		dest = append(dest, &r.events)
		if withVersion {
			dest = append(dest, &version)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		day := rawevents.DateOf(at)
		maxVersion[day] = max(maxVersion[day], version)
		if r.events > 0 {
			if out[day] == nil {
				out[day] = map[string]aggRow{}
			}
			out[day][r.id()] = r
		}
	}
	return out, maxVersion, rows.Err()
}

// versionedRow is one row to write: a key of a day at its computed_at.
type versionedRow struct {
	day        rawevents.Date
	computedAt uint64
	aggRow
}

func (a *Aggregator) write(ctx context.Context, t *aggregateTable, rows []versionedRow) error {
	names := slices.Concat([]string{"day"}, t.keys, t.sums, []string{"events", "computed_at"})
	n := len(rows)
	days := make([]time.Time, n)
	for j := range rows {
		days[j] = rows[j].day.Midnight()
	}
	cols := []any{days}
	for i := range t.keys {
		c := make([]string, n)
		for j := range rows {
			c[j] = rows[j].key[i]
		}
		cols = append(cols, c)
	}
	for i := range t.sums {
		c := make([]decimal.Decimal, n)
		for j := range rows {
			c[j] = rows[j].sums[i]
		}
		cols = append(cols, c)
	}
	events := make([]uint64, n)
	versions := make([]uint64, n)
	for j := range rows {
		events[j], versions[j] = rows[j].events, rows[j].computedAt
	}
	cols = append(cols, events, versions)
	if err := chstore.InsertColumns(ctx, a.conn, t.name, names, cols); err != nil {
		return fmt.Errorf("write %s of %d rows: %w", t.name, n, err)
	}
	return nil
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// diff lists the keys whose stored and fresh rows differ, sorted by key.
func diff(t *aggregateTable, stored, fresh map[string]aggRow) []DiffLine {
	ids := map[string]struct{}{}
	for id := range stored {
		ids[id] = struct{}{}
	}
	for id := range fresh {
		ids[id] = struct{}{}
	}
	var lines []DiffLine
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		s, inStored := stored[id]
		f, inFresh := fresh[id]
		if inStored && inFresh && s.equal(f) {
			continue
		}
		l := DiffLine{Kind: t.kind}
		if inStored {
			l.Key, l.Stored = t.format(s)
		}
		if inFresh {
			l.Key, l.Recomputed = t.format(f)
		}
		lines = append(lines, l)
	}
	return lines
}

func (t *aggregateTable) format(r aggRow) (key, values string) {
	k := make([]string, len(t.keys))
	for i, name := range t.keys {
		k[i] = name + "=" + r.key[i]
	}
	v := make([]string, 0, len(t.sums)+1)
	for i, name := range t.sums {
		v = append(v, name+"="+r.sums[i].String())
	}
	v = append(v, fmt.Sprintf("events=%d", r.events))
	return strings.Join(k, " "), strings.Join(v, " ")
}
