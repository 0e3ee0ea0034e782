package rawevents

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/router"
	"github.com/uvrhq/uvr/projections/chstore"
)

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, h.Write(&out))
	return out.Histogram.GetSampleCount()
}

func newBatcher(t *testing.T, cfg BatcherConfig) *Batcher {
	t.Helper()
	if cfg.Metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		require.NoError(t, err)
		cfg.Metrics = m
	}
	b, err := NewBatcher(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// addAll runs one Add per row set concurrently and returns their errors.
func addAll(ctx context.Context, b *Batcher, sets ...[]Row) []error {
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, rows := range sets {
		wg.Go(func() { errs[i] = b.Add(ctx, rows) })
	}
	wg.Wait()
	return errs
}

func TestBatcherFlushesOnSize(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store}
	// An hour-long interval: only the size can flush.
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 3, FlushInterval: time.Hour})

	rows := manyUsageRows(3, "size")
	errs := addAll(ctx, b, rows[0:1], rows[1:2], rows[2:3])
	assert.Equal(t, []error{nil, nil, nil}, errs)
	assert.Equal(t, []int{3}, ins.batchSizes(), "the three Adds shared one flush")
	assert.Equal(t, uint64(3), count(t, conn, TableUsage), "rows are stored when Add returns")
	assert.Equal(t, 3.0, value(t, b.metrics.rowsInserted.WithLabelValues(TableUsage)))
	assert.Equal(t, 0.0, value(t, b.metrics.rowsInserted.WithLabelValues(TableRevenue)))
	assert.Equal(t, uint64(1), histogramCount(t, b.metrics.batchRows))
	assert.Equal(t, uint64(1), histogramCount(t, b.metrics.flushSeconds))
	assert.NotZero(t, value(t, b.metrics.lastFlush))

	// An Add larger than the batch size is flushed at once, whole.
	big := manyUsageRows(7, "big")
	require.NoError(t, b.Add(ctx, big))
	assert.Equal(t, []int{3, 7}, ins.batchSizes())
}

func TestBatcherFlushesOnTime(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store}
	const interval = 100 * time.Millisecond
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 1000, FlushInterval: interval})

	start := time.Now()
	require.NoError(t, b.Add(ctx, manyUsageRows(2, "time")))
	assert.GreaterOrEqual(t, time.Since(start), interval, "a batch short of its size waits for the interval")
	assert.Equal(t, []int{2}, ins.batchSizes())
	assert.Equal(t, uint64(2), count(t, conn, TableUsage))
}

// TestBatcherAddBlocksUntilFlushed holds the insert and checks that no Add
// returns before it completes.
func TestBatcherAddBlocksUntilFlushed(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store, gate: make(chan struct{}), started: make(chan int, 1)}
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 2, FlushInterval: time.Hour})

	rows := manyUsageRows(2, "block")
	done := make(chan []error)
	go func() { done <- addAll(ctx, b, rows[:1], rows[1:]) }()

	assert.Equal(t, 2, <-ins.started, "the flush has started")
	select {
	case <-done:
		t.Fatal("Add returned while its batch was still being inserted")
	default:
	}
	assert.Equal(t, uint64(0), count(t, conn, TableUsage))
	close(ins.gate)
	assert.Equal(t, []error{nil, nil}, <-done)
	assert.Equal(t, uint64(2), count(t, conn, TableUsage))
}

// TestBatcherFlushesInDetachOrder holds the first flush while seven more
// batches are detached, one after the other, then checks they were inserted
// in that order (a bare mutex hands the turn to whichever waiter wins).
func TestBatcherFlushesInDetachOrder(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store, gate: make(chan struct{}), started: make(chan int, 8)}
	// Batch size 1: each Add is a batch of its own, detached at once.
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 1, FlushInterval: time.Hour})

	rows := manyUsageRows(36, "order") // batches of 1, 2, ..., 8 rows
	errs := make(chan error, 8)
	for n, start := 1, 0; n <= 8; n, start = n+1, start+n {
		go func() { errs <- b.Add(ctx, rows[start:start+n]) }()
		require.Eventually(t, func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return len(b.unflushed) == start+n
		}, 10*time.Second, time.Millisecond, "batch of %d detached", n)
	}
	assert.Equal(t, 1, <-ins.started, "the first flush has started")
	close(ins.gate)
	for range 8 {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, ins.batchSizes())
	assert.Equal(t, uint64(36), count(t, conn, TableUsage))
}

