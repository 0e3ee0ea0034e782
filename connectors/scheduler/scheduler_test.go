package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/syncer"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/chstore"
)

// serviceList stands in for the service registry: a list the test edits.
type serviceList struct {
	mu   sync.Mutex
	list map[string]syncer.Service
	err  error
}

func (l *serviceList) List(context.Context) ([]syncer.Service, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	out := make([]syncer.Service, 0, len(l.list))
	for _, s := range l.list {
		out = append(out, s)
	}
	return out, nil
}

func (l *serviceList) SourceFor(context.Context, string) (source.Source, error) {
	return nil, errors.New("the scheduler never builds sources")
}

func (l *serviceList) UpdateSync(context.Context, string, *time.Time, string) error { return nil }

func (l *serviceList) set(s syncer.Service) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.Status == "" {
		s.Status = syncer.ServiceActive
	}
	l.list[s.ID] = s
}

func (l *serviceList) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.list, id)
}

// requests counts the sync requests published to the requests topic, per
// service, as the real engine publishes them.
type requests struct {
	mu     sync.Mutex
	counts map[string]int
	bad    []string
}

func (r *requests) get() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// newEngine is the real sync engine on a fresh requests topic (Kafka) and
// database (ClickHouse); the returned requests count what it publishes.
func newEngine(t *testing.T, services syncer.Services) (*syncer.Engine, *requests) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	brokers := servicetest.KafkaBrokers(t)
	topic := servicetest.Topic("uvr.sync-requests")
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("uvr.sync-state")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	e, err := syncer.New(syncer.Config{
		Services: services, State: syncer.NewTableState(table), Runs: syncer.NewClickHouseRuns(conn),
		Publisher: pub, EventsTopic: servicetest.Topic("uvr.events"), RequestsTopic: topic,
	})
	require.NoError(t, err)

	reqs := &requests{counts: map[string]int{}}
	reader := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	readCtx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := reader.ReadMessage(readCtx)
			if err != nil {
				return
			}
			var req struct {
				ServiceID string `json:"service_id"`
				Trigger   string `json:"trigger"`
			}
			reqs.mu.Lock()
			if json.Unmarshal(m.Value, &req) != nil || req.Trigger != string(syncer.TriggerSchedule) || req.ServiceID != string(m.Key) {
				reqs.bad = append(reqs.bad, string(m.Value))
			}
			reqs.counts[req.ServiceID]++
			reqs.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
		_ = reader.Close()
	})
	return e, reqs
}

// The scheduler on a fake clock, minute by minute for six hours: each
// service is requested at once and then on its own interval, services added,
// removed, paused or given another interval are picked up at the next
// refresh, and the daily and six-hourly callbacks fire on time.
func TestSchedulerFiresPerInterval(t *testing.T) {
	t.Parallel()
	services := &serviceList{list: map[string]syncer.Service{}}
	services.set(syncer.Service{ID: "svc-a", Type: "openai", SyncInterval: time.Hour})
	services.set(syncer.Service{ID: "svc-b", Type: "stripe", SyncInterval: 30 * time.Minute})
	services.set(syncer.Service{ID: "svc-paused", Type: "aws", Status: syncer.ServicePaused})
	engine, reqs := newEngine(t, services)

	start := time.Date(2026, 11, 27, 0, 0, 30, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	var reconciled, insights atomic.Int32
	reg := prometheus.NewRegistry()
	s, err := New(Config{
		Services: services, Requester: engine, Clock: clock, Registerer: reg,
		Reconcile: func(context.Context) error {
			reconciled.Add(1)
			return nil
		},
		Insights: func(context.Context) error { insights.Add(1); return nil },
	})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { _ = s.Close() })
	assert.ElementsMatch(t, []string{JobRefresh, JobReconcile, JobInsights, JobSync, JobSync}, s.Jobs())

	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(map[string]int{"svc-a": 1, "svc-b": 1}, reqs.get())
	}, 30*time.Second, 10*time.Millisecond, "the first syncs are requested at start")

	// Minute by minute: wait until every job's timer is set again, advance,
	// then wait for that minute's refresh, so that a change made now is seen
	// by the next one.
	refreshes := func() float64 { return testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobRefresh, "success")) }
	for minute := 1; minute <= 363; minute++ {
		s.mu.Lock()
		timers := 3 + len(s.services) // refresh, reconcile, insights and one per service
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		require.NoError(t, clock.BlockUntilContext(ctx, timers), "minute %d: the jobs were not rescheduled", minute)
		cancel()
		clock.Advance(time.Minute)
		require.Eventually(t, func() bool { return refreshes() == float64(minute+1) }, 30*time.Second, time.Millisecond,
			"minute %d: no refresh", minute)
		switch minute {
		case 5:
			services.set(syncer.Service{ID: "svc-d", Type: "datadog", SyncInterval: time.Hour}) // from 6: 6, 66 … 306
		case 40:
			services.remove("svc-b") // gone at 41: requested at 0 and 30 only
		case 200:
			services.set(syncer.Service{ID: "svc-a", Type: "openai", SyncInterval: 30 * time.Minute})
		}
	}
	// svc-a: 0, 60, 120, 180, then every 30 min from the change at 201: 231 … 351.
	want := map[string]int{"svc-a": 4 + 5, "svc-b": 2, "svc-d": 6}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, reqs.get()) }, 30*time.Second, 10*time.Millisecond,
		"requests per service: want %v, got %v", want, reqs)
	assert.Empty(t, reqs.bad)

	assert.EqualValues(t, 1, reconciled.Load(), "daily at 02:00 UTC")
	assert.EqualValues(t, 1, insights.Load(), "every six hours")
	next := map[string]time.Time{}
	for _, j := range s.sched.Jobs() {
		next[j.Name()], err = j.NextRun()
		require.NoError(t, err)
	}
	assert.Equal(t, time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC), next[JobReconcile], "the next reconciliation is tomorrow at 02:00 UTC")
	assert.Equal(t, start.Add(12*time.Hour), next[JobInsights])
	// Every sync run is counted once, when it returns (just after its request is
	// seen): as a success, or as an error when the request's publish was not
	// acknowledged in time on a loaded machine although the request landed.
	syncRuns := func() float64 {
		return testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobSync, "success")) +
			testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobSync, "error"))
	}
	require.Eventually(t, func() bool { return syncRuns() == 17 }, 30*time.Second, 10*time.Millisecond,
		"17 sync runs counted, got %v", syncRuns)
	assert.Equal(t, 1.0, testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobReconcile, "success")))
	assert.Equal(t, 1.0, testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobInsights, "success")))
	assert.Equal(t, 364.0, testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobRefresh, "success")), "at start and every minute")
	assert.Equal(t, 2.0, testutil.ToFloat64(s.metrics.services))
}

