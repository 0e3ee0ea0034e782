package topics_test

import (
	"context"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/topics"
)

func TestReplication(t *testing.T) {
	tests := []struct {
		name                string
		brokers, rf, minISR int
		wantRF, wantMinISR  int
		wantErr             []string
	}{
		{name: "auto on one broker", brokers: 1, wantRF: 1, wantMinISR: 1},
		{name: "auto on two brokers", brokers: 2, wantRF: 1, wantMinISR: 1},
		{name: "auto on three brokers", brokers: 3, wantRF: 3, wantMinISR: 2},
		{name: "auto on five brokers", brokers: 5, wantRF: 3, wantMinISR: 2},
		{name: "explicit wins", brokers: 5, rf: 5, minISR: 3, wantRF: 5, wantMinISR: 3},
		{name: "explicit rf 2 gets min isr 1", brokers: 3, rf: 2, wantRF: 2, wantMinISR: 1},
		{name: "explicit rf 1 on a cluster", brokers: 3, rf: 1, wantRF: 1, wantMinISR: 1},
		{name: "explicit min isr with auto rf", brokers: 3, minISR: 3, wantRF: 3, wantMinISR: 3},
		{name: "rf above the broker count", brokers: 1, rf: 3, wantErr: []string{"replication factor 3", "1 broker(s)", "UVR_KAFKA_REPLICATION_FACTOR"}},
		{name: "min isr above rf", brokers: 1, minISR: 2, wantErr: []string{"min.insync.replicas 2", "replication factor 1", "UVR_KAFKA_MIN_INSYNC_REPLICAS"}},
		{name: "negative", brokers: 1, rf: -1, wantErr: []string{"must be ≥ 0"}},
		{name: "no broker", brokers: 0, wantErr: []string{"no broker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rf, minISR, err := topics.Replication(tt.brokers, tt.rf, tt.minISR)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					assert.ErrorContains(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantRF, rf, "replication factor")
			assert.Equal(t, tt.wantMinISR, minISR, "min.insync.replicas")
		})
	}
}

func TestList(t *testing.T) {
	list := topics.List(topics.Config{Names: topics.NewNames("uvr.events.v1", "uvr.events.v1.poison", "uvr"),
		Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2})
	kinds := map[string]topics.Kind{}
	for _, tp := range list {
		kinds[tp.Spec.Name] = tp.Kind
		assert.Equal(t, 3, tp.Spec.ReplicationFactor, tp.Spec.Name)
		assert.Equal(t, "2", tp.Spec.Config["min.insync.replicas"], tp.Spec.Name)
		assert.Equal(t, "-1", tp.Spec.Config["retention.ms"], "%s: no topic of uvr forgets by age", tp.Spec.Name)
		assert.Equal(t, "-1", tp.Spec.Config["retention.bytes"], "%s: no topic of uvr forgets by size", tp.Spec.Name)
		switch tp.Kind {
		case topics.Events:
			assert.Equal(t, "delete", tp.Spec.Config["cleanup.policy"], tp.Spec.Name)
		case topics.State:
			assert.Equal(t, "compact", tp.Spec.Config["cleanup.policy"], tp.Spec.Name)
			assert.Equal(t, "604800000", tp.Spec.Config["min.compaction.lag.ms"], tp.Spec.Name)
			assert.Equal(t, "604800000", tp.Spec.Config["delete.retention.ms"], tp.Spec.Name)
			assert.Equal(t, 1, tp.Spec.Partitions, "%s: a table is ordered by one log", tp.Spec.Name)
		}
	}
	// The eleven topics the issue lists, each with its kind.
	assert.Equal(t, map[string]topics.Kind{
		"uvr.events.v1": topics.Events, "uvr.events.v1.poison": topics.Events,
		"uvr.users.v1": topics.State, "uvr.services.v1": topics.State, "uvr.customers.v1": topics.State,
		"uvr.fx-rates.v1": topics.State, "uvr.rate-cards.v1": topics.State, "uvr.revenue-mapping.v1": topics.State,
		"uvr.sync-state.v1": topics.State, "uvr.sync-requests.v1": topics.Events, "uvr.sync-requests.v1.poison": topics.Events,
	}, kinds)
}

