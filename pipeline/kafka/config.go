// Package kafka is uvr's Watermill transport over segmentio/kafka-go: a synchronous Publisher,
// a consumer-group Subscriber whose acks become offset commits, and EnsureTopics to create
// topics up front.
//
// Delivery is at least once. Duplicates are expected around rebalances, restarts and nacks
// with more than one message in flight, so every handler downstream must be idempotent.
package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by NewPublisher and NewSubscriber to zero-valued fields.
const (
	DefaultBatchSize      = 10_000
	DefaultBatchBytes     = 1 << 20
	DefaultBatchTimeout   = 2 * time.Millisecond
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPublishTimeout = 30 * time.Second
	DefaultMetadataTTL    = time.Second

	DefaultMaxInFlight        = 1
	DefaultCommitInterval     = 200 * time.Millisecond
	DefaultNackResendDelay    = 100 * time.Millisecond
	DefaultHeartbeatInterval  = time.Second
	DefaultSessionTimeout     = 10 * time.Second
	DefaultRebalanceTimeout   = 10 * time.Second
	DefaultJoinGroupBackoff   = time.Second
	DefaultFetchMaxWait       = 250 * time.Millisecond
	DefaultFetchMaxBytes      = 1 << 20
	DefaultLagRefreshInterval = 5 * time.Second
)

// CommitEveryAck as SubscriberConfig.CommitInterval commits synchronously on every ack.
// STACK.md measured ≈24k msg/s this way against ≈140k msg/s with 200 ms batches, so it is
// for tests and for consumers whose side effects are not idempotent enough to replay 200 ms.
const CommitEveryAck time.Duration = -1

// NoNackResendDelay as SubscriberConfig.NackResendDelay redelivers a nacked message at once.
const NoNackResendDelay time.Duration = -1

// Offset is where a consumer group starts in a partition it has never committed.
type Offset int

const (
	// OffsetFirst starts at the oldest retained record: a new projector replays history.
	OffsetFirst Offset = iota
	// OffsetLast starts at the end: only records produced after the first assignment.
	OffsetLast
)

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	Name              string
	Partitions        int // must be ≥ 1
	ReplicationFactor int // 0 means 1 (the single-node broker)
	// Config holds the topic-level configuration entries (cleanup.policy, retention.ms, …)
	// the topic is created with; pipeline/topics chooses uvr's.
	Config map[string]string
}

