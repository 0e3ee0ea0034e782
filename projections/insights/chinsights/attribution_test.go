package chinsights

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/pricing"
)

// planMapping is a fixed revenue mapping without FX.
type planMapping map[string]string

func (planMapping) FX(context.Context) (*pricing.FX, error)                   { return nil, nil }
func (m planMapping) PlanFeatures(context.Context) (map[string]string, error) { return m, nil }

// FeatureDays carries the revenue the mapping attributes (accrual, from
// daily_revenue_lines): a mapped feature is Attributed, with its revenue per
// day; an unmapped one is not.
func TestFeatureDaysCarryAttributedRevenue(t *testing.T) {
	ctx, conn := openDB(t)
	d := func(day int) time.Time { return time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC) }
	dec := decimal.RequireFromString
	require.NoError(t, chstore.InsertColumns(ctx, conn, "daily_usage",
		[]string{"day", "customer_source", "customer_external_id", "feature", "currency", "quantity", "events", "cost", "computed_at"},
		[]any{[]time.Time{d(10), d(10)}, []string{"stripe", "stripe"}, []string{"cus_a", "cus_a"}, []string{"gpt-4o.input_tokens", "api.calls"},
			[]string{"USD", "USD"}, []decimal.Decimal{dec("10"), dec("5")}, []uint64{1, 1}, []decimal.Decimal{dec("4"), dec("1")}, []uint64{1, 1}}))
	require.NoError(t, chstore.InsertColumns(ctx, conn, "daily_revenue_lines",
		[]string{"day", "customer_source", "customer_external_id", "currency", "plan", "cash", "accrual", "refunds", "events", "computed_at"},
		[]any{[]time.Time{d(10), d(11), d(10)}, []string{"stripe", "stripe", "stripe"}, []string{"cus_a", "cus_a", "cus_a"},
			[]string{"USD", "USD", "USD"}, []string{"pro", "pro", "other"}, []decimal.Decimal{dec("30"), dec("0"), dec("9")},
			[]decimal.Decimal{dec("1"), dec("1.5"), dec("9")}, []decimal.Decimal{dec("0"), dec("0"), dec("0")}, []uint64{1, 1, 1}, []uint64{1, 1, 1}}))
	analytics, err := aggregates.NewAnalytics(conn, nil, planMapping{"pro": "gpt-4o.input_tokens"})
	require.NoError(t, err)
	src, err := NewSource(SourceConfig{Conn: conn, Customers: directory{snap: map[customers.Ref]string{}}, ReportingCurrency: "USD", Attribution: analytics})
	require.NoError(t, err)

	features, err := src.FeatureDays(ctx, insights.Window{Start: d(1), End: d(20)})
	require.NoError(t, err)
	require.Len(t, features, 2)
	assert.Equal(t, "api.calls", features[0].Feature)
	assert.False(t, features[0].Attributed, "no plan maps to it")
	tokens := features[1]
	assert.Equal(t, "gpt-4o.input_tokens", tokens.Feature)
	assert.True(t, tokens.Attributed)
	rev, cost := decimal.Zero, decimal.Zero
	for _, fd := range tokens.Days {
		rev, cost = rev.Add(fd.AttributedRevenue), cost.Add(fd.Cost)
	}
	assert.Equal(t, "2.5", rev.String(), "accrual of plan pro only")
	assert.Equal(t, "4", cost.String())
}
