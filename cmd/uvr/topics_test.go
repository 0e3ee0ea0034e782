package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// TestStartRefusesTopicsThatForget: a uvr whose events topic keeps an hour and whose users
// topic is not compacted (an operator's broker, or an older uvr) does not start; the error
// names the topic, the setting, its value and the fixing commands, and nothing on the broker
// changes until `uvr topics fix` is run. Then uvr starts.
func TestStartRefusesTopicsThatForget(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	users := cfg.topicNames().Users
	require.NoError(t, kafka.EnsureTopics(ctx, cfg.KafkaBrokers, kafka.Security{}, []kafka.TopicSpec{
		{Name: cfg.EventsTopic, Partitions: cfg.TopicPartitions, Config: map[string]string{"retention.ms": "3600000"}},
		{Name: users, Partitions: 1},
	}))

	err := NewMain(cfg, Roles{API: true, Projector: true}, testLogger(t)).Open(ctx)
	require.Error(t, err)
	for _, want := range []string{
		"refusing to start",
		"topic " + cfg.EventsTopic + ": retention.ms=3600000 deletes records uvr needs (needs -1",
		"topic " + users + ": cleanup.policy=delete deletes records uvr needs (needs compact",
		"uvr topics fix",
		"kafka-configs.sh --bootstrap-server " + strings.Join(cfg.KafkaBrokers, ",") + " --alter --entity-type topics --entity-name " + cfg.EventsTopic + " --add-config retention.ms=-1",
	} {
		assert.ErrorContains(t, err, want)
	}

	env := map[string]string{
		"UVR_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","), "UVR_EVENTS_TOPIC": cfg.EventsTopic,
		"UVR_POISON_TOPIC": cfg.PoisonTopic, "UVR_CONNECTOR_PREFIX": cfg.ConnectorPrefix,
		"UVR_TOPIC_PARTITIONS": strconv.Itoa(cfg.TopicPartitions),
	}
	out, err := runCLI(t, env, "topics", "check")
	require.Error(t, err, "a problem is a non-zero exit")
	assert.Regexp(t, `(?m)^`+cfg.EventsTopic+` +events +4 +1 +cleanup.policy=delete min.insync.replicas=1 retention.bytes=-1 retention.ms=3600000 +PROBLEM$`, out)
	assert.Regexp(t, `(?m)^`+cfg.PoisonTopic+` +events .* OK$`, out, "created at the refused start, with the settings it needs")

	out, err = runCLI(t, env, "topics", "fix")
	require.NoError(t, err)
	assert.Contains(t, out, cfg.EventsTopic+": retention.ms 3600000 -> -1\n")
	assert.Contains(t, out, users+": cleanup.policy delete -> compact\n")
	out, err = runCLI(t, env, "topics", "fix")
	require.NoError(t, err)
	assert.Contains(t, out, "nothing to change")
	out, err = runCLI(t, env, "topics", "check")
	require.NoError(t, err, out)
	assert.NotContains(t, out, "PROBLEM")

	startMain(t, cfg, Roles{API: true, Projector: true})
}

// TestStartRefusesReplicationAboveBrokers: an explicit replication factor the cluster cannot
// hold is a start-up error naming both numbers.
func TestStartRefusesReplicationAboveBrokers(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaReplicationFactor = 3
	err := NewMain(cfg, Roles{API: true}, testLogger(t)).Open(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "replication factor 3 is larger than the 1 broker(s) of the cluster")
}

func TestReplicationConfigErrors(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		want []string
	}{
		"negative": {map[string]string{"UVR_KAFKA_REPLICATION_FACTOR": "-1", "UVR_KAFKA_MIN_INSYNC_REPLICAS": "-2"},
			[]string{"--kafka-replication-factor must be ≥ 0 (0 = auto), got -1", "--kafka-min-insync-replicas must be ≥ 0 (0 = auto), got -2"}},
		"min isr above rf": {map[string]string{"UVR_KAFKA_REPLICATION_FACTOR": "2", "UVR_KAFKA_MIN_INSYNC_REPLICAS": "3"},
			[]string{"--kafka-min-insync-replicas (3) must not exceed --kafka-replication-factor (2)"}},
		"not a number": {map[string]string{"UVR_KAFKA_REPLICATION_FACTOR": "three"}, []string{"UVR_KAFKA_REPLICATION_FACTOR", `"three"`}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := runCLI(t, tt.env, "topics", "check")
			require.Error(t, err)
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}
