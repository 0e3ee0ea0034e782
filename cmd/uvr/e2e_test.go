package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// 10,000 mixed events posted ⇒ every total, day and feature equals the
// ledger to the last digit; posting the same batches again, and a second
// projector group re-reading the whole topic (a redelivery of everything),
// change nothing.
func TestIngestExactlyOnce(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	end := time.Now().UTC()
	events := mixedEvents(1, 10_000, end, "once")
	l := newLedger()
	for _, ev := range events {
		l.add(ev)
	}
	start, stop := dateRange(end)

	postAll(t, m.URL(), events, 1000)
	requireDashboardEquals(t, m.URL(), l, start, stop, 2*time.Minute)

	// Each row records the Kafka position it was projected from.
	var minPartition int32
	var minOffset int64
	require.NoError(t, m.ch.QueryRow(context.Background(), "SELECT min(kafka_partition), min(kafka_offset) FROM usage_events").Scan(&minPartition, &minOffset))
	assert.GreaterOrEqual(t, minPartition, int32(0))
	assert.GreaterOrEqual(t, minOffset, int64(0))

	// The same batches again: Kafka now holds every event twice.
	postAll(t, m.URL(), events, 1000)
	require.Equal(t, int64(20_000), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic))
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)
	assert.Empty(t, l.mismatch(getDashboard(t, m.URL(), start, stop)), "after posting the batch twice")

	// Redelivery of everything: another projector group reads the topic from
	// the start into the same database.
	again := cfg
	again.ConsumerGroup = cfg.ConsumerGroup + "-replay"
	startMain(t, again, Roles{Projector: true})
	waitCaughtUp(t, cfg.KafkaBrokers, again.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)
	assert.Empty(t, l.mismatch(getDashboard(t, m.URL(), start, stop)), "after a full redelivery")
}

// Bad input gets a 4xx naming the field and the reason, and nothing reaches
// Kafka.
func TestIngestRejectsBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBatchEvents = 3
	m := startMain(t, cfg, Roles{API: true})

	good := string(batchBody(t, mixedEvents(2, 1, time.Now(), "good")))
	good = good[1 : len(good)-1] // one event object
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		detail      []string
	}{
		{"malformed json", "application/cloudevents+json", `{"specversion":"1.0",`, 400, []string{"malformed JSON"}},
		{"wrong types", "application/cloudevents+json", strings.Replace(good, `"specversion":"1.0"`, `"specversion":1`, 1), 400, []string{"specversion: must be a string"}},
		{"missing fields", "application/cloudevents+json", `{"specversion":"1.0","type":"uvr.usage.v1"}`, 400, []string{"id: is required", "source: is required", "time: is required", "data: is required"}},
		{"unknown type", "application/cloudevents+json", strings.Replace(good, `"type":"uvr.`, `"type":"uvr.nope.`, 1), 400, []string{"type: unknown event type"}},
		{"invalid event in batch", "application/cloudevents-batch+json", "[" + good + "," + strings.Replace(good, `"currency":"USD"`, `"currency":"dollars"`, 1) + "]", 400, []string{"[1] data.currency: must be an ISO 4217 code"}},
		{"oversized batch", "application/cloudevents-batch+json", "[" + strings.Repeat(good+",", 3) + good + "]", 413, []string{"batch has 4 events, more than the maximum of 3"}},
		{"empty batch", "application/cloudevents-batch+json", "[]", 400, []string{"batch is empty"}},
		{"wrong content type", "text/plain", good, 415, []string{"Content-Type must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, m.URL()+"/api/events", tt.contentType, []byte(tt.body))
			assert.Equal(t, tt.status, status, body)
			assert.Contains(t, body, `"detail"`)
			for _, d := range tt.detail {
				assert.Contains(t, body, d)
			}
		})
	}
	assert.Equal(t, int64(0), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic), "a rejected request published nothing")

	// The same event, valid, is accepted: the rejections above were about the input.
	status, body := post(t, m.URL()+"/api/events", "application/cloudevents+json", []byte(good))
	require.Equal(t, http.StatusAccepted, status, body)
	assert.JSONEq(t, `{"accepted":1}`, body)
	assert.Equal(t, int64(1), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic))
}

// The projector process is killed with SIGKILL while events stream in; after
// a restart the totals are exact: offsets were committed only for rows
// ClickHouse had stored, and re-inserted rows collapse.
func TestProjectorSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.BatchSize = 500
	apiMain := startMain(t, cfg, Roles{API: true})
	bin := buildUVR(t)

	startProjector := func() *exec.Cmd {
		cmd := exec.Command(bin, "project")
		cmd.Env = append(os.Environ(), configEnv(cfg)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if os.Getenv("UVR_TEST_LOG") == "" {
			cmd.Stdout, cmd.Stderr = nil, nil
		}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}

	end := time.Now().UTC()
	events := mixedEvents(3, 10_000, end, "kill")
	l := newLedger()
	for _, ev := range events {
		l.add(ev)
	}
	projector := startProjector()

	// Stream the events in small batches while the projector works.
	var posted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for start := 0; start < len(events); start += 200 {
			batch := events[start:min(start+200, len(events))]
			status, body := post(t, apiMain.URL()+"/api/events", "application/cloudevents-batch+json", batchBody(t, batch))
			if status != http.StatusAccepted {
				t.Errorf("post: %d %s", status, body)
				return
			}
			posted.Add(int64(len(batch)))
		}
	}()

	// Kill it once it has committed part of the stream, before the end.
	require.Eventually(t, func() bool {
		lags, err := kafka.GroupLag(context.Background(), cfg.KafkaBrokers, kafka.Security{}, cfg.ConsumerGroup, cfg.EventsTopic)
		if err != nil {
			return false
		}
		var committed int64
		for _, p := range lags {
			committed += max(p.Committed, 0)
		}
		return committed > 0
	}, time.Minute, 20*time.Millisecond, "the projector never committed anything")
	require.NoError(t, projector.Process.Signal(syscall.SIGKILL))
	_, _ = projector.Process.Wait()
	t.Logf("projector killed after %d of %d events were posted", posted.Load(), len(events))

	<-done
	require.Equal(t, int64(len(events)), posted.Load())
	startProjector()
	start, stop := dateRange(end)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, apiMain.ch, projectionWait)
	assert.Empty(t, l.mismatch(getDashboard(t, apiMain.URL(), start, stop)))
}

// buildUVR compiles the uvr binary into the test's temp dir.
func buildUVR(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "uvr")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// configEnv renders cfg as the UVR_* environment of a child process.
func configEnv(cfg Config) []string {
	return []string{
		"UVR_KAFKA_BROKERS=" + strings.Join(cfg.KafkaBrokers, ","),
		"UVR_CLICKHOUSE_ADDR=" + cfg.ClickHouseAddr,
		"UVR_CLICKHOUSE_DATABASE=" + cfg.ClickHouseDatabase,
		"UVR_EVENTS_TOPIC=" + cfg.EventsTopic,
		"UVR_POISON_TOPIC=" + cfg.PoisonTopic,
		"UVR_CONSUMER_GROUP=" + cfg.ConsumerGroup,
		"UVR_TOPIC_PARTITIONS=4",
		"UVR_BATCH_SIZE=" + strconv.Itoa(cfg.BatchSize),
		"UVR_FLUSH_INTERVAL=" + cfg.FlushInterval.String(),
		"UVR_METRICS_ADDR=127.0.0.1:0",
		"UVR_LOG_LEVEL=warn",
	}
}
