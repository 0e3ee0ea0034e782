package kafka_test

import (
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// quiet is how long a negative check ("nothing more is delivered") gives the subscriber:
// many fetch round trips on loopback.
const quiet = 500 * time.Millisecond

// With MaxInFlight N, N messages are handed out without acks; out-of-order acks commit only
// the contiguous prefix; a nack in the middle redelivers from there.
func TestInFlightWindow(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		topic := ensureTopic(t, brokers, 1)
		group := groupName(t)
		publishN(t, newPublisher(t, kafka.PublisherConfig{Brokers: brokers}), topic, 6, "k")

		sub := newSubscriber(t, kafka.SubscriberConfig{
			Brokers: brokers, ConsumerGroup: group, MaxInFlight: 3,
			CommitInterval: kafka.CommitEveryAck, NackResendDelay: kafka.NoNackResendDelay,
		})
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)

		m := map[int]*message.Message{}
		for want := range 3 {
			msg := receive(t, msgs)
			require.Equal(t, want, index(t, msg))
			m[want] = msg
		}
		requireNothing(t, msgs, quiet) // the window is full

		m[2].Ack()
		m[1].Ack()
		// Acked messages behind an un-acked one still hold their place in the window, and
		// nothing past the un-acked one is committed.
		requireNothing(t, msgs, quiet)
		assert.Equal(t, int64(-1), committedOffset(t, brokers, group, topic, 0))

		m[0].Ack()
		requireCommitted(t, brokers, group, topic, 0, 3)
		for want := 3; want < 6; want++ {
			msg := receive(t, msgs)
			require.Equal(t, want, index(t, msg))
			m[want] = msg
		}

		m[3].Ack()
		requireCommitted(t, brokers, group, topic, 0, 4)
		m[4].Nack()
		// 5 was in flight after the nacked 4: it is abandoned (context cancelled) and its
		// ack no longer counts; both come again.
		require.Eventually(t, func() bool { return m[5].Context().Err() != nil }, 10*time.Second, 5*time.Millisecond)
		m[5].Ack()
		r4, r5 := receive(t, msgs), receive(t, msgs)
		require.Equal(t, 4, index(t, r4))
		require.Equal(t, 5, index(t, r5))
		assert.Equal(t, m[4].UUID, r4.UUID)
		assert.Equal(t, int64(4), committedOffset(t, brokers, group, topic, 0))

		r5.Ack()
		requireNothing(t, msgs, quiet)
		assert.Equal(t, int64(4), committedOffset(t, brokers, group, topic, 0))
		r4.Ack()
		requireCommitted(t, brokers, group, topic, 0, 6)
		requireNothing(t, msgs, quiet)
	})
}

// After Close, a new subscriber of the same group gets back exactly the messages from the
// first un-acked one on: the acked prefix was committed on Close (with batched commits).
func TestCloseCommitsAckedPrefix(t *testing.T) {
	tests := []struct {
		name          string
		maxInFlight   int
		receive       int
		ack           []int
		wantCommitted int64
	}{
		{name: "one in flight: the un-acked message comes back", maxInFlight: 1, receive: 4, ack: []int{0, 1, 2}, wantCommitted: 3},
		{name: "window: the gap comes back with what followed it", maxInFlight: 4, receive: 4, ack: []int{0, 1, 3}, wantCommitted: 2},
		{name: "nothing acked: everything comes back", maxInFlight: 2, receive: 2, ack: nil, wantCommitted: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBroker(t, func(t *testing.T, brokers []string) {
				ctx := testContext(t)
				topic := ensureTopic(t, brokers, 1)
				group := groupName(t)
				const total = 8
				publishN(t, newPublisher(t, kafka.PublisherConfig{Brokers: brokers}), topic, total, "k")

				cfg := kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: group, MaxInFlight: tt.maxInFlight}
				first := newSubscriber(t, cfg)
				msgs, err := first.Subscribe(ctx, topic)
				require.NoError(t, err)
				var held []*message.Message
				for i := range tt.receive {
					msg := receive(t, msgs)
					require.Equal(t, i, index(t, msg))
					if slices.Contains(tt.ack, i) {
						msg.Ack()
					}
					held = append(held, msg)
				}
				// Right away: an ack not yet reported to its partition loop still counts.
				require.NoError(t, first.Close())

				for i, msg := range held {
					assert.Error(t, msg.Context().Err(), "message %d: context must end with the subscriber", i)
				}
				_, open := <-msgs
				assert.False(t, open, "output channel closed")
				assert.Equal(t, tt.wantCommitted, committedOffset(t, brokers, group, topic, 0))

				second := newSubscriber(t, cfg)
				msgs, err = second.Subscribe(ctx, topic)
				require.NoError(t, err)
				for want := max(int(tt.wantCommitted), 0); want < total; want++ {
					msg := receive(t, msgs)
					require.Equal(t, want, index(t, msg))
					msg.Ack()
				}
				requireNothing(t, msgs, quiet)
			})
		})
	}
}

