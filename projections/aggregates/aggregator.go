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
	DefaultMaxDays  = 500
)

// Config configures an Aggregator. A zero field takes its default.
type Config struct {
	// Conn is open on the migrated database. Required.
	Conn driver.Conn
	// Interval between two passes over the dirty days when nothing triggers
	// one sooner. Default 2s.
	Interval time.Duration
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
	if cfg.MaxDays < 0 {
		errs = append(errs, errors.New("aggregator: max days must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &Aggregator{
		conn:     cfg.Conn,
		interval: cmp.Or(cfg.Interval, DefaultInterval),
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

// Run recomputes the dirty days every Interval and after each Trigger until
// ctx ends, then returns nil. A failed pass is logged and counted, and the
// next one retries: a day stays dirty until its recompute was written.
func (a *Aggregator) Run(ctx context.Context) error {
	ticker := time.NewTicker(a.interval)
	defer ticker.Stop()
	for {
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
		var done []dirtyMark
		for _, m := range marks {
			var err error
			if m.kind == kindLinesBackfill {
				err = a.backfillLines(ctx)
			} else {
				_, _, err = a.recompute(ctx, tableOf(m.kind), m.day, card, true)
			}
			if err != nil {
				// The days recomputed so far are marked; this one stays dirty.
				return total, errors.Join(err, a.markDone(ctx, done))
			}
			m.done = true
			done = append(done, m)
			total++
		}
		if err := a.markDone(ctx, done); err != nil {
			return total, err
		}
		// A backfill marks new days dirty: one more pass takes them.
		if len(marks) < a.maxDays && !slices.ContainsFunc(marks, func(m dirtyMark) bool { return m.kind == kindLinesBackfill }) {
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
		stored, fresh, err := a.recompute(ctx, t, day, card, false)
		if err != nil {
			return Diff{}, err
		}
		lines := diff(t, stored, fresh)
		if len(lines) > 0 {
			if _, _, err := a.recompute(ctx, t, day, card, true); err != nil {
				return Diff{}, fmt.Errorf("repair %s of %s: %w", t.name, day, err)
			}
		}
		d.Lines = append(d.Lines, lines...)
	}
	return d, nil
}

// aggregateTable describes one daily aggregate: its key columns, its summed
// Decimal columns (then events UInt64 and computed_at UInt64), and the SQL
// that recomputes and reads a day. When price is set, the fresh query has
// freshKeys and freshSums columns instead and price turns its rows into the
// table's.
type aggregateTable struct {
	kind   Kind
	name   string
	keys   []string
	sums   []string
	fresh  func(rawevents.Date) (string, []any)
	stored func(rawevents.Date) (string, []any)

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

// recompute reads the stored aggregate of day and a fresh one from the by-day
// table; with write, it writes the fresh one as the whole day: every fresh key
// plus a zero row for each stored key that left the day, all at a computed_at
// above every stored one. The stored map holds only keys with events.
func (a *Aggregator) recompute(ctx context.Context, t *aggregateTable, day rawevents.Date, card *pricing.RateCard, write bool) (stored, fresh map[string]aggRow, err error) {
	start := time.Now()
	// computed_at is taken before reading the by-day rows: of two recomputes
	// of a day, the one that read later wins.
	computedAt := uint64(a.now().UnixNano())
	stored, maxComputed, err := a.read(ctx, t.stored, len(t.keys), len(t.sums), day, true)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s of %s: %w", t.name, day, err)
	}
	if t.price == nil {
		fresh, _, err = a.read(ctx, t.fresh, len(t.keys), len(t.sums), day, false)
	} else {
		fresh, _, err = a.read(ctx, t.fresh, t.freshKeys, t.freshSums, day, false)
		if err == nil {
			fresh = t.price(card, day, fresh)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recompute %s of %s: %w", t.name, day, err)
	}
	if !write {
		return stored, fresh, nil
	}
	rows := slices.Collect(maps.Values(fresh))
	for id, s := range stored {
		if _, ok := fresh[id]; !ok {
			zero := aggRow{key: s.key, sums: repeat(decimal.Zero, len(t.sums))}
			rows = append(rows, zero)
		}
	}
	if len(rows) > 0 {
		if err := a.write(ctx, t, day, rows, max(computedAt, maxComputed+1)); err != nil {
			return nil, nil, err
		}
	}
	a.metrics.recomputed.WithLabelValues(string(t.kind)).Inc()
	a.metrics.duration.WithLabelValues(string(t.kind)).Observe(time.Since(start).Seconds())
	return stored, fresh, nil
}

// read runs a day's query whose columns are nKeys keys, nSums sums, events
// and, when withVersion, computed_at. Rows without events (zero rows) are
// left out; the highest computed_at is returned.
func (a *Aggregator) read(ctx context.Context, query func(rawevents.Date) (string, []any), nKeys, nSums int, day rawevents.Date, withVersion bool) (map[string]aggRow, uint64, error) {
	sql, args := query(day)
	rows, err := a.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string]aggRow{}
	var maxVersion uint64
	for rows.Next() {
		r := aggRow{key: make([]string, nKeys), sums: make([]decimal.Decimal, nSums)}
		var version uint64
		dest := make([]any, 0, nKeys+nSums+2)
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
			return nil, 0, err
		}
		maxVersion = max(maxVersion, version)
		if r.events > 0 {
			out[r.id()] = r
		}
	}
	return out, maxVersion, rows.Err()
}

func (a *Aggregator) write(ctx context.Context, t *aggregateTable, day rawevents.Date, rows []aggRow, computedAt uint64) error {
	names := slices.Concat([]string{"day"}, t.keys, t.sums, []string{"events", "computed_at"})
	n := len(rows)
	cols := []any{repeat(day.Midnight(), n)}
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
	for j := range rows {
		events[j] = rows[j].events
	}
	cols = append(cols, events, repeat(computedAt, n))
	if err := chstore.InsertColumns(ctx, a.conn, t.name, names, cols); err != nil {
		return fmt.Errorf("write %s of %s: %w", t.name, day, err)
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
