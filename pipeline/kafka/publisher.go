package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("kafka: closed")

// Publisher publishes Watermill messages to Kafka synchronously: Publish returns once the
// broker acknowledged every message with acks=all. It is safe for concurrent use, and
// concurrent Publish calls share produce batches.
type Publisher struct {
	cfg       PublisherConfig
	log       *slog.Logger
	metrics   *publisherMetrics
	transport *kafkago.Transport
	writer    *kafkago.Writer
	marshaler Marshaler

	ensured sync.Map // topic → struct{}, topics AutoCreate already ensured

	closeOnce sync.Once
	closing   chan struct{}
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher validates cfg and builds a Publisher. It does not contact the brokers.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka publisher config: %w", err)
	}
	cfg = cfg.withDefaults()
	metrics, err := newPublisherMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	log := cfg.Logger.With("client", "publisher")
	transport := cfg.Security.Transport(&kafkago.Transport{MetadataTTL: cfg.MetadataTTL, ClientID: "uvr"})
	p := &Publisher{
		cfg:       cfg,
		log:       log,
		metrics:   metrics,
		transport: transport,
		closing:   make(chan struct{}),
		writer: &kafkago.Writer{
			Addr: kafkago.TCP(cfg.Brokers...),
			// No Topic: each record carries its own, so one writer serves every topic.
			Balancer:     &kafkago.Hash{}, // by key; nil keys go round-robin
			RequiredAcks: kafkago.RequireAll,
			// Events are JSON with repetitive keys: lz4 shrinks a batch several times for a
			// small CPU cost, and the broker stores the batch as it arrives.
			Compression:  kafkago.Lz4,
			BatchSize:    cfg.BatchSize,
			BatchBytes:   cfg.BatchBytes,
			BatchTimeout: cfg.BatchTimeout,
			WriteTimeout: cfg.WriteTimeout,
			Transport:    transport,
			ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
				log.Warn("kafka-go writer: " + fmt.Sprintf(format, args...))
			}),
		},
	}
	return p, nil
}

// Publish writes msgs to topic and waits for the broker's acknowledgement of all of them.
//
// The first message's context bounds the call (together with PublishTimeout): Watermill's
// Publish has no context argument of its own. Unknown-topic, leader-election and connection
// errors are retried with backoff until then; only the messages that failed are retried, so a
// retry can duplicate nothing but a message whose acknowledgement was lost.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	if topic == "" {
		return errors.New("kafka publish: topic is required")
	}
	if len(msgs) == 0 {
		return nil
	}

	ctx, cancel := context.WithTimeout(msgs[0].Context(), p.cfg.PublishTimeout)
	defer cancel()

	start := time.Now()
	err := p.publish(ctx, topic, msgs)
	p.metrics.duration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.errors.WithLabelValues(topic).Inc()
		return fmt.Errorf("kafka publish %d messages to %s: %w", len(msgs), topic, err)
	}
	p.metrics.published.WithLabelValues(topic).Add(float64(len(msgs)))
	return nil
}

func (p *Publisher) publish(ctx context.Context, topic string, msgs []*message.Message) error {
	if err := p.autoCreate(ctx, topic); err != nil {
		return err
	}
	records := make([]kafkago.Message, len(msgs))
	for i, msg := range msgs {
		rec, err := p.marshaler.Marshal(topic, msg)
		if err != nil {
			return err
		}
		records[i] = rec
	}

	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.writer.WriteMessages(ctx, records...)
		if err == nil {
			return nil
		}
		failed, retry := retriableRecords(err, records)
		if !retry {
			return err
		}
		p.log.Debug("retrying publish", "topic", topic, "messages", len(failed), "attempt", attempt, "error", err)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(err, ctx.Err())
		case <-p.closing:
			timer.Stop()
			return errors.Join(err, ErrClosed)
		case <-timer.C:
		}
		backoff = min(2*backoff, time.Second)
		records = failed
	}
}

// retriableRecords returns the records to write again, and false if err is not worth a retry.
// A WriteErrors has one entry per record: only the failed ones are returned.
func retriableRecords(err error, records []kafkago.Message) ([]kafkago.Message, bool) {
	var werrs kafkago.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(records) {
		return records, IsRetriable(err)
	}
	var failed []kafkago.Message
	for i, e := range werrs {
		if e == nil {
			continue
		}
		if !IsRetriable(e) {
			return nil, false
		}
		failed = append(failed, records[i])
	}
	return failed, len(failed) > 0
}

// isRetriable is true for errors that go away by themselves: a topic that another client just
// created and the writer's metadata does not list yet, leader elections, a restarting broker.
// IsRetriable reports whether err is a broker or connection error that a later attempt can
// get past: a broker starting, restarting or electing a leader.
func IsRetriable(err error) bool {
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

func (p *Publisher) autoCreate(ctx context.Context, topic string) error {
	if p.cfg.AutoCreate == nil {
		return nil
	}
	if _, ok := p.ensured.Load(topic); ok {
		return nil
	}
	spec := *p.cfg.AutoCreate
	spec.Name = topic
	// Through the writer's own transport: creating a topic refreshes its metadata cache, so
	// the write that follows does not hit "Unknown Topic Or Partition".
	client := &kafkago.Client{Addr: p.writer.Addr, Transport: p.transport}
	if err := ensureTopics(ctx, client, []TopicSpec{spec}); err != nil {
		return err
	}
	p.ensured.Store(topic, struct{}{})
	return nil
}

// Close flushes pending batches and releases connections. Publish fails with ErrClosed after.
func (p *Publisher) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		if cerr := p.writer.Close(); cerr != nil {
			err = fmt.Errorf("close kafka writer: %w", cerr)
		}
		p.transport.CloseIdleConnections()
	})
	return err
}
