// Package syncer runs connector syncs: it reads a configured service through
// its source.Source, publishes the events to Kafka, saves the source's cursor
// only after Kafka acknowledged them, and records each run.
//
// # One instance per service at a time
//
// Syncs are requested by messages on RequestsTopic keyed by service id, and
// consumed by one consumer group (ConsumerGroup) through pipeline/kafka's
// Subscriber and pipeline/router: a partition has one owner and its messages
// are handled one after another (MaxInFlight 1), so the syncs of one service
// run one at a time on one instance, whichever instance asked. When a
// partition moves (an instance starts or stops), the running sync's context is
// cancelled, its request is not acknowledged, and the new owner runs it again
// from the last saved cursor: at most one page is read twice (the events have
// deterministic ids and count once), none is skipped.
//
// Every instance's scheduler requests the same scheduled syncs; a scheduled
// request is dropped as a duplicate when the service's last run (succeeded or
// failed) finished less than half the service's interval ago. Manual and API
// requests always run.
//
// # Durable state
//
// Cursors live in the compacted Kafka topic StateTopic (TableState), not in
// ClickHouse: the log is the source of truth and survives a rebuild of the
// ClickHouse projections; every instance reads it. Sync run records live in
// ClickHouse's sync_runs table (ClickHouseRuns), an operational history.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvrhq/uvr/connectors/source"
)

// Topics and consumer group of sync requests.
const (
	RequestsTopic = "uvr.sync-requests.v1"
	// PoisonTopic receives requests that cannot be decoded (router.Config's
	// PoisonTopic of the router the request handler runs in).
	PoisonTopic   = "uvr.sync-requests.v1.poison"
	ConsumerGroup = "uvr-sync"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultInterval         = time.Hour
	DefaultLogLines         = 100
	DefaultRequestMaxAge    = time.Hour
	DefaultProgressInterval = 10 * time.Second
	DefaultPollInterval     = 500 * time.Millisecond
	DefaultHandoverWait     = 30 * time.Second
	finalWriteTimeout       = 15 * time.Second
)

// ErrServiceNotFound is returned (wrapped) for a service id the registry
// does not know.
var ErrServiceNotFound = errors.New("service not found")

// Service statuses, as the service registry keeps them.
const (
	ServiceActive = "active"
	ServicePaused = "paused" // not synced on schedule nor by "sync all"
	ServiceError  = "error"  // the last sync was refused its credentials
)

// Service is what the engine needs to know of a configured service.
type Service struct {
	ID     string
	Type   string // the catalog's service type, e.g. "stripe"
	Status string // ServiceActive, ServicePaused or ServiceError
	// SyncInterval between scheduled syncs; 0 means DefaultInterval.
	SyncInterval time.Duration
	LastSync     *time.Time // the last successful sync, nil before the first
}

// Syncable reports whether scheduled and "sync all" syncs include s. A
// service in error is still tried: a credential fixed at the vendor, or a
// transient 403, recovers without anyone touching uvr.
func (s Service) Syncable() bool { return s.Status != ServicePaused }

// Interval is the service's sync interval with the default applied.
func (s Service) Interval() time.Duration {
	if s.SyncInterval <= 0 {
		return DefaultInterval
	}
	return s.SyncInterval
}

// Services is the part of the service registry the engine uses.
type Services interface {
	// List returns every configured service.
	List(ctx context.Context) ([]Service, error)
	// SourceFor builds the Source of a service, with its credentials. An
	// unknown id is an error wrapping ErrServiceNotFound.
	SourceFor(ctx context.Context, serviceID string) (source.Source, error)
	// UpdateSync records the outcome of a sync on the service: the time of
	// its last successful sync and the status it is left in. A service
	// deleted before or during the call is an error wrapping
	// ErrServiceNotFound, and must stay deleted.
	UpdateSync(ctx context.Context, serviceID string, lastSync *time.Time, status string) error
}

// Publisher publishes messages and returns once the broker acknowledged all
// of them (pipeline/kafka's Publisher). The first message's context bounds
// the call.
type Publisher interface {
	Publish(topic string, messages ...*message.Message) error
}

