package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

const (
	inTopic     = "events"
	poisonTopic = "events-poison"
	handlerName = "projector"
)

// harness runs a router over an in-memory pub/sub: the middleware stack does not depend on
// the transport (router_kafka_test.go runs it over Kafka).
type harness struct {
	pubsub *gochannel.GoChannel
	reg    *prometheus.Registry
	poison <-chan *message.Message

	mu    sync.Mutex
	calls []string // UUID of each handler attempt
}

func startRouter(t *testing.T, cfg router.Config, handle func(attempt int, msg *message.Message) error) *harness {
	t.Helper()
	h := &harness{
		pubsub: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}),
		reg:    prometheus.NewRegistry(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	h.poison, err = h.pubsub.Subscribe(ctx, poisonTopic)
	require.NoError(t, err)

	cfg.PoisonPublisher, cfg.PoisonTopic, cfg.Registerer = h.pubsub, poisonTopic, h.reg
	r, err := router.New(cfg)
	require.NoError(t, err)
	r.AddConsumerHandler(handlerName, inTopic, h.pubsub, func(msg *message.Message) error {
		h.mu.Lock()
		h.calls = append(h.calls, msg.UUID)
		attempt := len(h.calls)
		h.mu.Unlock()
		return handle(attempt, msg)
	})

	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, r.Close())
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, h.pubsub.Close())
	})
	<-r.Running()
	return h
}

func (h *harness) attempts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *harness) publish(t *testing.T, payload string) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
	msg.Metadata.Set("partition_key", "customer-7")
	msg.Metadata.Set(kafka.PartitionMetadata, "4") // as the Kafka subscriber sets them
	msg.Metadata.Set(kafka.OffsetMetadata, "1234")
	require.NoError(t, h.pubsub.Publish(inTopic, msg))
	return msg
}

func (h *harness) handlerErrors(kind string) float64 {
	return counterValue(h.reg, "uvr_pipeline_handler_errors_total", map[string]string{"handler": handlerName, "kind": kind})
}

func (h *harness) poisoned() float64 {
	return counterValue(h.reg, "uvr_deadletters_total", map[string]string{"projection": handlerName, "reason_class": router.ClassInvalid})
}

var fast = router.Config{RetryMax: 3, RetryInitial: time.Millisecond, RetryMaxInterval: 5 * time.Millisecond}

func TestPermanentErrorGoesToPoisonTopic(t *testing.T) {
	h := startRouter(t, fast, func(int, *message.Message) error {
		// Wrapped on the way out: still permanent.
		return fmt.Errorf("project usage event: %w", router.Permanent(errors.New("unknown event type \"usage.v9\"")))
	})
	sent := h.publish(t, `{"type":"usage.v9"}`)

	select {
	case got := <-h.poison:
		assert.Equal(t, sent.UUID, got.UUID)
		assert.Equal(t, sent.Payload, got.Payload, "original payload")
		assert.Equal(t, "customer-7", got.Metadata.Get("partition_key"), "original metadata")
		assert.Contains(t, got.Metadata.Get(router.ReasonMetadata), `unknown event type "usage.v9"`)
		assert.Equal(t, handlerName, got.Metadata.Get(router.HandlerMetadata))
		assert.Equal(t, inTopic, got.Metadata.Get(router.TopicMetadata))
		assert.Equal(t, router.ClassInvalid, got.Metadata.Get(router.ReasonClassMetadata))
		assert.Equal(t, "4", got.Metadata.Get(router.PartitionMetadata), "the position it was read at")
		assert.Equal(t, "1234", got.Metadata.Get(router.OffsetMetadata))
		at, err := time.Parse(time.RFC3339Nano, got.Metadata.Get(router.TimeMetadata))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), at, time.Minute)
		got.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on the poison topic")
	}
	require.Eventually(t, func() bool { return h.poisoned() == 1 }, 5*time.Second, time.Millisecond)
	assert.Len(t, h.attempts(), 1, "a permanent error is not retried")
	assert.Equal(t, 1.0, h.handlerErrors("permanent"))
}