// A second member of the group takes over partitions: the first member's in-flight messages
// are abandoned and redelivered by whoever owns their partition next; nothing is lost.
func TestRebalanceLosesNothing(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		const partitions, total = 4, 40
		topic := ensureTopic(t, brokers, partitions)
		group := groupName(t)
		pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers})
		var published []*message.Message
		for k := range 8 {
			published = append(published, publishN(t, pub, topic, total/8, "key-"+string(rune('a'+k)))...)
		}

		cfg := kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: group}
		a, err := newSubscriber(t, cfg).Subscribe(ctx, topic)
		require.NoError(t, err)
		first := receive(t, a) // held, not acked

		b, err := newSubscriber(t, cfg).Subscribe(ctx, topic)
		require.NoError(t, err)
		// Joining rebalances the group, which revokes everything from the first member.
		require.Eventually(t, func() bool { return first.Context().Err() != nil }, 30*time.Second, 10*time.Millisecond)

		seen := map[string]bool{}
		deadline := time.After(60 * time.Second)
		for len(seen) < total {
			select {
			case msg := <-a:
				seen[msg.UUID] = true
				msg.Ack()
			case msg := <-b:
				seen[msg.UUID] = true
				msg.Ack()
			case <-deadline:
				t.Fatalf("received %d of %d messages", len(seen), total)
			}
		}
		for _, msg := range published {
			assert.True(t, seen[msg.UUID], "message %s lost", msg.UUID)
		}
	})
}

// The embedded broker restarts under a running publisher and subscriber: both reconnect, and
// every message arrives (duplicates allowed).
func TestReconnectEmbedded(t *testing.T) {
	t.Parallel()
	eb := startEmbeddedBroker(t)
	brokers := eb.addrs()
	ctx := testContext(t)
	topic := ensureTopic(t, brokers, 2)
	pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers})
	msgs, err := newSubscriber(t, kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: groupName(t)}).Subscribe(ctx, topic)
	require.NoError(t, err)

	seen := map[string]bool{}
	readUntil := func(n int) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for len(seen) < n {
			select {
			case msg := <-msgs:
				seen[msg.UUID] = true
				msg.Ack()
			case <-deadline:
				t.Fatalf("received %d of %d messages", len(seen), n)
			}
		}
	}

	var published []*message.Message
	for k := range 5 {
		published = append(published, publishN(t, pub, topic, 10, "before-"+string(rune('a'+k)))...)
	}
	readUntil(50)

	eb.restart()

	for k := range 5 {
		published = append(published, publishN(t, pub, topic, 10, "after-"+string(rune('a'+k)))...)
	}
	readUntil(100)
	for _, msg := range published {
		assert.True(t, seen[msg.UUID], "message %s lost", msg.UUID)
	}
}

// Lag is high watermark minus committed offset, per partition; counters count every hand-out
// and ack; a partition's lag series goes away with the partition.
func TestSubscriberMetrics(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		topic := ensureTopic(t, brokers, 1)
		group := groupName(t)
		pub := newPublisher(t, kafka.PublisherConfig{Brokers: brokers})
		publishN(t, pub, topic, 10, "k")

		reg := prometheus.NewRegistry()
		sub := newSubscriber(t, kafka.SubscriberConfig{
			Brokers: brokers, ConsumerGroup: group, Registerer: reg,
			CommitInterval: kafka.CommitEveryAck, LagRefreshInterval: 50 * time.Millisecond,
		})
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		lag := map[string]string{"topic": topic, "partition": "0", "group": group}
		tg := map[string]string{"topic": topic, "group": group}

		msg := receive(t, msgs)
		requireMetric(t, reg, "uvr_kafka_consumer_lag_messages", lag, 10)
		// Stuck on an un-acked message, the partition does not fetch; the lag still grows.
		publishN(t, pub, topic, 5, "k")
		requireMetric(t, reg, "uvr_kafka_consumer_lag_messages", lag, 15)
		msg.Ack()
		requireMetric(t, reg, "uvr_kafka_consumer_lag_messages", lag, 14)
		for range 14 {
			receive(t, msgs).Ack()
		}
		requireMetric(t, reg, "uvr_kafka_consumer_lag_messages", lag, 0)
		requireMetric(t, reg, "uvr_kafka_consumer_messages_received_total", tg, 15)
		requireMetric(t, reg, "uvr_kafka_consumer_messages_acked_total", tg, 15)

		require.NoError(t, sub.Close())
		_, found := metricValue(t, reg, "uvr_kafka_consumer_lag_messages", lag)
		assert.False(t, found, "lag series of a released partition must be deleted")
	})
}

func requireMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, found := metricValue(t, reg, name, labels)
		assert.True(c, found, "%s%v not found", name, labels)
		assert.Equal(c, want, got, "%s%v", name, labels)
	}, 10*time.Second, 10*time.Millisecond)
}

// metricValue returns the value of the counter or gauge name with exactly labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	families, err := reg.Gather()
	if err != nil {
		t.Errorf("gather: %v", err)
		return 0, false
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func labelsMatch(pairs []*dto.LabelPair, want map[string]string) bool {
	if len(pairs) != len(want) {
		return false
	}
	for _, p := range pairs {
		if want[p.GetName()] != p.GetValue() {
			return false
		}
	}
	return true
}

// Close leaves no goroutine behind: readers, consumer groups, watchers, transports. Not
// parallel, so that no other test's goroutines come and go meanwhile.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	eb := startEmbeddedBroker(t)
	brokers := eb.addrs()
	topic := ensureTopic(t, brokers, 3)
	ctx := testContext(t)
	baseline := runtime.NumGoroutine()

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, ConsumerGroup: groupName(t), MaxInFlight: 4})
	require.NoError(t, err)
	for k := range 3 {
		publishN(t, pub, topic, 10, "k"+strconv.Itoa(k))
	}
	msgs, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := range 4 { // a partition's window holds 4 even without acks
		msg := receive(t, msgs)
		if i%2 == 0 {
			msg.Ack() // the others stay in flight through Close
		}
	}
	require.NoError(t, pub.Close())
	require.NoError(t, sub.Close())

	if !assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, 10*time.Second, 10*time.Millisecond) {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after:\n%s", baseline, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// A Budget shared by two subscribers bounds the bytes both hold: with room for three
// messages, the first subscriber gets three and no more; the second still gets one (a
// partition with nothing in flight is never starved) and no more; in the end every message
// is delivered and the budget is back to zero.
func TestInFlightBudgetIsShared(t *testing.T) {
	forEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := testContext(t)
		topic := ensureTopic(t, brokers, 1)
		publishN(t, newPublisher(t, kafka.PublisherConfig{Brokers: brokers}), topic, 6, "k")

		// Each message weighs a little more than the overhead: three fill the budget.
		reg := prometheus.NewRegistry()
		budget := kafka.NewBudget(3*kafka.InFlightOverhead+1, reg)
		subscribe := func(group string) <-chan *message.Message {
			sub := newSubscriber(t, kafka.SubscriberConfig{
				Brokers: brokers, ConsumerGroup: group, MaxInFlight: 100, Budget: budget,
				CommitInterval: kafka.CommitEveryAck, NackResendDelay: kafka.NoNackResendDelay,
			})
			msgs, err := sub.Subscribe(ctx, topic)
			require.NoError(t, err)
			return msgs
		}

		a := subscribe(groupName(t) + "-a")
		var held []*message.Message
		for range 3 {
			held = append(held, receive(t, a))
		}
		requireNothing(t, a, quiet) // the budget is spent
		assert.GreaterOrEqual(t, gaugeValue(t, reg, "uvr_kafka_in_flight_bytes"), float64(3*kafka.InFlightOverhead))

		// The second subscriber shares the spent budget: its empty window takes one message,
		// and no more while the first holds the rest.
		b := subscribe(groupName(t) + "-b")
		first := receive(t, b)
		requireNothing(t, b, quiet)
		// Its ack empties its window, so it takes one again; the budget is still spent by the
		// first subscriber's three, which gets nothing.
		first.Ack()
		second := receive(t, b)
		requireNothing(t, a, quiet)

		// Acks free the rest: everything arrives, on both.
		for _, m := range append(held, second) {
			m.Ack()
		}
		for range 3 {
			receive(t, a).Ack()
		}
		for range 4 {
			receive(t, b).Ack()
		}
		require.Eventually(t, func() bool { return gaugeValue(t, reg, "uvr_kafka_in_flight_bytes") == 0 },
			10*time.Second, 5*time.Millisecond, "every byte is released once everything is acked")
	})
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