// Config configures New.
type Config struct {
	Services  Services   // required
	State     StateStore // required: NewTableState on StateTopic
	Runs      RunStore   // required: NewClickHouseRuns
	Publisher Publisher  // required

	EventsTopic   string // required, where events go (uvr.events.v1)
	RequestsTopic string // default RequestsTopic

	// Instance names this engine in run records and logs; default host:pid.
	Instance string
	// LogLines is how many log lines a run keeps (the last ones).
	LogLines int
	// RequestMaxAge drops requests older than this (the scheduler asks again):
	// a consumer group that starts at the oldest retained request does not
	// replay days of them.
	RequestMaxAge time.Duration
	// ProgressInterval is how often a long run's record is rewritten with its
	// counts so far.
	ProgressInterval time.Duration
	// PollInterval is how often Wait reads the run store for runs another
	// instance executes.
	PollInterval time.Duration
	// HandoverWait bounds how long a redelivered request waits for the
	// previous owner's attempt to record its end (see HandleRequest).
	HandoverWait time.Duration
	// Redact, when set, is applied to run errors and log lines after the
	// engine's own patterns (e.g. to remove known credential values).
	Redact func(string) string

	Now        func() time.Time      // default time.Now
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Validate reports every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.Services == nil {
		errs = append(errs, errors.New("syncer: Services is required"))
	}
	if c.State == nil {
		errs = append(errs, errors.New("syncer: State is required"))
	}
	if c.Runs == nil {
		errs = append(errs, errors.New("syncer: Runs is required"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("syncer: Publisher is required"))
	}
	if c.EventsTopic == "" {
		errs = append(errs, errors.New("syncer: EventsTopic is required"))
	}
	if c.EventsTopic != "" && c.EventsTopic == c.RequestsTopic {
		errs = append(errs, errors.New("syncer: EventsTopic and RequestsTopic must differ"))
	}
	for name, d := range map[string]time.Duration{
		"request max age": c.RequestMaxAge, "progress interval": c.ProgressInterval, "poll interval": c.PollInterval,
		"handover wait": c.HandoverWait,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("syncer: %s must be ≥ 0, got %s", name, d))
		}
	}
	if c.LogLines < 0 {
		errs = append(errs, fmt.Errorf("syncer: log lines must be ≥ 0, got %d", c.LogLines))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.RequestsTopic == "" {
		c.RequestsTopic = RequestsTopic
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.LogLines == 0 {
		c.LogLines = DefaultLogLines
	}
	if c.RequestMaxAge == 0 {
		c.RequestMaxAge = DefaultRequestMaxAge
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.HandoverWait == 0 {
		c.HandoverWait = DefaultHandoverWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "syncer")
	return c
}

// Engine runs syncs. Safe for concurrent use.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	busy    map[string]chan struct{} // service id → held while a run of it executes here
	lastRev map[string]int64         // run id → last revision written by this engine
	// finished is closed and replaced whenever a run ends here, waking Wait.
	finished chan struct{}
}

// New validates cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  m,
		busy:     map[string]chan struct{}{},
		lastRev:  map[string]int64{},
		finished: make(chan struct{}),
	}, nil
}

// RequestsTopic is the topic the engine publishes and consumes requests on.
func (e *Engine) RequestsTopic() string { return e.cfg.RequestsTopic }

// Forget drops the metric series of a deleted service.
func (e *Engine) Forget(serviceID string) {
	e.metrics.lastSuccess.DeletePartialMatch(prometheus.Labels{"service_id": serviceID})
}

// service finds a service in the registry.
func (e *Engine) service(ctx context.Context, serviceID string) (Service, error) {
	all, err := e.cfg.Services.List(ctx)
	if err != nil {
		return Service{}, fmt.Errorf("list services: %w", err)
	}
	for _, s := range all {
		if s.ID == serviceID {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("service %q: %w", serviceID, ErrServiceNotFound)
}

// Run syncs one service now, on this instance, and returns the finished run.
// The error is nil only when the run succeeded; otherwise it is the run's
// (redacted) cause, or the reason no run record could be written.
//
// Run does not go through the request topic, so it is only "one at a time"
// within this process: use Request to sync a service wherever its requests
// are consumed.
func (e *Engine) Run(ctx context.Context, serviceID string, trigger Trigger) (Run, error) {
	return e.run(ctx, newID(), serviceID, trigger)
}

// newID returns a run id: a ULID, so ids sort by creation time.
func newID() string { return watermill.NewULID() }

// lock holds the service's local run slot until the returned func is called.
func (e *Engine) lock(ctx context.Context, serviceID string) (func(), error) {
	for {
		e.mu.Lock()
		held, ok := e.busy[serviceID]
		if !ok {
			ch := make(chan struct{})
			e.busy[serviceID] = ch
			e.mu.Unlock()
			return func() {
				e.mu.Lock()
				delete(e.busy, serviceID)
				e.mu.Unlock()
				close(ch)
			}, nil
		}
		e.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// nextRev returns a revision for run id greater than any written before by
// this engine: the wall clock in nanoseconds, so that a version written by
// another instance later (marking the run interrupted) wins too.
func (e *Engine) nextRev(id string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	rev := max(e.cfg.Now().UnixNano(), e.lastRev[id]+1)
	e.lastRev[id] = rev
	return rev
}

func (e *Engine) forgetRev(id string) {
	e.mu.Lock()
	delete(e.lastRev, id)
	e.mu.Unlock()
}

// notifyFinished wakes every Wait.
func (e *Engine) notifyFinished() {
	e.mu.Lock()
	close(e.finished)
	e.finished = make(chan struct{})
	e.mu.Unlock()
}

func (e *Engine) finishedSignal() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.finished
}

func (e *Engine) redact(s string) string {
	s = redact(s)
	if e.cfg.Redact != nil {
		s = e.cfg.Redact(s)
	}
	return s
}
