package airbyte

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// fakerRecords are the RECORD messages of a real source-faker read.
func fakerRecords(t *testing.T) []RecordMessage {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "faker-read.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out []RecordMessage
	for _, l := range readAll(t, f) {
		if l.Message.Type == TypeRecord {
			out = append(out, *l.Message.Record)
		}
	}
	require.Len(t, out, 40)
	return out
}

// What destination-kafka writes, on the real Kafka: records land on the
// events topic as mapped events through the router; a value that is not a
// record and a record the mapping rejects go to the poison topic; a record
// delivered twice gives the same event ids.
func TestDestinationKafkaHandler(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	suffix := servicetest.Suffix()
	in, events, poison := "airbyte.faker."+suffix, "uvr.test.events."+suffix, "uvr.test.poison."+suffix
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{
		{Name: in, Partitions: 2}, {Name: events, Partitions: 2}, {Name: poison, Partitions: 1},
	}))

	// The values, exactly as destination-kafka's KafkaRecordConsumer builds them.
	mapper := fakerMapping(t)
	var values []kafkago.Message
	want := map[string]bool{}
	records := fakerRecords(t)
	dup, err := MapRecord(mapper, &records[3])
	require.NoError(t, err)
	for i, rec := range records {
		key := fmt.Sprintf("2b4e1b7e-8f0f-4a8e-9c1a-%012d", i)
		v, err := json.Marshal(map[string]any{"_airbyte_ab_id": key, "_airbyte_stream": rec.Stream,
			"_airbyte_emitted_at": int64(rec.EmittedAt), "_airbyte_data": rec.Data})
		require.NoError(t, err)
		values = append(values, kafkago.Message{Key: []byte(key), Value: v})
		evs, err := MapRecord(mapper, &rec)
		require.NoError(t, err)
		for _, ev := range evs {
			want[ev.ID] = true
		}
	}
	values = append(values, values[3]) // a duplicate delivery
	values = append(values,
		kafkago.Message{Key: []byte("bad-1"), Value: []byte(`not json`)},
		kafkago.Message{Key: []byte("bad-2"), Value: []byte(`{"_airbyte_ab_id":"bad-2","_airbyte_stream":"users","_airbyte_emitted_at":1795745258814,"_airbyte_data":{"id":99,"created_at":"yesterday","updated_at":"2026-11-27T02:07:38+00:00"}}`)},
	)
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: in, Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll, BatchTimeout: 5 * time.Millisecond}
	require.NoError(t, w.WriteMessages(ctx, values...))
	require.NoError(t, w.Close())

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: "airbyte-" + suffix})
	require.NoError(t, err)
	defer sub.Close()
	r, err := router.New(router.Config{PoisonPublisher: pub, PoisonTopic: poison, RetryMax: 1, RetryInitial: time.Millisecond, RetryMaxInterval: 2 * time.Millisecond})
	require.NoError(t, err)
	r.AddConsumerHandler("airbyte-faker", in, sub, DestinationKafkaHandler(mapper, func(ctx context.Context, evs []event.Event) error {
		msgs, err := event.Messages(evs)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			m.SetContext(ctx)
		}
		return pub.Publish(events, msgs...)
	}))
	go func() { _ = r.Run(ctx) }()
	defer r.Close()

	got := consume(t, ctx, brokers, events, len(want)+len(dup)) // the duplicate's events come twice
	seen := map[string]int{}
	for _, m := range got {
		ev, err := event.Parse(m.Payload)
		require.NoError(t, err)
		seen[ev.ID]++
		assert.Equal(t, ev.ID, m.Metadata.Get(event.IDMetadata))
	}
	assert.Len(t, seen, len(want))
	for id := range want {
		assert.Positive(t, seen[id], "event %s arrived", id)
	}

	parked := consume(t, ctx, brokers, poison, 2)
	var reasons []string
	for _, m := range parked {
		reasons = append(reasons, m.Metadata.Get(router.ReasonMetadata))
	}
	sort.Strings(reasons)
	assert.Contains(t, reasons[0], "airbyte destination-kafka record: invalid character")
	assert.Contains(t, reasons[1], "map users record bad-2")
}

// consume reads n messages of topic from the start with a group of its own.
func consume(t *testing.T, ctx context.Context, brokers []string, topic string, n int) []*message.Message {
	t.Helper()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: "check-" + servicetest.Suffix()})
	require.NoError(t, err)
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	var out []*message.Message
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("%d of %d messages on %s before the deadline", len(out), n, topic)
		}
	}
	return out
}
