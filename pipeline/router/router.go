// Package router builds uvr's one Watermill router, with the middleware stack every consumer
// shares: a handler error is either permanent (the message is parked on the poison topic) or
// transient (retried with backoff, then nacked so the broker redelivers it). No message is
// ever dropped.
package router

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultRetryMax         = 5
	DefaultRetryInitial     = 100 * time.Millisecond
	DefaultRetryMaxInterval = 10 * time.Second
	DefaultCloseTimeout     = 30 * time.Second
)

// NoRetry as Config.RetryMax nacks a transient failure at once.
const NoRetry = -1

// Metadata that the poison topic's messages carry besides their original metadata (Watermill's
// keys, so Watermill tooling reads them).
const (
	ReasonMetadata     = middleware.ReasonForPoisonedKey  // the handler's error
	TopicMetadata      = middleware.PoisonedTopicKey      // the topic the message came from
	HandlerMetadata    = middleware.PoisonedHandlerKey    // the handler that failed
	SubscriberMetadata = middleware.PoisonedSubscriberKey // the subscriber's name in the router
	// Set by uvr (annotate): the error's class (ReasonClass), where the message was read
	// (partition and offset in the original topic; the poison topic's consumer reads its own
	// position under kafka.PartitionMetadata) and when it was set aside (RFC 3339, UTC).
	ReasonClassMetadata = "reason_class_poisoned"
	PartitionMetadata   = "partition_poisoned"
	OffsetMetadata      = "offset_poisoned"
	TimeMetadata        = "time_poisoned"
)

// Config configures New.
type Config struct {
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics

	// PoisonPublisher and PoisonTopic receive messages whose handler failed permanently.
	// Required: without them a permanent failure could only block or drop.
	PoisonPublisher message.Publisher
	PoisonTopic     string

	// Retries of a transient failure, with exponential backoff from RetryInitial (doubling,
	// ±25% jitter) up to RetryMaxInterval. After the last one the message is nacked.
	RetryMax         int
	RetryInitial     time.Duration
	RetryMaxInterval time.Duration

	// CloseTimeout bounds how long Close waits for running handlers.
	CloseTimeout time.Duration
}

// Validate reports every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.PoisonPublisher == nil {
		errs = append(errs, errors.New("poison publisher is required"))
	}
	if c.PoisonTopic == "" {
		errs = append(errs, errors.New("poison topic is required"))
	}
	if c.RetryMax < 0 && c.RetryMax != NoRetry {
		errs = append(errs, fmt.Errorf("retry max must be ≥ 0 or NoRetry, got %d", c.RetryMax))
	}
	for name, d := range map[string]time.Duration{
		"retry initial": c.RetryInitial, "retry max interval": c.RetryMaxInterval, "close timeout": c.CloseTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be ≥ 0, got %s", name, d))
		}
	}
	if c.RetryInitial > 0 && c.RetryMaxInterval > 0 && c.RetryInitial > c.RetryMaxInterval {
		errs = append(errs, fmt.Errorf("retry initial (%s) exceeds retry max interval (%s)", c.RetryInitial, c.RetryMaxInterval))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	switch c.RetryMax {
	case 0:
		c.RetryMax = DefaultRetryMax
	case NoRetry:
		c.RetryMax = 0
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = max(DefaultRetryMaxInterval, c.RetryInitial)
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "router")
	return c
}

// New returns a router with uvr's middleware stack; add handlers and Run it.
//
// The middlewares, outermost first (a message passes them in this order, its error comes back
// through them in reverse):
//
//  1. Poison queue, for permanent errors only. Outermost, so that it sees the verdict after
//     retries: a permanent error arrives here at once (Retry does not retry it), a transient
//     one after its retries, and is passed through to be nacked. Its own publish failure is
//     returned too, so a message that cannot be parked is nacked and redelivered, not lost.
//     Right inside it, annotate records on a permanent error its class, the message's
//     position in its topic and the time, as metadata the dead letter carries.
//  2. Retry with exponential backoff, skipping permanent errors (ShouldRetry): retrying cannot
//     fix them and would only delay the partition behind them.
//  3. Error metrics: inside Retry, so every failed attempt is counted, with its kind.
//  4. Recoverer, innermost, right around the handler: a panic becomes an error and takes the
//     transient path like any unclassified error (retried, then nacked and redelivered). A
//     panic is a bug whose trigger we do not know; parking the message would hide it, while a
//     stuck partition shows in the lag metric and resumes by itself once the fix is deployed.
func New(cfg Config) (*message.Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	wmLogger := watermill.NewSlogLogger(cfg.Logger)

	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, wmLogger)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}

	poison, err := middleware.PoisonQueueWithFilter(
		&poisonPublisher{pub: cfg.PoisonPublisher, log: cfg.Logger, poisoned: m.poisoned},
		cfg.PoisonTopic,
		IsPermanent,
	)
	if err != nil {
		return nil, fmt.Errorf("router: poison queue: %w", err)
	}

	retry := middleware.Retry{
		MaxRetries:          cfg.RetryMax,
		InitialInterval:     cfg.RetryInitial,
		MaxInterval:         cfg.RetryMaxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.25,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
		// A handler may replace its message's context (a timeout, say); each attempt starts
		// from the original (watermill#467).
		ResetContextOnRetry: true,
		// A retried attempt is a warning; the final outcome is logged once, by the router
		// (nack) or by the poison publisher.
		Logger: watermill.NewSlogLoggerWithLevelMapping(cfg.Logger, map[slog.Level]slog.Level{slog.LevelError: slog.LevelWarn}),
	}

	r.AddMiddleware(
		poison,
		annotate(time.Now),
		retry.Middleware,
		m.countErrors,
		middleware.Recoverer,
	)
	return r, nil
}

// poisonPublisher counts and logs each message parked on the poison topic, once it is there.
type poisonPublisher struct {
	pub      message.Publisher
	log      *slog.Logger
	poisoned *prometheus.CounterVec
}

func (p *poisonPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.pub.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, msg := range msgs {
		handler := message.HandlerNameFromCtx(msg.Context())
		p.poisoned.WithLabelValues(handler, msg.Metadata.Get(ReasonClassMetadata)).Inc()
		p.log.Error("message sent to the poison topic",
			"message_uuid", msg.UUID,
			"handler", handler,
			"reason_class", msg.Metadata.Get(ReasonClassMetadata),
			"topic", msg.Metadata.Get(TopicMetadata),
			"partition", msg.Metadata.Get(PartitionMetadata),
			"offset", msg.Metadata.Get(OffsetMetadata),
			"poison_topic", topic,
			"error", msg.Metadata.Get(ReasonMetadata))
	}
	return nil
}

func (p *poisonPublisher) Close() error { return nil } // the caller owns the publisher

// annotate adds to a message that failed permanently what its dead letter must tell besides
// Watermill's reason and topic: the reason's class, the message's partition and offset in
// its topic (kafka.PartitionMetadata and kafka.OffsetMetadata as the subscriber set them)
// and the time.
func annotate(now func() time.Time) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			produced, err := h(msg)
			if IsPermanent(err) {
				msg.Metadata.Set(ReasonClassMetadata, ReasonClass(err))
				msg.Metadata.Set(PartitionMetadata, msg.Metadata.Get(kafka.PartitionMetadata))
				msg.Metadata.Set(OffsetMetadata, msg.Metadata.Get(kafka.OffsetMetadata))
				msg.Metadata.Set(TimeMetadata, now().UTC().Format(time.RFC3339Nano))
			}
			return produced, err
		}
	}
}
