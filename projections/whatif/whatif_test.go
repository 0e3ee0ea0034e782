package whatif

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }
func dp(s string) *decimal.Decimal {
	v := d(s)
	return &v
}
func day(s string) rawevents.Date {
	t, err := rawevents.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// userCard is the default card with a user layer on top (layer 1): an
// internal price for api.calls from 2026-01-10, and a EUR price for
// storage.gb_days.
func userCard(t *testing.T) *pricing.RateCard {
	t.Helper()
	def, err := pricing.DefaultCards()
	require.NoError(t, err)
	user, err := pricing.Parse("user", []byte(`
cards:
  - provider: internal
    version: "2"
    effective_from: 2026-01-10
    source: test
    as_of: 2026-01-01
    per: 1000
    models:
      - model: api
        prices: {calls: "0.50"}
  - provider: internal-eu
    version: "1"
    effective_from: 2025-01-01
    source: test
    as_of: 2025-01-01
    currency: EUR
    per: 1
    models:
      - model: storage
        prices: {gb_days: "0.10"}
`))
	require.NoError(t, err)
	card, err := pricing.New(def, user)
	require.NoError(t, err)
	return card
}

func TestSimulate(t *testing.T) {
	card := userCard(t)
	tests := []struct {
		name                  string
		in                    Input
		revenue, cost, margin string // simulated; margin "" is nil
		actualMargin          string
		features              map[string][2]string // feature → actual, simulated cost
		assume                []string             // substrings of the assumptions
	}{
		{
			name: "no change: simulated equals actual",
			in: Input{Start: day("2026-01-01"), End: day("2026-01-31"), Currency: "USD", Customers: []string{"c1"},
				Usage:   []Usage{{Day: day("2026-01-05"), CustomerID: "c1", Feature: "api.calls", Quantity: d("1000"), Cost: d("2.5")}},
				Revenue: []Revenue{{CustomerID: "c1", Amount: d("10")}}},
			revenue: "10", cost: "2.5", margin: "75", actualMargin: "75",
			assume: []string{"No plan was given", "No rate card was given"},
		},
		{
			name: "proration over a partial and a whole month",
			in: Input{Start: day("2026-01-15"), End: day("2026-02-28"), Currency: "USD", Customers: []string{"c1"},
				Revenue: []Revenue{{CustomerID: "c1", Amount: d("999")}}, Plan: &Plan{Price: d("310")}},
			// January: 17 of 31 days × 310 = 170; February whole: 310.
			revenue: "480", cost: "0", margin: "100", actualMargin: "100",
			assume: []string{"2026-01: 17 of 31 days", "2026-02: 28 of 28 days", "replaces every actual revenue line"},
		},
		{
			name: "proration that does not terminate rounds half to even to 9 places",
			in:   Input{Start: day("2026-02-01"), End: day("2026-02-10"), Currency: "USD", Customers: []string{"c1"}, Plan: &Plan{Price: d("100")}},
			// 100 × 10 / 28 = 35.714285714285…
			revenue: "35.714285714", cost: "0", margin: "100",
		},
		{
			name: "per-feature quota and overage; a feature without an overage price is free",
			in: Input{Start: day("2026-01-01"), End: day("2026-01-31"), Currency: "USD", Customers: []string{"c1"},
				Usage: []Usage{
					{Day: day("2026-01-02"), CustomerID: "c1", Feature: "api.calls", Quantity: d("700"), Cost: d("1")},
					{Day: day("2026-01-20"), CustomerID: "c1", Feature: "api.calls", Quantity: d("800"), Cost: d("1")},
					{Day: day("2026-01-20"), CustomerID: "c1", Feature: "storage.gb_days", Quantity: d("50"), Cost: d("3")},
				},
				Plan: &Plan{Price: d("20"), Included: map[string]decimal.Decimal{"api.calls": d("1000")}, Overage: map[string]decimal.Decimal{"api.calls": d("0.01")}}},
			// 20 + (1500 − 1000) × 0.01 = 25; cost 5.
			revenue: "25", cost: "5", margin: "80",
			features: map[string][2]string{"api.calls": {"2", "2"}, "storage.gb_days": {"3", "3"}},
			assume:   []string{"Features without an overage price add no revenue"},
		},
		{
			name: "a total quota covers the most expensive units first",
			in: Input{Start: day("2026-01-01"), End: day("2026-01-31"), Currency: "USD", Customers: []string{"c1"},
				Usage: []Usage{
					{Day: day("2026-01-02"), CustomerID: "c1", Feature: "a.units", Quantity: d("800"), Cost: d("0")},
					{Day: day("2026-01-02"), CustomerID: "c1", Feature: "b.units", Quantity: d("700"), Cost: d("0")},
				},
				Plan: &Plan{Price: d("0"), IncludedTotal: dp("1000"), Overage: map[string]decimal.Decimal{"a.units": d("0.02"), "b.units": d("0.01")}}},
			// a's 800 covered, 200 of b's 700 covered: 500 × 0.01.
			revenue: "5", cost: "0", margin: "100",
			assume: []string{"covers the most expensive units first"},
		},
		{
			name: "a partial month prorates the quota like the price",
			in: Input{Start: day("2026-01-01"), End: day("2026-01-15"), Currency: "USD", Customers: []string{"c1"},
				Usage: []Usage{{Day: day("2026-01-03"), CustomerID: "c1", Feature: "api.calls", Quantity: d("200"), Cost: d("10")}},
				Plan:  &Plan{Price: d("62"), IncludedTotal: dp("310"), OverageAll: dp("1")}},
			// 62 × 15/31 = 30; quota 310 × 15/31 = 150; (200 − 150) × 1 = 50.
			revenue: "80", cost: "10", margin: "87.5",
		},
		{
			name: "the user's card reprices from its effective day, in its currency only",
			in: Input{Start: day("2026-01-01"), End: day("2026-01-31"), Currency: "USD", Customers: []string{"c1"}, Card: card, UserLayer: 1,
				Usage: []Usage{
					{Day: day("2026-01-05"), CustomerID: "c1", Feature: "api.calls", Quantity: d("1000"), Cost: d("7")},              // before the card: kept
					{Day: day("2026-01-12"), CustomerID: "c1", Feature: "api.calls", Quantity: d("3001"), Cost: d("7")},              // 3001 × 0.0005 = 1.5005
					{Day: day("2026-01-12"), CustomerID: "c1", Feature: "gpt-4o.input_tokens", Quantity: d("1000000"), Cost: d("9")}, // the default card's price: kept
					{Day: day("2026-01-12"), CustomerID: "c1", Feature: "storage.gb_days", Quantity: d("10"), Cost: d("4")},          // EUR: kept
				},
				Revenue: []Revenue{{CustomerID: "c1", Amount: d("100")}}},
			revenue: "100", cost: "21.5005", margin: "78.4995", actualMargin: "73",
			features: map[string][2]string{"api.calls": {"14", "8.5005"}, "gpt-4o.input_tokens": {"9", "9"}, "storage.gb_days": {"4", "4"}},
			assume:   []string{"1 customer-days of a feature were repriced; the other 3 keep their actual cost", "storage.gb_days (EUR)"},
		},
		{
			name: "every customer is charged the plan",
			in: Input{Start: day("2026-03-01"), End: day("2026-03-31"), Currency: "USD", Customers: []string{"c1", "c2", "c3"},
				Usage: []Usage{
					{Day: day("2026-03-02"), CustomerID: "c1", Feature: "api.calls", Quantity: d("150"), Cost: d("1")},
					{Day: day("2026-03-02"), CustomerID: "c2", Feature: "api.calls", Quantity: d("50"), Cost: d("1")},
				},
				Revenue: []Revenue{{CustomerID: "c1", Amount: d("5")}, {CustomerID: "c3", Amount: d("5")}},
				Plan:    &Plan{Price: d("9.99"), Included: map[string]decimal.Decimal{"api.calls": d("100")}, OverageAll: dp("0.1")}},
			// 3 × 9.99 + c1's 50 over × 0.1; c2 stays under its own quota.
			revenue: "34.97", cost: "2", margin: "94.2808", actualMargin: "80",
			assume: []string{"3 customers", "each of the 3 simulated customers"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Simulate(t.Context(), tt.in)
			require.NoError(t, err)
			assert.True(t, res.Simulated.Revenue.Equal(d(tt.revenue)), "revenue %s, want %s", res.Simulated.Revenue, tt.revenue)
			assert.True(t, res.Simulated.Cost.Equal(d(tt.cost)), "cost %s, want %s", res.Simulated.Cost, tt.cost)
			assert.True(t, res.Simulated.Profit.Equal(d(tt.revenue).Sub(d(tt.cost))))
			checkMargin(t, "simulated", res.Simulated.Margin, tt.margin)
			if tt.actualMargin != "" {
				checkMargin(t, "actual", res.Actual.Margin, tt.actualMargin)
			}
			assert.True(t, res.Delta.Revenue.Equal(res.Simulated.Revenue.Sub(res.Actual.Revenue)))
			assert.True(t, res.Delta.Cost.Equal(res.Simulated.Cost.Sub(res.Actual.Cost)))
			for _, f := range res.ByFeature {
				if want, ok := tt.features[f.Feature]; ok {
					assert.True(t, f.ActualCost.Equal(d(want[0])), "%s actual %s, want %s", f.Feature, f.ActualCost, want[0])
					assert.True(t, f.SimulatedCost.Equal(d(want[1])), "%s simulated %s, want %s", f.Feature, f.SimulatedCost, want[1])
				}
			}
			all := ""
			for _, a := range res.Assumptions {
				all += a + "\n"
			}
			for _, want := range tt.assume {
				assert.Contains(t, all, want)
			}
		})
	}
}

func checkMargin(t *testing.T, name string, got *decimal.Decimal, want string) {
	t.Helper()
	if want == "" {
		assert.Nil(t, got, name)
		return
	}
	require.NotNil(t, got, name)
	assert.True(t, got.Equal(d(want)), "%s margin %s, want %s", name, got, want)
}

func TestSimulateRejects(t *testing.T) {
	for name, tt := range map[string]struct {
		in   Input
		want string
	}{
		"end before start": {Input{Start: day("2026-02-01"), End: day("2026-01-01")}, "before start_date"},
		"over 366 days":    {Input{Start: day("2025-01-01"), End: day("2026-01-02")}, "367 days, at most 366"},
		"negative price":   {Input{Start: day("2026-01-01"), End: day("2026-01-01"), Plan: &Plan{Price: d("-1")}}, "plan.price"},
		"negative overage": {Input{Start: day("2026-01-01"), End: day("2026-01-01"), Plan: &Plan{Overage: map[string]decimal.Decimal{"x.y": d("-1")}}}, "plan.overage_price.x.y"},
		"both quotas": {Input{Start: day("2026-01-01"), End: day("2026-01-01"),
			Plan: &Plan{IncludedTotal: dp("1"), Included: map[string]decimal.Decimal{"x.y": d("1")}}}, "not both"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Simulate(t.Context(), tt.in)
			require.ErrorIs(t, err, ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err := Simulate(t.Context(), Input{Start: day("2025-01-01"), End: day("2025-12-31")}) // 365 days
	require.NoError(t, err)
}

// A simulation whose client went away stops instead of finishing work
// nobody reads.
func TestSimulateStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	usage := make([]Usage, 10_000)
	for i := range usage {
		usage[i] = Usage{Day: day("2026-01-01"), CustomerID: "c", Feature: "f", Quantity: d("1"), Cost: d("1")}
	}
	_, err := Simulate(ctx, Input{Start: day("2026-01-01"), End: day("2026-01-31"), Currency: "USD", Usage: usage,
		Customers: []string{"c"}, Plan: &Plan{Price: d("1")}})
	require.ErrorIs(t, err, context.Canceled)
}
