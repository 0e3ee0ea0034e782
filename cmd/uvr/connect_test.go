package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// The connector stage wired as uvr run wires it: a Stripe service added
// through the API (its key kept out of every answer), POST /api/sync runs it
// against a real stripe-mock through the sync-request topic and the worker,
// and its events land in Kafka and ClickHouse.
func TestConnectorsEndToEnd(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.EnableScheduler = false // the test triggers the sync itself
	// stripe-mock listens on loopback, which a service may reach only by the
	// operator's leave (UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS).
	cfg.ConnectorAllowPrivateHosts = []string{"127.0.0.1"}
	m := startMain(t, cfg, Roles{API: true, Projector: true, Connectors: true})
	const key = "sk_test_123PLANTEDe2e4b1d"

	// Anything else private stays refused, at save and at test time, with
	// the field and the reason.
	for _, url := range []string{"https://169.254.169.254", "http://10.0.0.1", "https://[::1]:443"} {
		for _, route := range []string{"/api/services", "/api/test-service"} {
			status, body := post(t, m.URL()+route, "application/json",
				[]byte(`{"service_type":"stripe","credentials":{"api_key":"`+key+`","base_url":"`+url+`"}}`))
			assert.Equal(t, http.StatusBadRequest, status, route+" "+url+": "+body)
			assert.Contains(t, body, "base_url", route+" "+url)
			assert.Contains(t, body, "UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS", route+" "+url)
			assert.NotContains(t, body, key)
		}
	}

	status, body := post(t, m.URL()+"/api/services", "application/json",
		[]byte(`{"service_type":"stripe","service_name":"Stripe (mock)","credentials":{"api_key":"`+key+`","base_url":"`+servicetest.StripeMock(t)+`"}}`))
	require.Equal(t, http.StatusCreated, status, body)
	assert.NotContains(t, body, key)
	var created struct {
		ID string `json:"service_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	require.NotEmpty(t, created.ID, body)

	status, body = post(t, m.URL()+"/api/services", "application/json", []byte(`{"service_type":"stripe","credentials":{}}`))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "api_key")

	// 503 means "could not be requested now, retry" (Kafka or ClickHouse slow to
	// answer on a loaded machine): retried as a client would, within a bound.
	waitUntil(t, time.Minute, 100*time.Millisecond, func() bool {
		status, body = post(t, m.URL()+"/api/sync", "application/json", nil)
		return status != http.StatusServiceUnavailable
	}, func() string { return "POST /api/sync kept answering 503: " + body })
	require.Equal(t, http.StatusOK, status, body)
	var summary struct {
		Status            string `json:"status"`
		ConnectionsSynced int    `json:"connections_synced"`
		ConnectionsFailed int    `json:"connections_failed"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &summary))
	assert.Equal(t, "success", summary.Status, body)
	assert.Equal(t, 1, summary.ConnectionsSynced)
	assert.Zero(t, summary.ConnectionsFailed)

	resp, err := http.Get(m.URL() + "/api/sync-runs")
	require.NoError(t, err)
	defer resp.Body.Close()
	var runs struct {
		SyncRuns []struct {
			Status        string `json:"status"`
			Trigger       string `json:"trigger"`
			EventsEmitted uint64 `json:"events_emitted"`
		} `json:"sync_runs"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&runs))
	require.Len(t, runs.SyncRuns, 1)
	assert.Equal(t, "succeeded", runs.SyncRuns[0].Status)
	assert.Positive(t, runs.SyncRuns[0].EventsEmitted)

	// The events went through the spine: Kafka has them and the projector stored them.
	require.Equal(t, int64(runs.SyncRuns[0].EventsEmitted), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic))
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	var stored uint64
	require.NoError(t, m.ch.QueryRow(t.Context(), "SELECT count() FROM (SELECT source FROM revenue_events UNION ALL SELECT source FROM customer_events) WHERE source = 'stripe'").Scan(&stored))
	assert.Positive(t, stored)

	listStatus, listBody := getBody(t, m.URL()+"/api/services")
	require.Equal(t, http.StatusOK, listStatus)
	assert.Contains(t, listBody, `"service_type":"stripe"`)
	assert.NotContains(t, listBody, key)
	assert.NotContains(t, listBody, `"last_sync":null`, "the sync's outcome is on the service")

	// Deleted, then uvr restarted (a new instance rebuilding the registry
	// from the topic): the service stays gone.
	req, err := http.NewRequest(http.MethodDelete, m.URL()+"/api/services/"+created.ID, nil)
	require.NoError(t, err)
	delResp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, delResp.Body.Close())
	require.Equal(t, http.StatusOK, delResp.StatusCode)
	restarted := startMain(t, cfg, Roles{API: true})
	listStatus, listBody = getBody(t, restarted.URL()+"/api/services")
	require.Equal(t, http.StatusOK, listStatus)
	assert.NotContains(t, listBody, created.ID, "the deleted service is back after a restart")
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, string(b)
}

// Airbyte platform mode: what Airbyte's destination-kafka writes (one record
// per message: _airbyte_ab_id, _airbyte_stream, _airbyte_emitted_at,
// _airbyte_data) is mapped by the vendor's mapper into events, each delivered
// twice here, and the dashboard shows the mapped revenue once.
func TestAirbyteDestinationKafka(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.EnableScheduler = false
	cfg.AirbyteKafkaTopics = []string{servicetest.Topic("airbyte.stripe")}
	cfg.AirbyteKafkaSource = "stripe"
	require.NoError(t, kafka.EnsureTopics(t.Context(), cfg.KafkaBrokers, kafka.Security{}, []kafka.TopicSpec{{Name: cfg.AirbyteKafkaTopics[0], Partitions: 2}}))
	m := startMain(t, cfg, Roles{API: true, Projector: true, Connectors: true})

	file := sourcetest.Samples(t, "airbyte-stripe", "expected_records.jsonl")
	want, _, start, end := expectedRevenue(t, "stripe", file)
	// Written the way destination-kafka does: one record per message, through
	// our publisher (a bare kafka-go Writer fails at once on a topic created
	// a moment ago, STACK.md).
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: cfg.KafkaBrokers})
	require.NoError(t, err)
	defer pub.Close()
	for copy := range 2 { // the second copy is a redelivery of every record
		for i, rec := range sourcetest.ReadRecords(t, file) {
			v, err := json.Marshal(map[string]any{"_airbyte_ab_id": fmt.Sprint(i), "_airbyte_stream": rec.Stream,
				"_airbyte_emitted_at": rec.EmittedAt, "_airbyte_data": rec.Data})
			require.NoError(t, err)
			msg := message.NewMessage(fmt.Sprintf("%d-%d", copy, i), v)
			msg.Metadata.Set(kafka.KeyMetadata, fmt.Sprint(i))
			require.NoError(t, pub.Publish(cfg.AirbyteKafkaTopics[0], msg))
		}
	}

	var last decimal.Decimal
	waitUntil(t, 2*time.Minute, 100*time.Millisecond, func() bool {
		last = getDashboard(t, m.URL(), start, end).Summary.TotalRevenue
		return last.Equal(want)
	}, func() string { return fmt.Sprintf("total revenue %s, want %s", last.String(), want) })
}