func TestTransientErrorIsRetriedThenSucceeds(t *testing.T) {
	succeeded := make(chan struct{})
	h := startRouter(t, fast, func(attempt int, _ *message.Message) error {
		if attempt <= 2 {
			return errors.New("clickhouse: connection refused")
		}
		close(succeeded)
		return nil
	})
	sent := h.publish(t, "x")

	select {
	case <-succeeded:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never succeeded")
	}
	assert.Equal(t, []string{sent.UUID, sent.UUID, sent.UUID}, h.attempts())
	assert.Equal(t, 2.0, h.handlerErrors("transient"))
	assertNoPoison(t, h)
}

// When retries run out, a transient error nacks the message: it comes back (here through
// the in-memory pub/sub's redelivery) and is eventually processed. Never poisoned, never lost.
func TestTransientErrorAfterRetriesIsNackedAndRedelivered(t *testing.T) {
	cfg := fast
	cfg.RetryMax = 1 // two attempts per delivery
	succeeded := make(chan struct{})
	h := startRouter(t, cfg, func(attempt int, _ *message.Message) error {
		if attempt <= 4 { // two whole deliveries fail
			return errors.New("clickhouse: timeout")
		}
		close(succeeded)
		return nil
	})
	sent := h.publish(t, "x")

	select {
	case <-succeeded:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never succeeded")
	}
	assert.Equal(t, []string{sent.UUID, sent.UUID, sent.UUID, sent.UUID, sent.UUID}, h.attempts())
	assert.Equal(t, 4.0, h.handlerErrors("transient"))
	assertNoPoison(t, h)
}

func TestPanicIsRecovered(t *testing.T) {
	succeeded := make(chan struct{})
	h := startRouter(t, fast, func(attempt int, _ *message.Message) error {
		if attempt == 1 {
			var m map[string]int
			m["boom"]++ // nil map write: a bug, not a crash of the process
		}
		close(succeeded)
		return nil
	})
	h.publish(t, "x")

	select {
	case <-succeeded:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never succeeded after the panic")
	}
	assert.Len(t, h.attempts(), 2, "a panic is transient: retried")
	assert.Equal(t, 1.0, h.handlerErrors("panic"))
	assertNoPoison(t, h)
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad payload")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "plain error", err: base, want: false},
		{name: "marked", err: router.Permanent(base), want: true},
		{name: "marked then wrapped", err: fmt.Errorf("handle: %w", router.Permanent(base)), want: true},
		{name: "joined with a transient error", err: errors.Join(errors.New("x"), router.Permanent(base)), want: true},
		{name: "wrapped with %v loses the mark", err: fmt.Errorf("handle: %v", router.Permanent(base)), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, router.IsPermanent(tt.err))
		})
	}
	assert.Nil(t, router.Permanent(nil))
	assert.ErrorIs(t, router.Permanent(base), base, "the cause stays reachable")
	assert.Equal(t, base.Error(), router.Permanent(base).Error())
}

func TestConfigValidate(t *testing.T) {
	pub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	tests := []struct {
		name    string
		cfg     router.Config
		wantErr []string
	}{
		{name: "poison publisher and topic suffice", cfg: router.Config{PoisonPublisher: pub, PoisonTopic: "p"}},
		{name: "no retries", cfg: router.Config{PoisonPublisher: pub, PoisonTopic: "p", RetryMax: router.NoRetry}},
		{name: "nothing", cfg: router.Config{}, wantErr: []string{"poison publisher is required", "poison topic is required"}},
		{
			name:    "bad retry settings",
			cfg:     router.Config{PoisonPublisher: pub, PoisonTopic: "p", RetryMax: -5, RetryInitial: time.Minute, RetryMaxInterval: time.Second},
			wantErr: []string{"retry max", "exceeds retry max interval"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

// assertNoPoison checks that nothing was poisoned. The in-memory publish is synchronous, so a
// poisoned message would already be waiting.
func assertNoPoison(t *testing.T, h *harness) {
	t.Helper()
	select {
	case msg := <-h.poison:
		t.Fatalf("message %s was poisoned: %s", msg.UUID, msg.Metadata.Get(router.ReasonMetadata))
	default:
	}
	assert.Equal(t, 0.0, h.poisoned())
}

func counterValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	families, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
