package api

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	eventsAccepted  *prometheus.CounterVec
	eventsRejected  *prometheus.CounterVec
	publishDuration prometheus.Histogram
	publishErrors   prometheus.Counter
	loginsRefused   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uvr_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		eventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_ingest_events_accepted_total",
			Help: "Events acknowledged by Kafka after POST /api/events, by event type.",
		}, []string{"type"}),
		eventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_ingest_events_rejected_total",
			Help: "Ingest requests rejected, by reason (invalid, too_large, unsupported_media_type, body_too_large, publish_failed).",
		}, []string{"reason"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uvr_ingest_publish_duration_seconds",
			Help:    "Time from a valid ingest request to Kafka's acknowledgement of all its events.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_ingest_publish_errors_total",
			Help: "Ingest requests whose events Kafka did not acknowledge.",
		}),
		loginsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_api_logins_refused_total",
			Help: "Password logins refused before the password check, by reason (rate_limited: 429; busy: every check slot taken, 503).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.requestDuration, m.eventsAccepted, m.eventsRejected, m.publishDuration, m.publishErrors, m.loginsRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observeRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route, method).Observe(d.Seconds())
}
