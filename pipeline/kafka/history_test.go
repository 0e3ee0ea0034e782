package kafka_test

import (
	"context"
	"errors"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// TestCheckHistoryRefusesTruncatedLog deletes the first records of a partition with
// DeleteRecords, as retention would, and shows that a group starting from the beginning, or
// one whose committed offset lies in the deleted range, is refused with the topic, partition
// and first missing offset, while a group past the deleted range is not.
func TestCheckHistoryRefusesTruncatedLog(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		topic := ensureTopic(t, brokers, 2)
		client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		defer client.Close()
		for p := range int32(2) {
			for range 5 {
				require.NoError(t, client.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}).FirstErr())
			}
		}
		require.NoError(t, kafka.CheckHistory(ctx, brokers, kafka.Security{}, "fresh", topic), "the whole log is there")

		servicetest.DeleteRecords(t, brokers, topic, 1, 3)
		commit(ctx, t, brokers, "behind", topic, map[int]int64{0: 5, 1: 2})
		commit(ctx, t, brokers, "past", topic, map[int]int64{0: 5, 1: 4})

		err = kafka.CheckHistory(ctx, brokers, kafka.Security{}, "fresh", topic)
		var truncated *kafka.TruncatedError
		require.ErrorAs(t, err, &truncated)
		assert.Equal(t, kafka.TruncatedError{Topic: topic, Group: "fresh", Partition: 1, FirstMissing: 0, LogStart: 3}, *truncated)
		assert.ErrorContains(t, err, "topic "+topic+" partition 1: records from offset 0 (the first missing) to 2 are gone, the log now starts at 3")

		err = kafka.CheckHistory(ctx, brokers, kafka.Security{}, "behind", topic)
		require.ErrorAs(t, err, &truncated)
		assert.Equal(t, int64(2), truncated.FirstMissing, "the committed offset is the first record the group needs")

		require.NoError(t, kafka.CheckHistory(ctx, brokers, kafka.Security{}, "past", topic), "the group read past the deleted records")
	})
}

// commit stores offsets for group as a consumer outside any generation would.
func commit(ctx context.Context, t *testing.T, brokers []string, group, topic string, offsets map[int]int64) {
	t.Helper()
	var commits []kafkago.OffsetCommit
	for p, o := range offsets {
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: o})
	}
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
	resp, err := client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: commits}})
	require.NoError(t, err)
	var errs []error
	for _, p := range resp.Topics[topic] {
		errs = append(errs, p.Error)
	}
	require.NoError(t, errors.Join(errs...), "commit for group %s", group)
}
