package insights

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// asOf is a Friday morning: "yesterday" (1 day ago) is Thursday 2026-11-26,
// and 5 days ago is Sunday 2026-11-22.
var asOf = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func ago(n int) time.Time { return Day(asOf).AddDate(0, 0, -n) }

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// days builds a customer's last n days (n days ago … yesterday); fill sets day
// i (i days ago) and may leave it zero.
func days(id string, n int, fill func(i int, d *CustomerDay)) CustomerSeries {
	s := CustomerSeries{CustomerID: id, Name: "Customer " + id}
	for i := n; i >= 1; i-- {
		d := CustomerDay{Day: ago(i)}
		fill(i, &d)
		s.Days = append(s.Days, d)
	}
	return s
}

// flat is a customer with the same revenue and cost every day of the last n.
func flat(id string, n int, revenue, cost string) CustomerSeries {
	return days(id, n, func(_ int, d *CustomerDay) { d.Revenue, d.Cost = dec(revenue), dec(cost) })
}

func mustEvaluate(t *testing.T, cfg Config, at time.Time, cs []CustomerSeries, fs []FeatureSeries) []Finding {
	t.Helper()
	out, err := Evaluate(cfg, at, cs, fs)
	require.NoError(t, err)
	return out
}

// only returns the findings of kind k.
func only(k Kind, fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Kind == k {
			out = append(out, f)
		}
	}
	return out
}

func TestUnprofitableCustomer(t *testing.T) {
	tests := []struct {
		name     string
		c        CustomerSeries
		severity Severity // "" means no finding
		loss     string
	}{
		{name: "cost three times revenue", c: flat("a", 30, "1", "3"), severity: SeverityCritical, loss: "60"},
		{name: "small loss, small share: info", c: flat("a", 30, "100", "101.50"), severity: SeverityInfo, loss: "45"},
		{name: "absolute loss from 100: warning", c: flat("a", 30, "1000", "1005"), severity: SeverityWarning, loss: "150"},
		{name: "loss from 25 % of revenue: warning", c: flat("a", 30, "10", "13"), severity: SeverityWarning, loss: "90"},
		{name: "absolute loss from 1,000: critical", c: flat("a", 30, "1000", "1040"), severity: SeverityCritical, loss: "1200"},
		{name: "no revenue at all: critical", c: flat("a", 30, "0", "0.50"), severity: SeverityCritical, loss: "15"},
		{name: "refunds make revenue negative", c: days("a", 30, func(i int, d *CustomerDay) {
			d.Revenue, d.Cost = dec("1"), dec("1")
			if i == 3 {
				d.Revenue = dec("-100")
			}
		}), severity: SeverityCritical, loss: "101"},
		// Must not fire.
		{name: "profitable", c: flat("a", 30, "3", "1")},
		{name: "break-even", c: flat("a", 30, "2", "2")},
		{name: "loss below the minimum of 10", c: flat("a", 30, "10", "10.30")},
		{name: "losses older than the window", c: days("a", 60, func(i int, d *CustomerDay) {
			d.Revenue, d.Cost = dec("1"), dec("0.5")
			if i > 30 {
				d.Cost = dec("50")
			}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := only(KindUnprofitableCustomer, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{tt.c}, nil))
			if tt.severity == "" {
				assert.Empty(t, fs)
				return
			}
			require.Len(t, fs, 1)
			f := fs[0]
			assert.Equal(t, tt.severity, f.Severity)
			assert.Equal(t, dec(tt.loss).String(), f.Evidence["loss"])
			assert.Equal(t, "a", f.CustomerID)
			assert.Equal(t, "30d", f.Period)
			assert.Equal(t, Window{Start: ago(30), End: Day(asOf)}, f.Window)
		})
	}
}

func TestUnprofitableCustomerText(t *testing.T) {
	c := days("cus_1", 30, func(i int, d *CustomerDay) {
		d.Revenue, d.Cost = dec("10"), dec("10")
		if i == 1 {
			d.Cost = dec("1214.50")
		}
	})
	c.Name = "Acme Corp"
	fs := only(KindUnprofitableCustomer, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{c}, nil))
	require.Len(t, fs, 1)
	assert.Equal(t, "Acme Corp cost $1,204.50 more than it paid over the last 30 days", fs[0].Title)
	assert.Equal(t, "From 2026-10-28 to 2026-11-26, Acme Corp's usage cost $1,504.50 while it brought $300.00 of revenue: "+
		"a loss of $1,204.50, 401.5% of its revenue. Compare its plan's price with its usage, or look at its costliest features.", fs[0].Description)
	assert.Equal(t, map[string]string{"cost": "1504.5", "revenue": "300", "loss": "1204.5", "loss_percent": "401.5"}, fs[0].Evidence)
}

