package router_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// BenchmarkRouterConsume measures end-to-end consumption through the router over the
// embedded broker: b.N records on 4 partitions, a handler that does nothing, acks turned into
// commits. Run with: go test ./pipeline/router -run '^$' -bench Consume -benchtime 100000x
func BenchmarkRouterConsume(b *testing.B) {
	for _, bc := range []struct {
		name        string
		maxInFlight int
		commit      time.Duration
	}{
		{name: "inflight=1/commit=200ms", maxInFlight: 1},
		{name: "inflight=1/commit=every-ack", maxInFlight: 1, commit: kafka.CommitEveryAck},
		{name: "inflight=64/commit=200ms", maxInFlight: 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			brokers := embeddedBrokerB(b)
			topic := "bench-" + watermill.NewShortUUID()
			require.NoError(b, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 4}}))
			pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
			require.NoError(b, err)
			defer pub.Close()

			const batch = 1000
			payload := make([]byte, 200)
			for sent := 0; sent < b.N; sent += batch {
				msgs := make([]*message.Message, min(batch, b.N-sent))
				for i := range msgs {
					msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
					msgs[i].Metadata.Set(kafka.KeyMetadata, fmt.Sprint((sent+i)%64))
				}
				require.NoError(b, pub.Publish(topic, msgs...))
			}

			sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
				Brokers: brokers, ConsumerGroup: "bench", MaxInFlight: bc.maxInFlight, CommitInterval: bc.commit,
			})
			require.NoError(b, err)
			defer sub.Close()
			r, err := router.New(router.Config{PoisonPublisher: pub, PoisonTopic: topic + "-poison"})
			require.NoError(b, err)
			var handled atomic.Int64
			done := make(chan struct{})
			r.AddConsumerHandler("bench", topic, sub, func(*message.Message) error {
				if handled.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})

			b.ResetTimer()
			start := time.Now()
			go func() { _ = r.Run(ctx) }()
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			require.NoError(b, r.Close())
		})
	}
}

func embeddedBrokerB(b *testing.B) []string {
	bk, err := broker.Start(b.Context(), broker.Config{DataDir: b.TempDir()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = bk.Close() })
	return bk.Addrs()
}
