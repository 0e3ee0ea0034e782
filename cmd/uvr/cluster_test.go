package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/topics"
)

// clusterEvents is about how many events the cluster test posts: a size that keeps it to a
// few minutes in `make test` on 2 cores. UVR_TEST_CLUSTER_EVENTS sets another count for a
// soak run (docs/operations.md: 200000).
const clusterEvents = 10_000

// uvr on a three-broker Kafka cluster, through its HTTP API. uvr creates
// every topic with 3 replicas and min.insync.replicas 2 by itself (auto
// replication). While a ledger of mixed events (usage, revenue, corrections,
// voids, duplicates, in random order) is posted, the projector is restarted,
// the broker leading the events topic's first partition is killed with
// SIGKILL, and it comes back and rejoins every ISR: every POST is
// acknowledged and /api/dashboard equals the ledger to the last digit. Then
// two of the three brokers are killed: a POST answers 503 naming Kafka; once
// they are back, the same batch (as a client retries it) and a new one are
// accepted, and the dashboard again equals the ledger of everything
// acknowledged.
func TestKafkaClusterLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	began := time.Now()
	kc := startKafkaCluster(t)
	t.Logf("cluster of 3 brokers %v ready in %s", kc.brokers, time.Since(began).Round(time.Second))

	cfg := testConfig(t)
	cfg.KafkaBrokers = kc.brokers
	cfg.TopicPartitions = 6
	api := startMain(t, cfg, Roles{API: true})
	requireReplicatedTopics(t, cfg)
	projector, err := newProjector(cfg, t)
	require.NoError(t, err)
	defer func() { require.NoError(t, projector.Close()) }()

	n := clusterEvents
	if v := os.Getenv("UVR_TEST_CLUSTER_EVENTS"); v != "" {
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "UVR_TEST_CLUSTER_EVENTS")
	}
	end := time.Now().UTC()
	// ledgerEvents posts about 1.67 events per identity (ledger_test.go).
	posted, final := ledgerEvents(21, n*3/5, end)
	l := newLedger()
	for _, ev := range final {
		l.add(ev)
	}
	start, stop := end.AddDate(0, 0, -61).Format(time.DateOnly), end.Format(time.DateOnly)

	// One broker down, a projector restarted: nothing refused, nothing lost.
	victim := leaderOf(t, kc.brokers, cfg.EventsTopic, 0)
	postPhase := time.Now()
	var acked atomic.Int64
	done := postConcurrently(t, api.URL(), posted, 1000, 8, &acked)
	// at waits until that share of the events is acknowledged (or all are posted).
	at := func(share float64, what string) {
		require.Eventually(t, func() bool { return acked.Load() >= int64(share*float64(len(posted))) || isClosed(done) },
			5*time.Minute, 20*time.Millisecond)
		t.Logf("%s after %d of %d events acknowledged (%s)", what, acked.Load(), len(posted), time.Since(postPhase).Round(time.Second))
	}
	at(0.15, "restart the projector")
	// In the background: stopping and starting the projector's consumers takes long
	// enough on a loaded machine that, waited for, the broker kill would miss the stream.
	restarted := make(chan error, 1)
	go func() {
		err := projector.Close()
		if err == nil {
			projector, err = newProjector(cfg, t)
		}
		restarted <- err
	}()
	at(0.3, fmt.Sprintf("kill -9 broker %d", victim))
	kc.run(t, "kill", victim)
	at(0.6, fmt.Sprintf("restart broker %d", victim))
	kc.run(t, "start", victim)
	<-done
	require.NoError(t, <-restarted, "projector restart")
	require.Equal(t, int64(len(posted)), acked.Load(), "every POST acknowledged with one broker down")
	t.Logf("%d events posted and acknowledged in %s", len(posted), time.Since(postPhase).Round(time.Second))
	requireFullISR(t, kc.brokers, cfg.EventsTopic, 2*time.Minute)
	requireLedger(t, api.URL(), projector, cfg, l, start, stop)
	t.Logf("ledger exact after the broker kill and the projector restart: cost %s, revenue %s (%s)",
		l.cost, l.revenue, time.Since(began).Round(time.Second))

	// Two brokers down: the API refuses, and acknowledges nothing.
	others := []int{victim%3 + 1, (victim+1)%3 + 1}
	for _, node := range others {
		kc.run(t, "kill", node)
	}
	batch := mixedEvents(22, 500, end, "cluster-outage")
	refused := time.Now()
	status, body := post(t, api.URL()+"/api/events", "application/cloudevents-batch+json", batchBody(t, batch))
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.Contains(t, body, "kafka")
	t.Logf("with brokers %v down: %d in %s: %s", others, status, time.Since(refused).Round(time.Second), body)

	// Back: the client's retry of that batch and a new one are accepted.
	kc.run(t, "start", 0)
	var last string
	accepted := assert.Eventually(t, func() bool {
		status, last = post(t, api.URL()+"/api/events", "application/cloudevents-batch+json", batchBody(t, batch))
		return status == http.StatusAccepted
	}, 3*time.Minute, 100*time.Millisecond)
	require.True(t, accepted, "never accepted again: %s", last)
	after := mixedEvents(23, 500, end, "cluster-after")
	postAll(t, api.URL(), after, 500)
	for _, ev := range append(batch, after...) {
		l.add(ev)
	}
	requireLedger(t, api.URL(), projector, cfg, l, start, stop)
	t.Logf("ledger exact after two brokers were down and came back (%s in all)", time.Since(began).Round(time.Second))
}

