package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// consume runs e's request handler in a router over a subscriber of group,
// as cmd/uvr wires it, until the test ends or the returned stop is called
// (the instance shuts down: it leaves the group).
func consume(t *testing.T, env *testEnv, e *Engine, group string) (stop func()) {
	t.Helper()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers: env.brokers, ConsumerGroup: group, CommitInterval: kafka.CommitEveryAck,
		HeartbeatInterval: 300 * time.Millisecond, SessionTimeout: 6 * time.Second,
		RebalanceTimeout: 5 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
		Logger: env.logger,
	})
	require.NoError(t, err)
	r, err := router.New(router.Config{
		PoisonPublisher: env.pub, PoisonTopic: env.poisonTopic, Logger: env.logger,
		RetryInitial: 10 * time.Millisecond, CloseTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	e.AddHandler(r, sub)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	<-r.Running()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = r.Close()
			cancel()
			<-done
			_ = sub.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitStable waits until the consumer group has members members, each
// assigned some partition of topic.
func waitStable(t *testing.T, env *testEnv, group, topic string, members int) {
	t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(env.brokers...), Timeout: 5 * time.Second}
	require.Eventually(t, func() bool {
		resp, err := client.DescribeGroups(t.Context(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(resp.Groups) != 1 || resp.Groups[0].GroupState != "Stable" || len(resp.Groups[0].Members) != members {
			return false
		}
		for _, m := range resp.Groups[0].Members {
			assigned := 0
			for _, tp := range m.MemberAssignments.Topics {
				if tp.Topic == topic {
					assigned += len(tp.Partitions)
				}
			}
			if assigned == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "consumer group %s never settled with %d members", group, members)
}

// concurrency counts the Reads in progress per service, and the most seen.
type concurrency struct {
	mu      sync.Mutex
	current map[string]int
	most    map[string]int
	reads   map[string]int
}

func (c *concurrency) enter(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current[id]++
	c.reads[id]++
	c.most[id] = max(c.most[id], c.current[id])
}

func (c *concurrency) leave(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current[id]--
}

// trackedSource is a pagedSource whose Reads are counted.
type trackedSource struct {
	pagedSource
	c *concurrency
}

func (s *trackedSource) Read(ctx context.Context, cursor source.Cursor, out source.Emitter) error {
	s.c.enter(s.id)
	defer s.c.leave(s.id)
	// Re-read from the start every time: each run publishes, so runs take
	// the time of real Kafka round trips, and overlapping runs would show.
	return s.pagedSource.Read(ctx, nil, out)
}

// Two engines in one consumer group, both requesting the same syncs (as
// every instance's scheduler does): a service is synced by one engine at a
// time, scheduled duplicates are dropped, manual requests all run.
func TestTwoEnginesSyncEachServiceOneAtATime(t *testing.T) {
	t.Parallel()
	const partitions = 4
	env := newEnv(t, partitions)
	group := "uvr-sync-" + servicetest.Suffix()

	// Two services per request partition, so both engines get work.
	perPartition := map[int]int{}
	var ids []string
	for i := 0; len(ids) < 2*partitions; i++ {
		id := fmt.Sprintf("svc-%d", i)
		p := partitionOf(id, partitions)
		if perPartition[p] < 2 {
			perPartition[p]++
			ids = append(ids, id)
		}
	}
	c := &concurrency{current: map[string]int{}, most: map[string]int{}, reads: map[string]int{}}
	services := newTestServices()
	for _, id := range ids {
		services.add(Service{ID: id, Type: "openai", SyncInterval: time.Hour}, func() (source.Source, error) {
			return &trackedSource{pagedSource: pagedSource{id: id, pages: 3, perPage: 2}, c: c}, nil
		})
	}
	reg1, reg2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	e1 := env.engine(t, services, "engine-1", reg1, nil)
	e2 := env.engineWithState(t, services, "engine-2", reg2, nil, NewTableState(env.newTable(t)))
	consume(t, env, e1, group)
	consume(t, env, e2, group)
	waitStable(t, env, group, env.requestsTopic, 2)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// Both schedulers fire: one run per service, the second request is a duplicate.
	scheduled1, err := e1.Request(ctx, ids, TriggerSchedule)
	require.NoError(t, err)
	// In another order: without keys, requests would land elsewhere.
	scheduled2, err := e2.Request(ctx, rotate(ids, 3), TriggerSchedule)
	require.NoError(t, err)
	runs, err := e1.Wait(ctx, scheduled1)
	require.NoError(t, err)
	require.Len(t, runs, len(ids))
	dropped := func() float64 {
		return testutil.ToFloat64(e1.metrics.dropped.WithLabelValues("duplicate")) +
			testutil.ToFloat64(e2.metrics.dropped.WithLabelValues("duplicate"))
	}
	require.Eventually(t, func() bool { return dropped() == float64(len(ids)) }, time.Minute, 20*time.Millisecond)
	none, err := env.runs.Find(ctx, RunQuery{IDs: scheduled2})
	require.NoError(t, err)
	assert.Empty(t, none, "a duplicate scheduled request never runs")

	// Manual requests always run: two from each engine per service.
	var manual []string
	for k, e := range []*Engine{e1, e2, e1, e2} {
		more, err := e.Request(ctx, rotate(ids, k+1), TriggerManual)
		require.NoError(t, err)
		manual = append(manual, more...)
	}
	runs, err = e2.Wait(ctx, manual)
	require.NoError(t, err)
	require.Len(t, runs, len(manual))

	all, err := env.runs.List(ctx, "", 0)
	require.NoError(t, err)
	require.Len(t, all, 5*len(ids))
	byService := map[string][]Run{}
	instances := map[string]bool{}
	for _, r := range all {
		assert.Equal(t, StatusSucceeded, r.Status, r.Error)
		byService[r.ServiceID] = append(byService[r.ServiceID], r)
		instances[r.Instance] = true
	}
	assert.Equal(t, map[string]bool{"engine-1": true, "engine-2": true}, instances, "both engines ran syncs")
	for _, id := range ids {
		assert.Equal(t, 1, c.most[id], "service %s synced concurrently", id)
		assert.Equal(t, 5, c.reads[id], "service %s", id)
		rs := byService[id]
		require.Len(t, rs, 5)
		sort.Slice(rs, func(i, j int) bool { return rs[i].StartedAt.Before(rs[j].StartedAt) })
		for i := 1; i < len(rs); i++ {
			assert.False(t, rs[i].StartedAt.Before(rs[i-1].FinishedAt), "service %s: run %s started before run %s finished", id, rs[i].ID, rs[i-1].ID)
			assert.Equal(t, rs[0].Instance, rs[i].Instance, "service %s: one partition, one owner", id)
		}
	}
}

// An instance that stops mid-sync (its partition goes to another member)
// cancels its run without acknowledging the request; the other instance
// runs the same request again, under the same run id, from the last saved
// cursor: no page skipped, none repeated, never two at once.
func TestSyncMovesToAnotherInstance(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	group := "uvr-sync-" + servicetest.Suffix()
	c := &concurrency{current: map[string]int{}, most: map[string]int{}, reads: map[string]int{}}
	halfway := make(chan struct{})
	var first sync.Once
	var given []source.Cursor
	var givenMu sync.Mutex
	services := newTestServices()
	services.add(Service{ID: "svc-m", Type: "stripe"}, func() (source.Source, error) {
		src := &pagedSource{id: "svc-m", pages: 4, perPage: 4}
		src.started = func(cur source.Cursor) {
			givenMu.Lock()
			given = append(given, cur)
			givenMu.Unlock()
		}
		src.beforePage = func(ctx context.Context, n int, _ source.Emitter) error {
			blocked := false
			if n == 3 {
				first.Do(func() { blocked = true })
			}
			if !blocked {
				return nil
			}
			close(halfway)
			<-ctx.Done() // the first attempt hangs after page 2 until its instance lets go
			return ctx.Err()
		}
		return &countedSource{Source: src, id: "svc-m", c: c}, nil
	})
	e1 := env.engine(t, services, "engine-1", nil, nil)
	// Another instance: its own view of the cursor topic.
	e2 := env.engineWithState(t, services, "engine-2", nil, nil, NewTableState(env.newTable(t)))
	stop1 := consume(t, env, e1, group)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ids, err := e1.Request(ctx, []string{"svc-m"}, TriggerManual)
	require.NoError(t, err)
	select {
	case <-halfway:
	case <-ctx.Done():
		t.Fatal("the first attempt never reached page 3")
	}
	consume(t, env, e2, group)
	stop1() // engine-1 shuts down: whatever it still holds moves to engine-2

	runs, err := e2.Wait(ctx, ids)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, StatusSucceeded, runs[0].Status, runs[0].Error)
	assert.Equal(t, "engine-2", runs[0].Instance)
	assert.EqualValues(t, 8, runs[0].EventsEmitted, "pages 3 and 4")
	assert.Contains(t, strings.Join(runs[0].Log, "\n"), "resuming this run: its attempt on engine-1 did not finish (cancelled: context canceled")

	givenMu.Lock()
	require.Len(t, given, 2)
	assert.Nil(t, given[0])
	assert.JSONEq(t, `{"page":2}`, string(given[1]))
	givenMu.Unlock()
	assert.Len(t, env.eventIDs(t), 16, "every page once")
	assert.Equal(t, 1, c.most["svc-m"])
}

// countedSource counts its Reads in a concurrency tracker.
type countedSource struct {
	source.Source
	id string
	c  *concurrency
}

func (s *countedSource) Read(ctx context.Context, cursor source.Cursor, out source.Emitter) error {
	s.c.enter(s.id)
	defer s.c.leave(s.id)
	return s.Source.Read(ctx, cursor, out)
}

// HandleRequest drops what must not run and poisons what cannot be read.
func TestHandleRequest(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	services := newTestServices()
	services.add(Service{ID: "svc-h", Type: "stripe", SyncInterval: 2 * time.Hour}, func() (source.Source, error) {
		return &pagedSource{id: "svc-h", pages: 1, perPage: 1}, nil
	})
	services.add(Service{ID: "svc-paused", Type: "stripe", Status: ServicePaused}, func() (source.Source, error) {
		return &pagedSource{id: "svc-paused", pages: 1, perPage: 1}, nil
	})
	e := env.engine(t, services, "engine-1", prometheus.NewRegistry(), nil)
	now := time.Now().UTC()
	msg := func(payload any) *message.Message {
		b, err := json.Marshal(payload)
		require.NoError(t, err)
		m := message.NewMessage(watermill.NewUUID(), b)
		m.SetContext(t.Context())
		return m
	}
	runOf := func(runID string) []Run {
		got, err := env.runs.Find(t.Context(), RunQuery{IDs: []string{runID}})
		require.NoError(t, err)
		return got
	}

	// Malformed: permanent, so the router parks it on the poison topic.
	bad := message.NewMessage(watermill.NewUUID(), []byte("{not json"))
	bad.SetContext(t.Context())
	assert.True(t, router.IsPermanent(e.HandleRequest(bad)))
	assert.True(t, router.IsPermanent(e.HandleRequest(msg(request{RunID: "r", ServiceID: "svc-h", Trigger: "cron"}))))

	// A scheduled request runs when the service has no recent run.
	first := request{RunID: newID(), ServiceID: "svc-h", Trigger: TriggerSchedule, RequestedAt: now}
	require.NoError(t, e.HandleRequest(msg(first)))
	require.Len(t, runOf(first.RunID), 1)
	assert.Equal(t, StatusSucceeded, runOf(first.RunID)[0].Status)

	// The same request redelivered: its run is done.
	require.NoError(t, e.HandleRequest(msg(first)))

	tests := []struct {
		name   string
		req    request
		reason string // "" when it runs
	}{
		{"another scheduled request within half the interval", request{ServiceID: "svc-h", Trigger: TriggerSchedule, RequestedAt: now}, "duplicate"},
		{"a manual request at once", request{ServiceID: "svc-h", Trigger: TriggerManual, RequestedAt: now}, ""},
		{"older than the maximum age", request{ServiceID: "svc-h", Trigger: TriggerManual, RequestedAt: now.Add(-2 * DefaultRequestMaxAge)}, "stale"},
		{"a paused service on schedule", request{ServiceID: "svc-paused", Trigger: TriggerSchedule, RequestedAt: now}, "paused"},
		{"a paused service on demand", request{ServiceID: "svc-paused", Trigger: TriggerManual, RequestedAt: now}, ""},
		{"a deleted service on schedule: recorded as failed, not run", request{ServiceID: "svc-gone", Trigger: TriggerSchedule, RequestedAt: now}, skipDeleted},
		{"a deleted service on demand: recorded as failed, not run", request{ServiceID: "svc-gone", Trigger: TriggerManual, RequestedAt: now}, skipDeleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.RunID = newID()
			var before float64
			if tt.reason != "" {
				before = testutil.ToFloat64(e.metrics.dropped.WithLabelValues(tt.reason))
			}
			require.NoError(t, e.HandleRequest(msg(tt.req)))
			if tt.reason != "" {
				if tt.reason == skipDeleted {
					// Not run, but whoever waits for the run learns it ended.
					require.Len(t, runOf(tt.req.RunID), 1)
					assert.Equal(t, StatusFailed, runOf(tt.req.RunID)[0].Status)
					assert.Zero(t, runOf(tt.req.RunID)[0].RecordsRead)
					assert.Contains(t, runOf(tt.req.RunID)[0].Error, "deleted")
				} else {
					assert.Empty(t, runOf(tt.req.RunID))
				}
				assert.Equal(t, before+1, testutil.ToFloat64(e.metrics.dropped.WithLabelValues(tt.reason)))
				return
			}
			require.Len(t, runOf(tt.req.RunID), 1)
			assert.True(t, runOf(tt.req.RunID)[0].Status.Finished())
		})
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metrics.dropped.WithLabelValues("done")))

	// A run cancelled with its message (partition revoked) is not acknowledged.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := msg(request{RunID: newID(), ServiceID: "svc-h", Trigger: TriggerManual, RequestedAt: now})
	m.SetContext(ctx)
	assert.ErrorIs(t, e.HandleRequest(m), context.Canceled)
}

// SyncAll requests every syncable service and reports once they finished,
// or reports a timeout with the runs still pending.
func TestSyncAll(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 4)
	release := make(chan struct{})
	services := newTestServices()
	services.add(Service{ID: "svc-ok", Type: "openai"}, func() (source.Source, error) {
		return &pagedSource{id: "svc-ok", pages: 2, perPage: 2}, nil
	})
	services.add(Service{ID: "svc-refused", Type: "stripe", Status: ServiceError}, func() (source.Source, error) {
		return failingSource{err: &source.AuthError{Service: "stripe", Status: 401, Detail: "Invalid API Key provided"}}, nil
	})
	services.add(Service{ID: "svc-paused", Type: "aws", Status: ServicePaused}, func() (source.Source, error) {
		t.Error("a paused service was synced")
		return failingSource{}, nil
	})
	e := env.engine(t, services, "engine-1", nil, nil)
	consume(t, env, e, "uvr-sync-"+servicetest.Suffix())

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sum, err := e.SyncAll(ctx, TriggerAPI)
	require.NoError(t, err)
	assert.Equal(t, Summary{Status: SummaryPartial, Succeeded: 1, Failed: 1, RunIDs: sum.RunIDs}, sum)
	require.Len(t, sum.RunIDs, 2)

	// A slow service, alone in its request partition: the wait ends first;
	// the run goes on and finishes later.
	slow := ""
	for i := 0; slow == ""; i++ {
		id := fmt.Sprintf("svc-slow-%d", i)
		if p := partitionOf(id, 4); p != partitionOf("svc-ok", 4) && p != partitionOf("svc-refused", 4) {
			slow = id
		}
	}
	services.add(Service{ID: slow, Type: "datadog"}, func() (source.Source, error) {
		return blockingSource{release: release}, nil
	})
	// The wait always runs to its end (the slow run blocks until released): long
	// enough for the two quick runs on a loaded 2-core machine, where 2 s was not.
	short, cancelShort := context.WithTimeout(ctx, 10*time.Second)
	defer cancelShort()
	sum, err = e.SyncAll(short, TriggerAPI)
	require.NoError(t, err)
	assert.Equal(t, SummaryTimeout, sum.Status)
	assert.Equal(t, 1, sum.Pending)
	assert.Equal(t, 1, sum.Succeeded)
	assert.Equal(t, 1, sum.Failed)
	close(release)
	runs, err := e.Wait(ctx, sum.RunIDs)
	require.NoError(t, err)
	assert.Len(t, runs, 3)
	assert.True(t, slices.ContainsFunc(runs, func(r Run) bool { return r.ServiceID == slow && r.Status == StatusSucceeded }))
}

// rotate returns ids rotated left by k.
func rotate(ids []string, k int) []string {
	k %= len(ids)
	return append(slices.Clone(ids[k:]), ids[:k]...)
}

// partitionOf is the request partition of a service: the publisher's
// balancer (kafka-go's Hash) on the service id key.
func partitionOf(serviceID string, partitions int) int {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	return (&kafkago.Hash{}).Balance(kafkago.Message{Key: []byte(serviceID)}, ps...)
}

type failingSource struct{ err error }

func (s failingSource) Check(context.Context) error { return s.err }
func (s failingSource) Read(context.Context, source.Cursor, source.Emitter) error {
	return s.err
}

// blockingSource reads nothing until released.
type blockingSource struct{ release <-chan struct{} }

func (blockingSource) Check(context.Context) error { return nil }
func (s blockingSource) Read(ctx context.Context, _ source.Cursor, _ source.Emitter) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
