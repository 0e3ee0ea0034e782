package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/syncer"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
	"github.com/uvrhq/uvr/projections/chstore"
)

const (
	syncGoodKey = "sk-SYNCgood0123456789abcdef"
	syncBadKey  = "sk-SYNCrefused0123456789abcdef"
	syncSlowKey = "sk-SYNCslow0123456789abcdef"
)

// usageVendor stands in for an external usage API: two pages of usage for
// syncGoodKey, a 401 quoting the key for anything else, and for syncSlowKey
// an answer only once release is closed.
func usageVendor(t *testing.T, release <-chan struct{}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		switch key {
		case syncSlowKey:
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write([]byte(`{"data":[]}`))
		case syncGoodKey:
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			if page > 2 {
				_, _ = w.Write([]byte(`{"data":[]}`))
				return
			}
			_, _ = fmt.Fprintf(w, `{"data":[{"id":"api-%d-a"},{"id":"api-%d-b"}]}`, page, page)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s"}}`, key)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// usagePages reads the vendor's pages and emits a usage event per item.
type usagePages struct{ h *source.HTTP }

func (s usagePages) Check(ctx context.Context) error { return nil }

func (s usagePages) Read(ctx context.Context, _ source.Cursor, out source.Emitter) error {
	for page := 1; ; page++ {
		var body struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := s.h.GetJSON(ctx, "/v1/usage", map[string][]string{"page": {strconv.Itoa(page)}}, &body); err != nil {
			return err
		}
		if len(body.Data) == 0 {
			return nil
		}
		events := make([]event.Event, len(body.Data))
		for i, d := range body.Data {
			events[i] = apiUsageEvent(d.ID)
		}
		if err := out.Emit(ctx, events, json.RawMessage(fmt.Sprintf(`{"page":%d}`, page))); err != nil {
			return err
		}
	}
}

func apiUsageEvent(id string) event.Event {
	ev, err := event.Parse([]byte(`{"specversion":"1.0","id":"` + id + `","source":"openai","type":"uvr.usage.v1",
		"time":"2026-11-01T10:00:00Z","data":{"customer":{"source":"openai","external_id":"proj_1"},
		"feature":"gpt-4o.input_tokens","quantity":"125000","unit":"tokens","cost":"0.3125","currency":"USD","version":1}}`))
	if err != nil {
		panic(err)
	}
	return ev
}

type syncAPI struct {
	url      string
	registry *services.Registry
	logs     *logBuffer
}

// logBuffer collects the engine's logs, written from the consumer's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// noPublisher is never called by the sync routes.
type noPublisher struct{}

func (noPublisher) Publish(string, ...*message.Message) error { return errors.New("not used") }

// newSyncAPI runs the API with the real sync engine on the real Kafka and
// ClickHouse, the real service registry (compacted topic, sealed local
// credential store), and a request consumer, as cmd/uvr wires them.
func newSyncAPI(t *testing.T, wait time.Duration, release <-chan struct{}) *syncAPI {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a := &syncAPI{logs: &logBuffer{}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	brokers := servicetest.KafkaBrokers(t)
	events, requests, poison := servicetest.Topic("test.sync.events"), servicetest.Topic("test.sync.requests"), servicetest.Topic("test.sync.poison")
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{
		{Name: events, Partitions: 1}, {Name: requests, Partitions: 2}, {Name: poison, Partitions: 1},
	}))
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })

	tables := map[string]*kafka.Table{}
	for _, name := range []string{"services", "state"} {
		tables[name], err = kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.sync." + name)})
		require.NoError(t, err)
		tb := tables[name]
		t.Cleanup(func() { _ = tb.Close() })
	}
	creds, err := credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	vendorURL := usageVendor(t, release).URL
	cat, err := catalog.Default(map[string]catalog.Factory{"openai": func(creds map[string]string, env source.Env) (source.Source, error) {
		key := creds["api_key"]
		h, err := source.NewHTTP(source.HTTPConfig{
			Service: "openai", BaseURL: vendorURL, Secrets: []string{key}, Retries: -1, Logger: logger,
			Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		})
		if err != nil {
			return nil, err
		}
		return usagePages{h: h}, nil
	}})
	require.NoError(t, err)
	a.registry, err = services.New(services.Config{Table: tables["services"], Credentials: creds, Catalog: cat, Logger: logger})
	require.NoError(t, err)

	engine, err := syncer.New(syncer.Config{
		Services: syncer.FromRegistry(a.registry), State: syncer.NewTableState(tables["state"]),
		Runs: syncer.NewClickHouseRuns(conn), Publisher: pub, EventsTopic: events, RequestsTopic: requests,
		PollInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(a.logs, nil)),
	})
	require.NoError(t, err)

	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers: brokers, ConsumerGroup: "uvr-sync-" + servicetest.Suffix(), CommitInterval: kafka.CommitEveryAck, Logger: logger,
	})
	require.NoError(t, err)
	r, err := router.New(router.Config{PoisonPublisher: pub, PoisonTopic: poison, Logger: logger, CloseTimeout: 10 * time.Second})
	require.NoError(t, err)
	engine.AddHandler(r, sub)
	runCtx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(runCtx)
	}()
	<-r.Running()
	t.Cleanup(func() {
		_ = r.Close()
		stop()
		<-done
		_ = sub.Close()
	})

	// A write timeout shorter than SyncWait: POST /api/sync extends its own.
	// Not shorter than a few seconds: on a loaded 2-core machine an ordinary
	// request (publishing a sync request to Kafka) can take over a second, and
	// a request past its write deadline is cut (EOF), not answered.
	const writeTimeout = 3 * time.Second
	cfg := api.Config{
		EventsTopic: events, Publisher: pub, Services: a.registry, Sync: engine, SyncWait: wait, Logger: logger,
		WriteTimeout: writeTimeout,
	}
	wrap := withAuth(t, &cfg)
	srv, err := api.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewUnstartedServer(wrap(srv.Handler()))
	hs.Config.WriteTimeout = writeTimeout
	hs.Start()
	t.Cleanup(hs.Close)
	a.url = hs.URL
	return a
}

