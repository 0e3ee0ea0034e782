package insights_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/insightstest"
)

// runAt is a Friday; "yesterday" is 2026-11-26.
var runAt = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// customer has the same revenue and cost on each of the 60 days before day.
func customer(id, revenue, cost string, day time.Time) insights.CustomerSeries {
	s := insights.CustomerSeries{CustomerID: id, Name: "Customer " + strings.ToUpper(id)}
	for i := 60; i >= 1; i-- {
		s.Days = append(s.Days, insights.CustomerDay{
			Day: insights.Day(day).AddDate(0, 0, -i), Revenue: decimal.RequireFromString(revenue), Cost: decimal.RequireFromString(cost),
		})
	}
	return s
}

type harness struct {
	source *insightstest.Source
	store  *insightstest.Store
	ev     *insights.Evaluator
	reg    *prometheus.Registry
}

func newHarness(t *testing.T, customers ...insights.CustomerSeries) *harness {
	t.Helper()
	h := &harness{source: &insightstest.Source{Customers: customers}, store: &insightstest.Store{}, reg: prometheus.NewRegistry()}
	m, err := insights.NewMetrics(h.reg)
	require.NoError(t, err)
	h.ev, err = insights.NewEvaluator(insights.EvaluatorConfig{
		Rules: insights.DefaultConfig(), Source: h.source, Store: h.store, Metrics: m,
	})
	require.NoError(t, err)
	return h
}

func (h *harness) run(t *testing.T, at time.Time) insights.RunResult {
	t.Helper()
	res, err := h.ev.Run(context.Background(), at)
	require.NoError(t, err)
	return res
}

func TestEvaluatorNoDuplicatesAcrossRuns(t *testing.T) {
	h := newHarness(t, customer("a", "1", "3", runAt), customer("b", "1", "5", runAt), customer("c", "5", "1", runAt))
	res := h.run(t, runAt)
	assert.Equal(t, insights.RunResult{AsOf: insights.Day(runAt), InsightsGenerated: 2, Created: 2}, res)
	first := h.store.Flags()
	require.Len(t, first, 2)

	// The same data six hours later, then the next day with the window moved:
	// the same two flags, updated, never created again.
	res = h.run(t, runAt.Add(6*time.Hour))
	assert.Equal(t, insights.RunResult{AsOf: insights.Day(runAt), InsightsGenerated: 2, Updated: 2}, res)
	next := runAt.AddDate(0, 0, 1)
	h.source.Customers = []insights.CustomerSeries{customer("a", "1", "3", next), customer("b", "1", "5", next), customer("c", "5", "1", next)}
	res = h.run(t, next)
	assert.Equal(t, 2, res.Updated)
	assert.Zero(t, res.Created)

	flags := h.store.Flags()
	require.Len(t, flags, 2)
	for i, f := range flags {
		assert.Equal(t, first[i].ID, f.ID)
		assert.Equal(t, runAt, f.FirstSeen)
		assert.Equal(t, next, f.LastSeen)
		assert.Equal(t, insights.LastDays(next, 30), f.Window, "the window moves with the run")
		assert.Equal(t, uint64(3), f.Version)
	}
	assert.Equal(t, 2.0, value(t, h.reg, "uvr_insights_flags", "kind", "unprofitable_customer", "severity", "critical", "status", "open"))
	assert.Equal(t, 3.0, value(t, h.reg, "uvr_insights_runs_total", "result", "ok"))
}

