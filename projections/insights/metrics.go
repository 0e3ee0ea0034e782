package insights

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the insight engine's Prometheus metrics, uvr_insights_*. Labels
// are bounded: kinds, severities, statuses, results, and the alert channels
// named in the configuration; never a customer, feature or flag id.
type Metrics struct {
	runs         *prometheus.CounterVec // result
	runSeconds   prometheus.Histogram
	lastSuccess  prometheus.Gauge
	flags        *prometheus.GaugeVec   // kind, severity, status
	created      *prometheus.CounterVec // kind, severity
	resolved     *prometheus.CounterVec // kind
	deliveries   *prometheus.CounterVec // channel, type
	failures     *prometheus.CounterVec // channel, type
	retries      *prometheus.CounterVec // channel, type
	deliverySecs *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_runs_total",
			Help: "Insight evaluations, by result (ok, error).",
		}, []string{"result"}),
		runSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uvr_insights_run_duration_seconds",
			Help:    "Time of one insight evaluation: read, evaluate, reconcile, save, alert.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms … 82 s
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "uvr_insights_last_run_success_timestamp_seconds",
			Help: "Unix time of the last successful insight evaluation.",
		}),
		flags: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "uvr_insights_flags",
			Help: "Active insight flags after the last run, by kind, severity and status (open, acknowledged).",
		}, []string{"kind", "severity", "status"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_flags_opened_total",
			Help: "Flags opened (created or reopened), by kind and severity.",
		}, []string{"kind", "severity"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_flags_resolved_total",
			Help: "Flags resolved automatically because their condition cleared, by kind.",
		}, []string{"kind"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_alert_deliveries_total",
			Help: "Alerts delivered (the receiver answered 2xx), by channel and type (webhook, slack).",
		}, []string{"channel", "type"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_alert_failures_total",
			Help: "Alerts not delivered after every attempt, by channel and type; the next run tries again.",
		}, []string{"channel", "type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_insights_alert_retries_total",
			Help: "Alert attempts retried after a 5xx, a 429 or a network error, by channel and type.",
		}, []string{"channel", "type"}),
		deliverySecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uvr_insights_alert_delivery_duration_seconds",
			Help:    "Time to deliver one alert, retries included, by channel type.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5 ms … 41 s
		}, []string{"type"}),
	}
	for _, r := range []string{"ok", "error"} {
		m.runs.WithLabelValues(r)
	}
	for _, k := range Kinds {
		m.resolved.WithLabelValues(string(k))
		for _, s := range Severities {
			m.created.WithLabelValues(string(k), string(s))
			for _, st := range []Status{StatusOpen, StatusAcknowledged} {
				m.flags.WithLabelValues(string(k), string(s), string(st))
			}
		}
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.runs, m.runSeconds, m.lastSuccess, m.flags, m.created, m.resolved,
		m.deliveries, m.failures, m.retries, m.deliverySecs} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register insights metrics: %w", err)
	}
	return m, nil
}

// channel exports a channel's series at 0 before its first alert.
func (m *Metrics) channel(name, typ string) {
	m.deliveries.WithLabelValues(name, typ)
	m.failures.WithLabelValues(name, typ)
	m.retries.WithLabelValues(name, typ)
}

// setFlags sets the active-flag gauge from the flags after a run.
func (m *Metrics) setFlags(flags []Flag) {
	counts := map[[3]string]int{}
	for _, f := range flags {
		if f.Status.Active() {
			counts[[3]string{string(f.Kind), string(f.Severity), string(f.Status)}]++
		}
	}
	for _, k := range Kinds {
		for _, s := range Severities {
			for _, st := range []Status{StatusOpen, StatusAcknowledged} {
				key := [3]string{string(k), string(s), string(st)}
				m.flags.WithLabelValues(key[:]...).Set(float64(counts[key]))
			}
		}
	}
}