// TestBatcherFailedFlushDropsNothing makes the real insert fail (the table is
// renamed away), checks every waiter gets the error, then re-adds the same
// rows as the router's retry would and checks they are all stored.
func TestBatcherFailedFlushDropsNothing(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	b := newBatcher(t, BatcherConfig{Inserter: store, BatchSize: 3, FlushInterval: time.Hour})

	rows := manyUsageRows(3, "fail")
	require.NoError(t, conn.Exec(ctx, "RENAME TABLE usage_events TO usage_events_away"))
	errs := addAll(ctx, b, rows[0:1], rows[1:2], rows[2:3])
	for i, err := range errs {
		require.Error(t, err, "waiter %d", i)
		assert.Contains(t, err.Error(), "usage_events", "waiter %d", i)
	}
	assert.Equal(t, 1.0, value(t, b.metrics.insertErrors))
	assert.Equal(t, 0.0, value(t, b.metrics.lastFlush))

	require.NoError(t, conn.Exec(ctx, "RENAME TABLE usage_events_away TO usage_events"))
	errs = addAll(ctx, b, rows[0:1], rows[1:2], rows[2:3])
	assert.Equal(t, []error{nil, nil, nil}, errs)
	assert.Equal(t, uint64(3), count(t, conn, TableUsage), "nothing was remembered as stored by the failed flush")
	assert.Equal(t, 0.0, value(t, b.metrics.duplicatesDropped))
}

func TestBatcherDropsDuplicates(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store}
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 2, FlushInterval: time.Hour})

	rows := manyUsageRows(4, "dup")
	// Within one batch: the second copy of rows[0] is dropped and both Adds
	// wait for the one flush that stores it.
	errs := addAll(ctx, b, rows[0:1], rows[0:1], rows[1:2])
	assert.Equal(t, []error{nil, nil, nil}, errs)
	assert.Equal(t, []int{2}, ins.batchSizes())

	// Recently stored: dropped, and Add returns without a flush.
	require.NoError(t, b.Add(ctx, rows[0:2]))
	assert.Equal(t, []int{2}, ins.batchSizes())

	// Same Add, same row twice.
	require.NoError(t, b.Add(ctx, []Row{rows[2], rows[2], rows[3]}))
	assert.Equal(t, []int{2, 2}, ins.batchSizes())

	// A higher version of a stored identity is not a duplicate.
	v2 := rows[0]
	v2.Event.Data.Version = 2
	v2void := v2
	v2void.Event.Data.Void = true
	require.NoError(t, b.Add(ctx, []Row{v2, v2void}))
	assert.Equal(t, []int{2, 2, 2}, ins.batchSizes())

	assert.Equal(t, uint64(6), count(t, conn, TableUsage), "physical rows: 4 originals + v2 + v2 void")
	assert.Equal(t, 4.0, value(t, b.metrics.duplicatesDropped))
}

// A duplicate of a row whose flush fails gets the failure too: acking it
// would commit past a message whose row is not stored.
func TestBatcherDuplicateOfFailingRowWaitsForItsFlush(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store, gate: make(chan struct{}), started: make(chan int, 1)}
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 2, FlushInterval: time.Hour})
	require.NoError(t, conn.Exec(ctx, "RENAME TABLE usage_events TO usage_events_away"))

	rows := manyUsageRows(2, "dupfail")
	first := make(chan error)
	go func() { first <- b.Add(ctx, rows) }()
	assert.Equal(t, 2, <-ins.started, "the flush holding rows[0] is in progress")

	dup := make(chan error)
	go func() { dup <- b.Add(ctx, rows[:1]) }()
	require.Eventually(t, func() bool { return value(t, b.metrics.duplicatesDropped) == 1 }, 10*time.Second, time.Millisecond,
		"the copy was recognised as a duplicate of the row in flight")

	close(ins.gate)
	require.Error(t, <-first)
	require.Error(t, <-dup, "the duplicate is not acked while its first copy failed")
	assert.Equal(t, []int{2}, ins.batchSizes(), "the duplicate was never inserted on its own")
}

func TestBatcherCloseFlushesPending(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	b := newBatcher(t, BatcherConfig{Inserter: store, BatchSize: 1000, FlushInterval: time.Hour})

	added := make(chan error)
	go func() { added <- b.Add(ctx, manyUsageRows(1, "close")) }()
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.pending != nil
	}, 10*time.Second, time.Millisecond, "the row is queued")

	require.NoError(t, b.Close())
	require.NoError(t, <-added)
	assert.Equal(t, uint64(1), count(t, conn, TableUsage))
	assert.ErrorIs(t, b.Add(ctx, manyUsageRows(1, "late")), ErrClosed)
	require.NoError(t, b.Close(), "Close twice")
}