func (a *syncAPI) do(t *testing.T, method, path string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.url+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode, string(b)
}

type syncRun struct {
	ID             string     `json:"id"`
	ServiceID      string     `json:"service_id"`
	ServiceType    string     `json:"service_type"`
	Trigger        string     `json:"trigger"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	Status         string     `json:"status"`
	RecordsRead    int        `json:"records_read"`
	EventsEmitted  int        `json:"events_emitted"`
	RecordsSkipped int        `json:"records_skipped"`
	Error          *string    `json:"error"`
}

type syncRuns struct {
	SyncRuns []syncRun `json:"sync_runs"`
}

func TestSyncRoutes(t *testing.T) {
	t.Parallel()
	a := newSyncAPI(t, time.Minute, nil)
	ctx := t.Context()
	good, err := a.registry.Create(ctx, services.NewService{Type: "openai", Name: "prod", Credentials: map[string]string{"api_key": syncGoodKey}})
	require.NoError(t, err)
	bad, err := a.registry.Create(ctx, services.NewService{Type: "openai", Name: "old", Credentials: map[string]string{"api_key": syncBadKey}})
	require.NoError(t, err)
	var bodies strings.Builder

	// POST /api/sync: every active service, answered once the runs ended.
	var all map[string]any
	status, body := a.do(t, http.MethodPost, "/api/sync", &all)
	bodies.WriteString(body)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, map[string]any{
		"status": "partial", "connections_synced": 1.0, "connections_failed": 1.0, "connections_pending": 0.0,
		"aggregates_created": 0.0, "insights_generated": 0.0,
	}, all)

	// GET /api/sync-runs: both, with the refused one's redacted error.
	var runs syncRuns
	status, body = a.do(t, http.MethodGet, "/api/sync-runs", &runs)
	bodies.WriteString(body)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, runs.SyncRuns, 2)
	byService := map[string]syncRun{}
	for _, r := range runs.SyncRuns {
		byService[r.ServiceID] = r
		assert.Equal(t, "api", r.Trigger)
		assert.Equal(t, "openai", r.ServiceType)
		require.NotNil(t, r.FinishedAt)
	}
	assert.Equal(t, "succeeded", byService[good.ID].Status)
	assert.Equal(t, 4, byService[good.ID].EventsEmitted)
	assert.Equal(t, 4, byService[good.ID].RecordsRead)
	assert.Nil(t, byService[good.ID].Error)
	assert.Equal(t, "failed", byService[bad.ID].Status)
	require.NotNil(t, byService[bad.ID].Error)
	assert.Contains(t, *byService[bad.ID].Error, "openai rejected the credentials (HTTP 401)")
	assert.Contains(t, body, `"error":null`)

	// "Sync now": 202 with the run id, which then shows up finished, newest first.
	var now struct {
		Success   bool   `json:"success"`
		Message   string `json:"message"`
		SyncRunID string `json:"sync_run_id"`
	}
	status, body = a.do(t, http.MethodPost, "/api/services/"+good.ID+"/sync", &now)
	require.Equal(t, http.StatusAccepted, status, body)
	assert.True(t, now.Success)
	assert.Contains(t, now.Message, good.ID)
	require.NotEmpty(t, now.SyncRunID)
	require.Eventually(t, func() bool {
		var got syncRuns
		if s, _ := a.do(t, http.MethodGet, "/api/sync-runs?service_id="+good.ID+"&limit=1", &got); s != http.StatusOK || len(got.SyncRuns) != 1 {
			return false
		}
		r := got.SyncRuns[0]
		return r.ID == now.SyncRunID && r.Status == "succeeded" && r.Trigger == "manual"
	}, time.Minute, 20*time.Millisecond)
	status, body = a.do(t, http.MethodGet, "/api/sync-runs?service_id="+good.ID, &runs)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, runs.SyncRuns, 2)
	assert.Equal(t, now.SyncRunID, runs.SyncRuns[0].ID, "newest first")
	assert.False(t, runs.SyncRuns[0].StartedAt.Before(runs.SyncRuns[1].StartedAt))

	for _, tt := range []struct {
		method, path string
		status       int
		detail       string
	}{
		{http.MethodPost, "/api/services/svc_unknown/sync", http.StatusNotFound, "service not found"},
		{http.MethodGet, "/api/sync-runs?limit=abc", http.StatusBadRequest, "limit must be an integer from 1 to 1000"},
		{http.MethodGet, "/api/sync-runs?limit=0", http.StatusBadRequest, "limit must be"},
		{http.MethodGet, "/api/sync-runs?limit=1001", http.StatusBadRequest, "limit must be"},
	} {
		status, body := a.do(t, tt.method, tt.path, nil)
		bodies.WriteString(body)
		assert.Equal(t, tt.status, status, "%s %s: %s", tt.method, tt.path, body)
		var e struct {
			Detail string `json:"detail"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		assert.Contains(t, e.Detail, tt.detail)
	}

	for where, text := range map[string]string{"responses": bodies.String(), "engine logs": a.logs.String()} {
		assert.NotContains(t, text, "SYNCrefused", "a credential leaked into the %s", where)
		assert.NotContains(t, text, "SYNCgood", "a credential leaked into the %s", where)
	}
}

