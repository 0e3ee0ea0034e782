package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/metrics"
)

func TestRegisterSharesExistingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "uvr_test_total", Help: "test"}
	first, err := metrics.Register(reg, prometheus.NewCounter(opts))
	require.NoError(t, err)
	second, err := metrics.Register(reg, prometheus.NewCounter(opts))
	require.NoError(t, err)
	first.Inc()
	second.Inc()
	assert.Same(t, first, second, "the second registration returns the first collector")

	// Same name, other type: a real conflict is an error.
	_, err = metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "uvr_test_total", Help: "test"}))
	assert.Error(t, err)

	// nil registerer: nothing registered, the collector still works.
	c, err := metrics.Register[prometheus.Counter](nil, prometheus.NewCounter(opts))
	require.NoError(t, err)
	c.Inc()
}
