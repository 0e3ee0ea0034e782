package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Records, topics and a group's committed offset survive a restart on the same data dir.
func TestRestartKeepsRecordsAndOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	const topic, group, total, acked = "usage", "projector", 10, 4

	b, err := broker.Start(ctx, broker.Config{DataDir: dir, Partitions: 2})
	require.NoError(t, err)
	addr := b.Addrs()[0]
	require.NoError(t, kafka.EnsureTopics(ctx, b.Addrs(), kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: b.Addrs()})
	require.NoError(t, err)
	var published []*message.Message
	for i := range total {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))
		msg.Metadata.Set(kafka.KeyMetadata, "customer-1")
		published = append(published, msg)
	}
	require.NoError(t, pub.Publish(topic, published...))
	require.NoError(t, pub.Close())

	// Consume and ack the first few; Close commits them.
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: b.Addrs(), ConsumerGroup: group})
	require.NoError(t, err)
	msgs, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := range acked {
		select {
		case msg := <-msgs:
			require.Equal(t, published[i].UUID, msg.UUID)
			msg.Ack()
		case <-ctx.Done():
			t.Fatalf("record %d not delivered", i)
		}
	}
	require.NoError(t, sub.Close())
	require.NoError(t, b.Close())

	// Same data dir, same address: clients configured with it keep working.
	b, err = broker.Start(ctx, broker.Config{DataDir: dir, Addr: addr})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, addr, b.Addrs()[0])

	client := &kafkago.Client{Addr: kafkago.TCP(b.Addrs()...)}
	committed, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	require.NoError(t, err)
	require.Len(t, committed.Topics[topic], 1)
	assert.Equal(t, int64(acked), committed.Topics[topic][0].CommittedOffset)

	// The group resumes after its committed offset, and every record is still there.
	sub, err = kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: b.Addrs(), ConsumerGroup: group})
	require.NoError(t, err)
	defer sub.Close()
	msgs, err = sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := acked; i < total; i++ {
		select {
		case msg := <-msgs:
			require.Equal(t, published[i].UUID, msg.UUID)
			assert.Equal(t, published[i].Payload, msg.Payload)
			assert.Equal(t, "customer-1", msg.Metadata.Get(kafka.KeyMetadata))
			msg.Ack()
		case <-ctx.Done():
			t.Fatalf("record %d not delivered after restart", i)
		}
	}

	first, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		topic: {kafkago.FirstOffsetOf(0), kafkago.LastOffsetOf(0)},
	}})
	require.NoError(t, err)
	require.Len(t, first.Topics[topic], 1)
	assert.Equal(t, int64(0), first.Topics[topic][0].FirstOffset, "records before the committed offset are kept too")
	assert.Equal(t, int64(total), first.Topics[topic][0].LastOffset)
}

// Topics created without a partition count get Config.Partitions (kafka-go's consumer group
// asks for its topics with auto-creation on, like a stock Kafka).
func TestDefaultPartitions(t *testing.T) {
	ctx := t.Context()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), Partitions: 3})
	require.NoError(t, err)
	defer b.Close()

	conn, err := kafkago.DialContext(ctx, "tcp", b.Addrs()[0])
	require.NoError(t, err)
	defer conn.Close()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		parts, err := conn.ReadPartitions("auto-created") // metadata request with auto-creation on
		assert.NoError(c, err)
		assert.Len(c, parts, 3)
	}, 10*time.Second, 20*time.Millisecond)
}

func TestDataDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(t.Context(), broker.Config{DataDir: dir})
	require.NoError(t, err)
	defer b.Close()

	_, err = broker.Start(t.Context(), broker.Config{DataDir: dir})
	assert.ErrorContains(t, err, "in use by another broker")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     broker.Config
		wantErr []string
	}{
		{name: "data dir only", cfg: broker.Config{DataDir: "/tmp/x"}},
		{name: "fixed loopback port", cfg: broker.Config{DataDir: "/tmp/x", Addr: "127.0.0.1:19092"}},
		{name: "nothing", cfg: broker.Config{}, wantErr: []string{"data dir is required"}},
		{
			name:    "every problem at once",
			cfg:     broker.Config{Addr: "0.0.0.0:9092", Partitions: -1, MaxRecords: -2},
			wantErr: []string{"data dir is required", "loopback", "partitions", "max records"},
		},
		{name: "hostname is not an IP", cfg: broker.Config{DataDir: "/tmp/x", Addr: "localhost:9092"}, wantErr: []string{"loopback IP"}},
		{name: "bad port", cfg: broker.Config{DataDir: "/tmp/x", Addr: "127.0.0.1:http"}, wantErr: []string{"invalid port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

// Past MaxRecords the broker refuses records, across a restart too, and Full
// says why and what to do.
func TestMaxRecordsRefusesPastTheLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	const topic, limit = "events", 10
	publish := func(b *broker.Broker, n int) error {
		pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: b.Addrs()})
		require.NoError(t, err)
		defer pub.Close()
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("x"))
			msgs[i].SetContext(ctx)
		}
		return pub.Publish(topic, msgs...)
	}

	b, err := broker.Start(ctx, broker.Config{DataDir: dir, MaxRecords: limit})
	require.NoError(t, err)
	// One partition: a Publish is then one produce request, accepted or refused whole.
	require.NoError(t, kafka.EnsureTopics(ctx, b.Addrs(), kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))
	require.NoError(t, publish(b, 6))
	require.NoError(t, b.Full())
	require.NoError(t, publish(b, 4), "up to the limit is accepted")
	var full *broker.FullError
	require.ErrorAs(t, b.Full(), &full)
	assert.Equal(t, broker.FullError{Held: limit, Max: limit}, *full)
	assert.Contains(t, full.Error(), "--kafka-brokers")
	refused := "Policy Violation: the request parameters do not satisfy the configured policy: the embedded Kafka broker holds 10 records and refuses more past its limit of 10"
	require.ErrorContains(t, publish(b, 1), refused)
	require.NoError(t, b.Close())

	// The count survives a restart: the reloaded records are counted.
	b, err = broker.Start(ctx, broker.Config{DataDir: dir, MaxRecords: limit})
	require.NoError(t, err)
	defer b.Close()
	require.ErrorAs(t, b.Full(), &full)
	require.ErrorContains(t, publish(b, 1), refused)

	// A larger limit accepts again.
	require.NoError(t, b.Close())
	b, err = broker.Start(ctx, broker.Config{DataDir: dir, MaxRecords: limit + 5})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, publish(b, 3))
	require.NoError(t, b.Full())
	require.Error(t, publish(b, 3), "would pass the limit")
	require.ErrorAs(t, b.Full(), &full, "after a refusal")
	assert.Equal(t, broker.FullError{Held: limit + 3, Max: limit + 5}, *full)
	require.NoError(t, publish(b, 2), "what still fits is accepted")
	require.ErrorAs(t, b.Full(), &full)
}
