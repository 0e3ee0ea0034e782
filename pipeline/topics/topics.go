// Package topics is the one list of uvr's Kafka topics and of the configuration each needs so
// that the broker never deletes a record uvr needs: the events log keeps every record
// forever, the state tables keep the latest record of every key forever. uvr creates its
// topics from this list (with the replication it resolved for the cluster, Replication), and
// at every start reads their configuration back (Check) and refuses to run on a topic that
// would lose records; Fix applies the settings when an operator asks (`uvr topics fix`).
package topics

import (
	"strconv"
	"time"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Kind says what a topic holds, which decides how the broker may clean it up.
type Kind int

const (
	// Events is an append-only log of facts (events, sync requests, poison records): every
	// record is kept forever, because replay rebuilds every projection from it.
	Events Kind = iota + 1
	// State is a compacted table (users and API keys, services, settings, cursors): the
	// latest record of every key is kept forever; older values of a key may be compacted away.
	State
)

func (k Kind) String() string {
	switch k {
	case Events:
		return "events"
	case State:
		return "state"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Compaction settings of the state topics. Neither decides whether a record uvr needs is
// kept (compaction always keeps the latest record of a key), so a different value on the
// broker is reported as a warning, not a refusal to start.
const (
	// MinCompactionLag keeps every record of a state topic, even one already superseded,
	// for a week before the cleaner may compact it away: a value overwritten by mistake
	// (a PUT of the wrong FX table, a deleted service or user) can still be read back from
	// the topic for that long. The state topics are small (settings, not events), so the
	// cost in disk is negligible.
	MinCompactionLag = 7 * 24 * time.Hour
	// DeleteRetention is how long a tombstone (a deleted key) stays after compaction. A
	// reader that has not read past a tombstone when it goes would keep the deleted key
	// forever: a uvr instance rebuilds its tables from the start at every start, so only a
	// reader lagging for longer matters (a mirror, a backup, a consumer paused over a long
	// weekend). A week instead of Kafka's one day gives those that margin.
	DeleteRetention = 7 * 24 * time.Hour
)

// Names are the names of uvr's topics.
type Names struct {
	Events, Poison string // the events topic and its poison topic
	// State topics: users, API key hashes and the token signing secret (api/access); the
	// service registry; the customer directory's identity decisions; the FX table and the
	// revenue mapping (projections/revsettings); the rate card layers (the files last started
	// with, the API's override, the last applied set); the connectors' sync cursors.
	Users, Services, Customers, FXRates, RevenueMapping, RateCards, SyncState string
	// Sync requests and their poison topic.
	SyncRequests, SyncPoison string
}

// NewNames names uvr's topics: the events and poison topics as configured, the others from
// prefix (--connector-prefix), so that deployments and tests sharing a broker keep apart.
func NewNames(events, poison, prefix string) Names {
	return Names{
		Events:         events,
		Poison:         poison,
		Users:          prefix + ".users.v1",
		Services:       prefix + ".services.v1",
		Customers:      prefix + ".customers.v1",
		FXRates:        prefix + ".fx-rates.v1",
		RevenueMapping: prefix + ".revenue-mapping.v1",
		RateCards:      prefix + ".rate-cards.v1",
		SyncState:      prefix + ".sync-state.v1",
		SyncRequests:   prefix + ".sync-requests.v1",
		SyncPoison:     prefix + ".sync-requests.v1.poison",
	}
}

// Config is what List needs.
type Config struct {
	Names Names
	// Partitions of the events and sync-request topics (how many consumers share them).
	// The other topics have one partition: a table's records are ordered by one log.
	Partitions int
	// ReplicationFactor and MinInsyncReplicas as resolved by Replication (≥ 1).
	ReplicationFactor int
	MinInsyncReplicas int
}

// Topic is one of uvr's topics: how it is created, and what it holds.
type Topic struct {
	Spec kafka.TopicSpec
	Kind Kind
}

// List is every topic uvr uses, with the configuration each is created with.
func List(cfg Config) []Topic {
	n := cfg.Names
	events := func(name string, partitions int) Topic { return New(name, partitions, Events, cfg) }
	state := func(name string) Topic { return New(name, 1, State, cfg) }
	return []Topic{
		events(n.Events, cfg.Partitions),
		events(n.Poison, 1),
		// One partition for every state topic, and the users topic must have one: its signing
		// secret is the first candidate written, which only one partition orders
		// (api/access.Store.Open).
		state(n.Users),
		state(n.Services),
		state(n.Customers),
		state(n.FXRates),
		state(n.RevenueMapping),
		state(n.RateCards),
		state(n.SyncState),
		events(n.SyncRequests, cfg.Partitions),
		events(n.SyncPoison, 1),
	}
}

// New is a topic of kind with the configuration that kind needs and cfg's replication.
func New(name string, partitions int, kind Kind, cfg Config) Topic {
	entries := map[string]string{}
	for _, s := range settings(kind) {
		entries[s.name] = s.want
	}
	entries[minInsyncReplicas] = strconv.Itoa(max(cfg.MinInsyncReplicas, 1))
	return Topic{
		Spec: kafka.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: max(cfg.ReplicationFactor, 1), Config: entries},
		Kind: kind,
	}
}

// StateConfig is the configuration of a state topic, for kafka.TableConfig.TopicConfig.
func StateConfig(cfg Config) map[string]string {
	return New("", 1, State, cfg).Spec.Config
}

const minInsyncReplicas = "min.insync.replicas"

// setting is one topic configuration entry uvr sets, and why.
type setting struct {
	name, want string
	// required: any other value deletes records uvr needs, so uvr refuses to start.
	required bool
	why      string // what goes wrong with another value
}

func settings(kind Kind) []setting {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	switch kind {
	case Events:
		return []setting{
			{"cleanup.policy", "delete", true, "compaction keeps only the last record of each key: events would disappear"},
			{"retention.ms", "-1", true, "older records are deleted, and replay would rebuild from a truncated log"},
			{"retention.bytes", "-1", true, "the oldest records are deleted once the partition is that large"},
		}
	case State:
		return []setting{
			{"cleanup.policy", "compact", true, "a delete policy drops users, API keys and settings by age or size"},
			// Kafka ignores retention.ms on a compact-only topic, but the embedded broker
			// (kfake) applies it to compacted topics too, and on Kafka it comes into force
			// as soon as someone adds delete to the policy.
			{"retention.ms", "-1", true, "records older than that are deleted on brokers that apply retention to compacted topics, or once the policy includes delete"},
			{"retention.bytes", "-1", true, "the oldest records are deleted once the partition is that large, on brokers that apply it to compacted topics"},
			{"min.compaction.lag.ms", ms(MinCompactionLag), false, "a value overwritten by mistake can be compacted away sooner"},
			{"delete.retention.ms", ms(DeleteRetention), false, "a reader lagging longer than that may miss a delete"},
		}
	}
	return nil
}