func (s TopicSpec) validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("topic name is required"))
	}
	if s.Partitions < 1 {
		errs = append(errs, fmt.Errorf("topic %q: partitions must be ≥ 1, got %d", s.Name, s.Partitions))
	}
	if s.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("topic %q: replication factor must be ≥ 0, got %d", s.Name, s.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// PublisherConfig configures NewPublisher. Zero values take the defaults above.
type PublisherConfig struct {
	Brokers  []string // required, host:port
	Security Security // TLS and SASL; zero: plaintext

	// BatchSize, BatchBytes and BatchTimeout bound one produce request per partition.
	// BatchTimeout is small because Publish is synchronous: kafka-go's 1 s default would
	// make every Publish call take a second (STACK.md). Concurrent Publish calls share batches.
	// BatchSize is large so that an HTTP batch of thousands of events becomes one request per
	// partition; BatchBytes (counted before compression) then bounds it, and keeps even an
	// incompressible batch under the broker's default message.max.bytes (1 MiB).
	BatchSize    int
	BatchBytes   int64
	BatchTimeout time.Duration

	// WriteTimeout bounds one produce request; PublishTimeout bounds a whole Publish call
	// including the retries of unknown-topic and leader errors.
	WriteTimeout   time.Duration
	PublishTimeout time.Duration

	// MetadataTTL is how stale the writer's topic metadata may get. A topic created by another
	// client is invisible to the writer until the next refresh, so Publish retries
	// "Unknown Topic Or Partition" for up to PublishTimeout and this keeps that wait short.
	MetadataTTL time.Duration

	// AutoCreate, if non-nil, makes Publish create a topic (with these settings; Name is
	// ignored) the first time it publishes to it. Production creates topics with EnsureTopics.
	AutoCreate *TopicSpec

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Validate reports every problem of the config at once.
func (c PublisherConfig) Validate() error {
	errs := validateBrokers(c.Brokers)
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size must be ≥ 0, got %d", c.BatchSize))
	}
	if c.BatchBytes < 0 {
		errs = append(errs, fmt.Errorf("batch bytes must be ≥ 0, got %d", c.BatchBytes))
	}
	for name, d := range map[string]time.Duration{
		"batch timeout": c.BatchTimeout, "write timeout": c.WriteTimeout,
		"publish timeout": c.PublishTimeout, "metadata TTL": c.MetadataTTL,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be ≥ 0, got %s", name, d))
		}
	}
	if c.AutoCreate != nil {
		spec := *c.AutoCreate
		spec.Name = "auto-create"
		if err := spec.validate(); err != nil {
			errs = append(errs, fmt.Errorf("auto create: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	c.BatchSize = orDefault(c.BatchSize, DefaultBatchSize)
	c.BatchBytes = orDefault(c.BatchBytes, DefaultBatchBytes)
	c.BatchTimeout = orDefault(c.BatchTimeout, DefaultBatchTimeout)
	c.WriteTimeout = orDefault(c.WriteTimeout, DefaultWriteTimeout)
	c.PublishTimeout = orDefault(c.PublishTimeout, DefaultPublishTimeout)
	c.MetadataTTL = orDefault(c.MetadataTTL, DefaultMetadataTTL)
	c.Logger = loggerOrDiscard(c.Logger)
	return c
}

// SubscriberConfig configures NewSubscriber. Zero values take the defaults above.
type SubscriberConfig struct {
	Brokers       []string // required, host:port
	Security      Security // TLS and SASL; zero: plaintext
	ConsumerGroup string   // required; offsets are committed per group, topic and partition

	// InitialOffset applies to partitions the group has never committed.
	InitialOffset Offset

	// MaxInFlight is how many messages of one partition are handed out before the oldest is
	// acked. 1 (default) gives strict per-partition order: the next message only comes after
	// the previous one was acked. With N > 1 a handler can hold N messages of a partition
	// (for example to insert them in one batch) and ack them together; offsets still commit
	// only up to the first un-acked message.
	MaxInFlight int

	// Budget, if non-nil, bounds the estimated bytes of the messages handed out and not yet
	// released, shared with every other subscriber given the same Budget: the bound on the
	// memory a consumer process holds, whatever MaxInFlight and the partition count say.
	Budget *Budget

	// CommitInterval batches offset commits; CommitEveryAck commits synchronously per ack.
	// Acked offsets are also committed when a partition is revoked and on Close.
	CommitInterval time.Duration

	// NackResendDelay pauses a partition after a nack before it redelivers, so a failing
	// handler without a Retry middleware does not spin. NoNackResendDelay disables it.
	NackResendDelay time.Duration

	// Consumer group timings (kafka-go's defaults are 3 s / 30 s / 30 s / 5 s). A rebalance
	// is noticed on the next heartbeat, so a shorter interval means faster hand-overs.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration // the broker's group.min.session.timeout.ms is 6 s
	RebalanceTimeout  time.Duration
	JoinGroupBackoff  time.Duration

	// FetchMaxWait bounds how long a fetch waits for new records. kafka-go cannot interrupt
	// a pending fetch, so this is also how long a revoked partition's reader takes to close
	// (it closes in the background, and Close waits for it).
	FetchMaxWait  time.Duration
	FetchMaxBytes int

	// LagRefreshInterval is how often the lag gauge asks the broker for high watermarks.
	// Fetches update it too, but a consumer stuck on one message stops fetching.
	LagRefreshInterval time.Duration

	// AutoCreate, if non-nil, makes Subscribe and SubscribeInitialize create a missing topic
	// with these settings (Name is ignored). Without it, subscribing to a missing topic gets
	// no partitions until the topic exists (the group notices within a few seconds).
	AutoCreate *TopicSpec

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Validate reports every problem of the config at once.
func (c SubscriberConfig) Validate() error {
	errs := validateBrokers(c.Brokers)
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.InitialOffset != OffsetFirst && c.InitialOffset != OffsetLast {
		errs = append(errs, fmt.Errorf("initial offset must be OffsetFirst or OffsetLast, got %d", c.InitialOffset))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight must be ≥ 0, got %d", c.MaxInFlight))
	}
	if c.CommitInterval < 0 && c.CommitInterval != CommitEveryAck {
		errs = append(errs, fmt.Errorf("commit interval must be ≥ 0 or CommitEveryAck, got %s", c.CommitInterval))
	}
	if c.NackResendDelay < 0 && c.NackResendDelay != NoNackResendDelay {
		errs = append(errs, fmt.Errorf("nack resend delay must be ≥ 0 or NoNackResendDelay, got %s", c.NackResendDelay))
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "session timeout": c.SessionTimeout,
		"rebalance timeout": c.RebalanceTimeout, "join group backoff": c.JoinGroupBackoff,
		"fetch max wait": c.FetchMaxWait, "lag refresh interval": c.LagRefreshInterval,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be ≥ 0, got %s", name, d))
		}
	}
	if c.FetchMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("fetch max bytes must be ≥ 0, got %d", c.FetchMaxBytes))
	}
	hb := orDefault(c.HeartbeatInterval, DefaultHeartbeatInterval)
	st := orDefault(c.SessionTimeout, DefaultSessionTimeout)
	if hb >= st {
		errs = append(errs, fmt.Errorf("heartbeat interval (%s) must be shorter than the session timeout (%s)", hb, st))
	}
	if c.AutoCreate != nil {
		spec := *c.AutoCreate
		spec.Name = "auto-create"
		if err := spec.validate(); err != nil {
			errs = append(errs, fmt.Errorf("auto create: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	c.MaxInFlight = orDefault(c.MaxInFlight, DefaultMaxInFlight)
	c.CommitInterval = orDefault(c.CommitInterval, DefaultCommitInterval)
	c.NackResendDelay = orDefault(c.NackResendDelay, DefaultNackResendDelay)
	c.HeartbeatInterval = orDefault(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.SessionTimeout = orDefault(c.SessionTimeout, DefaultSessionTimeout)
	c.RebalanceTimeout = orDefault(c.RebalanceTimeout, DefaultRebalanceTimeout)
	c.JoinGroupBackoff = orDefault(c.JoinGroupBackoff, DefaultJoinGroupBackoff)
	c.FetchMaxWait = orDefault(c.FetchMaxWait, DefaultFetchMaxWait)
	c.FetchMaxBytes = orDefault(c.FetchMaxBytes, DefaultFetchMaxBytes)
	c.LagRefreshInterval = orDefault(c.LagRefreshInterval, DefaultLagRefreshInterval)
	c.Logger = loggerOrDiscard(c.Logger)
	return c
}

func validateBrokers(brokers []string) []error {
	if len(brokers) == 0 {
		return []error{errors.New("brokers are required")}
	}
	var errs []error
	for _, b := range brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("broker %q: %w", b, err))
		}
	}
	return errs
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", "kafka")
}