func TestBatcherAddReturnsWhenContextEnds(t *testing.T) {
	store, conn := newStore(t)
	b := newBatcher(t, BatcherConfig{Inserter: store, BatchSize: 1000, FlushInterval: time.Hour})

	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	err := b.Add(ctx, manyUsageRows(1, "ctx"))
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)

	// The row stays queued and is still stored: its insert ignores the
	// caller's cancellation.
	require.NoError(t, b.Close())
	assert.Equal(t, uint64(1), count(t, conn, TableUsage))
}

func TestNewBatcherValidates(t *testing.T) {
	_, err := NewBatcher(BatcherConfig{BatchSize: -1, FlushInterval: -1, FlushTimeout: -1})
	require.Error(t, err)
	for _, w := range []string{"inserter is required", "batch size", "flush interval", "flush timeout"} {
		assert.Contains(t, err.Error(), w)
	}

	reg := prometheus.NewRegistry()
	_, err = NewMetrics(reg)
	require.NoError(t, err)
	_, err = NewMetrics(reg)
	assert.ErrorContains(t, err, "register projector metrics", "a second registration is reported, not a panic")
}

// A row no retry can store (a cost beyond Decimal(18,9), as an old or
// foreign producer could publish it) fails its flush; the flush halves the
// batch until that row is alone: its Add gets a permanent error of class
// "value" (its message goes to the dead-letter topic), every other Add
// returns nil with its row stored, once.
func TestBatcherIsolatesRowsNoRetryCanStore(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	ins := &recordingInserter{Inserter: store}
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 16, FlushInterval: time.Hour})

	rows := manyUsageRows(16, "poison")
	for _, i := range []int{5, 11} {
		rows[i].Event.Data.Cost = dec("12345678901.5") // 11 digits before the point: Decimal(18,9) holds 9
	}
	sets := make([][]Row, len(rows))
	for i := range rows {
		sets[i] = rows[i : i+1]
	}
	errs := addAll(ctx, b, sets...)
	for i, err := range errs {
		if i == 5 || i == 11 {
			require.Error(t, err, "row %d", i)
			assert.True(t, router.IsPermanent(err), "row %d: %v", i, err)
			assert.Equal(t, chstore.ClassValue, router.ReasonClass(err))
			assert.Contains(t, err.Error(), "column cost")
			continue
		}
		assert.NoError(t, err, "row %d", i)
	}
	assert.Equal(t, uint64(14), count(t, conn, TableUsage), "every other row stored")
	// Halving: at most two rows fail at each of the log2(16) levels below the
	// whole batch, and each failing part is split in two.
	sizes := ins.batchSizes()
	assert.Equal(t, 16, sizes[0])
	assert.LessOrEqual(t, len(sizes), 1+2*2*4, "attempts: %v", sizes)
	assert.Equal(t, 14.0, value(t, b.metrics.rowsInserted.WithLabelValues(TableUsage)))
	assert.Equal(t, 0.0, value(t, b.metrics.insertErrors), "the flush succeeded for what it could store")

	// A row set aside is not remembered as stored: once it can be stored
	// (here: a retry with the value fixed), it is.
	assert.False(t, b.recent.contains(rows[5].key()), "not remembered as stored")
	assert.True(t, b.recent.contains(rows[6].key()))
	fixed := rows[5]
	fixed.Event.Data.Cost = dec("1.5")
	one := newBatcher(t, BatcherConfig{Inserter: store, BatchSize: 1})
	require.NoError(t, one.Add(ctx, []Row{fixed}))
	assert.Equal(t, uint64(15), count(t, conn, TableUsage))
}

// A schema error fails every row of a columnar insert alike and names no
// event: the batch fails as a whole, is not split, and nothing is set aside
// (it is retried until the schema is fixed).
func TestBatcherRetriesASchemaError(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	require.NoError(t, conn.Exec(ctx, "ALTER TABLE "+TableUsage+" DROP COLUMN subject"))
	ins := &recordingInserter{Inserter: store}
	b := newBatcher(t, BatcherConfig{Inserter: ins, BatchSize: 4, FlushInterval: time.Hour})
	rows := manyUsageRows(4, "schema")
	errs := addAll(ctx, b, rows[0:1], rows[1:2], rows[2:3], rows[3:4])
	for i, err := range errs {
		require.Error(t, err, "row %d", i)
		assert.False(t, router.IsPermanent(err), "row %d must be retried, not set aside: %v", i, err)
		assert.Equal(t, chstore.ClassSchema, chstore.Classify(err), "ClickHouse's NO_SUCH_COLUMN_IN_TABLE: %v", err)
	}
	assert.Equal(t, []int{4}, ins.batchSizes(), "not split")
	assert.Equal(t, 1.0, value(t, b.metrics.insertErrors))
}
