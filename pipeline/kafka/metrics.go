package kafka

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvrhq/uvr/pipeline/metrics"
)

// Label values are topic, partition and group names: all bounded by configuration, never
// by data.

type publisherMetrics struct {
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	published *prometheus.CounterVec
}

func newPublisherMetrics(reg prometheus.Registerer) (*publisherMetrics, error) {
	m := &publisherMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "uvr_kafka_publish_duration_seconds",
			Help: "Time of one synchronous Publish call until the broker acknowledged every message (acks=all).",
			// 1 ms … 4 s: a healthy publish is a few ms (the batch timeout plus a round trip).
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13),
		}, []string{"topic"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_publish_errors_total",
			Help: "Publish calls that failed after their retries.",
		}, []string{"topic"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_published_messages_total",
			Help: "Messages acknowledged by the broker.",
		}, []string{"topic"}),
	}
	var err error
	if m.duration, err = metrics.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.errors, err = metrics.Register(reg, m.errors); err != nil {
		return nil, err
	}
	if m.published, err = metrics.Register(reg, m.published); err != nil {
		return nil, err
	}
	return m, nil
}

type subscriberMetrics struct {
	lag          *prometheus.GaugeVec
	received     *prometheus.CounterVec
	acked        *prometheus.CounterVec
	nacked       *prometheus.CounterVec
	commits      *prometheus.CounterVec
	commitErrors *prometheus.CounterVec
	rebalances   *prometheus.CounterVec
}

func newSubscriberMetrics(reg prometheus.Registerer) (*subscriberMetrics, error) {
	tg := []string{"topic", "group"}
	m := &subscriberMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "uvr_kafka_consumer_lag_messages",
			Help: "High watermark minus the group's committed offset, per assigned partition, updated on every fetch and commit.",
		}, []string{"topic", "partition", "group"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_messages_received_total",
			Help: "Messages handed to the consumer, redeliveries included.",
		}, tg),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_messages_acked_total",
			Help: "Messages acked by the consumer.",
		}, tg),
		nacked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_messages_nacked_total",
			Help: "Messages nacked by the consumer; each nack rewinds its partition and redelivers.",
		}, tg),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_commits_total",
			Help: "Successful offset commit requests.",
		}, tg),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_commit_errors_total",
			Help: "Failed offset commit requests; their messages are redelivered unless a later commit succeeds.",
		}, tg),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_kafka_consumer_generations_total",
			Help: "Consumer group generations joined (one per rebalance).",
		}, tg),
	}
	var err error
	if m.lag, err = metrics.Register(reg, m.lag); err != nil {
		return nil, err
	}
	for _, c := range []**prometheus.CounterVec{&m.received, &m.acked, &m.nacked, &m.commits, &m.commitErrors, &m.rebalances} {
		if *c, err = metrics.Register(reg, *c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
