package insights

import (
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/shopspring/decimal"
)

// Config holds every rule's thresholds. Start from DefaultConfig and change
// what differs; Validate reports every problem at once. Percentages are
// numbers of percent (25 means 25 %); money is in the reporting currency.
type Config struct {
	// Currency is the reporting currency of all money (ISO 4217), used in
	// titles. Default "USD".
	Currency string

	UnprofitableCustomer LossRule
	UnprofitableFeature  LossRule
	MarginErosion        MarginErosionRule
	UsageAnomaly         UsageAnomalyRule
	Upsell               UpsellRule
	ChurnRisk            ChurnRiskRule
}

// LossRule flags a customer (or a feature) whose cost exceeded its revenue
// (attributed revenue, for a feature) over the trailing WindowDays.
//
// Severity grows with the loss, absolute or relative to revenue, whichever is
// worse: critical from CriticalLoss or CriticalLossPercent, warning from
// WarningLoss or WarningLossPercent, info below. A loss with no (or negative)
// revenue is infinitely large relative to it.
type LossRule struct {
	Disabled   bool
	WindowDays int // default 30
	// MinLoss is the smallest loss flagged: default 10.
	MinLoss decimal.Decimal
	// Absolute thresholds: default 100 and 1,000.
	WarningLoss, CriticalLoss decimal.Decimal
	// Loss as a percent of revenue: default 25 and 100 (cost twice revenue).
	WarningLossPercent, CriticalLossPercent decimal.Decimal
}

// MarginErosionRule flags a customer whose margin % over the last PeriodDays
// is more than WarningPoints below its margin % over the PeriodDays before.
// Margin % is (revenue − cost) / revenue × 100; both periods need at least
// MinRevenue of revenue, or the margin is not defined enough to compare.
type MarginErosionRule struct {
	Disabled   bool
	PeriodDays int // default 30
	// Percentage points of margin lost: warning from WarningPoints (default
	// 10, the "N points"), critical from CriticalPoints (default 25).
	WarningPoints, CriticalPoints decimal.Decimal
	MinRevenue                    decimal.Decimal // default 10, per period
}

// UsageAnomalyRule flags a customer's day whose usage of a feature is far
// from the feature's median over the BaselineDays before it (the trailing
// 28 days), by the robust z-score 0.6745·(x − median)/MAD (Iglewicz and
// Hoaglin). See docs/analytics/insights.md for the whole definition.
type UsageAnomalyRule struct {
	Disabled bool
	// BaselineDays before the day form its baseline: default 28.
	BaselineDays int
	// LookbackDays are the recent days examined each run: default 7, so
	// that late data and a run missed still raise their anomalies. A flag
	// on a day resolves when the day leaves the lookback.
	LookbackDays int
	// Threshold of |z|: default 3.5.
	Threshold float64
	// MinVolume is the smallest quantity that matters: the larger of the
	// day and its median must reach it (a spike to 40 tokens or a drop from
	// 12 calls is noise). Default 100, for every feature without its own
	// value in MinVolumeByFeature.
	MinVolume          decimal.Decimal
	MinVolumeByFeature map[string]decimal.Decimal
	// MinChangeRatio is the smallest change that matters, as a factor of
	// the median: a spike is at least MinChangeRatio times the median, a
	// drop at most the median divided by it. Default 2.
	MinChangeRatio decimal.Decimal
	// A spike of CriticalSpikeRatio times the median (default 10) or a drop
	// of CriticalDropPercent (default 90) is critical; others are warnings.
	CriticalSpikeRatio  decimal.Decimal
	CriticalDropPercent decimal.Decimal
	// MixWeekends compares every day with all baseline days. By default
	// Saturdays and Sundays are compared with the baseline's weekend days
	// and other days with its weekdays, so a quiet weekend is no drop.
	MixWeekends bool
}