func TestUnprofitableFeature(t *testing.T) {
	feature := func(attributed bool, revenue, cost string) FeatureSeries {
		s := FeatureSeries{Feature: "gpt-4o.output_tokens", Attributed: attributed}
		for i := 30; i >= 1; i-- {
			s.Days = append(s.Days, FeatureDay{Day: ago(i), Cost: dec(cost), AttributedRevenue: dec(revenue)})
		}
		return s
	}
	tests := []struct {
		name     string
		f        FeatureSeries
		severity Severity
	}{
		{name: "cost three times attributed revenue", f: feature(true, "10", "30"), severity: SeverityCritical},
		{name: "slightly under water", f: feature(true, "100", "101"), severity: SeverityInfo},
		{name: "profitable", f: feature(true, "30", "10")},
		{name: "revenue not attributed: not judged", f: feature(false, "0", "30")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := only(KindUnprofitableFeature, mustEvaluate(t, DefaultConfig(), asOf, nil, []FeatureSeries{tt.f}))
			if tt.severity == "" {
				assert.Empty(t, fs)
				return
			}
			require.Len(t, fs, 1)
			assert.Equal(t, tt.severity, fs[0].Severity)
			assert.Equal(t, "gpt-4o.output_tokens", fs[0].Feature)
			assert.Empty(t, fs[0].CustomerID)
			assert.Contains(t, fs[0].Title, "gpt-4o.output_tokens cost $")
		})
	}
}

func TestMarginErosion(t *testing.T) {
	// periods: revenue and cost a day over the 30 days before, then the last 30.
	periods := func(prevRev, prevCost, rev, cost string) CustomerSeries {
		return days("a", 60, func(i int, d *CustomerDay) {
			if i > 30 {
				d.Revenue, d.Cost = dec(prevRev), dec(prevCost)
			} else {
				d.Revenue, d.Cost = dec(rev), dec(cost)
			}
		})
	}
	tests := []struct {
		name     string
		c        CustomerSeries
		severity Severity
		change   string
	}{
		{name: "80 % to 60 %: warning", c: periods("100", "20", "100", "40"), severity: SeverityWarning, change: "-20"},
		{name: "80 % to 40 %: critical", c: periods("100", "20", "100", "60"), severity: SeverityCritical, change: "-40"},
		{name: "exactly 10 points", c: periods("100", "20", "100", "30"), severity: SeverityWarning, change: "-10"},
		{name: "revenue fell, cost did not", c: periods("100", "20", "50", "20"), severity: SeverityWarning, change: "-20"},
		// Must not fire.
		{name: "5 points", c: periods("100", "20", "100", "25")},
		{name: "margin improved", c: periods("100", "40", "100", "20")},
		{name: "no revenue in the previous period", c: periods("0", "0", "100", "90")},
		{name: "previous revenue below the minimum", c: periods("0.30", "0", "100", "90")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := only(KindMarginErosion, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{tt.c}, nil))
			if tt.severity == "" {
				assert.Empty(t, fs)
				return
			}
			require.Len(t, fs, 1)
			assert.Equal(t, tt.severity, fs[0].Severity)
			assert.Equal(t, tt.change, fs[0].Evidence["change_points"])
		})
	}
}

// usage builds a customer using feature api.calls: level(i) on day i ago.
func usage(level func(i int) string) CustomerSeries {
	return days("a", 60, func(i int, d *CustomerDay) {
		if q := level(i); q != "" {
			d.Usage = map[string]Usage{"api.calls": {Quantity: dec(q), Cost: dec(q).Mul(dec("0.0001"))}}
		}
	})
}

// weekly is 1000 plus a little noise on weekdays and 300 plus noise on
// weekends; the days in override replace it.
func weekly(override map[int]string) func(int) string {
	return func(i int) string {
		if q, ok := override[i]; ok {
			return q
		}
		noise := 7 * ((i * 37) % 11)
		if isWeekend(ago(i)) {
			return fmt.Sprint(300 + noise/3)
		}
		return fmt.Sprint(1000 + noise)
	}
}

