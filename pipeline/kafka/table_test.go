package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

func newTable(t *testing.T, brokers []string, topic string, partitions int) *kafka.Table {
	t.Helper()
	tbl, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: topic, Partitions: partitions, Logger: testLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tbl.Close() })
	return tbl
}

func tableCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTableConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  kafka.TableConfig
		want []string // substrings of the error; none means valid
	}{
		{"valid", kafka.TableConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"}, nil},
		{"everything wrong", kafka.TableConfig{Brokers: []string{"nohost"}, Partitions: -1, TailWait: -1, Timeout: -1},
			[]string{`broker "nohost"`, "topic is required", "partitions must be ≥ 0", "tail wait", "timeout"}},
		{"no brokers", kafka.TableConfig{Topic: "t"}, []string{"brokers are required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kafka.NewTable(tt.cfg)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTablePutGetDelete(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx := tableCtx(t)
	topic := servicetest.Topic("test.table")
	tbl := newTable(t, brokers, topic, 0)
	require.NoError(t, tbl.Sync(ctx)) // creates the topic; empty

	_, ok := tbl.Get("a")
	assert.False(t, ok)
	assert.Empty(t, tbl.All())

	require.NoError(t, tbl.Put(ctx, "a", []byte("1")))
	require.NoError(t, tbl.Put(ctx, "b", []byte("2")))
	require.NoError(t, tbl.Put(ctx, "a", []byte("3"))) // overwrite
	require.NoError(t, tbl.Put(ctx, "empty", []byte{}))

	// Read-your-writes without a Sync: Put returns after the broker's ack and applies locally.
	v, ok := tbl.Get("a")
	require.True(t, ok)
	assert.Equal(t, "3", string(v))
	v, ok = tbl.Get("empty")
	require.True(t, ok, "an empty value is a value, not a delete")
	assert.Empty(t, v)

	// Copies: changing what Get/All return changes nothing inside.
	all := tbl.All()
	all["a"][0] = 'x'
	delete(all, "b")
	v, _ = tbl.Get("a")
	assert.Equal(t, "3", string(v))
	assert.Len(t, tbl.All(), 3)

	require.NoError(t, tbl.Delete(ctx, "b"))
	_, ok = tbl.Get("b")
	assert.False(t, ok)
	require.NoError(t, tbl.Delete(ctx, "never-there"))
	require.NoError(t, tbl.Sync(ctx))
	assert.Equal(t, map[string][]byte{"a": []byte("3"), "empty": {}}, tbl.All())

	require.Error(t, tbl.Put(ctx, "", []byte("x")), "empty keys are refused")

	// The topic was created compacted: a table is state, not a stream that expires.
	assert.Equal(t, "compact", topicConfig(t, brokers, topic, "cleanup.policy"))
}

func TestTableSecondInstanceSeesWritesAfterSync(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx := tableCtx(t)
	topic := servicetest.Topic("test.table")
	a := newTable(t, brokers, topic, 0)
	b := newTable(t, brokers, topic, 0)
	require.NoError(t, a.Sync(ctx))
	require.NoError(t, b.Sync(ctx))

	require.NoError(t, a.Put(ctx, "svc-1", []byte(`{"name":"one"}`)))
	require.NoError(t, a.Put(ctx, "svc-2", []byte(`{"name":"two"}`)))
	require.NoError(t, b.Sync(ctx))
	assert.Equal(t, map[string][]byte{"svc-1": []byte(`{"name":"one"}`), "svc-2": []byte(`{"name":"two"}`)}, b.All())

	// Both write the same key: the later write in the log wins on both after Sync.
	require.NoError(t, a.Put(ctx, "k", []byte("from-a")))
	require.NoError(t, b.Put(ctx, "k", []byte("from-b")))
	v, _ := a.Get("k")
	assert.Equal(t, "from-a", string(v), "a has not read b's write yet")
	require.NoError(t, a.Sync(ctx))
	require.NoError(t, b.Sync(ctx))
	va, _ := a.Get("k")
	vb, _ := b.Get("k")
	assert.Equal(t, "from-b", string(va))
	assert.Equal(t, "from-b", string(vb))

	// b deletes; a sees the tombstone after Sync, and its Version moves with
	// it (what the customer directory's cached resolution keys on); reads and
	// a Sync that finds nothing new leave it as it is.
	before := a.Version()
	require.NoError(t, a.Sync(ctx))
	a.All()
	assert.Equal(t, before, a.Version(), "nothing changed")
	require.NoError(t, b.Delete(ctx, "svc-1"))
	require.NoError(t, a.Sync(ctx))
	_, ok := a.Get("svc-1")
	assert.False(t, ok)
	assert.Greater(t, a.Version(), before, "another instance's delete, read by Sync")
	before = a.Version()
	require.NoError(t, a.Put(ctx, "svc-3", []byte(`{}`)))
	assert.Greater(t, a.Version(), before, "an own write")
}

// An instance's own write is visible at once, before its tail has read the older records of
// the same key: reading those later must not bring an old value (or a deleted key) back.
func TestTableOwnWriteNotOverriddenByOlderRecords(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx := tableCtx(t)
	topic := servicetest.Topic("test.table")
	a := newTable(t, brokers, topic, 0)
	require.NoError(t, a.Put(ctx, "k", []byte("old")))
	require.NoError(t, a.Put(ctx, "gone", []byte("old")))

	b := newTable(t, brokers, topic, 0) // has read nothing
	require.NoError(t, b.Put(ctx, "k", []byte("new")))
	require.NoError(t, b.Delete(ctx, "gone"))
	require.NoError(t, b.Sync(ctx)) // now reads "old" records, then its own
	v, ok := b.Get("k")
	require.True(t, ok)
	assert.Equal(t, "new", string(v))
	_, ok = b.Get("gone")
	assert.False(t, ok, "a deleted key must not come back from an older record")
	assert.Equal(t, map[string][]byte{"k": []byte("new")}, b.All())
}

func TestTableRestartRebuildsFromLog(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx := tableCtx(t)
	topic := servicetest.Topic("test.table")
	// Three partitions: keys spread over them, and the rebuild reads them all.
	a := newTable(t, brokers, topic, 3)
	want := map[string][]byte{}
	for i := range 30 {
		k := fmt.Sprintf("key-%02d", i)
		require.NoError(t, a.Put(ctx, k, []byte("v1")))
		want[k] = []byte("v1")
	}
	for i := 0; i < 30; i += 3 {
		k := fmt.Sprintf("key-%02d", i)
		require.NoError(t, a.Put(ctx, k, []byte("v2")))
		want[k] = []byte("v2")
	}
	for i := 1; i < 30; i += 5 {
		k := fmt.Sprintf("key-%02d", i)
		require.NoError(t, a.Delete(ctx, k))
		delete(want, k)
	}
	require.NoError(t, a.Close())

	restarted := newTable(t, brokers, topic, 0) // partitions read from the existing topic
	assert.Empty(t, restarted.All(), "nothing before the first Sync")
	require.NoError(t, restarted.Sync(ctx))
	assert.Equal(t, want, restarted.All())
	assert.Equal(t, "3", fmt.Sprint(partitionCount(t, brokers, topic)))
}

func TestTableRunTailsOtherInstancesWrites(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	ctx := tableCtx(t)
	topic := servicetest.Topic("test.table")
	writer := newTable(t, brokers, topic, 2)
	require.NoError(t, writer.Sync(ctx))
	reader := newTable(t, brokers, topic, 0)
	runDone := make(chan error, 1)
	go func() { runDone <- reader.Run(ctx) }()

	require.NoError(t, writer.Put(ctx, "x", []byte("1")))
	require.NoError(t, writer.Put(ctx, "y", []byte("2")))
	require.Eventually(t, func() bool {
		return len(reader.All()) == 2
	}, 20*time.Second, 20*time.Millisecond, "the tail should pick up the writes without Sync")

	require.NoError(t, writer.Delete(ctx, "x"))
	require.Eventually(t, func() bool {
		_, ok := reader.Get("x")
		return !ok
	}, 20*time.Second, 20*time.Millisecond, "the tail should pick up the tombstone")

	// Close stops Run promptly.
	start := time.Now()
	require.NoError(t, reader.Close())
	select {
	case err := <-runDone:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestTableUnreachableBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// A port nothing listens on: the error comes back within the context, naming the topic.
	tbl, err := kafka.NewTable(kafka.TableConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "test.table.unreachable"})
	require.NoError(t, err)
	defer tbl.Close()
	err = tbl.Sync(ctx)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "test.table.unreachable"), err.Error())
}

func topicConfig(t *testing.T, brokers []string, topic, name string) string {
	t.Helper()
	// A transport of its own: the default one serves metadata from a cache that may predate
	// the topic.
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: &kafkago.Transport{}}
	resp, err := client.DescribeConfigs(context.Background(), &kafkago.DescribeConfigsRequest{
		Resources: []kafkago.DescribeConfigRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
		}},
	})
	require.NoError(t, err)
	for _, r := range resp.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue
			}
		}
	}
	t.Fatalf("topic %s has no config %s", topic, name)
	return ""
}

func partitionCount(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	// A transport of its own: the default one serves metadata from a cache that may predate
	// the topic.
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: &kafkago.Transport{}}
	meta, err := client.Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{topic}})
	require.NoError(t, err)
	require.Len(t, meta.Topics, 1)
	require.NoError(t, meta.Topics[0].Error)
	return len(meta.Topics[0].Partitions)
}

// `uvr run` uses the embedded broker (pipeline/broker): the table works on it too, and its
// state survives a broker restart on the same data directory.
func TestTableOnEmbeddedBroker(t *testing.T) {
	eb := startEmbeddedBroker(t)
	ctx := tableCtx(t)
	topic := uniqueTopic(t)
	a := newTable(t, eb.addrs(), topic, 0)
	require.NoError(t, a.Put(ctx, "k1", []byte("v1")))
	require.NoError(t, a.Put(ctx, "k2", []byte("v2")))
	require.NoError(t, a.Delete(ctx, "k1"))
	require.NoError(t, a.Close())

	eb.restart()
	b := newTable(t, eb.addrs(), topic, 0)
	require.NoError(t, b.Sync(ctx))
	assert.Equal(t, map[string][]byte{"k2": []byte("v2")}, b.All())
}
