package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// A run publishes every page to the events topic, saves the cursor of the
// last page in the state topic, records itself, and a second run resumes
// from that cursor and emits nothing new.
func TestRunPublishesPagesAndSavesCursor(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	ctx := t.Context()
	services := newTestServices()
	var given []source.Cursor
	services.add(Service{ID: "svc-a", Type: "openai"}, func() (source.Source, error) {
		return &pagedSource{id: "svc-a", pages: 3, perPage: 4, started: func(c source.Cursor) { given = append(given, c) }}, nil
	})
	reg := prometheus.NewRegistry()
	e := env.engine(t, services, "engine-1", reg, nil)

	run, err := e.Run(ctx, "svc-a", TriggerManual)
	require.NoError(t, err)
	assert.Equal(t, StatusSucceeded, run.Status)
	assert.Equal(t, "openai", run.ServiceType)
	assert.EqualValues(t, 12, run.RecordsRead)
	assert.EqualValues(t, 12, run.EventsEmitted)
	assert.EqualValues(t, 0, run.RecordsSkipped)
	assert.Empty(t, run.Error)
	assert.False(t, run.FinishedAt.Before(run.StartedAt))

	ids := env.eventIDs(t)
	require.Len(t, ids, 12)
	assert.Equal(t, "svc-a-p1-0", ids[0])
	assert.Equal(t, "svc-a-p3-3", ids[11])

	cursor, err := env.state.Load(ctx, "svc-a")
	require.NoError(t, err)
	assert.JSONEq(t, `{"page":3}`, string(cursor))

	up, ok := services.lastUpdate("svc-a")
	require.True(t, ok)
	assert.Equal(t, ServiceActive, up.Status)
	require.NotNil(t, up.LastSync)
	assert.Equal(t, run.FinishedAt, *up.LastSync)

	second, err := e.Run(ctx, "svc-a", TriggerManual)
	require.NoError(t, err)
	assert.EqualValues(t, 0, second.EventsEmitted)
	require.Len(t, given, 2)
	assert.Nil(t, given[0], "the first run starts from the beginning")
	assert.JSONEq(t, `{"page":3}`, string(given[1]), "the second run resumes from the saved cursor")
	assert.Len(t, env.eventIDs(t), 12, "nothing published twice")

	// Both runs recorded, newest first, each once (FINAL collapses running → succeeded).
	listed, err := env.runs.List(ctx, "svc-a", 0)
	require.NoError(t, err)
	require.Len(t, listed, 2)
	assert.Equal(t, second.ID, listed[0].ID)
	assert.Equal(t, run.ID, listed[1].ID)
	assert.Equal(t, StatusSucceeded, listed[1].Status)
	assert.EqualValues(t, 12, listed[1].EventsEmitted)
	assert.Equal(t, "engine-1", listed[1].Instance)
	assert.Equal(t, run.StartedAt.UnixNano(), listed[1].StartedAt.UnixNano())
	assert.Equal(t, run.FinishedAt.UnixNano(), listed[1].FinishedAt.UnixNano())
	assert.Contains(t, strings.Join(listed[1].Log, "\n"), "page 3: 4 events published, 0 invalid, cursor saved")

	assert.Equal(t, 12.0, testutil.ToFloat64(e.metrics.emitted.WithLabelValues("openai")))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metrics.runs.WithLabelValues("openai", "manual", "succeeded")))
	assert.InDelta(t, float64(second.FinishedAt.Unix()), testutil.ToFloat64(e.metrics.lastSuccess.WithLabelValues("openai", "svc-a")), 0)
}

