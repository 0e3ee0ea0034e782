package rawevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uvrhq/uvr/pipeline/router"
	"github.com/uvrhq/uvr/projections/chstore"
)

// Inserter writes rows to storage. InsertBatch must be safe to call again
// with rows it already stored (storage keeps one row per identity and rev),
// and returns nil only once every row is durably stored.
type Inserter interface {
	InsertBatch(ctx context.Context, rows []Row) error
}

// PreWriter writes, for a batch, what must be stored before its raw rows
// (the aggregates' by-day copy: its lookup of the current versions reads the
// raw tables, so the raw rows must land only after it). WriteBefore gets the
// rows in the order they were added, must be safe to call again with the
// same rows (a failed flush is retried by redelivery), and returns nil only
// once its writes are durable.
type PreWriter interface {
	WriteBefore(ctx context.Context, rows []Row) error
}

// BatcherConfig configures a Batcher. A zero field takes its default.
type BatcherConfig struct {
	// Inserter receives the batches. Required.
	Inserter Inserter
	// Before, when set, is called with each batch before Inserter, within
	// the same flush and timeout; its error fails the flush like an insert
	// error, and the raw rows are then not inserted.
	Before PreWriter
	// Flushed, when set, is called after each successful flush (the
	// aggregator's trigger). It must not block.
	Flushed func()
	// BatchSize flushes a batch once it holds this many rows. Default 5000.
	// One Add's rows always go into one batch, so a batch may exceed it by
	// the rows of the Add that filled it.
	BatchSize int
	// FlushInterval flushes a batch this long after its first row, full or
	// not. Default 250ms.
	FlushInterval time.Duration
	// FlushTimeout bounds one write of a batch or, while rows no retry can
	// store are isolated, of a part of it. Default 30s.
	FlushTimeout time.Duration
	// DedupeSize is how many recently inserted identities (source, id, rev)
	// are remembered to drop redeliveries without inserting them again.
	// Default 200000; negative disables the memory (rows pending in the
	// current batches are still deduplicated).
	DedupeSize int
	// Metrics default to unregistered ones.
	Metrics *Metrics
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Defaults of BatcherConfig.
const (
	DefaultBatchSize     = 5000
	DefaultFlushInterval = 250 * time.Millisecond
	DefaultFlushTimeout  = 30 * time.Second
	DefaultDedupeSize    = 200_000
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("batcher closed")

// Batcher groups rows into large inserts while letting each caller learn
// whether its own rows were stored: Add returns only when the batch holding
// them has been flushed, with that flush's error. A Watermill handler can thus
// ack a message (and let its offset be committed) only after ClickHouse
// acknowledged its rows, and nack it on a failure so that it is redelivered.
//
// One flush runs at a time, in the order the batches were detached (so the
// versions of an event are stored in the order they came; the aggregates do
// not depend on it, but it keeps out of order what need not be). A failed flush drops nothing: every waiter gets
// the error and nothing is remembered as inserted, so the redelivered rows are
// inserted again. A Batcher is safe for concurrent use.
type Batcher struct {
	ins      Inserter
	before   PreWriter
	flushed  func()
	size     int
	interval time.Duration
	timeout  time.Duration
	metrics  *Metrics
	log      *slog.Logger

	mu      sync.Mutex
	pending *batch // accepting rows; nil when empty
	// unflushed maps each row of the pending and flushing batches to its
	// batch: a duplicate of such a row waits for that batch instead of being
	// inserted again (or acked before the first copy is stored).
	unflushed map[rowKey]*batch
	recent    *recentSet // identities stored by successful flushes
	closed    bool

	// lastDone is the done channel of the last batch detached: the next one
	// flushes after it.
	lastDone chan struct{}
	flushes  sync.WaitGroup // detached batches not yet flushed
}

type batch struct {
	// ctx is the first Add's context without its cancellation: the batch
	// carries other callers' rows too, so one caller giving up must not
	// abort their insert. FlushTimeout bounds it instead.
	ctx   context.Context
	rows  []Row
	timer *time.Timer
	after chan struct{} // the previous batch's done; nil for the first
	done  chan struct{} // closed when flushed; err and poisoned are then set
	err   error
	// poisoned holds the rows set aside (isolate) with their error; the
	// others are stored when err is nil.
	poisoned map[rowKey]error
}

// NewBatcher returns a Batcher; Close it to flush what is pending.
func NewBatcher(cfg BatcherConfig) (*Batcher, error) {
	var errs []error
	if cfg.Inserter == nil {
		errs = append(errs, errors.New("batcher: inserter is required"))
	}
	if cfg.BatchSize < 0 {
		errs = append(errs, errors.New("batcher: batch size must not be negative"))
	}
	if cfg.FlushInterval < 0 {
		errs = append(errs, errors.New("batcher: flush interval must not be negative"))
	}
	if cfg.FlushTimeout < 0 {
		errs = append(errs, errors.New("batcher: flush timeout must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b := &Batcher{
		ins:       cfg.Inserter,
		before:    cfg.Before,
		flushed:   cfg.Flushed,
		size:      or(cfg.BatchSize, DefaultBatchSize),
		interval:  or(cfg.FlushInterval, DefaultFlushInterval),
		timeout:   or(cfg.FlushTimeout, DefaultFlushTimeout),
		metrics:   cfg.Metrics,
		log:       cfg.Logger,
		unflushed: map[rowKey]*batch{},
		recent:    newRecentSet(max(0, or(cfg.DedupeSize, DefaultDedupeSize))),
	}
	if b.metrics == nil {
		b.metrics, _ = NewMetrics(nil) // cannot fail without a registry
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("component", "projector")
	return b, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Add queues rows and blocks until they are stored, returning the error of
// the flush that stored them, or ctx's error if ctx ends first (the rows may
// still be stored later; storing them twice is harmless). Rows whose identity
// and rev are already pending or were recently stored are dropped; if the
// copy is still pending, Add waits for its flush instead.
func (b *Batcher) Add(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	var (
		wait    []*batch
		mine    = map[*batch][]rowKey{} // the rows of this call each batch stores
		dropped int
	)
	for i := range rows {
		k := rows[i].key()
		if other, ok := b.unflushed[k]; ok {
			dropped++
			wait = appendOnce(wait, other)
			mine[other] = append(mine[other], k)
			continue
		}
		if b.recent.contains(k) {
			dropped++
			continue
		}
		if b.pending == nil {
			b.pending = b.newBatch(ctx)
		}
		b.pending.rows = append(b.pending.rows, rows[i])
		b.unflushed[k] = b.pending
		wait = appendOnce(wait, b.pending)
		mine[b.pending] = append(mine[b.pending], k)
	}
	if p := b.pending; p != nil && len(p.rows) >= b.size {
		b.detachLocked(p)
		go b.flush(p)
	}
	b.mu.Unlock()

	if dropped > 0 {
		b.metrics.duplicatesDropped.Add(float64(dropped))
	}
	for _, bt := range wait {
		select {
		case <-bt.done:
			if bt.err != nil {
				return bt.err
			}
			for _, k := range mine[bt] {
				if err := bt.poisoned[k]; err != nil {
					return router.PermanentClass(chstore.Classify(err), fmt.Errorf("event %s/%s rev %d set aside: %w", k.source, k.id, k.rev, err))
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func appendOnce(bs []*batch, b *batch) []*batch {
	for _, x := range bs {
		if x == b {
			return bs
		}
	}
	return append(bs, b)
}

// newBatch starts a batch whose timer flushes it FlushInterval from now
// unless it was flushed for its size before.
func (b *Batcher) newBatch(ctx context.Context) *batch {
	bt := &batch{ctx: context.WithoutCancel(ctx), done: make(chan struct{})}
	bt.timer = time.AfterFunc(b.interval, func() { b.flushWhenFree(bt) })
	return bt
}

// flushWhenFree flushes bt once the flush before it is done, and lets bt go on
// taking rows until then (group commit). A flush costs about the same for ten
// rows as for thousands (a dozen ClickHouse statements), so when flushes take
// longer than FlushInterval — a projector catching up — batches grow with the
// backlog instead of queueing up small behind a slow one; at the steady state
// nothing changes.
func (b *Batcher) flushWhenFree(bt *batch) {
	b.mu.Lock()
	prev := b.lastDone
	b.mu.Unlock()
	if prev != nil {
		<-prev // closed by the previous flush, whatever its outcome
	}
	b.mu.Lock()
	if b.pending != bt { // flushed for its size (or by Close) meanwhile
		b.mu.Unlock()
		return
	}
	b.detachLocked(bt)
	b.mu.Unlock()
	b.flush(bt)
}

// detachLocked stops bt from accepting rows; the caller must then flush it.
func (b *Batcher) detachLocked(bt *batch) {
	b.pending = nil
	bt.timer.Stop()
	bt.after, b.lastDone = b.lastDone, bt.done
	b.flushes.Add(1)
}

func (b *Batcher) flush(bt *batch) {
	defer b.flushes.Done()
	if bt.after != nil {
		<-bt.after
	}

	start := time.Now()
	poisoned := map[rowKey]error{}
	err := b.isolate(bt.ctx, bt.rows, poisoned)
	elapsed := time.Since(start)

	b.metrics.batchRows.Observe(float64(len(bt.rows)))
	b.metrics.flushSeconds.Observe(elapsed.Seconds())

	// Only a successful flush makes rows "recently stored": after a failure
	// the redelivered rows must be inserted again, and a row set aside is
	// not stored (retrying its dead letter must insert it).
	b.mu.Lock()
	for i := range bt.rows {
		k := bt.rows[i].key()
		if b.unflushed[k] == bt {
			delete(b.unflushed, k)
		}
		if _, bad := poisoned[k]; err == nil && !bad {
			b.recent.add(k)
		}
	}
	b.mu.Unlock()

	if err != nil {
		b.metrics.insertErrors.Inc()
		b.log.Error("flush to clickhouse failed; its messages will be redelivered", "rows", len(bt.rows), "duration", elapsed, "error", err)
		bt.err = fmt.Errorf("flush %d rows: %w", len(bt.rows), err)
	} else {
		bt.poisoned = poisoned
		counts := map[string]int{}
		for i := range bt.rows {
			if _, bad := poisoned[bt.rows[i].key()]; !bad {
				counts[bt.rows[i].Table()]++
			}
		}
		for table, n := range counts {
			b.metrics.rowsInserted.WithLabelValues(table).Add(float64(n))
		}
		if len(poisoned) > 0 {
			b.log.Warn("flushed to clickhouse but for rows no retry can store; their messages go to the dead-letter topic",
				"rows", len(bt.rows), "set_aside", len(poisoned), "duration", elapsed)
		}
		b.metrics.lastFlush.SetToCurrentTime()
		b.log.Debug("flushed to clickhouse", "rows", len(bt.rows), "duration", elapsed)
		if b.flushed != nil {
			b.flushed()
		}
	}
	close(bt.done)
}

// write stores rows: the by-day copy (which looks up the current versions
// in the raw tables) first, then the raw rows; the ack (Add returning)
// comes after. This order is the aggregates' idempotency argument. Each
// attempt has its own FlushTimeout.
func (b *Batcher) write(ctx context.Context, rows []Row) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if b.before != nil {
		if err := b.before.WriteBefore(ctx, rows); err != nil {
			return err
		}
	}
	return b.ins.InsertBatch(ctx, rows)
}

// isolate writes rows; when that fails on a value a table cannot hold
// (chstore.ClassValue), which no retry can fix, it halves the rows and
// writes each half the same way, until every row that still fails alone is
// found: those go into poisoned, with their error, and every other row is
// written. Any other failure stops it and is returned, and the whole batch
// is retried by redelivery: a transient one (ClickHouse down, a timeout)
// passes with time, and a schema error (a missing column or table) fails
// every row alike, since a columnar insert sends the same columns for all:
// it names no event to set aside, and setting every one aside would empty
// the stream into the dead-letter topic; it is retried, failing visibly
// (uvr_projector_insert_errors_total), until the schema is fixed.
//
// Writing a half again is safe: both writers take the same rows again
// (PreWriter, Inserter), and a half is written in full, by-day copy then
// raw rows, before the next, so the aggregates' order holds for every row
// stored. A row set aside has no by-day rows and no revision (written after
// them) to hide the version before it: the by-day tables hold the same
// values in the same column types as the raw ones and are written first, so
// a value they cannot hold fails there.
func (b *Batcher) isolate(ctx context.Context, rows []Row, poisoned map[rowKey]error) error {
	err := b.write(ctx, rows)
	if err == nil || chstore.Classify(err) != chstore.ClassValue {
		return err
	}
	if len(rows) == 1 {
		poisoned[rows[0].key()] = err
		return nil
	}
	half := len(rows) / 2
	if err := b.isolate(ctx, rows[:half], poisoned); err != nil {
		return err
	}
	return b.isolate(ctx, rows[half:], poisoned)
}

// Close flushes the pending batch, waits for every flush in progress and
// returns the error of the last flush. Add fails with ErrClosed afterwards.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	p := b.pending
	if p != nil {
		b.detachLocked(p)
	}
	b.mu.Unlock()

	if p != nil {
		b.flush(p)
	}
	b.flushes.Wait()
	if p != nil {
		return p.err
	}
	return nil
}

// recentSet remembers the last n keys added, forgetting the oldest first.
type recentSet struct {
	max  int
	keys map[rowKey]struct{}
	ring []rowKey // insertion order; next is the oldest once full
	next int
}

func newRecentSet(n int) *recentSet {
	return &recentSet{max: n, keys: map[rowKey]struct{}{}}
}

func (s *recentSet) contains(k rowKey) bool {
	_, ok := s.keys[k]
	return ok
}

func (s *recentSet) add(k rowKey) {
	if s.max == 0 || s.contains(k) {
		return
	}
	if len(s.ring) < s.max {
		s.ring = append(s.ring, k)
	} else {
		delete(s.keys, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % len(s.ring)
	}
	s.keys[k] = struct{}{}
}
