package insights

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// Evaluate runs every enabled rule of cfg over the data and returns the
// findings sorted by kind, then key. The rules see the complete UTC days
// before asOf's day, at most cfg.DataDays() of them; other days of the series
// are ignored. Evaluate is pure and deterministic; its only error is an
// invalid cfg.
func Evaluate(cfg Config, asOf time.Time, customers []CustomerSeries, features []FeatureSeries) ([]Finding, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid insights config: %w", err)
	}
	w := LastDays(asOf, cfg.DataDays())
	fr := frame{start: w.Start, n: w.Days()}
	cs := densify(fr, customers)
	var out []Finding
	add := func(f Finding, ok bool) {
		if ok {
			out = append(out, f)
		}
	}
	for _, c := range cs {
		if !cfg.UnprofitableCustomer.Disabled {
			add(unprofitableCustomer(cfg, fr, c))
		}
		if !cfg.MarginErosion.Disabled {
			add(marginErosion(cfg, fr, c))
		}
		if !cfg.UsageAnomaly.Disabled {
			out = append(out, usageAnomalies(cfg, fr, c)...)
		}
		if !cfg.ChurnRisk.Disabled {
			add(churnRisk(cfg, fr, c))
		}
	}
	if !cfg.UnprofitableFeature.Disabled {
		for _, f := range densifyFeatures(fr, features) {
			add(unprofitableFeature(cfg, fr, f))
		}
	}
	if !cfg.Upsell.Disabled {
		out = append(out, upsells(cfg, fr, cs)...)
	}
	sortFindings(out)
	return out, nil
}

// rolling is the Period of a rolling window of n days.
func rolling(n int) string { return strconv.Itoa(n) + "d" }

// lossSeverity grades a positive loss: the worse of its absolute size and its
// size relative to revenue (infinite when revenue is not positive).
func lossSeverity(r LossRule, loss, revenue decimal.Decimal) Severity {
	relative := func(p decimal.Decimal) bool {
		return !revenue.IsPositive() || loss.Mul(hundred).GreaterThanOrEqual(p.Mul(revenue))
	}
	switch {
	case loss.GreaterThanOrEqual(r.CriticalLoss) || relative(r.CriticalLossPercent):
		return SeverityCritical
	case loss.GreaterThanOrEqual(r.WarningLoss) || relative(r.WarningLossPercent):
		return SeverityWarning
	}
	return SeverityInfo
}

// lossEvidence returns the loss and its evidence, ok when it is flagged.
func lossEvidence(r LossRule, cost, revenue decimal.Decimal, revenueKey string) (decimal.Decimal, map[string]string, bool) {
	loss := cost.Sub(revenue)
	if !loss.IsPositive() || loss.LessThan(r.MinLoss) {
		return loss, nil, false
	}
	ev := map[string]string{"cost": cost.String(), revenueKey: revenue.String(), "loss": loss.String()}
	if revenue.IsPositive() {
		ev["loss_percent"] = percentOf(loss, revenue).String()
	}
	return loss, ev, true
}

func unprofitableCustomer(cfg Config, fr frame, c *customer) (Finding, bool) {
	r := cfg.UnprofitableCustomer
	from := fr.n - r.WindowDays
	revenue, cost := sum(c.revenue, from, fr.n), sum(c.cost, from, fr.n)
	loss, ev, ok := lossEvidence(r, cost, revenue, "revenue")
	if !ok {
		return Finding{}, false
	}
	name, cur, w := c.displayName(), cfg.Currency, fr.window(from, fr.n)
	desc := fmt.Sprintf("From %s, %s's usage cost %s while it brought %s of revenue: a loss of %s",
		w, name, money(cost, cur), money(revenue, cur), money(loss, cur))
	if revenue.IsPositive() {
		desc += fmt.Sprintf(", %s%% of its revenue", pct(percentOf(loss, revenue)))
	}
	desc += ". Compare its plan's price with its usage, or look at its costliest features."
	return Finding{
		Kind: KindUnprofitableCustomer, Severity: lossSeverity(r, loss, revenue),
		CustomerID: c.id, CustomerName: c.name, Window: w, Period: rolling(r.WindowDays), Evidence: ev,
		Title:       fmt.Sprintf("%s cost %s more than it paid over the last %d days", name, money(loss, cur), r.WindowDays),
		Description: desc,
	}, true
}