// TestCheckAndFix runs on the real Kafka and on the embedded broker: topics uvr created pass,
// topics an operator (or an older uvr) left with settings that delete records are refused
// with the topic, setting, value and the fixing commands, and Fix repairs them once.
func TestCheckAndFix(t *testing.T) {
	for name, brokers := range map[string]func(t testing.TB) []string{
		"kafka":    servicetest.KafkaBrokers,
		"embedded": servicetest.EmbeddedKafka,
	} {
		t.Run(name, func(t *testing.T) {
			b := brokers(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			prefix := servicetest.Topic("test.topics")
			list := topics.List(topics.Config{Names: topics.NewNames(prefix+".events", prefix+".events.poison", prefix),
				Partitions: 2, ReplicationFactor: 1, MinInsyncReplicas: 1})
			events, users, services, syncState := prefix+".events", prefix+".users.v1", prefix+".services.v1", prefix+".sync-state.v1"
			// A state topic as uvr makes them, but asking for more in-sync replicas than it
			// has: no loss (a warning), yet no acks=all write could succeed.
			overISR := topics.New(syncState, 1, topics.State, topics.Config{ReplicationFactor: 1, MinInsyncReplicas: 2}).Spec

			// An events topic of an older uvr (no configuration: the broker's 7 days), and a
			// state topic someone switched to delete with a week of retention.
			require.NoError(t, kafka.EnsureTopics(ctx, b, kafka.Security{}, []kafka.TopicSpec{
				{Name: events, Partitions: 2},
				{Name: users, Partitions: 1, Config: map[string]string{"cleanup.policy": "delete", "retention.ms": "604800000"}},
				overISR,
			}))
			created, _, err := topics.Fix(ctx, b, kafka.Security{}, drop(list, events, users, services, syncState))
			require.NoError(t, err)
			assert.Len(t, created, len(list)-4)
			statuses, err := topics.Check(ctx, b, kafka.Security{}, list)
			require.NoError(t, err)
			problems := map[string][]string{}
			for _, st := range statuses {
				if st.Topic.Spec.Name == services {
					assert.False(t, st.Exists, "a missing topic is reported, not created")
					continue
				}
				require.True(t, st.Exists, st.Topic.Spec.Name)
				for _, f := range st.Findings {
					if f.Severity == topics.Problem {
						problems[f.Topic] = append(problems[f.Topic], f.Setting+"="+f.Got)
					}
				}
			}
			assert.Equal(t, map[string][]string{
				events: {"retention.ms=604800000"},
				users:  {"cleanup.policy=delete", "retention.ms=604800000"},
			}, problems)

			refusal := topics.Refusal(statuses, b)
			require.Error(t, refusal)
			for _, want := range []string{
				"topic " + events + ": retention.ms=604800000 deletes records uvr needs (needs -1",
				"topic " + users + ": cleanup.policy=delete deletes records uvr needs (needs compact",
				"uvr topics fix",
				"kafka-configs.sh --bootstrap-server " + b[0] + " --alter --entity-type topics --entity-name " + events + " --add-config retention.ms=-1",
			} {
				assert.ErrorContains(t, refusal, want)
			}

			created, changes, err := topics.Fix(ctx, b, kafka.Security{}, list)
			require.NoError(t, err)
			assert.Equal(t, []string{services}, created)
			changed := map[string]bool{}
			for _, c := range changes {
				changed[c.Topic+" "+c.Setting+"="+c.To] = true
			}
			for _, want := range []string{events + " retention.ms=-1", users + " cleanup.policy=compact", users + " retention.ms=-1",
				syncState + " min.insync.replicas=1"} {
				assert.True(t, changed[want], "Fix sets %s; it changed %v", want, changed)
			}

			statuses, err = topics.Check(ctx, b, kafka.Security{}, list)
			require.NoError(t, err)
			for _, st := range statuses {
				assert.True(t, st.Exists, st.Topic.Spec.Name)
				assert.Empty(t, st.Findings, st.Topic.Spec.Name)
			}
			require.NoError(t, topics.Refusal(statuses, b))
			// The settings are really on the broker, as another client reads them.
			assert.Equal(t, "-1", describe(ctx, t, b, events, "retention.ms"))
			assert.Equal(t, "compact", describe(ctx, t, b, users, "cleanup.policy"))

			created, changes, err = topics.Fix(ctx, b, kafka.Security{}, list)
			require.NoError(t, err)
			assert.Empty(t, created, "idempotent")
			assert.Empty(t, changes, "idempotent")
		})
	}
}

func drop(list []topics.Topic, names ...string) []topics.Topic {
	var out []topics.Topic
next:
	for _, tp := range list {
		for _, n := range names {
			if tp.Spec.Name == n {
				continue next
			}
		}
		out = append(out, tp)
	}
	return out
}

func describe(ctx context.Context, t *testing.T, brokers []string, topic, name string) string {
	t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
	resp, err := client.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{
		{ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name}},
	}})
	require.NoError(t, err)
	require.Len(t, resp.Resources, 1)
	require.NoError(t, resp.Resources[0].Error)
	for _, e := range resp.Resources[0].ConfigEntries {
		if e.ConfigName == name {
			return e.ConfigValue
		}
	}
	t.Fatalf("topic %s: %s not reported", topic, name)
	return ""
}
