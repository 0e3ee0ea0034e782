package insightstest_test

import (
	"testing"

	"github.com/uvrhq/uvr/projections/insights/insightstest"
)

// The in-memory store honours the contracts the ClickHouse one is tested
// against (projections/insights/chinsights), so tests using it hold there.
func TestMemoryStoreContract(t *testing.T) {
	insightstest.StoreContract(t, t.Context(), &insightstest.Store{})
	insightstest.DeliveryLogContract(t, t.Context(), &insightstest.Store{})
}
