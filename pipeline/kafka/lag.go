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
	End       int64 // offset of the next record to be written
	Committed int64 // next offset the group will read; -1 when it never committed
}

// Lag is the number of records the group has yet to commit.
func (p PartitionLag) Lag() int64 {
	if p.Committed < 0 {
		return p.End // nothing committed: everything retained is ahead (assuming a log starting at 0)
	}
	return max(p.End-p.Committed, 0)
}

// GroupLag reads, from the broker, the end offset and the group's committed
// offset of every partition of topic. A group whose committed offsets reach
// the end has projected (and, since offsets are committed only after the
// projection stored them, persisted) everything written so far.
func GroupLag(ctx context.Context, brokers []string, group, topic string) ([]PartitionLag, error) {
	if len(brokers) == 0 {
		return nil, errors.New("group lag: no brokers")
	}
	// A transport of its own: the shared default one caches metadata for
	// seconds, and would not see a topic created just before.
	transport := &kafkago.Transport{MetadataTTL: time.Second}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
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

	requests := make([]kafkago.OffsetRequest, len(partitions))
	for i, p := range partitions {
		requests[i] = kafkago.LastOffsetOf(p)
	}
	ends, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: requests}})
	if err != nil {
		return nil, fmt.Errorf("group lag: end offsets of %s: %w", topic, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitions}})
	if err != nil {
		return nil, fmt.Errorf("group lag: committed offsets of group %s: %w", group, err)
	}
	if committed.Error != nil {
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
			return nil, fmt.Errorf("group lag: end offset of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if l, ok := byPartition[po.Partition]; ok {
			l.End = po.LastOffset
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
