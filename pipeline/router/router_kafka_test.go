package router_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// The router over the Kafka driver, as `uvr` runs it: a permanent failure is parked on the
// poison topic and the partition moves on; a transient failure that outlives its retries is
// nacked, redelivered by Kafka, and processed.
func TestRouterOverKafka(t *testing.T) {
	for name, brokers := range map[string]func(t *testing.T) []string{
		"kafka":    realKafka,
		"embedded": embeddedBroker,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRouterOverKafka(t, brokers(t))
		})
	}
}

func testRouterOverKafka(t *testing.T, brokers []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	suffix := watermill.NewShortUUID()
	in, poison, group := "events-"+suffix, "poison-"+suffix, "router-"+suffix
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: in, Partitions: 1}, {Name: poison, Partitions: 1}}))

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: group})
	require.NoError(t, err)
	defer sub.Close()

	r, err := router.New(router.Config{
		PoisonPublisher: pub, PoisonTopic: poison,
		RetryMax: 1, RetryInitial: time.Millisecond, RetryMaxInterval: 2 * time.Millisecond,
	})
	require.NoError(t, err)

	var mu sync.Mutex
	attempts := map[string]int{}
	done := make(chan string, 10)
	r.AddConsumerHandler("projector", in, sub, func(msg *message.Message) error {
		payload := string(msg.Payload)
		mu.Lock()
		attempts[payload]++
		n := attempts[payload]
		mu.Unlock()
		switch {
		case payload == "malformed":
			return router.Permanent(errors.New("cannot decode"))
		case payload == "flaky" && n <= 3: // two attempts per delivery: two deliveries fail
			return errors.New("clickhouse unavailable")
		}
		done <- payload
		return nil
	})
	go func() { _ = r.Run(ctx) }()
	defer r.Close()

	var sent []*message.Message
	for _, p := range []string{"malformed", "flaky", "fine"} {
		msg := message.NewMessage(watermill.NewUUID(), []byte(p))
		msg.Metadata.Set(kafka.KeyMetadata, "customer-1") // one partition, in this order
		sent = append(sent, msg)
	}
	require.NoError(t, pub.Publish(in, sent...))

	for _, want := range []string{"flaky", "fine"} {
		select {
		case got := <-done:
			require.Equal(t, want, got)
		case <-ctx.Done():
			t.Fatalf("%q was never processed", want)
		}
	}
	mu.Lock()
	assert.Equal(t, map[string]int{"malformed": 1, "flaky": 4, "fine": 1}, attempts)
	mu.Unlock()

	// The poisoned message, as it was, with the reason.
	check, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: "check-" + suffix})
	require.NoError(t, err)
	defer check.Close()
	parked, err := check.Subscribe(ctx, poison)
	require.NoError(t, err)
	select {
	case msg := <-parked:
		assert.Equal(t, sent[0].UUID, msg.UUID)
		assert.Equal(t, []byte("malformed"), []byte(msg.Payload))
		assert.Equal(t, "customer-1", msg.Metadata.Get(kafka.KeyMetadata))
		assert.Equal(t, "cannot decode", msg.Metadata.Get(router.ReasonMetadata))
		assert.Equal(t, in, msg.Metadata.Get(router.TopicMetadata))
		msg.Ack()
	case <-ctx.Done():
		t.Fatal("nothing on the poison topic")
	}
}

func realKafka(t *testing.T) []string {
	brokers := []string{"127.0.0.1:9092"}
	if v := os.Getenv("UVR_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	}
	conn, err := net.DialTimeout("tcp", brokers[0], 3*time.Second)
	require.NoError(t, err, "Kafka at %v is not reachable: start it with `deploy/services kafka start` or set UVR_KAFKA_BROKERS", brokers)
	_ = conn.Close()
	return brokers
}

func embeddedBroker(t *testing.T) []string {
	b, err := broker.Start(t.Context(), broker.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()
}
