package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/chstore"
)

// testEnv is the real infrastructure of one test: Kafka topics and a
// ClickHouse database of its own, a publisher, the state table and the run
// store.
type testEnv struct {
	brokers       []string
	eventsTopic   string
	requestsTopic string
	poisonTopic   string
	conn          driver.Conn
	pub           *kafka.Publisher
	stateTopic    string
	table         *kafka.Table
	state         *TableState
	runs          *ClickHouseRuns
	logs          *syncBuffer
	logger        *slog.Logger
}

// newEnv creates topics (requestPartitions partitions for requests; one for
// events, so the test reads them in order) and a migrated database.
func newEnv(t *testing.T, requestPartitions int) *testEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	env := &testEnv{
		brokers:       servicetest.KafkaBrokers(t),
		eventsTopic:   servicetest.Topic("uvr.events"),
		requestsTopic: servicetest.Topic("uvr.sync-requests"),
		poisonTopic:   servicetest.Topic("uvr.sync-requests.poison"),
		logs:          &syncBuffer{},
	}
	env.logger = testLogger(env.logs)
	require.NoError(t, kafka.EnsureTopics(ctx, env.brokers, kafka.Security{}, []kafka.TopicSpec{
		{Name: env.eventsTopic, Partitions: 1},
		{Name: env.requestsTopic, Partitions: requestPartitions},
		{Name: env.poisonTopic, Partitions: 1},
	}))

	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	env.conn = conn
	env.runs = NewClickHouseRuns(conn)

	env.pub, err = kafka.NewPublisher(kafka.PublisherConfig{Brokers: env.brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.pub.Close() })

	env.stateTopic = servicetest.Topic("uvr.sync-state")
	env.table = env.newTable(t)
	env.state = NewTableState(env.table)
	return env
}

// newTable opens another Table on the state topic: what another instance
// reads the cursors through.
func (env *testEnv) newTable(t *testing.T) *kafka.Table {
	t.Helper()
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: env.brokers, Topic: env.stateTopic, Logger: env.logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	return table
}

// engine builds an engine on env with reg as its registry.
func (env *testEnv) engine(t *testing.T, services Services, instance string, reg prometheus.Registerer, pub Publisher) *Engine {
	t.Helper()
	return env.engineWithState(t, services, instance, reg, pub, env.state)
}

// engineWithState builds an engine with its own state store.
func (env *testEnv) engineWithState(t *testing.T, services Services, instance string, reg prometheus.Registerer, pub Publisher, state StateStore) *Engine {
	t.Helper()
	if pub == nil {
		pub = env.pub
	}
	e, err := New(Config{
		Services: services, State: state, Runs: env.runs, Publisher: pub,
		EventsTopic: env.eventsTopic, RequestsTopic: env.requestsTopic,
		Instance: instance, PollInterval: 50 * time.Millisecond,
		Logger: env.logger, Registerer: reg,
	})
	require.NoError(t, err)
	return e
}

// records reads every record of a one-partition topic, from its start to its
// current end.
func (env *testEnv) records(t *testing.T, topic string) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", env.brokers[0], topic, 0)
	require.NoError(t, err)
	end, err := conn.ReadLastOffset()
	_ = conn.Close()
	require.NoError(t, err)
	if end == 0 {
		return nil
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: env.brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	require.NoError(t, r.SetOffset(kafkago.FirstOffset))
	var out []kafkago.Message
	for int64(len(out)) < end {
		m, err := r.ReadMessage(ctx)
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// eventIDs parses every event of the events topic (each must be a valid v1
// event) and returns their ids in log order.
func (env *testEnv) eventIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, m := range env.records(t, env.eventsTopic) {
		ev, err := event.Parse(m.Value)
		require.NoError(t, err, "a published event is not a valid v1 event")
		ids = append(ids, ev.ID)
	}
	return ids
}

// testServices stands in for the service registry (connectors/services):
// services in memory, a Source factory per service, and the UpdateSync calls.
type testServices struct {
	mu       sync.Mutex
	services map[string]Service
	sources  map[string]func() (source.Source, error)
	updates  []syncUpdate
}

type syncUpdate struct {
	ServiceID string
	LastSync  *time.Time
	Status    string
}

func newTestServices() *testServices {
	return &testServices{services: map[string]Service{}, sources: map[string]func() (source.Source, error){}}
}

func (s *testServices) add(svc Service, src func() (source.Source, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc.Status == "" {
		svc.Status = ServiceActive
	}
	s.services[svc.ID] = svc
	s.sources[svc.ID] = src
}

func (s *testServices) List(context.Context) ([]Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Service, 0, len(s.services))
	for _, svc := range s.services {
		out = append(out, svc)
	}
	return out, nil
}

func (s *testServices) SourceFor(_ context.Context, id string) (source.Source, error) {
	s.mu.Lock()
	f, ok := s.sources[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("service %q: %w", id, ErrServiceNotFound)
	}
	return f()
}

func (s *testServices) UpdateSync(_ context.Context, id string, lastSync *time.Time, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, syncUpdate{ServiceID: id, LastSync: lastSync, Status: status})
	svc := s.services[id]
	svc.LastSync, svc.Status = lastSync, status
	s.services[id] = svc
	return nil
}

