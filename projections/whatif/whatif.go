// Package whatif answers "what would this customer (or every customer) have
// earned, cost and kept over these days under another plan or rate card?"
// from the real usage and revenue of the daily aggregates. It is pure: the
// caller reads the aggregates and the current rate card; Simulate only
// computes, with exact decimals throughout.
package whatif

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// MaxDays is the longest range Simulate takes (one leap year).
const MaxDays = 366

// MoneyPlaces is where a prorated price, a prorated quota and a card cost are
// rounded, half to even: the scale of uvr's money columns (pricing.MaxScale).
const MoneyPlaces = pricing.MaxScale

// Usage is one day × customer × feature of real usage: the quantity and its
// actual cost in the simulation's currency.
type Usage struct {
	Day        rawevents.Date
	CustomerID string
	Feature    string
	Quantity   decimal.Decimal
	Cost       decimal.Decimal
}

// Revenue is a customer's actual revenue over the range, in the currency.
type Revenue struct {
	CustomerID string
	Amount     decimal.Decimal
}

// Plan is a subscription plan to simulate in place of the actual revenue.
type Plan struct {
	// Price is charged per calendar month, prorated by days (see Simulate).
	Price decimal.Decimal
	// Included is the quantity included per month, per feature; or
	// IncludedTotal, one quantity shared by every priced feature. At most
	// one of them is set.
	Included      map[string]decimal.Decimal
	IncludedTotal *decimal.Decimal
	// Overage is the price per unit above the included quantity, per
	// feature; OverageAll applies to every feature Overage does not list.
	Overage    map[string]decimal.Decimal
	OverageAll *decimal.Decimal
}

// Input is one simulation.
type Input struct {
	Start, End rawevents.Date // both included
	Currency   string
	Usage      []Usage
	Revenue    []Revenue
	// Customers are the customers simulated (one, or every customer with
	// activity); a plan is charged to each of them.
	Customers []string
	Plan      *Plan
	// Card is the simulated rate card: the current layers with the user's
	// cards on top, as layer UserLayer. Only prices from that layer reprice
	// usage (see Simulate). Nil: no card change.
	Card      *pricing.RateCard
	UserLayer int
}

// Totals are revenue, cost, profit and margin over the range.
type Totals struct {
	Revenue, Cost, Profit decimal.Decimal
	// Margin is profit / revenue × 100, rounded half away from zero to
	// rawevents.MarginPlaces as every other route does; nil without revenue.
	Margin *decimal.Decimal
}

// FeatureLine is one feature's quantity and costs over the range.
type FeatureLine struct {
	Feature                   string
	Quantity                  decimal.Decimal
	ActualCost, SimulatedCost decimal.Decimal

	repriced, kept int // day × customer points the user's card priced, and not
}

// Result is Simulate's answer.
type Result struct {
	Actual, Simulated, Delta Totals
	ByFeature                []FeatureLine
	// Assumptions say, in plain words, every rule applied.
	Assumptions []string
}

// ErrInvalid is matched by Simulate's errors about its input.
var ErrInvalid = errors.New("invalid simulation")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks the range and the plan.
func (in Input) Validate() error {
	var errs []error
	days := in.Start.DaysUntil(in.End) + 1
	switch {
	case days < 1:
		errs = append(errs, invalidf("end_date %s is before start_date %s", in.End, in.Start))
	case days > MaxDays:
		errs = append(errs, invalidf("the range holds %d days, at most %d", days, MaxDays))
	}
	if p := in.Plan; p != nil {
		if p.Price.IsNegative() {
			errs = append(errs, invalidf("plan.price must not be negative, got %s", p.Price))
		}
		if p.Included != nil && p.IncludedTotal != nil {
			errs = append(errs, invalidf("plan.included_quantity is either per feature or a total, not both"))
		}
		if p.IncludedTotal != nil && p.IncludedTotal.IsNegative() {
			errs = append(errs, invalidf("plan.included_quantity must not be negative, got %s", p.IncludedTotal))
		}
		for _, f := range sortedKeys(p.Included) {
			if p.Included[f].IsNegative() {
				errs = append(errs, invalidf("plan.included_quantity.%s must not be negative, got %s", f, p.Included[f]))
			}
		}
		for _, f := range sortedKeys(p.Overage) {
			if p.Overage[f].IsNegative() {
				errs = append(errs, invalidf("plan.overage_price.%s must not be negative, got %s", f, p.Overage[f]))
			}
		}
		if p.OverageAll != nil && p.OverageAll.IsNegative() {
			errs = append(errs, invalidf("plan.overage_price must not be negative, got %s", p.OverageAll))
		}
	}
	return errors.Join(errs...)
}

