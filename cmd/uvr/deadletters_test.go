package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/deadletter"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// A poisoned event inside a batch: every other event counts exactly, the
// poison is listed by the API and by `uvr deadletters list`, and a retry
// republishes it, which, its value being one no table can hold, sets it
// aside again (honest: the cause is in the event, not in uvr).
//
// The poison: a usage cost of 11 integer digits, beyond Decimal(18,9).
// POST /api/events refuses it (asserted below), so it is produced directly
// onto the events topic, bypassing the API, as an old or foreign producer
// would, marked validated as uvr's publishers mark what they checked: the
// projector then only decodes it, and the insert is where it fails.
func TestPoisonedEventInsideABatch(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// Events arriving within a second share a batch: the poison is flushed
	// with good events, not alone.
	cfg.FlushInterval = time.Second
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	end := time.Now().UTC()
	good := mixedEvents(14, 400, end, "dl")
	l := newLedger()
	for _, ev := range good {
		l.add(ev)
	}
	poison := good[0]
	poison.ID, poison.Type = "dl-poison", event.TypeUsage
	cost := decimal.RequireFromString("12345678901.5")
	qty := decimal.NewFromInt(1)
	poison.Data = event.Data{Customer: poison.Data.Customer, Version: 1, Feature: "api.calls", Quantity: &qty, Cost: &cost, Currency: "USD"}
	status, body := post(t, m.URL()+"/api/events", "application/cloudevents+json", mustMarshal(t, poison))
	require.Equal(t, http.StatusBadRequest, status, "ingest refuses the value: %s", body)

	msgs, err := event.Messages([]event.Event{poison})
	require.NoError(t, err)
	event.MarkValidated(msgs)
	producer, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: m.Brokers})
	require.NoError(t, err)
	defer producer.Close()

	postAll(t, m.URL(), good[:200], 200)
	require.NoError(t, producer.Publish(cfg.EventsTopic, msgs...))
	postAll(t, m.URL(), good[200:], 200)

	start, stop := dateRange(end)
	requireDashboardEquals(t, m.URL(), l, start, stop, 2*time.Minute)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)

	// The API lists it, with where it came from and why.
	entries := listDeadLetters(t, m.URL())
	require.Len(t, entries, 1, "only the poison is set aside")
	got := entries[0]
	assert.Equal(t, "dl-poison", got.EventID)
	assert.Equal(t, event.TypeUsage, got.EventType)
	assert.Equal(t, "rawevents", got.Projection)
	assert.Equal(t, "value", got.ReasonClass)
	assert.Equal(t, cfg.EventsTopic, got.Topic)
	assert.GreaterOrEqual(t, got.Offset, int64(0))
	assert.Contains(t, got.Reason, "column cost")
	assert.Contains(t, got.Reason, "Decimal(18, 9)")
	assert.WithinDuration(t, time.Now(), got.Time, 5*time.Minute)
	assert.Empty(t, got.Retries)
	assert.Equal(t, 1.0, metricSum(t, m.URL(), `uvr_deadletters_total{projection="rawevents",reason_class="value"}`))

	// So does the CLI.
	env := map[string]string{"UVR_KAFKA_BROKERS": strings.Join(m.Brokers, ","), "UVR_POISON_TOPIC": cfg.PoisonTopic}
	out, err := runCLI(t, env, "deadletters", "list")
	require.NoError(t, err, out)
	assert.Contains(t, out, got.ID)
	assert.Contains(t, out, "dl-poison")
	assert.Contains(t, out, "1 dead letters")

	// A retry republishes it; it fails the same way and is set aside again.
	out, err = runCLI(t, env, "deadletters", "retry", "--id", got.ID)
	require.NoError(t, err, out)
	assert.Contains(t, out, "retried "+got.ID)
	var again []deadletter.Entry
	waitUntil(t, time.Minute, 100*time.Millisecond, func() bool {
		again = listDeadLetters(t, m.URL())
		return len(again) == 2
	}, func() string {
		return fmt.Sprintf("the retried poison was not set aside again: %d entries", len(again))
	})
	assert.Equal(t, got.ID, again[0].ID)
	require.Len(t, again[0].Retries, 1, "the first entry shows it was retried")
	assert.Equal(t, "dl-poison", again[1].EventID)
	assert.Empty(t, again[1].Retries)

	out, err = runCLI(t, env, "deadletters", "list", "--json")
	require.NoError(t, err, out)
	var listed []deadletter.Entry
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	assert.Len(t, listed, 2)

	// Nothing counted twice, nothing lost.
	requireDashboardEquals(t, m.URL(), l, start, stop, time.Minute)
}

func mustMarshal(t *testing.T, ev event.Event) []byte {
	t.Helper()
	b, err := ev.Marshal()
	require.NoError(t, err)
	return b
}

func listDeadLetters(t *testing.T, base string) []deadletter.Entry {
	t.Helper()
	var body struct {
		DeadLetters []deadletter.Entry `json:"deadletters"`
	}
	getJSON(t, base+"/api/deadletters", &body)
	return body.DeadLetters
}

// metricSum reads the value of series (name{labels} as exposed) on /metrics.
func metricSum(t *testing.T, base, series string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}