func TestUsageAnomaly(t *testing.T) {
	require.True(t, isWeekend(ago(5)) && isWeekend(ago(6)), "5 and 6 days ago are the weekend")
	constant := func(q string, override map[int]string) func(int) string {
		return func(i int) string {
			if v, ok := override[i]; ok {
				return v
			}
			return q
		}
	}
	mix := func(c *Config) { c.UsageAnomaly.MixWeekends = true }
	tests := []struct {
		name     string
		level    func(int) string
		cfg      func(*Config)
		day      int    // days ago of the finding
		dir      string // "spiked" or "dropped"; "" means no finding
		severity Severity
		run      int
	}{
		{name: "ten times the median: critical spike", level: weekly(map[int]string{1: "10500"}), day: 1, dir: "spiked", severity: SeverityCritical, run: 1},
		{name: "three times: spike", level: weekly(map[int]string{2: "3100"}), day: 2, dir: "spiked", severity: SeverityWarning, run: 1},
		{name: "to zero: critical drop", level: weekly(map[int]string{1: "0"}), day: 1, dir: "dropped", severity: SeverityCritical, run: 1},
		{name: "to a fifth: drop", level: weekly(map[int]string{3: "200"}), day: 3, dir: "dropped", severity: SeverityWarning, run: 1},
		{name: "a weekend at weekday level is a weekend spike", level: weekly(map[int]string{5: "1000"}), day: 5, dir: "spiked", severity: SeverityWarning, run: 1},
		{name: "three days in a row: one flag on the first", level: weekly(map[int]string{4: "9000", 3: "9000", 2: "9000"}), day: 4, dir: "spiked", severity: SeverityWarning, run: 3},
		{name: "MAD 0: mean absolute deviation instead", level: constant("1000", map[int]string{7: "1100", 9: "1100", 11: "1100", 2: "5000"}), cfg: mix, day: 2, dir: "spiked", severity: SeverityWarning, run: 1},
		{name: "no spread at all: any large change", level: constant("1000", map[int]string{1: "2500"}), cfg: mix, day: 1, dir: "spiked", severity: SeverityWarning, run: 1},
		// Must not fire.
		{name: "usual weekly pattern", level: weekly(nil)},
		{name: "quiet weekend compared with all days", level: weekly(nil), cfg: mix},
		{name: "a weekend at weekday level, compared with all days", level: weekly(map[int]string{5: "1000"}), cfg: mix},
		{name: "1.5 times: below the change ratio", level: weekly(map[int]string{1: "1500"})},
		{name: "no spread, small change", level: constant("1000", map[int]string{1: "1500"}), cfg: mix},
		{name: "below the minimum volume", level: constant("5", map[int]string{1: "60"})},
		{name: "minimum volume of the feature", level: weekly(map[int]string{1: "10500"}), cfg: func(c *Config) {
			c.UsageAnomaly.MinVolumeByFeature = map[string]decimal.Decimal{"api.calls": dec("20000")}
		}},
		{name: "a weekday down to weekend level is no new low", level: weekly(map[int]string{3: "330"})},
		{name: "idle days are a habit: a zero day is no new low", level: weekly(map[int]string{1: "0", 15: "0"})},
		{name: "spike before the lookback, continuing", level: weekly(map[int]string{9: "9000", 8: "9000", 7: "9000", 6: "9000", 5: "9000", 4: "9000", 3: "9000", 2: "9000", 1: "9000"})},
		{name: "spike older than the lookback", level: weekly(map[int]string{9: "9000"})},
		{name: "no usual level (mostly idle)", level: func(i int) string {
			if i%3 == 0 {
				return "1000"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			require.NoError(t, cfg.Validate())
			fs := only(KindUsageAnomaly, mustEvaluate(t, cfg, asOf, []CustomerSeries{usage(tt.level)}, nil))
			if tt.dir == "" {
				assert.Empty(t, fs)
				return
			}
			require.Len(t, fs, 1, "%+v", fs)
			f := fs[0]
			assert.Contains(t, f.Title, tt.dir)
			assert.Equal(t, tt.severity, f.Severity)
			assert.Equal(t, Window{Start: ago(tt.day), End: ago(tt.day - 1)}, f.Window)
			assert.Equal(t, ago(tt.day).Format(time.DateOnly), f.Period)
			assert.Equal(t, "api.calls", f.Feature)
			assert.Equal(t, fmt.Sprint(tt.run), f.Evidence["consecutive_days"])
			assert.Equal(t, tt.level(tt.day), f.Evidence["quantity"])
		})
	}
}

func TestUsageAnomalyEvidence(t *testing.T) {
	// Weekdays at 1000 but one at 1100 (so MAD is 0 and the mean absolute
	// deviation is used), weekends at 300, and yesterday at 5000.
	level := func(i int) string {
		switch {
		case i == 1:
			return "5000"
		case isWeekend(ago(i)):
			return "300"
		case i == 10:
			return "1100"
		}
		return "1000"
	}
	fs := only(KindUsageAnomaly, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{usage(level)}, nil))
	require.Len(t, fs, 1)
	ev := fs[0].Evidence
	assert.Equal(t, "1000", ev["median"])
	assert.Equal(t, "0", ev["mad"])
	// MeanAD = 100/20 = 5, z = 4000/(1.253314·5).
	assert.Equal(t, floatDecimal(4000/(meanADScale*5)).String(), ev["z_score"])
	assert.Equal(t, "5", ev["ratio"])
	assert.Equal(t, "400", ev["change_percent"])
	assert.Equal(t, "0.5", ev["cost"])
	assert.Equal(t, "20", ev["baseline_days"])
	assert.Equal(t, "Customer a's api.calls usage spiked to 5 times its usual level on 2026-11-26", fs[0].Title)

	// Several features the same day: one finding, on the one furthest out.
	c := usage(level)
	for i := range c.Days {
		q := "100"
		if i == len(c.Days)-1 {
			q = "100000"
		}
		c.Days[i].Usage["gpt-4o.input_tokens"] = Usage{Quantity: dec(q)}
	}
	fs = only(KindUsageAnomaly, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{c}, nil))
	require.Len(t, fs, 1)
	assert.Equal(t, "gpt-4o.input_tokens", fs[0].Feature, "infinite z beats a finite one")
	assert.NotContains(t, fs[0].Evidence, "z_score")
	assert.Equal(t, "2", fs[0].Evidence["features_affected"])
	assert.Contains(t, fs[0].Description, "1 other feature moved the same day")
}

