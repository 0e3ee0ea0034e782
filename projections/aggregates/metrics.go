package aggregates

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the aggregator's Prometheus metrics, uvr_aggregates_*. The kind
// label is bounded: usage or revenue.
type Metrics struct {
	recomputed *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	pending    prometheus.Gauge
	errors     prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		recomputed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_aggregates_days_recomputed_total",
			Help: "Days of a daily aggregate recomputed from the by-day tables, by kind.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uvr_aggregates_recompute_duration_seconds",
			Help:    "Time to recompute and write a set of days (up to 16) of a daily aggregate in one query, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms … 16 s
		}, []string{"kind"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "uvr_aggregates_dirty_days_pending",
			Help: "Dirty days waiting for a recompute, as of the end of the last pass.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_aggregates_recompute_errors_total",
			Help: "Passes over the dirty days that failed (their days stay dirty and are retried).",
		}),
	}
	for _, k := range []Kind{KindUsage, KindRevenue} {
		m.recomputed.WithLabelValues(string(k)) // export 0 before the first recompute
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.recomputed, m.duration, m.pending, m.errors} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register aggregates metrics: %w", err)
	}
	return m, nil
}
