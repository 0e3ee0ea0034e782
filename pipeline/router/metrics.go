package router

import (
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	pipelinemetrics "github.com/uvrhq/uvr/pipeline/metrics"
)

// Error kinds of uvr_pipeline_handler_errors_total.
const (
	kindPermanent = "permanent"
	kindTransient = "transient"
	kindPanic     = "panic"
)

// Labels are handler names (fixed in code), error kinds and reason classes: bounded.
type metrics struct {
	poisoned      *prometheus.CounterVec
	handlerErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_deadletters_total",
			Help: "Messages set aside on the poison (dead-letter) topic after a permanent error, by projection (handler) and reason class.",
		}, []string{"projection", "reason_class"}),
		handlerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_pipeline_handler_errors_total",
			Help: "Failed handler attempts (retries included), by kind: permanent, transient or panic.",
		}, []string{"handler", "kind"}),
	}
	var err error
	if m.poisoned, err = pipelinemetrics.Register(reg, m.poisoned); err != nil {
		return nil, err
	}
	if m.handlerErrors, err = pipelinemetrics.Register(reg, m.handlerErrors); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) countErrors(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err != nil {
			m.handlerErrors.WithLabelValues(message.HandlerNameFromCtx(msg.Context()), errorKind(err)).Inc()
		}
		return produced, err
	}
}

func errorKind(err error) string {
	var p middleware.RecoveredPanicError
	switch {
	case IsPermanent(err):
		return kindPermanent
	case errors.As(err, &p):
		return kindPanic
	default:
		return kindTransient
	}
}