func TestRobustZ(t *testing.T) {
	tests := []struct {
		name          string
		x             float64
		base          []float64
		z, median, md float64
	}{
		{name: "odd", x: 10, base: []float64{1, 2, 3, 4, 5}, z: 0.6745 * 7 / 1, median: 3, md: 1},
		{name: "even", x: 0, base: []float64{2, 4, 6, 8}, z: 0.6745 * -5 / 2, median: 5, md: 2},
		{name: "MAD 0: mean absolute deviation", x: 20, base: []float64{10, 10, 10, 14}, z: 10 / (1.253314 * 1), median: 10, md: 0},
		{name: "constant, above", x: 11, base: []float64{10, 10, 10}, z: math.Inf(1), median: 10},
		{name: "constant, below", x: 9, base: []float64{10, 10, 10}, z: math.Inf(-1), median: 10},
		{name: "at the median", x: 10, base: []float64{10, 10, 10}, z: 0, median: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, m, md := robustZ(tt.x, tt.base)
			assert.InDelta(t, tt.median, m, 1e-12)
			assert.InDelta(t, tt.md, md, 1e-12)
			if math.IsInf(tt.z, 0) {
				assert.Equal(t, tt.z, z)
			} else {
				assert.InDelta(t, tt.z, z, 1e-9)
			}
		})
	}
}