func TestEvaluatorAutoResolveAndReopen(t *testing.T) {
	h := newHarness(t, customer("a", "1", "3", runAt))
	h.run(t, runAt)
	id := h.store.Flags()[0].ID

	// Its price went up: the condition cleared, the flag resolves by itself.
	h.source.Customers = []insights.CustomerSeries{customer("a", "4", "3", runAt)}
	res := h.run(t, runAt.Add(time.Hour))
	assert.Equal(t, 1, res.Resolved)
	assert.Zero(t, res.InsightsGenerated)
	f := h.store.Flags()[0]
	assert.Equal(t, insights.StatusResolved, f.Status)
	assert.Equal(t, runAt.Add(time.Hour), f.ResolvedAt)
	assert.Equal(t, 0.0, value(t, h.reg, "uvr_insights_flags", "kind", "unprofitable_customer", "severity", "critical", "status", "open"))

	// Another run with the condition still clear changes nothing.
	saves := h.store.Saves()
	res = h.run(t, runAt.Add(2*time.Hour))
	assert.Equal(t, insights.RunResult{AsOf: insights.Day(runAt)}, res)
	assert.Equal(t, saves, h.store.Saves(), "nothing to save")

	// It comes back: the same flag reopens.
	h.source.Customers = []insights.CustomerSeries{customer("a", "1", "3", runAt)}
	res = h.run(t, runAt.Add(3*time.Hour))
	assert.Equal(t, 1, res.Reopened)
	flags := h.store.Flags()
	require.Len(t, flags, 1)
	assert.Equal(t, id, flags[0].ID)
	assert.Equal(t, insights.StatusOpen, flags[0].Status)
	assert.Equal(t, runAt, flags[0].FirstSeen)
	assert.Equal(t, 1, flags[0].Reopened)
	assert.Equal(t, 2.0, value(t, h.reg, "uvr_insights_flags_opened_total", "kind", "unprofitable_customer", "severity", "critical"))
	assert.Equal(t, 1.0, value(t, h.reg, "uvr_insights_flags_resolved_total", "kind", "unprofitable_customer"))
}

func TestEvaluatorAcknowledgedStaysAcknowledged(t *testing.T) {
	h := newHarness(t, customer("a", "1", "3", runAt))
	h.run(t, runAt)
	id := h.store.Flags()[0].ID
	found, err := h.store.Update(id, func(f *insights.Flag) error { return f.Acknowledge(runAt.Add(time.Minute)) })
	require.True(t, found)
	require.NoError(t, err)

	// Worse numbers: still acknowledged, with the new evidence.
	h.source.Customers = []insights.CustomerSeries{customer("a", "1", "4", runAt)}
	res := h.run(t, runAt.Add(time.Hour))
	assert.Equal(t, 1, res.Updated)
	f := h.store.Flags()[0]
	assert.Equal(t, insights.StatusAcknowledged, f.Status)
	assert.Equal(t, runAt.Add(time.Minute), f.AcknowledgedAt)
	assert.Equal(t, runAt.Add(time.Hour), f.LastSeen)
	assert.Equal(t, "90", f.Evidence["loss"])
	assert.Equal(t, 1.0, value(t, h.reg, "uvr_insights_flags", "kind", "unprofitable_customer", "severity", "critical", "status", "acknowledged"))

	// Cleared: resolved, acknowledged or not.
	h.source.Customers = nil
	res = h.run(t, runAt.Add(2*time.Hour))
	assert.Equal(t, 1, res.Resolved)
	assert.Equal(t, insights.StatusResolved, h.store.Flags()[0].Status)
}

func TestEvaluatorFailuresChangeNothing(t *testing.T) {
	boom := errors.New("clickhouse down")
	tests := []struct {
		name string
		set  func(h *harness)
		want string
	}{
		{name: "source", set: func(h *harness) { h.source.Err = boom }, want: "read customer days 2026-09-28 to 2026-11-26: clickhouse down"},
		{name: "load", set: func(h *harness) { h.store.LoadErr = boom }, want: "load flags: clickhouse down"},
		{name: "save", set: func(h *harness) { h.store.SaveErr = boom }, want: "save 1 flags: clickhouse down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, customer("a", "1", "3", runAt))
			tt.set(h)
			_, err := h.ev.Run(context.Background(), runAt)
			require.ErrorIs(t, err, boom)
			assert.EqualError(t, err, tt.want)
			assert.Empty(t, h.store.Flags())
			assert.Equal(t, 1.0, value(t, h.reg, "uvr_insights_runs_total", "result", "error"))
		})
	}
}

func TestNewEvaluatorValidates(t *testing.T) {
	_, err := insights.NewEvaluator(insights.EvaluatorConfig{})
	require.Error(t, err)
	for _, w := range []string{"rules: currency", "source is required", "store is required"} {
		assert.Contains(t, err.Error(), w)
	}
	// Registering twice on one registry fails instead of panicking.
	reg := prometheus.NewRegistry()
	_, err = insights.NewMetrics(reg)
	require.NoError(t, err)
	_, err = insights.NewMetrics(reg)
	assert.ErrorContains(t, err, "register insights metrics")
}

// value is the value of the sample of name whose labels are the name/value
// pairs kv (a gauge or a counter); the test fails when there is none.
func value(t *testing.T, reg prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, want) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no sample %s%v", name, want)
	return 0
}