// Simulate computes the actual and simulated totals.
//
// Rules (each also stated in Result.Assumptions):
//   - Actual revenue and cost are the aggregates' sums over the range.
//   - Without a plan, simulated revenue is the actual revenue. With a plan
//     it replaces the actual revenue entirely, for each simulated customer:
//     for each calendar month the range touches, price × (days of the range
//     in that month ÷ days of the month), rounded half to even to
//     MoneyPlaces per month (a whole month costs exactly the price), plus the
//     overage of that month.
//   - Overage, per customer and month: the included quantity is prorated
//     like the price. Per-feature quotas: each feature's quantity above its
//     quota (0 when not listed) × its overage price. A total quota is shared
//     by the features that have an overage price, used up by the most
//     expensive units first; the units above it are charged at their own
//     feature's price. A feature without an overage price is not charged
//     and uses no quota.
//   - Simulated cost: each day × customer × feature is priced with the
//     simulated card when the user's layer prices that feature on that day
//     in the simulation's currency (quantity × price, rounded half to even
//     to MoneyPlaces); otherwise it keeps its actual cost.
//
// It stops with ctx's error when ctx ends (a client that went away), checked
// between usage lines and customers: the work grows with the range and the
// customers, and nobody waits for its result any more.
func Simulate(ctx context.Context, in Input) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	var res Result
	byFeature := map[string]*FeatureLine{}
	feature := func(name string) *FeatureLine {
		f := byFeature[name]
		if f == nil {
			f = &FeatureLine{Feature: name}
			byFeature[name] = f
		}
		return f
	}
	var otherCurrency []string
	for i, u := range in.Usage {
		if i%1024 == 0 && ctx.Err() != nil {
			return Result{}, fmt.Errorf("simulate: %w", ctx.Err())
		}
		f := feature(u.Feature)
		f.Quantity = f.Quantity.Add(u.Quantity)
		f.ActualCost = f.ActualCost.Add(u.Cost)
		res.Actual.Cost = res.Actual.Cost.Add(u.Cost)
		cost := u.Cost
		if in.Card != nil {
			line, err := in.Card.Cost(u.Feature, u.Quantity, time.Date(u.Day.Year, u.Day.Month, u.Day.Day, 0, 0, 0, 0, time.UTC))
			switch {
			case err != nil || line.Layer != in.UserLayer:
				f.kept++
			case line.Currency != in.Currency:
				f.kept++
				otherCurrency = appendOnce(otherCurrency, u.Feature+" ("+line.Currency+")")
			default:
				cost = line.Amount
				f.repriced++
			}
		}
		f.SimulatedCost = f.SimulatedCost.Add(cost)
		res.Simulated.Cost = res.Simulated.Cost.Add(cost)
	}
	for _, r := range in.Revenue {
		res.Actual.Revenue = res.Actual.Revenue.Add(r.Amount)
	}

	res.Assumptions = append(res.Assumptions,
		fmt.Sprintf("Actual revenue and cost are the daily aggregates' sums from %s to %s in %s, for %s.", in.Start, in.End, in.Currency, who(in.Customers)))
	if in.Plan == nil {
		res.Simulated.Revenue = res.Actual.Revenue
		res.Assumptions = append(res.Assumptions, "No plan was given: the simulated revenue is the actual revenue.")
	} else {
		months := monthsOf(in.Start, in.End)
		usage := monthlyUsage(in.Usage)
		for _, c := range in.Customers {
			if err := ctx.Err(); err != nil {
				return Result{}, fmt.Errorf("simulate: %w", err)
			}
			for _, m := range months {
				res.Simulated.Revenue = res.Simulated.Revenue.Add(m.prorate(in.Plan.Price))
				res.Simulated.Revenue = res.Simulated.Revenue.Add(overage(in.Plan, m, usage[monthKey{c, m.first}]))
			}
		}
		res.Assumptions = append(res.Assumptions, planAssumptions(in.Plan, months, len(in.Customers))...)
	}
	if in.Card == nil {
		res.Assumptions = append(res.Assumptions, "No rate card was given: every cost is the actual cost.")
	} else {
		var repriced, kept int
		for _, f := range byFeature {
			repriced += f.repriced
			kept += f.kept
		}
		res.Assumptions = append(res.Assumptions, fmt.Sprintf(
			"Usage is repriced with the given rate card (over the current card) where the given card prices the feature on the day, "+
				"at quantity × price rounded half to even to %d decimal places: %d customer-days of a feature were repriced; "+
				"the other %d keep their actual cost.", MoneyPlaces, repriced, kept))
		if len(otherCurrency) > 0 {
			res.Assumptions = append(res.Assumptions, "Prices in another currency than "+in.Currency+" are not converted: "+
				strings.Join(otherCurrency, ", ")+" keep their actual cost.")
		}
	}

	res.Actual = totals(res.Actual.Revenue, res.Actual.Cost)
	res.Simulated = totals(res.Simulated.Revenue, res.Simulated.Cost)
	res.Delta = Totals{
		Revenue: res.Simulated.Revenue.Sub(res.Actual.Revenue),
		Cost:    res.Simulated.Cost.Sub(res.Actual.Cost),
		Profit:  res.Simulated.Profit.Sub(res.Actual.Profit),
	}
	if res.Actual.Margin != nil && res.Simulated.Margin != nil {
		d := res.Simulated.Margin.Sub(*res.Actual.Margin)
		res.Delta.Margin = &d
	}
	for _, f := range byFeature {
		res.ByFeature = append(res.ByFeature, *f)
	}
	slices.SortFunc(res.ByFeature, func(a, b FeatureLine) int { return cmp.Compare(a.Feature, b.Feature) })
	return res, nil
}