func TestUpsell(t *testing.T) {
	metered := func(id string, tier int, quota, perDay string) CustomerSeries {
		s := days(id, 30, func(_ int, d *CustomerDay) { d.MeteredUsage = dec(perDay) })
		s.Plan, s.PlanTier = []string{"starter", "pro"}[tier], tier
		if quota != "" {
			s.IncludedQuota = dec(quota)
		}
		return s
	}
	// tier is n lowest-tier customers without quota using 1, 2, … n a day.
	tier := func(n int) []CustomerSeries {
		var out []CustomerSeries
		for k := 1; k <= n; k++ {
			out = append(out, metered(fmt.Sprintf("t%02d", k), 0, "", fmt.Sprint(k)))
		}
		return out
	}
	tests := []struct {
		name string
		cs   []CustomerSeries
		want map[string]Severity // customer → severity of its finding
	}{
		{name: "120 % of the quota", cs: []CustomerSeries{metered("a", 0, "1000", "40")}, want: map[string]Severity{"a": SeverityInfo}},
		{name: "240 % of the quota: warning", cs: []CustomerSeries{metered("a", 1, "1000", "80")}, want: map[string]Severity{"a": SeverityWarning}},
		{name: "top decile of the lowest tier", cs: tier(10), want: map[string]Severity{"t10": SeverityInfo}},
		{name: "top decile of 20: two customers", cs: tier(20), want: map[string]Severity{"t20": SeverityInfo, "t19": SeverityInfo}},
		{name: "only the lowest tier counts", cs: append(tier(10), metered("big", 1, "", "500")), want: map[string]Severity{"t10": SeverityInfo}},
		// Must not fire.
		{name: "80 % of the quota", cs: []CustomerSeries{metered("a", 0, "1000", "26.66")}},
		{name: "tier too small for deciles", cs: tier(9)},
		{name: "no quota, alone on its tier", cs: []CustomerSeries{metered("a", 0, "", "1000")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := only(KindUpsellOpportunity, mustEvaluate(t, DefaultConfig(), asOf, tt.cs, nil))
			got := map[string]Severity{}
			for _, f := range fs {
				got[f.CustomerID] = f.Severity
			}
			if tt.want == nil {
				tt.want = map[string]Severity{}
			}
			assert.Equal(t, tt.want, got)
		})
	}

	fs := only(KindUpsellOpportunity, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{metered("a", 0, "1000", "40")}, nil))
	require.Len(t, fs, 1)
	assert.Equal(t, "Customer a used 120% of its starter plan's included quota over the last 30 days", fs[0].Title)
	assert.Equal(t, map[string]string{"usage": "1200", "included_quota": "1000", "quota_percent": "120"}, fs[0].Evidence)
	// A 15-day window compares with half the monthly quota.
	cfg := DefaultConfig()
	cfg.Upsell.WindowDays = 15
	fs = only(KindUpsellOpportunity, mustEvaluate(t, cfg, asOf, []CustomerSeries{metered("a", 0, "1000", "40")}, nil))
	require.Len(t, fs, 1)
	assert.Equal(t, map[string]string{"usage": "600", "included_quota": "500", "quota_percent": "120"}, fs[0].Evidence)

	fs = only(KindUpsellOpportunity, mustEvaluate(t, DefaultConfig(), asOf, tier(10), nil))
	require.Len(t, fs, 1)
	assert.Equal(t, "Customer t10 is among the top 10% of starter-plan customers by usage", fs[0].Title)
	assert.Equal(t, "300", fs[0].Evidence["tier_threshold"])
	assert.Equal(t, "10", fs[0].Evidence["tier_customers"])
}