func unprofitableFeature(cfg Config, fr frame, f *featureTotals) (Finding, bool) {
	r := cfg.UnprofitableFeature
	if !f.attributed {
		return Finding{}, false
	}
	from := fr.n - r.WindowDays
	revenue, cost := sum(f.rev, from, fr.n), sum(f.cost, from, fr.n)
	loss, ev, ok := lossEvidence(r, cost, revenue, "attributed_revenue")
	if !ok {
		return Finding{}, false
	}
	cur, w := cfg.Currency, fr.window(from, fr.n)
	desc := fmt.Sprintf("From %s, %s cost %s while the revenue attributed to it was %s: a loss of %s",
		w, f.name, money(cost, cur), money(revenue, cur), money(loss, cur))
	if revenue.IsPositive() {
		desc += fmt.Sprintf(", %s%% of that revenue", pct(percentOf(loss, revenue)))
	}
	desc += ". Its price does not cover what it costs to serve."
	return Finding{
		Kind: KindUnprofitableFeature, Severity: lossSeverity(r, loss, revenue),
		Feature: f.name, Window: w, Period: rolling(r.WindowDays), Evidence: ev,
		Title:       fmt.Sprintf("%s cost %s more than the revenue attributed to it over the last %d days", f.name, money(loss, cur), r.WindowDays),
		Description: desc,
	}, true
}

func marginErosion(cfg Config, fr frame, c *customer) (Finding, bool) {
	r := cfg.MarginErosion
	k, n := r.PeriodDays, fr.n
	rev, cost := sum(c.revenue, n-k, n), sum(c.cost, n-k, n)
	prevRev, prevCost := sum(c.revenue, n-2*k, n-k), sum(c.cost, n-2*k, n-k)
	if rev.LessThan(r.MinRevenue) || prevRev.LessThan(r.MinRevenue) {
		return Finding{}, false
	}
	const precision = 12 // decimals of the margins compared; display rounds to 1
	margin := rev.Sub(cost).Mul(hundred).DivRound(rev, precision)
	prevMargin := prevRev.Sub(prevCost).Mul(hundred).DivRound(prevRev, precision)
	fall := prevMargin.Sub(margin)
	if fall.LessThan(r.WarningPoints) {
		return Finding{}, false
	}
	sev := SeverityWarning
	if fall.GreaterThanOrEqual(r.CriticalPoints) {
		sev = SeverityCritical
	}
	name, cur, w := c.displayName(), cfg.Currency, fr.window(n-k, n)
	return Finding{
		Kind: KindMarginErosion, Severity: sev,
		CustomerID: c.id, CustomerName: c.name, Window: w, Period: rolling(k),
		Evidence: map[string]string{
			"revenue": rev.String(), "cost": cost.String(), "margin_percent": margin.Round(4).String(),
			"previous_revenue": prevRev.String(), "previous_cost": prevCost.String(),
			"previous_margin_percent": prevMargin.Round(4).String(), "change_points": fall.Neg().Round(4).String(),
		},
		Title: fmt.Sprintf("%s's margin fell %s points over the last %d days, from %s%% to %s%%",
			name, pct(fall), k, pct(prevMargin), pct(margin)),
		Description: fmt.Sprintf("From %s, %s's margin was %s%% (%s of revenue, %s of cost), down from %s%% over the %d days before (%s of revenue, %s of cost). Its costs grew faster than what it pays.",
			w, name, pct(margin), money(rev, cur), money(cost, cur), pct(prevMargin), k, money(prevRev, cur), money(prevCost, cur)),
	}, true
}

// anomaly is the most anomalous feature of a customer's day.
type anomaly struct {
	dir      int // +1 spike, -1 drop, 0 none
	f        *feature
	z        float64
	med, mad float64
	baseline int // values in the baseline
	features int // anomalous features that day
}