// UpsellRule flags a customer whose metered usage over the last WindowDays
// reached QuotaPercent of its plan's included quota, or who is among the top
// TopPercent of metered usage on the lowest plan tier present.
type UpsellRule struct {
	Disabled   bool
	WindowDays int // default 30
	// QuotaPercent of the included quota: default 100. From
	// WarningQuotaPercent (default 200) the flag is a warning, else info.
	QuotaPercent, WarningQuotaPercent decimal.Decimal
	// TopPercent of the lowest tier's customers by metered usage: default
	// 10 (the top decile); 0 turns this half of the rule off. It applies
	// only when the tier has at least MinTierCustomers (default 10)
	// customers with metered usage.
	TopPercent       decimal.Decimal
	MinTierCustomers int
}

// ChurnRiskRule flags a paying customer (revenue above zero over the last
// PayingDays) whose usage over the last PeriodDays fell by more than
// DropPercent against the PeriodDays before. Usage is valued at each
// feature's average unit cost over both periods, so features in different
// units add up (a volume index); see docs/analytics/insights.md.
type ChurnRiskRule struct {
	Disabled   bool
	PeriodDays int // default 14
	// DropPercent: default 50 (warning); CriticalDropPercent: default 90.
	DropPercent, CriticalDropPercent decimal.Decimal
	// MinActiveDays with usage in the earlier period: default 5, so an
	// occasional user is not a churn risk for skipping a week.
	MinActiveDays int
	PayingDays    int // default 31: a whole billing month on any basis
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	d := decimal.NewFromInt
	loss := LossRule{
		WindowDays: 30, MinLoss: d(10), WarningLoss: d(100), CriticalLoss: d(1000),
		WarningLossPercent: d(25), CriticalLossPercent: d(100),
	}
	return Config{
		Currency:             "USD",
		UnprofitableCustomer: loss,
		UnprofitableFeature:  loss,
		MarginErosion: MarginErosionRule{
			PeriodDays: 30, WarningPoints: d(10), CriticalPoints: d(25), MinRevenue: d(10),
		},
		UsageAnomaly: UsageAnomalyRule{
			BaselineDays: 28, LookbackDays: 7, Threshold: 3.5,
			MinVolume: d(100), MinChangeRatio: d(2),
			CriticalSpikeRatio: d(10), CriticalDropPercent: d(90),
		},
		Upsell: UpsellRule{
			WindowDays: 30, QuotaPercent: d(100), WarningQuotaPercent: d(200),
			TopPercent: d(10), MinTierCustomers: 10,
		},
		ChurnRisk: ChurnRiskRule{
			PeriodDays: 14, DropPercent: d(50), CriticalDropPercent: d(90),
			MinActiveDays: 5, PayingDays: 31,
		},
	}
}