// POST /api/sync stops waiting after SyncWait: 202, status timeout, the runs
// still pending go on.
func TestSyncAllTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	a := newSyncAPI(t, 6*time.Second, release)
	t.Cleanup(func() { close(release) }) // before the consumer stops: cleanups run last-in first-out
	_, err := a.registry.Create(t.Context(), services.NewService{Type: "openai", Name: "slow", Credentials: map[string]string{"api_key": syncSlowKey}})
	require.NoError(t, err)

	var all map[string]any
	status, body := a.do(t, http.MethodPost, "/api/sync", &all)
	require.Equal(t, http.StatusAccepted, status, body)
	assert.Equal(t, "timeout", all["status"])
	assert.Equal(t, 1.0, all["connections_pending"])
	assert.Equal(t, 0.0, all["connections_synced"])
}

// Without a sync engine the routes answer 503, not 404.
func TestSyncRoutesWithoutEngine(t *testing.T) {
	cfg := api.Config{
		EventsTopic: "events", Publisher: noPublisher{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	wrap := withAuth(t, &cfg)
	srv, err := api.New(cfg)
	require.NoError(t, err)
	for _, route := range [][2]string{{http.MethodGet, "/api/sync-runs"}, {http.MethodPost, "/api/sync"}, {http.MethodPost, "/api/services/x/sync"}} {
		rec := httptest.NewRecorder()
		wrap(srv.Handler()).ServeHTTP(rec, httptest.NewRequest(route[0], route[1], nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, route)
		assert.Contains(t, rec.Body.String(), "syncs are not enabled on this server")
	}
}
