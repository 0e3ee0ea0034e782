package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Past its record limit the embedded broker refuses what it is sent, and
// ingest answers 503 saying why and what to run instead.
func TestEmbeddedBrokerRefusesPastItsLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.KafkaBrokers = nil
	cfg.EmbeddedKafkaAddr = "127.0.0.1:0"
	cfg.EmbeddedMaxRecords = 300 // start-up writes a few state records too
	m := startMain(t, cfg, Roles{API: true, Embedded: true})

	events := mixedEvents(5, 400, time.Now().UTC(), "limit")
	postAll(t, m.URL(), events[:200], 100)
	status, body := post(t, m.URL()+"/api/events", "application/cloudevents-batch+json", batchBody(t, events[200:]))
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "the embedded Kafka broker holds")
	assert.Contains(t, body, "refuses more past its limit of 300")
	assert.Contains(t, body, "--kafka-brokers")
	require.Error(t, m.broker.Full())
}
