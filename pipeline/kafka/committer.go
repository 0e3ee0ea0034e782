package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// offsetCommitter commits offsets for the current consumer group generation.
// *kafkago.Generation implements it; a commit from a generation the coordinator already
// replaced fails (IllegalGeneration), which is what keeps a revoked member from moving
// offsets under the new owner.
type offsetCommitter interface {
	CommitOffsets(offsets map[string]map[int]int64) error
}

// committer accumulates the committable offset of every partition of one topic assigned in one
// generation, and commits them together: on every tick of CommitInterval, synchronously when
// asked (CommitEveryAck), and once more after the partition loops stopped.
type committer struct {
	gen     offsetCommitter
	topic   string
	group   string
	log     *slog.Logger
	metrics *subscriberMetrics

	flushMu sync.Mutex // one commit request at a time, outside mu
	mu      sync.Mutex
	parts   map[int]*partitionOffsets
}

type partitionOffsets struct {
	committed int64 // last committed offset (or the assignment's), -1 while unknown
	pending   int64 // highest committable offset not committed yet, -1 if none
	hwm       int64 // high watermark seen on the last fetch, -1 before the first
	lag       prometheus.Gauge
}

// newCommitter tracks the given partitions; start is each partition's committed offset from
// the assignment (negative for "no commit yet").
func newCommitter(gen offsetCommitter, topic, group string, start map[int]int64, log *slog.Logger, metrics *subscriberMetrics) *committer {
	c := &committer{gen: gen, topic: topic, group: group, log: log, metrics: metrics, parts: make(map[int]*partitionOffsets, len(start))}
	for p, off := range start {
		c.parts[p] = &partitionOffsets{
			committed: max(off, -1),
			pending:   -1,
			hwm:       -1,
			lag:       metrics.lag.WithLabelValues(topic, strconv.Itoa(p), group),
		}
	}
	return c
}

// observe records a fetched record's offset and its partition's high watermark.
func (c *committer) observe(partition int, offset, hwm int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[partition]
	if p.committed < 0 {
		// The group never committed here (OffsetFirst/OffsetLast start): everything before
		// the first record we read counts as consumed for the lag.
		p.committed = offset
	}
	p.hwm = hwm
	p.lag.Set(float64(max(hwm-p.committed, 0)))
}

// mark records that everything before offset was acked in partition.
func (c *committer) mark(partition int, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.parts[partition]; offset > p.pending && offset > p.committed {
		p.pending = offset
	}
}

// flush commits every pending offset in one request. On failure the offsets stay pending for
// the next flush; if none succeeds before the partition moves, the new owner redelivers.
func (c *committer) flush() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()

	c.mu.Lock()
	offsets := make(map[int]int64)
	for id, p := range c.parts {
		if p.pending > p.committed {
			offsets[id] = p.pending
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}

	if err := c.gen.CommitOffsets(map[string]map[int]int64{c.topic: offsets}); err != nil {
		c.metrics.commitErrors.WithLabelValues(c.topic, c.group).Inc()
		return fmt.Errorf("commit offsets of %s for group %s: %w", c.topic, c.group, err)
	}
	c.metrics.commits.WithLabelValues(c.topic, c.group).Inc()

	c.mu.Lock()
	defer c.mu.Unlock()
	for id, off := range offsets {
		p := c.parts[id]
		p.committed = max(p.committed, off)
		if p.hwm >= 0 {
			p.lag.Set(float64(max(p.hwm-p.committed, 0)))
		}
	}
	return nil
}

// run flushes every interval (if positive) and refreshes the lag every lagInterval (fetches
// report high watermarks too, but a consumer stuck on a message does not fetch, and its lag
// must keep growing) until ctx ends, then waits
// for the partition loops (which mark their last acks as they stop) and flushes one last time.
// The lag series of the generation's partitions are removed at the end: another member now
// owns and reports them.
func (c *committer) run(ctx context.Context, interval, lagInterval time.Duration, loops *sync.WaitGroup, offsets offsetLister) {
	var commitTick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		commitTick = ticker.C
	}
	lagTicker := time.NewTicker(lagInterval)
	defer lagTicker.Stop()

run:
	for {
		select {
		case <-ctx.Done():
			break run
		case <-commitTick:
			if err := c.flush(); err != nil {
				c.log.Warn("periodic offset commit failed", "error", err)
			}
		case <-lagTicker.C:
			if err := c.refreshLag(ctx, offsets); err != nil {
				c.log.Debug("cannot refresh high watermarks", "error", err)
			}
		}
	}

	loops.Wait()
	if err := c.flush(); err != nil {
		c.log.Warn("final offset commit failed; acked messages will be redelivered", "error", err)
	}
	for id := range c.parts {
		c.metrics.lag.DeleteLabelValues(c.topic, strconv.Itoa(id), c.group)
	}
}

// offsetLister lists partition offsets; *kafkago.Client implements it.
type offsetLister interface {
	ListOffsets(ctx context.Context, req *kafkago.ListOffsetsRequest) (*kafkago.ListOffsetsResponse, error)
}

func (c *committer) refreshLag(ctx context.Context, offsets offsetLister) error {
	req := make([]kafkago.OffsetRequest, 0, len(c.parts))
	for id := range c.parts {
		req = append(req, kafkago.LastOffsetOf(id))
	}
	resp, err := offsets.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{c.topic: req}})
	if err != nil {
		return fmt.Errorf("list offsets of %s: %w", c.topic, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, po := range resp.Topics[c.topic] {
		p, ok := c.parts[po.Partition]
		if !ok || po.Error != nil {
			continue
		}
		p.hwm = max(p.hwm, po.LastOffset)
		if p.committed >= 0 {
			p.lag.Set(float64(max(p.hwm-p.committed, 0)))
		}
	}
	return nil
}
