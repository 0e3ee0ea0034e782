package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// uvr demo streams the generator into the API in batches; the last, partial
// batch included, every generated event reaches Kafka once.
func TestDemoStreamsEveryEvent(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true})
	opts := demoOptions{Seed: 3, Customers: 7, Days: 4}

	want := 0
	require.NoError(t, demo.Generate(t.Context(), demo.Config{Seed: opts.Seed, Customers: opts.Customers, Days: opts.Days, Now: time.Now().UTC()},
		func(event.Event) error { want++; return nil }))
	client, err := ingest.New(ingest.Config{URL: m.URL(), BatchSize: 50})
	require.NoError(t, err)
	require.NotZero(t, want%50, "the data set must end in a partial batch")
	require.NoError(t, runDemo(context.Background(), client, opts, io.Discard, testLogger(t)))
	require.Equal(t, int64(want), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic))
}
