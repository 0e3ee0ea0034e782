package insights

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	t0 = time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	t1 = t0.Add(6 * time.Hour)
	t2 = t1.Add(6 * time.Hour)
)

func finding(customer string, sev Severity, loss string) Finding {
	return Finding{
		Kind: KindUnprofitableCustomer, Severity: sev, CustomerID: customer, CustomerName: "Name " + customer,
		Window: LastDays(t0, 30), Period: "30d", Evidence: map[string]string{"loss": loss},
		Title: customer + " lost " + loss, Description: "d",
	}
}

func byID(flags []Flag) map[string]Flag {
	m := map[string]Flag{}
	for _, f := range flags {
		m[f.ID] = f
	}
	return m
}

func TestReconcileLifecycle(t *testing.T) {
	a, b := finding("a", SeverityWarning, "150"), finding("b", SeverityInfo, "20")

	// Run 1: two new findings open two flags.
	flags, ch := reconcile(nil, []Finding{a, b}, t0)
	require.Len(t, flags, 2)
	assert.ElementsMatch(t, []string{a.ID(), b.ID()}, ch.Created)
	fa := byID(flags)[a.ID()]
	assert.Equal(t, Flag{
		ID: a.ID(), Key: "unprofitable_customer|a||30d", Kind: KindUnprofitableCustomer, Severity: SeverityWarning,
		CustomerID: "a", CustomerName: "Name a", Window: a.Window, Evidence: map[string]string{"loss": "150"},
		Title: "a lost 150", Description: "d", Status: StatusOpen, FirstSeen: t0, LastSeen: t0, Version: 1,
	}, fa)

	// Run 2: a persists with new numbers and a higher severity; b is
	// acknowledged meanwhile and persists too.
	require.NoError(t, flagPtr(flags, b.ID()).Acknowledge(t0.Add(time.Hour)))
	a2 := finding("a", SeverityCritical, "1500")
	flags, ch = reconcile(flags, []Finding{a2, b}, t1)
	require.Len(t, flags, 2)
	assert.Empty(t, ch.Created)
	assert.ElementsMatch(t, []string{a.ID(), b.ID()}, ch.Updated)
	assert.Equal(t, []string{a.ID()}, ch.Escalated)
	fa, fb := byID(flags)[a.ID()], byID(flags)[b.ID()]
	assert.Equal(t, StatusOpen, fa.Status)
	assert.Equal(t, t0, fa.FirstSeen)
	assert.Equal(t, t1, fa.LastSeen)
	assert.Equal(t, SeverityCritical, fa.Severity)
	assert.Equal(t, "1500", fa.Evidence["loss"])
	assert.Equal(t, uint64(2), fa.Version)
	assert.Equal(t, StatusAcknowledged, fb.Status, "an acknowledged flag stays acknowledged")
	assert.Equal(t, t1, fb.LastSeen)

	// Run 3: both conditions cleared: both resolve, acknowledged or not.
	flags, ch = reconcile(flags, nil, t2)
	assert.ElementsMatch(t, []string{a.ID(), b.ID()}, ch.Resolved)
	for _, f := range flags {
		assert.Equal(t, StatusResolved, f.Status)
		assert.Equal(t, t2, f.ResolvedAt)
		assert.True(t, f.AcknowledgedAt.IsZero())
	}

	// Run 4: still clear: resolved flags stay as they are, unchanged.
	before := flags
	flags, ch = reconcile(flags, nil, t2.Add(time.Hour))
	assert.Empty(t, ch.Changed())
	assert.Equal(t, before, flags)

	// Run 5: a fires again: its flag reopens with the same id and first_seen.
	t5 := t2.Add(48 * time.Hour)
	flags, ch = reconcile(flags, []Finding{a}, t5)
	assert.Equal(t, []string{a.ID()}, ch.Reopened)
	assert.Empty(t, ch.Created)
	fa = byID(flags)[a.ID()]
	assert.Equal(t, StatusOpen, fa.Status)
	assert.Equal(t, t0, fa.FirstSeen)
	assert.Equal(t, t5, fa.LastSeen)
	assert.Equal(t, 1, fa.Reopened)
	assert.True(t, fa.ResolvedAt.IsZero())
	assert.Equal(t, StatusResolved, byID(flags)[b.ID()].Status)
}

func flagPtr(flags []Flag, id string) *Flag {
	for i := range flags {
		if flags[i].ID == id {
			return &flags[i]
		}
	}
	return nil
}

