package insights_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/insightstest"
)

// demoNow ends the demo window: Seed 1, 200 customers, the 90 days
// 2026-08-29 … 2026-11-26.
var demoNow = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

// demoData generates the default demo data set (Seed 1) and aggregates it, in
// the test, into the insights input: per customer and UTC day the usage
// (quantity and cost) per feature, the cost, the LLM tokens as metered usage
// (the plans' quota is in tokens), and the accrual revenue: an invoice spread
// evenly over the days of its service period (cents, the remainder on the
// first days), other amounts (charges, refunds, credit notes) on their day.
var demoData = sync.OnceValues(func() ([]insights.CustomerSeries, error) {
	cfg := demo.Config{Seed: 1, Now: demoNow}
	profiles, err := demo.Profiles(cfg)
	if err != nil {
		return nil, err
	}
	tier, quota := map[string]int{}, map[string]decimal.Decimal{}
	for i, p := range demo.Plans() {
		tier[p.Name], quota[p.Name] = i, decimal.NewFromInt(p.IncludedTokens)
	}
	days := map[string]map[time.Time]*insights.CustomerDay{}
	dayOf := func(id string, t time.Time) *insights.CustomerDay {
		if days[id] == nil {
			days[id] = map[time.Time]*insights.CustomerDay{}
		}
		d := insights.Day(t)
		cd := days[id][d]
		if cd == nil {
			cd = &insights.CustomerDay{Day: d, Usage: map[string]insights.Usage{}}
			days[id][d] = cd
		}
		return cd
	}
	err = demo.Generate(context.Background(), cfg, func(ev event.Event) error {
		id := ev.Data.Customer.ExternalID
		switch {
		case ev.Type == event.TypeUsage:
			cd := dayOf(id, ev.Time)
			u := cd.Usage[ev.Data.Feature]
			u.Quantity = u.Quantity.Add(*ev.Data.Quantity)
			u.Cost = u.Cost.Add(*ev.Data.Cost)
			cd.Usage[ev.Data.Feature] = u
			cd.Cost = cd.Cost.Add(*ev.Data.Cost)
			if strings.HasSuffix(ev.Data.Feature, "_tokens") {
				cd.MeteredUsage = cd.MeteredUsage.Add(*ev.Data.Quantity)
			}
		case ev.Type != event.TypeRevenue || ev.Data.Amount == nil:
		case ev.Data.Kind == event.KindInvoicePaid && ev.Data.PeriodStart != nil:
			start, end := insights.Day(*ev.Data.PeriodStart), insights.Day(*ev.Data.PeriodEnd)
			n := int64(end.Sub(start) / (24 * time.Hour))
			cents := ev.Data.Amount.Shift(2).IntPart()
			for i := range n {
				share := cents / n
				if i < cents%n {
					share++
				}
				cd := dayOf(id, start.AddDate(0, 0, int(i)))
				cd.Revenue = cd.Revenue.Add(decimal.New(share, -2))
			}
		default:
			cd := dayOf(id, ev.Time)
			cd.Revenue = cd.Revenue.Add(*ev.Data.Amount)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []insights.CustomerSeries
	for _, p := range profiles {
		s := insights.CustomerSeries{
			CustomerID: p.ID, Name: p.Name, Plan: p.Plan, PlanTier: tier[p.Plan], IncludedQuota: quota[p.Plan],
		}
		for _, d := range slices.SortedFunc(maps.Keys(days[p.ID]), time.Time.Compare) {
			s.Days = append(s.Days, *days[p.ID][d])
		}
		out = append(out, s)
	}
	return out, nil
})

// TestDemoData runs the evaluator with the default configuration once a day
// over the last 30 days of the demo, as the scheduler would, and checks that
// every designated customer raises its flag and most normal customers none.
func TestDemoData(t *testing.T) {
	series, err := demoData()
	require.NoError(t, err)
	profiles, err := demo.Profiles(demo.Config{Seed: 1, Now: demoNow})
	require.NoError(t, err)

	store := &insightstest.Store{}
	ev, err := insights.NewEvaluator(insights.EvaluatorConfig{
		Rules: insights.DefaultConfig(), Source: &insightstest.Source{Customers: series}, Store: store,
	})
	require.NoError(t, err)
	last := insights.Day(demoNow)
	for day := last.AddDate(0, 0, -29); !day.After(last); day = day.AddDate(0, 0, 1) {
		_, err := ev.Run(context.Background(), day.Add(6*time.Hour))
		require.NoError(t, err)
	}
	flags := store.Flags()

	ever := map[string][]insights.Flag{}   // every flag raised during the 30 days
	active := map[string][]insights.Flag{} // active after the last run
	for _, f := range flags {
		ever[f.CustomerID] = append(ever[f.CustomerID], f)
		if f.Status.Active() {
			active[f.CustomerID] = append(active[f.CustomerID], f)
		}
	}
	has := func(fs []insights.Flag, k insights.Kind, ok func(insights.Flag) bool) bool {
		return slices.ContainsFunc(fs, func(f insights.Flag) bool { return f.Kind == k && (ok == nil || ok(f)) })
	}

	byScenario := map[demo.Scenario]int{}
	found := map[demo.Scenario]int{}
	normalFlagged := map[insights.Kind][]string{}
	normalAny := 0
	for _, p := range profiles {
		byScenario[p.Scenario]++
		switch p.Scenario {
		case demo.ScenarioUnprofitable:
			ok := has(active[p.ID], insights.KindUnprofitableCustomer, nil)
			assert.True(t, ok, "unprofitable %s (%s) has no unprofitable_customer flag", p.ID, p.Plan)
			if ok {
				found[p.Scenario]++
			}
		case demo.ScenarioSpiking:
			ok := has(ever[p.ID], insights.KindUsageAnomaly, func(f insights.Flag) bool {
				return slices.ContainsFunc(p.SpikeDays, f.Window.Start.Equal) && strings.Contains(f.Title, "spiked")
			})
			assert.True(t, ok, "spiking %s (%s, spikes %v) has no spike anomaly on a spike day", p.ID, p.Plan, p.SpikeDays)
			if ok {
				found[p.Scenario]++
			}
		case demo.ScenarioChurning:
			ok := has(active[p.ID], insights.KindChurnRisk, nil)
			assert.True(t, ok, "churning %s (%s) has no churn_risk flag", p.ID, p.Plan)
			if ok {
				found[p.Scenario]++
			}
		case demo.ScenarioUpsell:
			ok := has(active[p.ID], insights.KindUpsellOpportunity, nil)
			assert.True(t, ok, "upsell %s (%s) has no upsell_opportunity flag", p.ID, p.Plan)
			if ok {
				found[p.Scenario]++
			}
		case demo.ScenarioNormal:
			kinds := map[insights.Kind]bool{}
			for _, f := range ever[p.ID] {
				kinds[f.Kind] = true
			}
			for k := range kinds {
				normalFlagged[k] = append(normalFlagged[k], p.ID)
			}
			if len(kinds) > 0 {
				normalAny++
			}
		}
	}
	t.Logf("designated customers flagged: unprofitable %d/%d, spiking %d/%d, churning %d/%d, upsell %d/%d",
		found[demo.ScenarioUnprofitable], byScenario[demo.ScenarioUnprofitable],
		found[demo.ScenarioSpiking], byScenario[demo.ScenarioSpiking],
		found[demo.ScenarioChurning], byScenario[demo.ScenarioChurning],
		found[demo.ScenarioUpsell], byScenario[demo.ScenarioUpsell])
	var parts []string
	for _, k := range insights.Kinds {
		if ids := normalFlagged[k]; len(ids) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d %v", k, len(ids), ids))
		}
	}
	t.Logf("normal customers with any flag during the 30 days: %d of %d (%s)", normalAny, byScenario[demo.ScenarioNormal], strings.Join(parts, "; "))
	// Most normal customers raise nothing over 30 daily runs: at most 1 in 10.
	assert.LessOrEqual(t, normalAny*10, byScenario[demo.ScenarioNormal], "too many normal customers flagged")

	// No key has two flags, and every flag's id is its key's.
	seen := map[string]bool{}
	for _, f := range flags {
		assert.False(t, seen[f.Key], "two flags for %s", f.Key)
		seen[f.Key] = true
		assert.Equal(t, insights.FlagID(f.Key), f.ID)
	}
}
