package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// TestReplayAndProjectorRefuseTruncatedLog: once the first records of an events partition
// are gone (DeleteRecords, as retention would), `uvr replay` exits non-zero and a projector
// starting a new group does not start, both naming the topic, partition and first missing
// offset, instead of rebuilding from what is left.
func TestReplayAndProjectorRefuseTruncatedLog(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, prepareTopics(ctx, cfg, cfg.KafkaBrokers, testLogger(t)))
	client, err := kgo.NewClient(kgo.SeedBrokers(cfg.KafkaBrokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer client.Close()
	for range 5 {
		require.NoError(t, client.ProduceSync(ctx, &kgo.Record{Topic: cfg.EventsTopic, Partition: 2, Value: []byte("{}")}).FirstErr())
	}
	servicetest.DeleteRecords(t, cfg.KafkaBrokers, cfg.EventsTopic, 2, 3)
	want := "topic " + cfg.EventsTopic + " partition 2: records from offset 0 (the first missing) to 2 are gone, the log now starts at 3"

	_, err = runCLI(t, replayEnv(cfg), "replay", "--yes")
	require.Error(t, err, "a non-zero exit")
	assert.ErrorContains(t, err, "replay: "+want)

	err = NewMain(cfg, Roles{Projector: true}, testLogger(t)).Open(ctx)
	require.Error(t, err)
	assert.ErrorContains(t, err, want)
}
