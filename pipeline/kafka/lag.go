package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// PartitionLag is how far a consumer group is behind in one partition.
type PartitionLag struct {
	Partition int
	Start     int64 // offset of the first record still in the log (the log start offset)
	End       int64 // offset of the next record to be written
	Committed int64 // next offset the group will read; -1 when it never committed
}

// Lag is the number of records the group has yet to commit.
func (p PartitionLag) Lag() int64 {
	if p.Committed < 0 {
		return max(p.End-p.Start, 0) // nothing committed: everything retained is ahead
	}
	return max(p.End-p.Committed, 0)
}

// Missing returns the first offset the group needs that the log no longer holds, and whether
// there is one. A group needs every record from its committed offset on, or from offset 0 in
// a partition it never committed: uvr's groups start from the first offset to see all history.
func (p PartitionLag) Missing() (int64, bool) {
	need := max(p.Committed, 0)
	return need, p.Start > need
}

// TruncatedError says that records a consumer group needs were deleted from a partition
// (by retention, DeleteRecords or a lost disk): projecting on would silently skip them.
type TruncatedError struct {
	Topic, Group string
	Partition    int
	FirstMissing int64 // the first offset the group needs that is gone
	LogStart     int64 // the first offset still in the log
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("topic %s partition %d: records from offset %d (the first missing) to %d are gone, the log now starts at %d, "+
		"and consumer group %s needs them: refusing to project a truncated log (restore the topic from a backup, "+
		"or replay into a group that starts at the log start knowingly)",
		e.Topic, e.Partition, e.FirstMissing, e.LogStart-1, e.LogStart, e.Group)
}

// CheckHistory returns a *TruncatedError for every partition of topic (joined) whose log no
// longer holds records group needs (PartitionLag.Missing), nil when none is missing. A broker
// still electing the group's coordinator (a fresh cluster) is waited for, up to 30 s.
func CheckHistory(ctx context.Context, brokers []string, sec Security, group, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lags, err := GroupLag(ctx, brokers, sec, group, topic)
	for backoff := 50 * time.Millisecond; err != nil && retriable(err); backoff = min(2*backoff, time.Second) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("check the history of %s for group %s: %w", topic, group, errors.Join(err, ctx.Err()))
		case <-time.After(backoff):
		}
		lags, err = GroupLag(ctx, brokers, sec, group, topic)
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range lags {
		if first, ok := l.Missing(); ok {
			errs = append(errs, &TruncatedError{Topic: topic, Group: group, Partition: l.Partition, FirstMissing: first, LogStart: l.Start})
		}
	}
	return errors.Join(errs...)
}

// GroupLag reads, from the broker, the end offset and the group's committed
// offset of every partition of topic. A group whose committed offsets reach
// the end has projected (and, since offsets are committed only after the
// projection stored them, persisted) everything written so far.
func GroupLag(ctx context.Context, brokers []string, sec Security, group, topic string) ([]PartitionLag, error) {
	if len(brokers) == 0 {
		return nil, errors.New("group lag: no brokers")
	}
	// A transport of its own: the shared default one caches metadata for
	// seconds, and would not see a topic created just before.
	client, transport := sec.client(brokers, 10*time.Second, &kafkago.Transport{MetadataTTL: time.Second})
	defer transport.CloseIdleConnections()
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("group lag: metadata of %s: %w", topic, err)
	}
	var partitions []int
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("group lag: topic %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			partitions = append(partitions, p.ID)
		}
	}
	if len(partitions) == 0 {
		return nil, fmt.Errorf("group lag: topic %s has no partitions", topic)
	}

	requests := make([]kafkago.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		requests = append(requests, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	ends, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: requests}})
	if err != nil {
		return nil, fmt.Errorf("group lag: start and end offsets of %s: %w", topic, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitions}})
	if err != nil {
		return nil, fmt.Errorf("group lag: committed offsets of group %s: %w", group, err)
	}
	// Kafka answers a group it does not know with no offsets; the embedded broker with
	// Group ID Not Found. Both mean that the group never committed.
	if committed.Error != nil && !errors.Is(committed.Error, kafkago.GroupIdNotFound) {
		return nil, fmt.Errorf("group lag: committed offsets of group %s: %w", group, committed.Error)
	}

	byPartition := map[int]*PartitionLag{}
	out := make([]PartitionLag, len(partitions))
	for i, p := range partitions {
		out[i] = PartitionLag{Partition: p, Committed: -1}
		byPartition[p] = &out[i]
	}
	for _, po := range ends.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("group lag: offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if l, ok := byPartition[po.Partition]; ok {
			l.Start, l.End = po.FirstOffset, po.LastOffset
		}
	}
	for _, pc := range committed.Topics[topic] {
		if pc.Error != nil {
			return nil, fmt.Errorf("group lag: committed offset of %s/%d: %w", topic, pc.Partition, pc.Error)
		}
		if l, ok := byPartition[pc.Partition]; ok {
			l.Committed = pc.CommittedOffset
		}
	}
	return out, nil
}

// TotalLag sums the lag of every partition.
func TotalLag(lags []PartitionLag) int64 {
	var n int64
	for _, l := range lags {
		n += l.Lag()
	}
	return n
}
