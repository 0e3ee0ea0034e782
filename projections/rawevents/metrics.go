package rawevents

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the projector's Prometheus metrics, uvr_projector_*.
type Metrics struct {
	batchRows         prometheus.Histogram
	flushSeconds      prometheus.Histogram
	insertErrors      prometheus.Counter
	rowsInserted      *prometheus.CounterVec
	duplicatesDropped prometheus.Counter
	lastFlush         prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uvr_projector_batch_size_rows",
			Help:    "Rows per flush to ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 … 65536
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uvr_projector_flush_duration_seconds",
			Help:    "Time to insert one batch into ClickHouse, failed or not.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms … 16 s
		}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_projector_insert_errors_total",
			Help: "Flushes to ClickHouse that failed (their rows are retried by redelivery).",
		}),
		rowsInserted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_projector_rows_inserted_total",
			Help: "Rows inserted into ClickHouse, by table.",
		}, []string{"table"}),
		duplicatesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_projector_duplicates_dropped_total",
			Help: "Rows not inserted because the same event identity and version was pending or recently inserted.",
		}),
		lastFlush: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "uvr_projector_last_flush_success_timestamp_seconds",
			Help: "Unix time of the last successful flush to ClickHouse.",
		}),
	}
	for _, t := range Tables {
		m.rowsInserted.WithLabelValues(t) // export 0 before the first insert
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.batchRows, m.flushSeconds, m.insertErrors, m.rowsInserted, m.duplicatesDropped, m.lastFlush} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register projector metrics: %w", err)
	}
	return m, nil
}