var hundred = decimal.NewFromInt(100)

func totals(revenue, cost decimal.Decimal) Totals {
	t := Totals{Revenue: revenue, Cost: cost, Profit: revenue.Sub(cost)}
	if !revenue.IsZero() {
		m := t.Profit.Mul(hundred).DivRound(revenue, rawevents.MarginPlaces)
		t.Margin = &m
	}
	return t
}

func who(customers []string) string {
	if len(customers) == 1 {
		return "customer " + customers[0]
	}
	return fmt.Sprintf("%d customers (every customer with usage or revenue in the range)", len(customers))
}

// month is the part of the range in one calendar month.
type month struct {
	first    rawevents.Date // the month's first day
	days, of int            // days of the range in it, days of the month
}

// prorate is amount × days ÷ of, rounded half to even to MoneyPlaces.
func (m month) prorate(amount decimal.Decimal) decimal.Decimal {
	if m.days == m.of {
		return amount
	}
	return amount.Mul(decimal.NewFromInt(int64(m.days))).Div(decimal.NewFromInt(int64(m.of))).RoundBank(MoneyPlaces)
}

func monthsOf(start, end rawevents.Date) []month {
	var out []month
	for d := start; !d.After(end); {
		first := rawevents.Date{Year: d.Year, Month: d.Month, Day: 1}
		next := rawevents.DateOf(time.Date(d.Year, d.Month+1, 1, 0, 0, 0, 0, time.UTC))
		last := next.AddDays(-1)
		if last.After(end) {
			last = end
		}
		out = append(out, month{first: first, days: d.DaysUntil(last) + 1, of: first.DaysUntil(next)})
		d = next
	}
	return out
}