// The cursor protocol under a kill: the cursor is saved only after Kafka
// acknowledged the page, so a run stopped anywhere repeats at most one page
// and skips none.
func TestKillInTheMiddle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// cancelAt says where the first run dies while emitting page 2.
		afterPublish bool // right after Kafka acknowledged page 2, before its cursor is saved
		// else: after page 2's Emit returned (cursor saved), before page 3
		wantResume   int // the page the second run resumes after
		wantRepeated int // events published twice
	}{
		{name: "between the pages", afterPublish: false, wantResume: 2, wantRepeated: 0},
		{name: "between publish and cursor save", afterPublish: true, wantResume: 1, wantRepeated: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 1)
			services := newTestServices()
			runCtx, kill := context.WithCancelCause(t.Context())
			var published atomic.Int32
			var given []source.Cursor
			src := &pagedSource{id: "svc-k", pages: 4, perPage: 4, started: func(c source.Cursor) { given = append(given, c) }}
			src.beforePage = func(_ context.Context, n int, _ source.Emitter) error {
				if n == 3 && !tt.afterPublish {
					kill(errors.New("instance killed"))
				}
				return nil
			}
			services.add(Service{ID: "svc-k", Type: "stripe"}, func() (source.Source, error) { return src, nil })
			pub := &hookPublisher{pub: env.pub, after: func(topic string, _ int) {
				if topic == env.eventsTopic && published.Add(1) == 2 && tt.afterPublish {
					kill(errors.New("instance killed"))
				}
			}}
			e := env.engine(t, services, "engine-1", nil, pub)

			first, err := e.Run(runCtx, "svc-k", TriggerSchedule)
			require.Error(t, err)
			assert.Equal(t, StatusCancelled, first.Status)
			assert.Contains(t, first.Error, "instance killed")
			assert.EqualValues(t, 8, first.EventsEmitted, "pages 1 and 2 reached Kafka")
			assert.Len(t, env.eventIDs(t), 8)

			cursor, err := env.state.Load(t.Context(), "svc-k")
			require.NoError(t, err)
			assert.JSONEq(t, string(mustCursor(t, tt.wantResume)), string(cursor))

			second, err := e.Run(t.Context(), "svc-k", TriggerSchedule)
			require.NoError(t, err)
			require.Len(t, given, 2)
			assert.JSONEq(t, string(mustCursor(t, tt.wantResume)), string(given[1]), "resumes from the last saved cursor")

			ids := env.eventIDs(t)
			assert.Len(t, ids, 16+tt.wantRepeated, "at most one page repeated")
			distinct := map[string]int{}
			for _, id := range ids {
				distinct[id]++
			}
			assert.Len(t, distinct, 16, "no event skipped")
			for p := 1; p <= 4; p++ {
				for i := 0; i < 4; i++ {
					assert.Contains(t, distinct, fmt.Sprintf("svc-k-p%d-%d", p, i))
				}
			}
			assert.EqualValues(t, 8+tt.wantRepeated, second.EventsEmitted)

			listed, err := env.runs.List(t.Context(), "svc-k", 0)
			require.NoError(t, err)
			require.Len(t, listed, 2)
			assert.Equal(t, []Status{StatusSucceeded, StatusCancelled}, []Status{listed[0].Status, listed[1].Status})
		})
	}
}