// requireLedger waits until the projector has stored and aggregated
// everything in the events topic, then requires the dashboard to equal the
// ledger: a difference is then a loss or a double count, not a delay.
func requireLedger(t *testing.T, baseURL string, projector *Main, cfg Config, l *ledger, start, stop string) {
	t.Helper()
	// Deadlines, not timings: projecting 10,000 events takes seconds on an idle machine and
	// minutes on a loaded one with three broker JVMs.
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, 10*time.Minute)
	waitAggregated(t, projector.ch, 3*time.Minute)
	require.Empty(t, l.mismatch(getDashboard(t, baseURL, start, stop)))
}

// postConcurrently posts events in batches from workers goroutines, adding
// each acknowledged batch to acked, and closes the returned channel when all
// are posted. A batch that is not acknowledged fails the test.
func postConcurrently(t *testing.T, baseURL string, events []event.Event, batch, workers int, acked *atomic.Int64) <-chan struct{} {
	t.Helper()
	batches := make(chan []event.Event)
	go func() {
		defer close(batches)
		for start := 0; start < len(events); start += batch {
			batches <- events[start:min(start+batch, len(events))]
		}
	}()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range batches {
				status, body := post(t, baseURL+"/api/events", "application/cloudevents-batch+json", batchBody(t, b))
				if !assert.Equal(t, http.StatusAccepted, status, body) {
					continue
				}
				acked.Add(int64(len(b)))
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// newProjector opens a projector-only Main (what `uvr project` runs).
func newProjector(cfg Config, t *testing.T) (*Main, error) {
	m := NewMain(cfg, Roles{Projector: true}, testLogger(t).With("test", t.Name(), "role", "projector"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return m, m.Open(ctx)
}

// requireReplicatedTopics requires every topic uvr uses to exist with three
// replicas and min.insync.replicas 2, as uvr created them with its automatic
// replication on a cluster of three brokers.
func requireReplicatedTopics(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := topicList(ctx, cfg, cfg.KafkaBrokers)
	require.NoError(t, err)
	statuses, err := topics.Check(ctx, cfg.KafkaBrokers, cfg.KafkaSecurity, list)
	require.NoError(t, err)
	require.NotEmpty(t, statuses)
	for _, st := range statuses {
		require.True(t, st.Exists, st.Topic.Spec.Name)
		assert.Equal(t, 3, st.ReplicationFactor, st.Topic.Spec.Name)
		assert.Equal(t, "2", st.Settings["min.insync.replicas"], st.Topic.Spec.Name)
		assert.Empty(t, st.Findings, st.Topic.Spec.Name)
	}
}

func topicMetadata(ctx context.Context, brokers []string, topic string) (kafkago.Topic, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return kafkago.Topic{}, err
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Error != nil {
		return kafkago.Topic{}, fmt.Errorf("metadata of %s: %+v", topic, resp.Topics)
	}
	return resp.Topics[0], nil
}

// leaderOf is the node id of the broker leading a partition.
func leaderOf(t *testing.T, brokers []string, topic string, partition int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := topicMetadata(ctx, brokers, topic)
	require.NoError(t, err)
	for _, p := range md.Partitions {
		if p.ID == partition {
			require.Len(t, p.Replicas, 3, "partition %d of %s", partition, topic)
			return p.Leader.ID
		}
	}
	t.Fatalf("%s has no partition %d", topic, partition)
	return 0
}

// requireFullISR waits until every partition of topic has its three replicas
// in sync: a restarted broker caught up.
func requireFullISR(t *testing.T, brokers []string, topic string, within time.Duration) {
	t.Helper()
	var last string
	full := assert.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		md, err := topicMetadata(ctx, brokers, topic)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, p := range md.Partitions {
			if len(p.Isr) != 3 {
				last = fmt.Sprintf("partition %d: ISR %v", p.ID, p.Isr)
				return false
			}
		}
		return true
	}, within, 200*time.Millisecond)
	require.True(t, full, "ISR never full again: %s", last)
}

// kafkaCluster is a three-broker KRaft cluster of this test alone, started by
// `deploy/services kafka-cluster` with its own directory and ports.
type kafkaCluster struct {
	brokers []string
	env     []string
}

func startKafkaCluster(t *testing.T) *kafkaCluster {
	t.Helper()
	kc := &kafkaCluster{env: append(os.Environ(),
		"UVR_KAFKA_CLUSTER_DIR="+filepath.Join(t.TempDir(), "kafka-cluster"),
		fmt.Sprintf("UVR_KAFKA_CLUSTER_PORT=%d", freePortRange(t, 6)))}
	kc.run(t, "start", 0)
	t.Cleanup(func() { kc.run(t, "stop", 0) })
	out := kc.run(t, "env", 0) // export UVR_KAFKA_BROKERS=a\,b\,c
	list := strings.ReplaceAll(strings.TrimSpace(out[strings.Index(out, "=")+1:]), `\`, "")
	kc.brokers = strings.Split(list, ",")
	require.Len(t, kc.brokers, 3, out)
	return kc
}

// run runs a deploy/services kafka-cluster action on node (0: every node)
// and returns its standard output.
func (kc *kafkaCluster) run(t *testing.T, action string, node int) string {
	t.Helper()
	args := []string{"kafka-cluster", action}
	if node != 0 {
		args = append(args, strconv.Itoa(node))
	}
	cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "services"), args...)
	cmd.Env = kc.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "deploy/services %s: %s", strings.Join(args, " "), stderr.String())
	return string(out)
}

// freePortRange returns the first of n consecutive free loopback ports,
// below the ephemeral range so that no outgoing connection takes one while
// a broker is down.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + 2*rand.IntN(6000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			_ = ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