type monthKey struct {
	customer string
	first    rawevents.Date
}

// monthlyUsage sums quantities per customer × month × feature.
func monthlyUsage(usage []Usage) map[monthKey]map[string]decimal.Decimal {
	out := map[monthKey]map[string]decimal.Decimal{}
	for _, u := range usage {
		k := monthKey{u.CustomerID, rawevents.Date{Year: u.Day.Year, Month: u.Day.Month, Day: 1}}
		if out[k] == nil {
			out[k] = map[string]decimal.Decimal{}
		}
		out[k][u.Feature] = out[k][u.Feature].Add(u.Quantity)
	}
	return out
}

// overage is one customer's overage charge for one month.
func overage(p *Plan, m month, used map[string]decimal.Decimal) decimal.Decimal {
	price := func(f string) (decimal.Decimal, bool) {
		if v, ok := p.Overage[f]; ok {
			return v, true
		}
		if p.OverageAll != nil {
			return *p.OverageAll, true
		}
		return decimal.Zero, false
	}
	var total decimal.Decimal
	charge := func(f string, units decimal.Decimal) {
		pr, _ := price(f)
		total = total.Add(units.Mul(pr))
	}
	if p.IncludedTotal == nil {
		for _, f := range sortedKeys(used) {
			if _, ok := price(f); !ok {
				continue
			}
			if over := used[f].Sub(m.prorate(p.Included[f])); over.IsPositive() {
				charge(f, over)
			}
		}
		return total
	}
	// A shared quota covers the most expensive units first (then by feature
	// name, so the result does not depend on map order).
	var priced []string
	for _, f := range sortedKeys(used) {
		if _, ok := price(f); ok {
			priced = append(priced, f)
		}
	}
	slices.SortStableFunc(priced, func(a, b string) int {
		pa, _ := price(a)
		pb, _ := price(b)
		return pb.Cmp(pa)
	})
	left := m.prorate(*p.IncludedTotal)
	for _, f := range priced {
		q := used[f]
		covered := decimal.Min(q, left)
		left = left.Sub(covered)
		if over := q.Sub(covered); over.IsPositive() {
			charge(f, over)
		}
	}
	return total
}

func planAssumptions(p *Plan, months []month, customers int) []string {
	var parts []string
	for _, m := range months {
		parts = append(parts, fmt.Sprintf("%s: %d of %d days", m.first.String()[:7], m.days, m.of))
	}
	out := []string{
		fmt.Sprintf("The plan replaces every actual revenue line (charges, invoices, refunds, credit notes) and is charged to each of the %d simulated customers.", customers),
		fmt.Sprintf("The plan price of %s per month is prorated by days for each calendar month of the range (%s), rounded half to even to %d decimal places; a whole month costs the whole price.",
			p.Price, strings.Join(parts, "; "), MoneyPlaces),
	}
	switch {
	case p.IncludedTotal != nil:
		out = append(out, fmt.Sprintf("The included quantity of %s per month (prorated like the price) is shared by every feature with an overage price and covers the most expensive units first; usage above it is charged at each feature's overage price, per customer and month.", p.IncludedTotal))
	case len(p.Included) > 0:
		out = append(out, "Each feature's included quantity per month (prorated like the price; 0 when not listed) is subtracted from its usage per customer and month; the rest is charged at the feature's overage price.")
	default:
		out = append(out, "No included quantity: every unit of a feature with an overage price is charged.")
	}
	if len(p.Overage) == 0 && p.OverageAll == nil {
		out = append(out, "No overage price: usage adds no revenue.")
	} else {
		out = append(out, "Features without an overage price add no revenue and use no included quantity.")
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