// A 401 from the service stops the run: failed, the service set to error,
// the message clear and without the credential, anywhere it is kept.
func TestAuthFailureStopsRun(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	const secret = "sk-PLANTEDsecret0123456789abcdef"

	// The vendor: page 1 answers, page 2 refuses the key and echoes it, like
	// some APIs do in their 401 bodies.
	var calls atomic.Int32
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("page") == "1" {
			_, _ = w.Write([]byte(`{"data":[{"id":"u1"},{"id":"u2"}]}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. Authorization: %s","code":"invalid_api_key"}}`,
			secret, r.Header.Get("Authorization"))
	}))
	t.Cleanup(vendor.Close)

	services := newTestServices()
	services.add(Service{ID: "svc-auth", Type: "openai"}, func() (source.Source, error) {
		// No Secrets given to the client: the engine's own redaction must catch it.
		h, err := source.NewHTTP(source.HTTPConfig{
			Service: "openai", BaseURL: vendor.URL, Retries: -1,
			Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) },
		})
		if err != nil {
			return nil, err
		}
		return &httpSource{http: h}, nil
	})
	reg := prometheus.NewRegistry()
	e := env.engine(t, services, "engine-1", reg, nil)

	run, runErr := e.Run(t.Context(), "svc-auth", TriggerSchedule)
	require.Error(t, runErr)
	assert.True(t, source.IsAuth(runErr), "the cause stays inspectable")
	assert.Equal(t, StatusFailed, run.Status)
	assert.Contains(t, run.Error, "openai rejected the credentials (HTTP 401)")
	assert.EqualValues(t, 2, run.EventsEmitted, "the page before the refusal was published")
	assert.EqualValues(t, 2, calls.Load(), "the sync stopped at the refusal")

	up, ok := services.lastUpdate("svc-auth")
	require.True(t, ok)
	assert.Equal(t, ServiceError, up.Status)
	assert.Nil(t, up.LastSync)

	listed, err := env.runs.List(t.Context(), "svc-auth", 1)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, StatusFailed, listed[0].Status)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metrics.errors.WithLabelValues("openai", errKindAuth)))

	metricsText := gatherText(t, reg)
	for where, text := range map[string]string{
		"returned error": runErr.Error(), "run error": run.Error, "stored error": listed[0].Error,
		"stored log": strings.Join(listed[0].Log, "\n"), "logs": env.logs.String(), "metrics": metricsText,
	} {
		assert.NotContains(t, text, "PLANTED", "the secret leaked into the %s", where)
	}
	assert.Contains(t, listed[0].Error, Redacted)
}

// httpSource reads pages from a vendor API through source.HTTP.
type httpSource struct{ http *source.HTTP }

func (s *httpSource) Check(ctx context.Context) error {
	return s.http.GetJSON(ctx, "/v1/usage", nil, nil)
}

func (s *httpSource) Read(ctx context.Context, _ source.Cursor, out source.Emitter) error {
	for page := 1; ; page++ {
		var body struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := s.http.GetJSON(ctx, "/v1/usage", url.Values{"page": {fmt.Sprint(page)}}, &body); err != nil {
			return fmt.Errorf("read usage page %d: %w", page, err)
		}
		if len(body.Data) == 0 {
			return nil // caught up
		}
		events := make([]event.Event, len(body.Data))
		for i, d := range body.Data {
			events[i] = usageEvent(d.ID)
		}
		next, _ := json.Marshal(pageCursor{Page: page})
		if err := out.Emit(ctx, events, next); err != nil {
			return err
		}
	}
}

// Malformed records and invalid events are skipped by name with their
// reason; the rest of the page and of the sync go on.
func TestSkipIsRecorded(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	services := newTestServices()
	src := &pagedSource{id: "svc-s", pages: 2, perPage: 3}
	src.beforePage = func(ctx context.Context, n int, out source.Emitter) error {
		if n != 1 {
			return nil
		}
		out.Skip("invoice in_bad", errors.New("amount_paid is not an integer"))
		bad := usageEvent("svc-s-negative")
		q := bad.Data.Quantity.Neg()
		bad.Data.Quantity = &q
		// Out of the time window (pipeline/event): skipped, not published.
		future := usageEvent("svc-s-future")
		future.Time = time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
		return out.Emit(ctx, []event.Event{bad, future, usageEvent("svc-s-fine")}, nil)
	}
	services.add(Service{ID: "svc-s", Type: "stripe"}, func() (source.Source, error) { return src, nil })
	e := env.engine(t, services, "engine-1", nil, nil)

	run, err := e.Run(t.Context(), "svc-s", TriggerManual)
	require.NoError(t, err)
	assert.Equal(t, StatusSucceeded, run.Status)
	assert.EqualValues(t, 3, run.RecordsSkipped)
	assert.EqualValues(t, 1+3+6, run.RecordsRead)
	assert.EqualValues(t, 7, run.EventsEmitted)
	assert.NotContains(t, env.eventIDs(t), "svc-s-negative")
	assert.NotContains(t, env.eventIDs(t), "svc-s-future")
	assert.Contains(t, env.eventIDs(t), "svc-s-fine")

	listed, err := env.runs.List(t.Context(), "svc-s", 1)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	log := strings.Join(listed[0].Log, "\n")
	assert.Contains(t, log, "skipped invoice in_bad: amount_paid is not an integer")
	assert.Contains(t, log, "skipped event testsrc/svc-s-negative: ")
	assert.Contains(t, log, "data.quantity")
	assert.Contains(t, log, "skipped event testsrc/svc-s-future: invalid event: time: 2999-01-01T00:00:00Z is outside the accepted range 1970-01-01T00:00:00Z to ")
	assert.EqualValues(t, 3, listed[0].RecordsSkipped)
}