// ENABLE_SCHEDULER=false: nothing is scheduled, whatever the clock does.
func TestSchedulerDisabled(t *testing.T) {
	t.Parallel()
	services := &serviceList{list: map[string]syncer.Service{}}
	services.set(syncer.Service{ID: "svc-a", Type: "openai", SyncInterval: time.Hour})
	engine, reqs := newEngine(t, services)
	clock := clockwork.NewFakeClock()
	var called atomic.Bool
	s, err := New(Config{
		Disabled: true, Services: services, Requester: engine, Clock: clock,
		Reconcile: func(context.Context) error { called.Store(true); return nil },
		Insights:  func(context.Context) error { called.Store(true); return nil },
	})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	defer s.Close()
	assert.Empty(t, s.Jobs())
	clock.Advance(48 * time.Hour)

	// A sentinel request, published after all that: once it is read back,
	// anything the scheduler had published would have been read too.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = engine.Request(ctx, []string{"sentinel"}, syncer.TriggerSchedule)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return reqs.get()["sentinel"] == 1 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, map[string]int{"sentinel": 1}, reqs.get())
	assert.False(t, called.Load())
}

// Nil callbacks are not scheduled; a failing service list is reported by
// Start and counted, and the scheduler keeps going.
func TestSchedulerOptionalJobsAndErrors(t *testing.T) {
	t.Parallel()
	services := &serviceList{list: map[string]syncer.Service{}, err: errors.New("registry unavailable")}
	engine, reqs := newEngine(t, services)
	clock := clockwork.NewFakeClock()
	reg := prometheus.NewRegistry()
	s, err := New(Config{Services: services, Requester: engine, Clock: clock, Registerer: reg})
	require.NoError(t, err)
	err = s.Start(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "registry unavailable")
	defer s.Close()
	assert.Equal(t, []string{JobRefresh}, s.Jobs())
	assert.Equal(t, 1.0, testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobRefresh, "error")))

	// The registry comes back: the next refresh schedules the service.
	services.mu.Lock()
	services.err = nil
	services.mu.Unlock()
	services.set(syncer.Service{ID: "svc-late", Type: "stripe"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, clock.BlockUntilContext(ctx, 1))
	clock.Advance(DefaultRefreshInterval)
	require.Eventually(t, func() bool { return reqs.get()["svc-late"] == 1 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1.0, testutil.ToFloat64(s.metrics.runs.WithLabelValues(JobRefresh, "success")))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "disabled needs nothing", cfg: Config{Disabled: true}},
		{name: "enabled needs services and a requester", cfg: Config{}, want: []string{"Services is required", "Requester is required"}},
		{name: "bad durations", cfg: Config{Disabled: true, ReconcileAt: 25 * time.Hour, InsightsInterval: -1, RefreshInterval: -1},
			want: []string{"reconcile time of day", "insights interval", "refresh interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