func isWeekend(t time.Time) bool {
	wd := t.Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

// anomalyOn scores day d of every feature of c against its baseline and
// returns the feature with the largest |z|.
func anomalyOn(r UsageAnomalyRule, fr frame, c *customer, d int) anomaly {
	ratio := r.MinChangeRatio.InexactFloat64()
	weekend := isWeekend(fr.date(d))
	var best anomaly
	for _, f := range c.features {
		var base []float64
		low := math.Inf(1)
		for i := d - r.BaselineDays; i < d; i++ {
			low = min(low, f.f[i])
			if r.MixWeekends || isWeekend(fr.date(i)) == weekend {
				base = append(base, f.f[i])
			}
		}
		if len(base) < 3 {
			continue
		}
		x := f.f[d]
		z, med, mad := robustZ(x, base)
		minVolume := r.MinVolume
		if v, ok := r.MinVolumeByFeature[f.name]; ok {
			minVolume = v
		}
		switch {
		case med <= 0, // no usual level to depart from
			max(x, med) < minVolume.InexactFloat64(), // too small to matter
			x < med*ratio && x > med/ratio,           // too small a change
			math.Abs(z) < r.Threshold,                // not far enough
			z < 0 && x >= low:                        // a drop must be a new low: recurring idle days are a habit
			continue
		}
		best.features++
		if best.f == nil || math.Abs(z) > math.Abs(best.z) {
			features := best.features
			best = anomaly{dir: 1, f: f, z: z, med: med, mad: mad, baseline: len(base), features: features}
			if z < 0 {
				best.dir = -1
			}
		}
	}
	return best
}

// usageAnomalies flags each run of anomalous days (in one direction) of c
// that starts in the lookback: its first day, so a spike of three days is
// one flag and a run that started before the lookback raises nothing new.
func usageAnomalies(cfg Config, fr frame, c *customer) []Finding {
	r := cfg.UsageAnomaly
	first := fr.n - r.LookbackDays
	days := make(map[int]anomaly, r.LookbackDays+1)
	for d := max(first-1, r.BaselineDays); d < fr.n; d++ {
		days[d] = anomalyOn(r, fr, c, d)
	}
	var out []Finding
	for d := first; d < fr.n; d++ {
		a := days[d]
		if a.dir == 0 || days[d-1].dir == a.dir {
			continue
		}
		run := 1
		for d+run < fr.n && days[d+run].dir == a.dir {
			run++
		}
		out = append(out, anomalyFinding(cfg, fr, c, d, a, run))
	}
	return out
}

func anomalyFinding(cfg Config, fr frame, c *customer, d int, a anomaly, run int) Finding {
	r := cfg.UsageAnomaly
	x, qty, featureCost := a.f.f[d], a.f.qty[d], a.f.cost[d]
	med := floatDecimal(a.med)
	ev := map[string]string{
		"quantity": qty.String(), "median": med.String(), "mad": floatDecimal(a.mad).String(),
		"ratio":             floatDecimal(x / a.med).String(),
		"change_percent":    floatDecimal((x - a.med) / a.med * 100).String(),
		"cost":              featureCost.String(),
		"baseline_days":     strconv.Itoa(a.baseline),
		"features_affected": strconv.Itoa(a.features),
		"consecutive_days":  strconv.Itoa(run),
	}
	if !math.IsInf(a.z, 0) {
		ev["z_score"] = floatDecimal(a.z).String()
	}
	sev := SeverityWarning
	var title string
	name, date := c.displayName(), fr.date(d)
	day := date.Format(time.DateOnly)
	if a.dir > 0 {
		if qty.GreaterThanOrEqual(med.Mul(r.CriticalSpikeRatio)) {
			sev = SeverityCritical
		}
		title = fmt.Sprintf("%s's %s usage spiked to %s times its usual level on %s", name, a.f.name, number(floatDecimal(x/a.med)), day)
	} else {
		drop := floatDecimal((a.med - x) / a.med * 100)
		if drop.GreaterThanOrEqual(r.CriticalDropPercent) {
			sev = SeverityCritical
		}
		title = fmt.Sprintf("%s's %s usage dropped %s%% from its usual level on %s", name, a.f.name, pct(drop), day)
	}
	kind := "days"
	if !r.MixWeekends {
		kind = "weekdays"
		if isWeekend(date) {
			kind = "weekend days"
		}
	}
	desc := fmt.Sprintf("On %s %s, %s used %s of %s (costing %s), against a median of %s a day over the %d %s before",
		date.Weekday(), day, name, number(qty), a.f.name, money(featureCost, cfg.Currency), number(med), a.baseline, kind)
	if !math.IsInf(a.z, 0) {
		desc += fmt.Sprintf(" (robust z-score %s)", number(floatDecimal(a.z)))
	} else {
		desc += " (its usage had not varied at all)"
	}
	desc += "."
	if a.features > 1 {
		desc += fmt.Sprintf(" %d other %s moved the same day.", a.features-1, plural(a.features-1, "feature", "features"))
	}
	if run > 1 {
		desc += fmt.Sprintf(" It lasted %d days.", run)
	}
	return Finding{
		Kind: KindUsageAnomaly, Severity: sev,
		CustomerID: c.id, CustomerName: c.name, Feature: a.f.name,
		Window: fr.window(d, d+1), Period: day, Evidence: ev,
		Title: title, Description: desc,
	}
}

func upsells(cfg Config, fr frame, cs []*customer) []Finding {
	r := cfg.Upsell
	from := fr.n - r.WindowDays
	used := make(map[*customer]decimal.Decimal, len(cs))
	for _, c := range cs {
		used[c] = sum(c.metered, from, fr.n)
	}

	// The top TopPercent of the lowest tier by metered usage.
	top := map[*customer]bool{}
	var tierThreshold decimal.Decimal
	var tierSize int
	if r.TopPercent.IsPositive() {
		var tier []*customer
		for _, c := range cs {
			if c.plan == "" || !used[c].IsPositive() {
				continue
			}
			if len(tier) > 0 && c.tier < tier[0].tier {
				tier = tier[:0]
			}
			if len(tier) == 0 || c.tier == tier[0].tier {
				tier = append(tier, c)
			}
		}
		if len(tier) >= r.MinTierCustomers {
			slices.SortStableFunc(tier, func(a, b *customer) int { return used[b].Cmp(used[a]) })
			k := int(decimal.NewFromInt(int64(len(tier))).Mul(r.TopPercent).Div(hundred).Ceil().IntPart())
			k = min(max(k, 1), len(tier))
			tierThreshold, tierSize = used[tier[k-1]], len(tier)
			for _, c := range tier {
				if used[c].GreaterThanOrEqual(tierThreshold) {
					top[c] = true
				}
			}
		}
	}

	var out []Finding
	for _, c := range cs {
		u := used[c]
		// The quota is per 30 days; scaled to the window when it differs.
		quota := c.quota
		if r.WindowDays != 30 {
			quota = quota.Mul(decimal.NewFromInt(int64(r.WindowDays))).Div(decimal.NewFromInt(30))
		}
		overQuota := quota.IsPositive() && u.Mul(hundred).GreaterThanOrEqual(r.QuotaPercent.Mul(quota))
		if !overQuota && !top[c] {
			continue
		}
		name, w := c.displayName(), fr.window(from, fr.n)
		plan := "its plan"
		if c.plan != "" {
			plan = "its " + c.plan + " plan"
		}
		ev := map[string]string{"usage": u.String()}
		sev := SeverityInfo
		var title, desc string
		if quota.IsPositive() {
			share := percentOf(u, quota)
			ev["included_quota"], ev["quota_percent"] = quota.String(), share.String()
			if u.Mul(hundred).GreaterThanOrEqual(r.WarningQuotaPercent.Mul(quota)) {
				sev = SeverityWarning
			}
			desc = fmt.Sprintf("From %s, %s used %s against the %s that %s includes (%s%%).", w, name, number(u), number(quota), plan, pct(share))
		} else {
			desc = fmt.Sprintf("From %s, %s used %s (%s has no included quota).", w, name, number(u), plan)
		}
		if overQuota {
			title = fmt.Sprintf("%s used %s%% of %s's included quota over the last %d days", name, pct(percentOf(u, quota)), plan, r.WindowDays)
		} else {
			title = fmt.Sprintf("%s is among the top %s%% of %s customers by usage", name, pct(r.TopPercent), planLabel(c.plan))
		}
		if top[c] {
			ev["tier_threshold"], ev["tier_customers"] = tierThreshold.String(), strconv.Itoa(tierSize)
			desc += fmt.Sprintf(" It is among the top %s%% of the %d %s customers by usage (%s or more).", pct(r.TopPercent), tierSize, planLabel(c.plan), number(tierThreshold))
		}
		desc += " Offer a larger plan."
		out = append(out, Finding{
			Kind: KindUpsellOpportunity, Severity: sev,
			CustomerID: c.id, CustomerName: c.name, Window: w, Period: rolling(r.WindowDays),
			Evidence: ev, Title: title, Description: desc,
		})
	}
	return out
}

func planLabel(plan string) string {
	if plan == "" {
		return "lowest-tier"
	}
	return plan + "-plan"
}

func churnRisk(cfg Config, fr frame, c *customer) (Finding, bool) {
	r := cfg.ChurnRisk
	k, n := r.PeriodDays, fr.n
	revenue := sum(c.revenue, n-r.PayingDays, n)
	if !revenue.IsPositive() {
		return Finding{}, false
	}
	activePrev, activeLast := 0, 0
	for d := n - 2*k; d < n; d++ {
		used := false
		for _, f := range c.features {
			used = used || f.qty[d].IsPositive()
		}
		switch {
		case !used:
		case d < n-k:
			activePrev++
		default:
			activeLast++
		}
	}
	if activePrev < max(r.MinActiveDays, 1) {
		return Finding{}, false
	}
	prev, last, priced := usageValues(c, n-2*k, n-k, n)
	if !prev.IsPositive() {
		return Finding{}, false
	}
	fall := prev.Sub(last)
	if !fall.Mul(hundred).GreaterThan(r.DropPercent.Mul(prev)) {
		return Finding{}, false
	}
	sev := SeverityWarning
	if fall.Mul(hundred).GreaterThanOrEqual(r.CriticalDropPercent.Mul(prev)) {
		sev = SeverityCritical
	}
	drop := percentOf(fall, prev)
	name, cur, w := c.displayName(), cfg.Currency, fr.window(n-k, n)
	valued := fmt.Sprintf("usage valued at its average unit costs: %s against %s", money(last, cur), money(prev, cur))
	if !priced {
		valued = fmt.Sprintf("its features have no cost, so their quantities were added: %s against %s", number(last), number(prev))
	}
	return Finding{
		Kind: KindChurnRisk, Severity: sev,
		CustomerID: c.id, CustomerName: c.name, Window: w, Period: rolling(k),
		Evidence: map[string]string{
			"previous_usage_value": prev.Round(6).String(), "recent_usage_value": last.Round(6).String(),
			"change_percent":       drop.Neg().String(),
			"previous_active_days": strconv.Itoa(activePrev), "recent_active_days": strconv.Itoa(activeLast),
			"revenue": revenue.String(),
		},
		Title: fmt.Sprintf("%s's usage fell %s%% over the last %d days", name, pct(drop), k),
		Description: fmt.Sprintf("From %s, %s used %s%% less than over the %d days before (%s), on %d active %s against %d, while it still pays (%s of revenue over the last %d days). Reach out before it cancels.",
			w, name, pct(drop), k, valued, activeLast, plural(activeLast, "day", "days"), activePrev, money(revenue, cur), r.PayingDays),
	}, true
}

// usageValues values c's usage over [a, b) and [b, e) at each feature's
// average unit cost over [a, e): a volume index that adds features in
// different units and is not moved by prices alone. When no feature has a
// cost, it adds raw quantities instead (priced false).
func usageValues(c *customer, a, b, e int) (prev, last decimal.Decimal, priced bool) {
	const precision = 12
	prev, last = decimal.Zero, decimal.Zero
	for _, f := range c.features {
		qty, cost := sum(f.qty, a, e), sum(f.cost, a, e)
		if !qty.IsPositive() || !cost.IsPositive() {
			continue
		}
		priced = true
		prev = prev.Add(sum(f.qty, a, b).Mul(cost).DivRound(qty, precision))
		last = last.Add(sum(f.qty, b, e).Mul(cost).DivRound(qty, precision))
	}
	if priced {
		return prev, last, true
	}
	for _, f := range c.features {
		prev, last = prev.Add(sum(f.qty, a, b)), last.Add(sum(f.qty, b, e))
	}
	return prev, last, false
}