func TestChurnRisk(t *testing.T) {
	// two periods of 14 days: quantity a day of feature A (and B), revenue a day.
	periods := func(revenue string, prevA, lastA, prevB, lastB string) CustomerSeries {
		return days("a", 40, func(i int, d *CustomerDay) {
			d.Revenue = dec(revenue)
			a, b := lastA, lastB
			if i > 14 {
				a, b = prevA, prevB
			}
			d.Usage = map[string]Usage{}
			if a != "" {
				d.Usage["A"] = Usage{Quantity: dec(a), Cost: dec(a).Mul(dec("0.01"))}
			}
			if b != "" {
				d.Usage["B"] = Usage{Quantity: dec(b), Cost: dec(b).Mul(dec("0.01"))}
			}
		})
	}
	tests := []struct {
		name     string
		c        CustomerSeries
		severity Severity
		change   string
	}{
		{name: "down 90 %: critical", c: periods("1", "1000", "100", "", ""), severity: SeverityCritical, change: "-90"},
		{name: "down 60 %", c: periods("1", "1000", "400", "", ""), severity: SeverityWarning, change: "-60"},
		{name: "stopped", c: periods("1", "1000", "0", "", ""), severity: SeverityCritical, change: "-100"},
		{name: "one of two features stopped, the bigger", c: periods("1", "900", "0", "100", "100"), severity: SeverityCritical, change: "-90"},
		// Must not fire.
		{name: "down 40 %", c: periods("1", "1000", "600", "", "")},
		{name: "down exactly 50 %", c: periods("1", "1000", "500", "", "")},
		{name: "not paying", c: periods("0", "1000", "0", "", "")},
		{name: "moved to another feature of the same unit cost", c: periods("1", "1000", "0", "0", "1000")},
		{name: "growing", c: periods("1", "100", "1000", "", "")},
		{name: "occasional user", c: days("a", 40, func(i int, d *CustomerDay) {
			d.Revenue = dec("1")
			if i == 20 || i == 25 || i == 27 || i == 1 {
				d.Usage = map[string]Usage{"A": {Quantity: dec("1000"), Cost: dec("10")}}
			}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := only(KindChurnRisk, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{tt.c}, nil))
			if tt.severity == "" {
				assert.Empty(t, fs)
				return
			}
			require.Len(t, fs, 1)
			assert.Equal(t, tt.severity, fs[0].Severity)
			assert.Equal(t, tt.change, fs[0].Evidence["change_percent"])
			assert.Equal(t, "14", fs[0].Evidence["previous_active_days"])
			assert.Equal(t, "14d", fs[0].Period)
		})
	}

	// Without costs, quantities are added.
	c := days("a", 40, func(i int, d *CustomerDay) {
		d.Revenue = dec("1")
		q := "10"
		if i > 14 {
			q = "100"
		}
		d.Usage = map[string]Usage{"A": {Quantity: dec(q)}}
	})
	fs := only(KindChurnRisk, mustEvaluate(t, DefaultConfig(), asOf, []CustomerSeries{c}, nil))
	require.Len(t, fs, 1)
	assert.Equal(t, "1400", fs[0].Evidence["previous_usage_value"])
	assert.Equal(t, "140", fs[0].Evidence["recent_usage_value"])
	assert.Contains(t, fs[0].Description, "have no cost")
	assert.Equal(t, "Customer a's usage fell 90% over the last 14 days", fs[0].Title)
}

func TestEvaluateDisabledAndDeterministic(t *testing.T) {
	cs := []CustomerSeries{flat("b", 60, "1", "3"), flat("a", 60, "1", "3")}
	fs := mustEvaluate(t, DefaultConfig(), asOf, cs, nil)
	require.Len(t, fs, 2)
	assert.Equal(t, "a", fs[0].CustomerID, "sorted by key")
	assert.Equal(t, fs, mustEvaluate(t, DefaultConfig(), asOf, cs, nil))

	cfg := DefaultConfig()
	cfg.UnprofitableCustomer.Disabled = true
	assert.Empty(t, mustEvaluate(t, cfg, asOf, cs, nil))

	cfg.UnprofitableCustomer.WindowDays = -5
	_, err := Evaluate(cfg, asOf, cs, nil)
	assert.ErrorContains(t, err, "invalid insights config: unprofitable_customer.window_days")
}

func TestDensifyMergesAndIgnoresOutside(t *testing.T) {
	fr := frame{start: ago(3), n: 3}
	in := []CustomerSeries{
		{CustomerID: "a", Days: []CustomerDay{
			{Day: ago(2).Add(10 * time.Hour), Cost: dec("1")}, // time of day ignored
			{Day: ago(2), Cost: dec("2")},                     // same day: added
			{Day: ago(9), Cost: dec("100")},                   // before the frame
			{Day: ago(0), Cost: dec("100")},                   // today: after it
		}},
		{CustomerID: "a", Name: "A", Days: []CustomerDay{{Day: ago(1), Cost: dec("4")}}}, // same id: merged
		{CustomerID: "", Days: []CustomerDay{{Day: ago(1), Cost: dec("4")}}},             // no id: ignored
	}
	cs := densify(fr, in)
	require.Len(t, cs, 1)
	assert.Equal(t, "A", cs[0].name)
	assert.Equal(t, []string{"0", "3", "4"}, []string{cs[0].cost[0].String(), cs[0].cost[1].String(), cs[0].cost[2].String()})
}

func TestToFloat(t *testing.T) {
	for _, s := range []string{"0", "1", "1234.5678", "-3.25", "123456789012345678901234567890", "0.000000001"} {
		assert.InDelta(t, dec(s).InexactFloat64(), toFloat(dec(s)), math.Abs(dec(s).InexactFloat64())*1e-15, s)
	}
}
