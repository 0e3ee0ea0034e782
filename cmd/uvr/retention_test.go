package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/topics"
)

// TestHistoryOutlivesBrokerRetention sets the broker-wide retention to one second on a broker
// of its own (a private Apache Kafka, and the embedded broker), proves the broker applies it
// (a control topic created without overrides loses its records: polled, never slept), and
// shows that uvr's topics still hold every record and that a restarted uvr still logs in the
// same admin, with the same API key and the token issued before.
func TestHistoryOutlivesBrokerRetention(t *testing.T) {
	for name, start := range map[string]func(testing.TB) []string{
		"kafka":    servicetest.PrivateKafka,
		"embedded": servicetest.EmbeddedKafka,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			proveHistoryKept(t, start(t))
		})
	}
}

func proveHistoryKept(t *testing.T, brokers []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The embedded broker applies retention every log.cleaner.backoff.ms (an hour by
	// default), on a ticker it starts with the first compacted topic: set it before uvr
	// creates any. Apache Kafka checks every log.retention.check.interval.ms, a static
	// setting deploy/kafka/server.properties makes one second.
	setBrokerDefaults(ctx, t, brokers, map[string]string{"log.cleaner.backoff.ms": "100"})

	cfg := testConfig(t)
	cfg.KafkaBrokers = brokers
	m := NewMain(cfg, Roles{API: true, Projector: true}, testLogger(t).With("test", t.Name()))
	require.NoError(t, m.Open(ctx))
	token := login(t, m.URL(), testAdminEmail, testAdminPassword)
	r := call(t, http.MethodPost, m.URL()+"/api/auth/api-keys", "application/json", `{"name":"kept","role":"admin"}`, bearer(token))
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var key struct{ ID, Key string }
	require.NoError(t, json.Unmarshal([]byte(r.body), &key))
	postAll(t, m.URL(), mixedEvents(7, 300, time.Now().UTC(), "retention"), 100)

	list, err := topicList(ctx, cfg, brokers)
	require.NoError(t, err)
	before := logBounds(ctx, t, brokers, list)
	require.Positive(t, recordsIn(before[cfg.EventsTopic]), "the events are in the log")
	require.Positive(t, recordsIn(before[cfg.topicNames().Users]), "users, keys and the signing secret are in the log")

	// Forget everything older than a second, broker-wide, and wait until the broker has
	// visibly done so on a topic that keeps the defaults.
	setBrokerDefaults(ctx, t, brokers, map[string]string{"log.retention.ms": "1000"})
	control := servicetest.Topic("test.retention.control")
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: control, Partitions: 1}}))
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.ProduceSync(ctx, &kgo.Record{Topic: control, Value: []byte("forgotten")}).FirstErr())
	require.Eventually(t, func() bool {
		return logBounds(ctx, t, brokers, []topics.Topic{{Spec: kafka.TopicSpec{Name: control}}})[control][0][0] > 0
	}, 90*time.Second, 100*time.Millisecond, "the broker applies a one-second retention to a topic without overrides")

	after := logBounds(ctx, t, brokers, list)
	for _, tp := range list {
		name := tp.Spec.Name
		for p, b := range after[name] {
			assert.Zero(t, b[0], "%s/%d still starts at offset 0", name, p)
			assert.GreaterOrEqual(t, b[1], before[name][p][1], "%s/%d lost nothing at its end", name, p)
		}
	}
	// Every event is still readable, not merely counted by offsets.
	assert.Equal(t, recordsIn(before[cfg.EventsTopic]), countRecords(ctx, t, client, cfg.EventsTopic, before[cfg.EventsTopic]))

	require.NoError(t, m.Close())
	m = NewMain(cfg, Roles{API: true, Projector: true}, testLogger(t).With("test", t.Name(), "start", 2))
	require.NoError(t, m.Open(ctx))
	defer func() { require.NoError(t, m.Close()) }()
	login(t, m.URL(), testAdminEmail, testAdminPassword)
	r = call(t, http.MethodGet, m.URL()+"/api/auth/me", "", "", http.Header{"X-Api-Key": {key.Key}})
	require.Equal(t, http.StatusOK, r.status, "the API key of the first start: %s", r.body)
	assert.Contains(t, r.body, `"id":"`+key.ID+`"`)
	r = call(t, http.MethodGet, m.URL()+"/api/auth/me", "", "", bearer(token))
	require.Equal(t, http.StatusOK, r.status, "the token of the first start (same signing secret): %s", r.body)
	assert.Contains(t, r.body, testAdminEmail)
}

// setBrokerDefaults sets cluster-wide dynamic broker configs: the broker resource with an
// empty name, which kafka-go cannot route (it parses the name as a broker id), franz-go can.
func setBrokerDefaults(ctx context.Context, t *testing.T, brokers []string, configs map[string]string) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer client.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeBroker
	for k, v := range configs {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value, c.Op = k, kmsg.StringPtr(v), kmsg.IncrementalAlterConfigOpSet
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	// A broker that has just started may drop the first admin connection: retry until the
	// deadline.
	var last error
	require.Eventually(t, func() bool {
		resp, err := req.RequestWith(ctx, client)
		if err == nil {
			for _, r := range resp.Resources {
				err = errors.Join(err, kerr.ErrorForCode(r.ErrorCode))
			}
		}
		last = err
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "set broker defaults %v", configs)
	require.NoError(t, last)
}

// logBounds is, per topic and partition, the first and the next offset of the log.
func logBounds(ctx context.Context, t *testing.T, brokers []string, list []topics.Topic) map[string]map[int][2]int64 {
	t.Helper()
	out := map[string]map[int][2]int64{}
	for _, tp := range list {
		lags, err := kafka.GroupLag(ctx, brokers, kafka.Security{}, "uvr-test-none", tp.Spec.Name)
		require.NoError(t, err)
		out[tp.Spec.Name] = map[int][2]int64{}
		for _, l := range lags {
			out[tp.Spec.Name][l.Partition] = [2]int64{l.Start, l.End}
		}
	}
	return out
}

func recordsIn(bounds map[int][2]int64) int64 {
	var n int64
	for _, b := range bounds {
		n += b[1] - b[0]
	}
	return n
}

// countRecords reads topic from its start up to the given ends and counts the records.
func countRecords(ctx context.Context, t *testing.T, client *kgo.Client, topic string, bounds map[int][2]int64) int64 {
	t.Helper()
	want := map[string]map[int32]kgo.Offset{topic: {}}
	for p, b := range bounds {
		if b[1] > 0 {
			want[topic][int32(p)] = kgo.NewOffset().AtStart()
		}
	}
	client.AddConsumePartitions(want)
	defer client.RemoveConsumePartitions(map[string][]int32{topic: nil})
	var n int64
	remaining := len(want[topic])
	seen := map[int32]bool{}
	for remaining > 0 {
		fetches := client.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %s: %d records so far", topic, n)
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= bounds[int(r.Partition)][1] {
				return
			}
			n++
			if r.Offset == bounds[int(r.Partition)][1]-1 && !seen[r.Partition] {
				seen[r.Partition] = true
				remaining--
			}
		})
	}
	return n
}
