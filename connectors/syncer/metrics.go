package syncer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds of uvr_sync_errors_total.
const (
	errKindAuth     = "auth"      // the service rejected the credentials
	errKindSource   = "source"    // the source failed otherwise (network, 5xx after retries, bad page)
	errKindPublish  = "publish"   // Kafka did not acknowledge a page's events
	errKindState    = "state"     // the cursor could not be loaded or saved
	errKindStore    = "store"     // the sync run record could not be written
	errKindNotFound = "not_found" // the service is unknown
)

// metrics of the engine. Labels are bounded: service_type comes from the
// catalog (a dozen types), trigger and status are enums. Only the last-success
// gauge carries service_id, because "which service has not synced for six
// hours" is the alert that matters and it cannot be answered per type. That is
// bounded too: service ids come from the operator's configuration (tens, not
// customers or events), and the series of a deleted service is dropped by
// Forget. Names are never used: they are free text.
type metrics struct {
	duration    *prometheus.HistogramVec
	read        *prometheus.CounterVec
	emitted     *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	runs        *prometheus.CounterVec
	running     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	dropped     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uvr_sync_duration_seconds",
			Help:    "Duration of finished sync runs, by service type.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 16), // 0.25 s … 2.3 h
		}, []string{"service_type"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_records_read_total",
			Help: "Source records read by sync runs (events handed to the engine plus records skipped), by service type.",
		}, []string{"service_type"}),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_events_emitted_total",
			Help: "Events published to Kafka by sync runs, by service type.",
		}, []string{"service_type"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_records_skipped_total",
			Help: "Source records or events skipped by sync runs (malformed, invalid), by service type.",
		}, []string{"service_type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_errors_total",
			Help: "Sync run errors by service type and kind (auth, source, publish, state, store, not_found).",
		}, []string{"service_type", "kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_runs_total",
			Help: "Finished sync runs by service type, trigger and status.",
		}, []string{"service_type", "trigger", "status"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "uvr_sync_runs_running",
			Help: "Sync runs in progress on this instance, by service type.",
		}, []string{"service_type"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "uvr_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sync run of each service run by this instance.",
		}, []string{"service_type", "service_id"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_sync_requests_skipped_total",
			Help: "Sync requests not run, by reason (duplicate: a scheduled request within half the interval of the last run; stale: older than the maximum age; done: its run already finished; paused: a scheduled request for a paused service; deleted: the service no longer exists, the request is recorded as a failed run that never started).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.read, m.emitted, m.skipped, m.errors, m.runs, m.running, m.lastSuccess, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sync metrics: %w", err)
		}
	}
	return m, nil
}