func TestReconcileNeverDuplicates(t *testing.T) {
	a := finding("a", SeverityInfo, "20")
	var flags []Flag
	for i := range 5 {
		flags = Reconcile(flags, []Finding{a, finding("a", SeverityWarning, "150"), a}, t0.Add(time.Duration(i)*time.Hour))
	}
	require.Len(t, flags, 1, "one flag per key across runs and within a run")
	assert.Equal(t, SeverityWarning, flags[0].Severity, "the most severe of repeated findings")
	assert.Equal(t, t0, flags[0].FirstSeen)

	// A store that returned the same flag twice (two versions) still gives one.
	older := flags[0]
	older.Version, older.Status = 1, StatusOpen
	newer := flags[0]
	newer.Status = StatusAcknowledged
	newer.Version = 9
	flags = Reconcile([]Flag{older, newer, older}, []Finding{a}, t1)
	require.Len(t, flags, 1)
	assert.Equal(t, StatusAcknowledged, flags[0].Status, "the highest version wins")
	assert.Equal(t, uint64(10), flags[0].Version)

	// Different windows of a usage anomaly are different flags; the same
	// rolling window on another day is the same flag.
	x := Finding{Kind: KindUsageAnomaly, CustomerID: "a", Feature: "f", Period: "2026-11-03"}
	y := x
	y.Period = "2026-11-04"
	assert.NotEqual(t, x.ID(), y.ID())
	x2 := x
	x2.Feature = "g"
	assert.Equal(t, x.ID(), x2.ID(), "an anomaly is a customer's day, whichever feature moved most")
	z := finding("a", SeverityInfo, "1")
	z.Window = LastDays(t0.AddDate(0, 0, 1), 30)
	assert.Equal(t, a.ID(), z.ID())
	assert.True(t, strings.HasPrefix(a.ID(), "flg_") && len(a.ID()) == 36, a.ID())
}

func TestReconcileDoesNotModifyItsArguments(t *testing.T) {
	flags := Reconcile(nil, []Finding{finding("a", SeverityInfo, "20")}, t0)
	kept := flags[0]
	kept.Evidence = map[string]string{"loss": "20"}
	in := []Flag{kept}
	fd := finding("a", SeverityInfo, "99")
	out := Reconcile(in, []Finding{fd}, t1)
	assert.Equal(t, "20", in[0].Evidence["loss"])
	assert.Equal(t, t0, in[0].LastSeen)
	assert.Equal(t, "99", out[0].Evidence["loss"])
	out[0].Evidence["loss"] = "x"
	assert.Equal(t, "99", fd.Evidence["loss"])
}

func TestAcknowledgeResolve(t *testing.T) {
	f := Reconcile(nil, []Finding{finding("a", SeverityInfo, "20")}, t0)[0]
	require.NoError(t, f.Acknowledge(t1))
	assert.Equal(t, StatusAcknowledged, f.Status)
	assert.Equal(t, t1, f.AcknowledgedAt)
	v := f.Version
	require.NoError(t, f.Acknowledge(t2))
	assert.Equal(t, v, f.Version, "acknowledging twice changes nothing")
	assert.Equal(t, t1, f.AcknowledgedAt)

	f.Resolve(t2)
	assert.Equal(t, StatusResolved, f.Status)
	assert.Equal(t, t2, f.ResolvedAt)
	assert.True(t, errors.Is(f.Acknowledge(t2), ErrResolved))
	v = f.Version
	f.Resolve(t2.Add(time.Hour))
	assert.Equal(t, v, f.Version)

	// Resolved by hand while the condition holds: the next run reopens it.
	flags := Reconcile([]Flag{f}, []Finding{finding("a", SeverityInfo, "20")}, t2.Add(time.Hour))
	assert.Equal(t, StatusOpen, flags[0].Status)
	assert.Equal(t, 1, flags[0].Reopened)
}

func TestWindowJSON(t *testing.T) {
	w := LastDays(asOf, 30)
	assert.Equal(t, 30, w.Days())
	assert.Equal(t, "2026-10-28 to 2026-11-26", w.String())
	assert.Equal(t, "2026-11-26", LastDays(asOf, 1).String())
	b, err := json.Marshal(w)
	require.NoError(t, err)
	assert.JSONEq(t, `{"start":"2026-10-28","end":"2026-11-26"}`, string(b))
	var back Window
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, w, back)

	var f Flag
	flag := Reconcile(nil, []Finding{finding("a", SeverityInfo, "20")}, t0)[0]
	b, err = json.Marshal(flag)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "resolved_at", "zero times are left out")
	require.NoError(t, json.Unmarshal(b, &f))
	assert.Equal(t, flag, f)
}

