package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
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

// testLogger logs to stderr at UVR_TEST_LOG_LEVEL (debug, info, warn, error; default error):
// t.Log cannot be used, the clients log from goroutines that outlive a subtest.
func testLogger() *slog.Logger {
	level := slog.LevelError
	if v := os.Getenv("UVR_TEST_LOG_LEVEL"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// kafkaBrokers returns the real Kafka's addresses: UVR_KAFKA_BROKERS (comma-separated) or
// the one `deploy/services kafka start` runs. A broker that does not answer fails the test:
// integration tests never skip silently (STYLE.md).
func kafkaBrokers(t *testing.T) []string {
	t.Helper()
	brokers := []string{"127.0.0.1:9092"}
	if v := os.Getenv("UVR_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	}
	conn, err := net.DialTimeout("tcp", brokers[0], 3*time.Second)
	require.NoError(t, err, "Kafka at %v is not reachable: start it with `deploy/services kafka start` or set UVR_KAFKA_BROKERS", brokers)
	_ = conn.Close()
	return brokers
}

// embeddedBroker is a pipeline/broker that a test can restart on the same address and data
// directory.
type embeddedBroker struct {
	t       *testing.T
	dataDir string

	mu   sync.Mutex
	addr string
	b    *broker.Broker
}

func startEmbeddedBroker(t *testing.T) *embeddedBroker {
	t.Helper()
	eb := &embeddedBroker{t: t, dataDir: t.TempDir()}
	eb.start("127.0.0.1:0")
	t.Cleanup(func() {
		eb.mu.Lock()
		defer eb.mu.Unlock()
		_ = eb.b.Close()
	})
	return eb
}

func (eb *embeddedBroker) start(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: eb.dataDir, Addr: addr, Partitions: 1, Logger: testLogger()})
	if err != nil {
		panic(fmt.Sprintf("start embedded broker: %v", err)) // may run outside the test goroutine
	}
	eb.b = b
	eb.addr = b.Addrs()[0]
}

func (eb *embeddedBroker) addrs() []string {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	return []string{eb.addr}
}

func (eb *embeddedBroker) restart() {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	_ = eb.b.Close()
	eb.start(eb.addr)
}

var groupUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// groupName turns a test name into a consumer group name unique to the test.
func groupName(t *testing.T) string {
	return "cg-" + groupUnsafe.ReplaceAllString(t.Name(), "_")
}

func uniqueTopic(t *testing.T) string {
	return "t-" + groupUnsafe.ReplaceAllString(t.Name(), "_") + "-" + watermill.NewShortUUID()
}

func newPublisher(t *testing.T, cfg kafka.PublisherConfig) *kafka.Publisher {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	pub, err := kafka.NewPublisher(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func newSubscriber(t *testing.T, cfg kafka.SubscriberConfig) *kafka.Subscriber {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	sub, err := kafka.NewSubscriber(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// receive waits for the next message or fails the test.
func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-msgs:
		require.True(t, ok, "messages channel closed")
		return msg
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		return nil
	}
}

// requireNothing asserts that no message arrives while the subscriber gets ample time to
// deliver one (the window test needs a negative: nothing beyond MaxInFlight).
func requireNothing(t *testing.T, msgs <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg := <-msgs:
		t.Fatalf("unexpected message %s (payload %q)", msg.UUID, msg.Payload)
	case <-time.After(d):
	}
}

func publishN(t *testing.T, pub message.Publisher, topic string, n int, key string) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))
		if key != "" {
			msgs[i].Metadata.Set(kafka.KeyMetadata, key)
		}
	}
	require.NoError(t, pub.Publish(topic, msgs...))
	return msgs
}

// forEachBroker runs test against the real Kafka and against a fresh embedded broker, in
// parallel: one contract, two implementations.
func forEachBroker(t *testing.T, test func(t *testing.T, brokers []string)) {
	t.Run("kafka", func(t *testing.T) {
		t.Parallel()
		test(t, kafkaBrokers(t))
	})
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		test(t, startEmbeddedBroker(t).addrs())
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func ensureTopic(t *testing.T, brokers []string, partitions int) string {
	t.Helper()
	topic := uniqueTopic(t)
	require.NoError(t, kafka.EnsureTopics(testContext(t), brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: partitions}}))
	return topic
}

// fetchCommitted is the group's committed offset of a partition, -1 when none.
func fetchCommitted(ctx context.Context, brokers []string, group, topic string, partition int) (int64, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
	resp, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {partition}}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition == partition {
			return p.CommittedOffset, p.Error
		}
	}
	return -1, nil
}

func committedOffset(t *testing.T, brokers []string, group, topic string, partition int) int64 {
	t.Helper()
	off, err := fetchCommitted(testContext(t), brokers, group, topic, partition)
	require.NoError(t, err)
	return off
}

func requireCommitted(t *testing.T, brokers []string, group, topic string, partition int, want int64) {
	t.Helper()
	ctx := testContext(t)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		off, err := fetchCommitted(ctx, brokers, group, topic, partition)
		assert.NoError(c, err)
		assert.Equal(c, want, off)
	}, 15*time.Second, 20*time.Millisecond, "committed offset of %s/%d", topic, partition)
}

// index is the publish index that publishN put in the payload.
func index(t *testing.T, msg *message.Message) int {
	t.Helper()
	i, err := strconv.Atoi(string(msg.Payload))
	require.NoError(t, err)
	return i
}
