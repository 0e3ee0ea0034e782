package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Defaults of TableConfig.
const (
	DefaultTablePartitions = 1
	DefaultTableTailWait   = 500 * time.Millisecond
	DefaultTableTimeout    = 10 * time.Second
)

// TableConfig configures NewTable.
type TableConfig struct {
	Brokers  []string // required, host:port
	Security Security // TLS and SASL; zero: plaintext
	// Topic is required. A missing topic is created with cleanup.policy=compact only: uvr
	// creates its topics with their full configuration (pipeline/topics) before opening
	// tables, so this is for tests and tools.
	Topic      string
	Partitions int // for a topic that does not exist yet; 0 means 1

	// TailWait is how long one fetch of the background tail (Run) waits for new records:
	// how quickly Close returns, not how quickly writes show up (a fetch returns as soon as
	// a record arrives). 0 means 500ms.
	TailWait time.Duration
	// Timeout bounds one request to the broker; 0 means 10s.
	Timeout time.Duration

	Logger *slog.Logger // nil discards
}

// Validate reports every problem of the config at once.
func (c TableConfig) Validate() error {
	errs := validateBrokers(c.Brokers)
	if c.Topic == "" {
		errs = append(errs, errors.New("topic is required"))
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions must be ≥ 0, got %d", c.Partitions))
	}
	if c.TailWait < 0 {
		errs = append(errs, fmt.Errorf("tail wait must be ≥ 0, got %s", c.TailWait))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must be ≥ 0, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// Table is a key → value map kept in a compacted Kafka topic: the log is the source of truth
// and every instance holds the whole map in memory, rebuilt by reading the topic from its
// start (no consumer group: every instance reads every partition).
//
// Writes (Put, Delete) return once the broker acknowledged them with acks=all and are then
// visible to Get on this instance at once. Writes of other instances show up once the tail
// (Run) reads them, or at the latest after Sync. For one key the last write in the log wins;
// a key always maps to the same partition, so two instances writing the same key are ordered
// by the broker, and every instance converges to the same value.
//
// Table is safe for concurrent use. Values handed in and out are copies.
type Table struct {
	cfg    TableConfig
	log    *slog.Logger
	client *kafkago.Client
	tr     *kafkago.Transport

	openMu     sync.Mutex
	partitions []int // nil until the topic is ensured

	mu      sync.RWMutex
	state   map[string]entry
	next    map[int]int64 // per partition: the offset of the next record to apply
	changes uint64        // counts the changes of state (Version)

	closeOnce sync.Once
	closing   chan struct{}
	runWG     sync.WaitGroup
}

// entry is a key's value and where it was written, so a record read late (the tail may
// return a record after this instance applied a newer write of its own) cannot override it.
type entry struct {
	value     []byte
	deleted   bool // a delete of this instance not read back from the log yet
	partition int
	offset    int64
}

// NewTable validates cfg and builds a Table. It does not contact the brokers: the topic is
// created (compacted) and read on the first Sync, Put, Delete or Run; call Sync before the
// first Get to load the existing state.
func NewTable(cfg TableConfig) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka table config: %w", err)
	}
	cfg.Partitions = orDefault(cfg.Partitions, DefaultTablePartitions)
	cfg.TailWait = orDefault(cfg.TailWait, DefaultTableTailWait)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTableTimeout)
	client, tr := cfg.Security.client(cfg.Brokers, cfg.Timeout, &kafkago.Transport{ClientID: "uvr-table", MetadataTTL: DefaultMetadataTTL})
	return &Table{
		cfg:     cfg,
		log:     loggerOrDiscard(cfg.Logger).With("table", cfg.Topic),
		client:  client,
		tr:      tr,
		state:   make(map[string]entry),
		next:    make(map[int]int64),
		closing: make(chan struct{}),
	}, nil
}

// Get returns a copy of key's value and whether the key is present.
func (t *Table) Get(key string) ([]byte, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.state[key]
	if !ok || e.deleted {
		return nil, false
	}
	return bytes.Clone(e.value), true
}

// Position returns the partition and offset of the record that wrote key's current value.
// Offsets order the writes of one partition the same way on every instance, which lets a
// caller pick "the first of these keys written" (api/access picks its signing secret so).
func (t *Table) Position(key string) (partition int, offset int64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.state[key]
	if !ok || e.deleted {
		return 0, 0, false
	}
	return e.partition, e.offset, true
}

// Version counts the changes applied to the map: when it is the same, All
// returns the same map. Readers that derive something costly from All (the
// customer directory's resolution) recompute it only when Version moved.
func (t *Table) Version() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changes
}

// All returns a copy of the whole map.
func (t *Table) All() map[string][]byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string][]byte, len(t.state))
	for k, e := range t.state {
		if !e.deleted {
			out[k] = bytes.Clone(e.value)
		}
	}
	return out
}