func TestMoneyText(t *testing.T) {
	tests := []struct{ in, cur, want string }{
		{"1204.5", "USD", "$1,204.50"},
		{"-3.1", "USD", "-$3.10"},
		{"0", "EUR", "€0.00"},
		{"1234567.891", "USD", "$1,234,567.89"},
		{"999.999", "GBP", "£1,000.00"},
		{"1204.5", "CHF", "1,204.50 CHF"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, money(decimal.RequireFromString(tt.in), tt.cur), tt.in)
	}
	assert.Equal(t, "12,345,678.12", number(decimal.RequireFromString("12345678.1234")))
	assert.Equal(t, "401.5", pct(decimal.RequireFromString("401.49")))
	assert.Equal(t, "50", pct(decimal.RequireFromString("50.00")))
	assert.Equal(t, "-150", pct(decimal.RequireFromString("-150")))
	assert.Equal(t, "-1,234.5", pct(decimal.RequireFromString("-1234.5")))
	assert.Equal(t, "-123,456", number(decimal.RequireFromString("-123456")))
}

func TestEnums(t *testing.T) {
	for _, k := range Kinds {
		assert.True(t, k.Valid())
		assert.NotEqual(t, string(k), k.Label())
	}
	assert.False(t, Kind("x").Valid())
	assert.True(t, SeverityCritical.AtLeast(SeverityWarning))
	assert.False(t, SeverityInfo.AtLeast(SeverityWarning))
	s, err := ParseSeverity("warning")
	require.NoError(t, err)
	assert.Equal(t, SeverityWarning, s)
	_, err = ParseSeverity("high")
	assert.Error(t, err)
	assert.True(t, StatusAcknowledged.Active())
	assert.False(t, StatusResolved.Active())
	assert.False(t, Status("x").Valid())
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	assert.Equal(t, 60, DefaultConfig().DataDays(), "two margin periods of 30 days")

	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{name: "currency", edit: func(c *Config) { c.Currency = "usd" }, want: []string{"currency must be an ISO 4217 code"}},
		{name: "window", edit: func(c *Config) { c.UnprofitableCustomer.WindowDays = 0 }, want: []string{"unprofitable_customer.window_days must be between 1 and 366, got 0"}},
		{name: "thresholds out of order", edit: func(c *Config) { c.UnprofitableFeature.WarningLoss = decimal.NewFromInt(5000) }, want: []string{"unprofitable_feature.warning_loss (5000) must not be above critical_loss (1000)"}},
		{name: "negative minimum loss", edit: func(c *Config) { c.UnprofitableCustomer.MinLoss = decimal.NewFromInt(-1) }, want: []string{"min_loss must not be negative"}},
		{name: "margin points", edit: func(c *Config) { c.MarginErosion.WarningPoints = decimal.Zero }, want: []string{"margin_erosion.warning_points must be positive"}},
		{name: "baseline", edit: func(c *Config) { c.UsageAnomaly.BaselineDays = 3 }, want: []string{"usage_anomaly.baseline_days must be between 7"}},
		{name: "threshold", edit: func(c *Config) { c.UsageAnomaly.Threshold = 0 }, want: []string{"usage_anomaly.threshold must be a positive number"}},
		{name: "change ratio", edit: func(c *Config) { c.UsageAnomaly.MinChangeRatio = decimal.RequireFromString("0.5") }, want: []string{"min_change_ratio must be at least 1"}},
		{name: "feature volume", edit: func(c *Config) {
			c.UsageAnomaly.MinVolumeByFeature = map[string]decimal.Decimal{"api.calls": decimal.NewFromInt(-1)}
		}, want: []string{"min_volume_by_feature[api.calls] must not be negative"}},
		{name: "top percent", edit: func(c *Config) { c.Upsell.TopPercent = decimal.NewFromInt(100) }, want: []string{"upsell.top_percent must be at least 0 and below 100"}},
		{name: "churn drop", edit: func(c *Config) { c.ChurnRisk.DropPercent = decimal.NewFromInt(120) }, want: []string{"churn_risk.drop_percent must be above 0 and at most 100"}},
		{name: "active days", edit: func(c *Config) { c.ChurnRisk.MinActiveDays = 15 }, want: []string{"churn_risk.min_active_days must be between 0 and period_days (14)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// The zero Config reports every problem at once.
	err := Config{}.Validate()
	require.Error(t, err)
	for _, w := range []string{"currency", "unprofitable_customer.window_days", "unprofitable_feature.window_days",
		"margin_erosion.period_days", "usage_anomaly.baseline_days", "usage_anomaly.threshold", "upsell.window_days", "churn_risk.period_days"} {
		assert.Contains(t, err.Error(), w)
	}
}
