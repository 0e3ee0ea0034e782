package kafka_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Records keep UUID, metadata and payload; records of one key go to one partition in publish
// order; consumed messages carry their RecordInfo.
func TestPublishKeysAndRoundTrip(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		topic := ensureTopic(t, brokers, 4)
		pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers})

		var published []*message.Message
		for i := range 30 {
			msg := message.NewMessage(fmt.Sprintf("id-%02d", i), []byte(fmt.Sprint(i)))
			msg.Metadata.Set(kafka.KeyMetadata, []string{"acme", "globex", "initech"}[i%3])
			msg.Metadata.Set("source", "test")
			published = append(published, msg)
		}
		// One call with many messages, and one message per call: both synchronous.
		require.NoError(t, pub.Publish(topic, published[:20]...))
		for _, msg := range published[20:] {
			require.NoError(t, pub.Publish(topic, msg))
		}

		msgs, err := newSubscriber(t, kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: groupName(t)}).Subscribe(ctx, topic)
		require.NoError(t, err)
		partitionOf := map[string]int{}
		lastIndex := map[string]int{}
		for range published {
			msg := receive(t, msgs)
			info, ok := kafka.RecordInfoFromContext(msg.Context())
			require.True(t, ok)
			key := msg.Metadata.Get(kafka.KeyMetadata)
			assert.Equal(t, key, string(info.Key))
			assert.Equal(t, topic, info.Topic)
			assert.False(t, info.Time.IsZero())
			assert.Equal(t, "test", msg.Metadata.Get("source"))
			assert.Equal(t, fmt.Sprintf("id-%02d", index(t, msg)), msg.UUID)

			if p, seen := partitionOf[key]; seen {
				assert.Equal(t, p, info.Partition, "key %s moved partition", key)
				assert.Greater(t, index(t, msg), lastIndex[key], "key %s out of order", key)
			}
			partitionOf[key] = info.Partition
			lastIndex[key] = index(t, msg)
			msg.Ack()
		}
	})
}

// A topic created by another client right before the first publish: the writer's metadata
// does not know it yet ("Unknown Topic Or Partition", STACK.md) and Publish must retry until
// it does, instead of failing.
func TestPublishToTopicJustCreatedElsewhere(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		reg := prometheus.NewRegistry()
		pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers, Registerer: reg})
		warm := ensureTopic(t, brokers, 1)
		publishN(t, pub, warm, 1, "") // the writer has loaded its metadata now

		fresh := ensureTopic(t, brokers, 1)
		start := time.Now()
		publishN(t, pub, fresh, 3, "")
		t.Logf("first publish to a topic created elsewhere took %s", time.Since(start))

		requireMetric(t, reg, "uvr_kafka_published_messages_total", map[string]string{"topic": fresh}, 3)
		requireMetric(t, reg, "uvr_kafka_publish_duration_seconds", map[string]string{"topic": fresh}, 1)
		_, failed := metricValue(t, reg, "uvr_kafka_publish_errors_total", map[string]string{"topic": fresh})
		assert.False(t, failed)
	})
}

// A topic that never appears fails the publish once PublishTimeout is spent, and counts.
func TestPublishToMissingTopicFails(t *testing.T) {
	t.Parallel()
	brokers := startEmbeddedBroker(t).addrs()
	reg := prometheus.NewRegistry()
	pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers, Registerer: reg, PublishTimeout: time.Second})
	topic := uniqueTopic(t)

	err := pub.Publish(topic, message.NewMessage("id", []byte("x")))
	require.Error(t, err)
	assert.ErrorIs(t, err, kafkago.UnknownTopicOrPartition)
	requireMetric(t, reg, "uvr_kafka_publish_errors_total", map[string]string{"topic": topic}, 1)
}

func TestPublishAfterClose(t *testing.T) {
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	require.NoError(t, pub.Close())
	require.NoError(t, pub.Close(), "Close is idempotent")
	assert.ErrorIs(t, pub.Publish("t", message.NewMessage("id", nil)), kafka.ErrClosed)
}

func TestEnsureTopics(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		events, state := uniqueTopic(t)+"-events", uniqueTopic(t)+"-state"
		specs := []kafka.TopicSpec{
			{Name: events, Partitions: 3},
			{Name: state, Partitions: 1, Config: map[string]string{"cleanup.policy": "compact"}},
		}
		require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, specs))
		require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, specs), "existing topics are fine")

		conn, err := kafkago.DialContext(ctx, "tcp", brokers[0])
		require.NoError(t, err)
		defer conn.Close()
		parts, err := conn.ReadPartitions(events, state)
		require.NoError(t, err)
		count := map[string]int{}
		for _, p := range parts {
			count[p.Topic]++
		}
		assert.Equal(t, map[string]int{events: 3, state: 1}, count)

		client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
		resp, err := client.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{
			{ResourceType: kafkago.ResourceTypeTopic, ResourceName: state, ConfigNames: []string{"cleanup.policy"}},
		}})
		require.NoError(t, err)
		require.Len(t, resp.Resources, 1)
		require.NoError(t, resp.Resources[0].Error)
		require.NotEmpty(t, resp.Resources[0].ConfigEntries)
		assert.Equal(t, "compact", resp.Resources[0].ConfigEntries[0].ConfigValue)
	})
}

func TestEnsureTopicsReportsEveryInvalidSpec(t *testing.T) {
	err := kafka.EnsureTopics(t.Context(), []string{"127.0.0.1:1"}, kafka.Security{}, []kafka.TopicSpec{
		{Name: "", Partitions: 1},
		{Name: "no-partitions"},
	})

	require.Error(t, err)
	assert.ErrorContains(t, err, "topic name is required")
	assert.ErrorContains(t, err, `topic "no-partitions": partitions must be ≥ 1`)
}