// Put writes key = value and returns once the broker acknowledged it (acks=all); Get on this
// instance sees it right after. value must not be nil (nil is a delete).
func (t *Table) Put(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return t.write(ctx, key, value)
}

// Delete writes a tombstone for key: the key disappears here at once and from other instances
// when they read it; compaction eventually drops the key from the log. Deleting a missing key
// is not an error.
func (t *Table) Delete(ctx context.Context, key string) error {
	return t.write(ctx, key, nil)
}

func (t *Table) write(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("table %s: empty key", t.cfg.Topic)
	}
	parts, err := t.open(ctx)
	if err != nil {
		return err
	}
	// kafka-go's hash balancer: the same key always lands on the same partition, which is
	// what makes "last write wins" and compaction per key hold.
	partition := (&kafkago.Hash{}).Balance(kafkago.Message{Key: []byte(key)}, parts...)
	now := time.Now()
	backoff := 20 * time.Millisecond
	for {
		// A new record each attempt: its key and value are readers that an attempt consumes
		// (reusing them would write an empty record on a retry).
		rec := kafkago.Record{Key: kafkago.NewBytes([]byte(key)), Time: now}
		if value != nil {
			rec.Value = kafkago.NewBytes(value)
		}
		resp, err := t.client.Produce(ctx, &kafkago.ProduceRequest{
			Topic:        t.cfg.Topic,
			Partition:    partition,
			RequiredAcks: kafkago.RequireAll,
			Records:      kafkago.NewRecordReader(rec),
		})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err == nil {
			t.apply(partition, resp.BaseOffset, key, value, false)
			return nil
		}
		// Leader elections and a topic another client just created (not yet in this
		// client's metadata) go away by themselves.
		if !IsRetriable(err) {
			return fmt.Errorf("table %s: write key %q: %w", t.cfg.Topic, key, err)
		}
		if werr := t.wait(ctx, backoff); werr != nil {
			return fmt.Errorf("table %s: write key %q: %w", t.cfg.Topic, key, errors.Join(err, werr))
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Sync reads every partition up to the end offsets it has when Sync starts: afterwards Get
// reflects every write acknowledged before the call, from any instance.
//
// Errors that go away by themselves (a leader election, a topic just created) are retried
// until ctx ends.
func (t *Table) Sync(ctx context.Context) error {
	backoff := 20 * time.Millisecond
	for {
		err := t.syncOnce(ctx)
		if err == nil || !IsRetriable(err) {
			return err
		}
		if werr := t.wait(ctx, backoff); werr != nil {
			return errors.Join(err, werr)
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (t *Table) syncOnce(ctx context.Context) error {
	parts, err := t.open(ctx)
	if err != nil {
		return err
	}
	ends, err := t.endOffsets(ctx, parts)
	if err != nil {
		return err
	}
	for _, p := range parts {
		for {
			t.mu.RLock()
			next := t.next[p]
			t.mu.RUnlock()
			if next >= ends[p].end {
				break
			}
			if next < ends[p].start {
				// Below the log start (records deleted by retention): nothing to read there.
				t.advance(p, ends[p].start)
				continue
			}
			n, err := t.fetch(ctx, p, next, 100*time.Millisecond)
			if err != nil {
				return err
			}
			if n == 0 {
				// An empty answer after the wait means no record at or after next exists
				// below the end read before (compaction removed them): caught up.
				t.advance(p, ends[p].end)
			}
		}
	}
	return nil
}

// Run tails the topic until ctx ends or Close is called, so writes of other instances show
// up without a Sync. Errors (a broker restarting) are logged and retried with backoff.
func (t *Table) Run(ctx context.Context) error {
	t.runWG.Add(1)
	defer t.runWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := t.tail(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("table tail failed; retrying", "error", err, "retry_in", backoff)
			if t.wait(ctx, backoff) != nil {
				break
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
	return nil
}

// tail fetches once from every partition with a long-poll wait.
func (t *Table) tail(ctx context.Context) error {
	parts, err := t.open(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.mu.RLock()
			next := t.next[p]
			t.mu.RUnlock()
			_, errs[i] = t.fetch(ctx, p, next, t.cfg.TailWait)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops Run and waits for it, then releases connections.
func (t *Table) Close() error {
	t.closeOnce.Do(func() { close(t.closing) })
	t.runWG.Wait()
	t.tr.CloseIdleConnections()
	return nil
}

// open ensures the topic exists (compacted) and learns its partitions, once.
func (t *Table) open(ctx context.Context) ([]int, error) {
	t.openMu.Lock()
	defer t.openMu.Unlock()
	if t.partitions != nil {
		return t.partitions, nil
	}
	// Through this table's own client: creating the topic refreshes its metadata cache, so
	// the first write does not hit "Unknown Topic Or Partition".
	spec := TopicSpec{Name: t.cfg.Topic, Partitions: t.cfg.Partitions, Config: map[string]string{"cleanup.policy": "compact"}}
	if err := ensureTopics(ctx, t.client, []TopicSpec{spec}); err != nil {
		return nil, fmt.Errorf("table %s: %w", t.cfg.Topic, err)
	}
	// The topic may have existed with another partition count: read the real one. A topic
	// another instance just created may be missing from the broker's answer for a moment.
	backoff := 20 * time.Millisecond
	for {
		parts, err := t.partitionsOf(ctx)
		if err == nil {
			t.partitions = parts
			return parts, nil
		}
		if !IsRetriable(err) {
			return nil, fmt.Errorf("table %s: metadata: %w", t.cfg.Topic, err)
		}
		if werr := t.wait(ctx, backoff); werr != nil {
			return nil, fmt.Errorf("table %s: metadata: %w", t.cfg.Topic, errors.Join(err, werr))
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (t *Table) partitionsOf(ctx context.Context) ([]int, error) {
	meta, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{t.cfg.Topic}})
	if err != nil {
		return nil, err
	}
	var parts []int
	for _, topic := range meta.Topics {
		if topic.Name != t.cfg.Topic {
			continue
		}
		if topic.Error != nil {
			return nil, topic.Error
		}
		for _, p := range topic.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, kafkago.UnknownTopicOrPartition
	}
	return parts, nil
}

type bounds struct{ start, end int64 }

func (t *Table) endOffsets(ctx context.Context, parts []int) (map[int]bounds, error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	resp, err := t.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{t.cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("table %s: list offsets: %w", t.cfg.Topic, err)
	}
	out := make(map[int]bounds, len(parts))
	for _, po := range resp.Topics[t.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("table %s: list offsets of partition %d: %w", t.cfg.Topic, po.Partition, po.Error)
		}
		out[po.Partition] = bounds{start: po.FirstOffset, end: po.LastOffset}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("table %s: list offsets: no answer for partition %d", t.cfg.Topic, p)
		}
	}
	return out, nil
}

// fetch reads one batch of partition p from offset and applies it; it returns how many
// records at or after offset it saw.
func (t *Table) fetch(ctx context.Context, p int, offset int64, wait time.Duration) (int, error) {
	resp, err := t.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic:     t.cfg.Topic,
		Partition: p,
		Offset:    offset,
		MinBytes:  1,
		MaxBytes:  DefaultFetchMaxBytes,
		MaxWait:   wait,
	})
	if err != nil {
		return 0, fmt.Errorf("table %s: fetch partition %d at %d: %w", t.cfg.Topic, p, offset, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("table %s: fetch partition %d at %d: %w", t.cfg.Topic, p, offset, resp.Error)
	}
	n := 0
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("table %s: read partition %d: %w", t.cfg.Topic, p, err)
		}
		// A fetch may start with records before the requested offset (whole batches).
		if rec.Offset < offset {
			continue
		}
		n++
		if rec.Key == nil {
			t.log.Warn("record without key ignored", "partition", p, "offset", rec.Offset)
			t.advance(p, rec.Offset+1)
			continue
		}
		key, err := readBytes(rec.Key)
		if err != nil {
			return n, fmt.Errorf("table %s: read key at %d/%d: %w", t.cfg.Topic, p, rec.Offset, err)
		}
		var value []byte
		if rec.Value != nil {
			if value, err = readBytes(rec.Value); err != nil {
				return n, fmt.Errorf("table %s: read value at %d/%d: %w", t.cfg.Topic, p, rec.Offset, err)
			}
		}
		t.apply(p, rec.Offset, string(key), value, true)
	}
}

// apply records the write of key at offset; a nil value is a tombstone. fromLog is true for
// records read back from the topic: those advance the partition's read position.
//
// A write of this instance is applied as soon as the broker acknowledged it, before the
// tail reads it back, so a record of the same key written earlier but read later must not
// override it: every entry keeps its offset, and an own delete leaves a tombstone entry
// until the tail reads the tombstone itself (after which no older record can come).
func (t *Table) apply(p int, offset int64, key string, value []byte, fromLog bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fromLog {
		if offset < t.next[p] {
			return // already applied (another fetch got there first)
		}
		t.next[p] = offset + 1
	}
	if cur, ok := t.state[key]; ok && cur.partition == p && cur.offset > offset {
		return // a newer write of this key is already applied
	}
	t.changes++
	switch {
	case value != nil:
		t.state[key] = entry{value: bytes.Clone(value), partition: p, offset: offset}
	case fromLog:
		delete(t.state, key)
	default:
		t.state[key] = entry{deleted: true, partition: p, offset: offset}
	}
}

func (t *Table) advance(p int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset > t.next[p] {
		t.next[p] = offset
	}
}

func (t *Table) wait(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closing:
		return ErrClosed
	case <-timer.C:
		return nil
	}
}

func readBytes(b kafkago.Bytes) ([]byte, error) {
	defer b.Close()
	return io.ReadAll(b)
}