// MaxDays bounds every window of a rule.
const MaxDays = 366

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports every problem of c, joined.
func (c Config) Validate() error {
	var v validator
	if !currencyCode.MatchString(c.Currency) {
		v.add("currency must be an ISO 4217 code such as USD, got %q", c.Currency)
	}
	for _, r := range []struct {
		name string
		r    LossRule
	}{{"unprofitable_customer", c.UnprofitableCustomer}, {"unprofitable_feature", c.UnprofitableFeature}} {
		v.days(r.name+".window_days", r.r.WindowDays)
		v.nonNegative(r.name+".min_loss", r.r.MinLoss)
		v.ordered(r.name, "warning_loss", r.r.WarningLoss, "critical_loss", r.r.CriticalLoss)
		v.ordered(r.name, "warning_loss_percent", r.r.WarningLossPercent, "critical_loss_percent", r.r.CriticalLossPercent)
	}

	m := c.MarginErosion
	v.days("margin_erosion.period_days", m.PeriodDays)
	v.positive("margin_erosion.warning_points", m.WarningPoints)
	v.ordered("margin_erosion", "warning_points", m.WarningPoints, "critical_points", m.CriticalPoints)
	v.positive("margin_erosion.min_revenue", m.MinRevenue)

	a := c.UsageAnomaly
	if a.BaselineDays < 7 || a.BaselineDays > MaxDays {
		v.add("usage_anomaly.baseline_days must be between 7 and %d, got %d", MaxDays, a.BaselineDays)
	}
	v.days("usage_anomaly.lookback_days", a.LookbackDays)
	if !(a.Threshold > 0) || math.IsInf(a.Threshold, 0) {
		v.add("usage_anomaly.threshold must be a positive number, got %v", a.Threshold)
	}
	v.nonNegative("usage_anomaly.min_volume", a.MinVolume)
	for f, x := range a.MinVolumeByFeature {
		v.nonNegative("usage_anomaly.min_volume_by_feature["+f+"]", x)
	}
	if a.MinChangeRatio.LessThan(decimal.NewFromInt(1)) {
		v.add("usage_anomaly.min_change_ratio must be at least 1, got %s", a.MinChangeRatio)
	}
	if !a.CriticalSpikeRatio.GreaterThan(decimal.NewFromInt(1)) {
		v.add("usage_anomaly.critical_spike_ratio must be above 1, got %s", a.CriticalSpikeRatio)
	}
	v.percent("usage_anomaly.critical_drop_percent", a.CriticalDropPercent)

	u := c.Upsell
	v.days("upsell.window_days", u.WindowDays)
	v.positive("upsell.quota_percent", u.QuotaPercent)
	v.ordered("upsell", "quota_percent", u.QuotaPercent, "warning_quota_percent", u.WarningQuotaPercent)
	if u.TopPercent.IsNegative() || u.TopPercent.GreaterThanOrEqual(decimal.NewFromInt(100)) {
		v.add("upsell.top_percent must be at least 0 and below 100, got %s", u.TopPercent)
	}
	if u.MinTierCustomers < 1 {
		v.add("upsell.min_tier_customers must be at least 1, got %d", u.MinTierCustomers)
	}

	ch := c.ChurnRisk
	v.days("churn_risk.period_days", ch.PeriodDays)
	v.percent("churn_risk.drop_percent", ch.DropPercent)
	v.ordered("churn_risk", "drop_percent", ch.DropPercent, "critical_drop_percent", ch.CriticalDropPercent)
	v.percent("churn_risk.critical_drop_percent", ch.CriticalDropPercent)
	if ch.MinActiveDays < 0 || ch.MinActiveDays > ch.PeriodDays {
		v.add("churn_risk.min_active_days must be between 0 and period_days (%d), got %d", ch.PeriodDays, ch.MinActiveDays)
	}
	v.days("churn_risk.paying_days", ch.PayingDays)
	return errors.Join(v.errs...)
}

// DataDays is how many days before the evaluation day the rules read.
func (c Config) DataDays() int {
	a := c.UsageAnomaly
	return max(
		c.UnprofitableCustomer.WindowDays,
		c.UnprofitableFeature.WindowDays,
		2*c.MarginErosion.PeriodDays,
		a.BaselineDays+a.LookbackDays+1, // +1: the day before the lookback tells where a run of days starts
		c.Upsell.WindowDays,
		2*c.ChurnRisk.PeriodDays,
		c.ChurnRisk.PayingDays,
	)
}

type validator struct{ errs []error }

func (v *validator) add(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) days(name string, n int) {
	if n < 1 || n > MaxDays {
		v.add("%s must be between 1 and %d, got %d", name, MaxDays, n)
	}
}

func (v *validator) nonNegative(name string, x decimal.Decimal) {
	if x.IsNegative() {
		v.add("%s must not be negative, got %s", name, x)
	}
}

func (v *validator) positive(name string, x decimal.Decimal) {
	if !x.IsPositive() {
		v.add("%s must be positive, got %s", name, x)
	}
}

func (v *validator) percent(name string, x decimal.Decimal) {
	if !x.IsPositive() || x.GreaterThan(decimal.NewFromInt(100)) {
		v.add("%s must be above 0 and at most 100, got %s", name, x)
	}
}

// ordered checks that both thresholds are non-negative and warning ≤ critical.
func (v *validator) ordered(rule, wname string, w decimal.Decimal, cname string, c decimal.Decimal) {
	v.nonNegative(rule+"."+wname, w)
	v.nonNegative(rule+"."+cname, c)
	if w.GreaterThan(c) {
		v.add("%s.%s (%s) must not be above %s (%s)", rule, wname, w, cname, c)
	}
}