func (s *testServices) lastUpdate(id string) (syncUpdate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.updates) - 1; i >= 0; i-- {
		if s.updates[i].ServiceID == id {
			return s.updates[i], true
		}
	}
	return syncUpdate{}, false
}

// pagedSource stands in for an external service: pages of usage events,
// each Emit with the cursor {"page": n} of the page just emitted.
type pagedSource struct {
	id      string // event id prefix (the service id)
	pages   int
	perPage int
	// beforePage, when set, runs before page n is emitted; an error stops Read.
	beforePage func(ctx context.Context, n int, out source.Emitter) error
	// started records the cursor each Read was given.
	started func(cursor source.Cursor)
}

type pageCursor struct {
	Page int `json:"page"`
}

func (s *pagedSource) Check(context.Context) error { return nil }

func (s *pagedSource) Read(ctx context.Context, cursor source.Cursor, out source.Emitter) error {
	if s.started != nil {
		s.started(cursor)
	}
	var c pageCursor
	if cursor != nil {
		if err := json.Unmarshal(cursor, &c); err != nil {
			return fmt.Errorf("decode cursor: %w", err)
		}
	}
	for n := c.Page + 1; n <= s.pages; n++ {
		if s.beforePage != nil {
			if err := s.beforePage(ctx, n, out); err != nil {
				return err
			}
		}
		events := make([]event.Event, s.perPage)
		for i := range events {
			events[i] = usageEvent(fmt.Sprintf("%s-p%d-%d", s.id, n, i))
		}
		next, _ := json.Marshal(pageCursor{Page: n})
		if err := out.Emit(ctx, events, next); err != nil {
			return err
		}
	}
	return nil
}

// usageEvent is a valid uvr.usage.v1 event with the given id.
func usageEvent(id string) event.Event {
	q := decimal.RequireFromString("1250")
	cost := decimal.RequireFromString("0.003125")
	return event.Event{
		SpecVersion: event.SpecVersion, ID: id, Source: "testsrc", Type: event.TypeUsage,
		Time: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC),
		Data: event.Data{
			Customer: event.Customer{Source: "testsrc", ExternalID: "cus_1"},
			Feature:  "gpt-4o.input_tokens", Quantity: &q, Unit: "tokens", Cost: &cost, Currency: "USD", Version: 1,
		},
	}
}

func mustCursor(t *testing.T, page int) source.Cursor {
	t.Helper()
	b, err := json.Marshal(pageCursor{Page: page})
	require.NoError(t, err)
	return b
}

// hookPublisher is the real publisher with a hook run after each successful
// Publish (to cancel a run at that exact point).
type hookPublisher struct {
	pub   Publisher
	after func(topic string, n int)
}

func (h *hookPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := h.pub.Publish(topic, msgs...); err != nil {
		return err
	}
	h.after(topic, len(msgs))
	return nil
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger writes debug logs to w (the tests search them for secrets),
// and to stderr too when UVR_TEST_LOG_LEVEL is set.
func testLogger(w io.Writer) *slog.Logger {
	if os.Getenv("UVR_TEST_LOG_LEVEL") != "" {
		w = io.MultiWriter(w, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
