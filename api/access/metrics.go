package access

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of uvr_auth_attempts_total: bounded sets.
const (
	methodNone     = "none"
	methodPassword = "password"
	methodToken    = "token"
	methodAPIKey   = "api_key"

	resultOK             = "ok"
	resultMissing        = "missing"
	resultBadCredentials = "bad_credentials"
	resultExpired        = "expired"
	resultInactive       = "inactive"
	resultUnavailable    = "unavailable"
)

type metrics struct {
	attempts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_auth_attempts_total",
			Help: "Authentication attempts by method (password, token, api_key, none) and result.",
		}, []string{"method", "result"}),
	}
	if reg != nil {
		if err := reg.Register(m.attempts); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, fmt.Errorf("register auth metrics: %w", err)
			}
			m.attempts = already.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return m, nil
}

func (m *metrics) attempt(method, result string) {
	m.attempts.WithLabelValues(method, result).Inc()
}