// A run whose service is unknown is recorded as failed, so whoever waits for
// it learns why; a run left "running" by a dead instance is closed as
// cancelled by the next run of its service.
func TestRunRecordsFailuresAndInterruptedRuns(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	services := newTestServices()
	services.add(Service{ID: "svc-i", Type: "aws"}, func() (source.Source, error) {
		return &pagedSource{id: "svc-i", pages: 1, perPage: 1}, nil
	})
	e := env.engine(t, services, "engine-1", nil, nil)

	missing, err := e.Run(t.Context(), "svc-missing", TriggerAPI)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrServiceNotFound)
	assert.Equal(t, StatusFailed, missing.Status)
	got, err := env.runs.Find(t.Context(), RunQuery{IDs: []string{missing.ID}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Error, "service not found")

	dead := Run{
		ID: newID(), ServiceID: "svc-i", ServiceType: "aws", Trigger: TriggerSchedule, Status: StatusRunning,
		StartedAt: time.Now().Add(-time.Hour), Instance: "dead-instance", rev: 1,
	}
	require.NoError(t, env.runs.Save(t.Context(), dead))
	_, err = e.Run(t.Context(), "svc-i", TriggerManual)
	require.NoError(t, err)
	got, err = env.runs.Find(t.Context(), RunQuery{IDs: []string{dead.ID}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, StatusCancelled, got[0].Status)
	assert.Contains(t, got[0].Error, "interrupted: instance dead-instance stopped")
	assert.False(t, got[0].FinishedAt.IsZero())
}

// Runs of several services, listed newest first, per service and together,
// with a limit; a query by status and by ids.
func TestRunStoreListsNewestFirst(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	ctx := t.Context()
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var saved []Run
	for i, sid := range []string{"a", "b", "a", "a", "b"} {
		r := Run{
			ID: fmt.Sprintf("run-%d", i), ServiceID: sid, ServiceType: "stripe", Trigger: TriggerSchedule,
			Status: StatusRunning, StartedAt: base.Add(time.Duration(i) * 300 * time.Millisecond), rev: 1,
		}
		require.NoError(t, env.runs.Save(ctx, r))
		r.Status, r.FinishedAt, r.EventsEmitted, r.rev = StatusSucceeded, r.StartedAt.Add(time.Second), uint64(i), 2
		if i == 3 {
			r.Status, r.Error = StatusFailed, "boom"
		}
		require.NoError(t, env.runs.Save(ctx, r))
		saved = append(saved, r)
	}
	ids := func(runs []Run) []string {
		var out []string
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}

	all, err := env.runs.List(ctx, "", 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"run-4", "run-3", "run-2", "run-1", "run-0"}, ids(all))
	assert.Equal(t, saved[3].Error, all[1].Error)
	assert.Equal(t, StatusFailed, all[1].Status)

	a, err := env.runs.List(ctx, "a", 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"run-3", "run-2"}, ids(a))

	ok, err := env.runs.Find(ctx, RunQuery{ServiceID: "a", Statuses: []Status{StatusSucceeded}, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"run-2"}, ids(ok))

	none, err := env.runs.Find(ctx, RunQuery{Statuses: []Status{StatusRunning}})
	require.NoError(t, err)
	assert.Empty(t, none, "the running versions were replaced")

	byID, err := env.runs.Find(ctx, RunQuery{IDs: []string{"run-0", "run-4", "nope"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"run-4", "run-0"}, ids(byID))
	assert.Equal(t, saved[0].FinishedAt, byID[1].FinishedAt)
}

func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}
