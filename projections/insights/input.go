package insights

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Source reads the daily aggregates the rules evaluate. The projection layer
// implements it on ClickHouse's daily tables; tests fill it by hand.
//
// Both methods return the days of w only (others are ignored), in the
// reporting currency. A day missing from a series is a day with nothing:
// zero revenue, cost and usage. An error means the data could not be read;
// the run then fails and changes no flag, so an implementation must never
// answer an outage with empty series (every flag would resolve). Safe for
// concurrent use.
type Source interface {
	// CustomerDays returns one series per customer with any revenue, cost
	// or usage in w.
	CustomerDays(ctx context.Context, w Window) ([]CustomerSeries, error)
	// FeatureDays returns one series per feature with any cost or
	// attributed revenue in w.
	FeatureDays(ctx context.Context, w Window) ([]FeatureSeries, error)
}

// CustomerSeries is one canonical customer's days.
type CustomerSeries struct {
	CustomerID string // canonical customer id (required)
	Name       string // shown in titles; the id when empty
	// Plan, PlanTier and IncludedQuota describe the customer's current plan
	// (at the end of the window). PlanTier ranks plans, 0 for the cheapest;
	// the upsell rule looks for heavy users on the lowest tier present.
	Plan     string
	PlanTier int
	// IncludedQuota is the metered usage (see CustomerDay.MeteredUsage) the
	// plan includes per 30-day billing month; zero means no quota.
	IncludedQuota decimal.Decimal
	Days          []CustomerDay
}

// CustomerDay is one customer's numbers for one UTC day. Entries for the same
// day are added together.
type CustomerDay struct {
	Day time.Time // the UTC midnight of the day
	// Revenue recognised that day (accrual basis by default; what the
	// projection chooses), net of refunds and credit notes.
	Revenue decimal.Decimal
	// Cost of everything the customer used that day.
	Cost decimal.Decimal
	// MeteredUsage is the usage that counts against the plan's included
	// quota (for example every LLM token), in the quota's unit.
	MeteredUsage decimal.Decimal
	// Usage per feature name.
	Usage map[string]Usage
}

// Usage is a feature's quantity (in the feature's unit) and cost for a day.
type Usage struct {
	Quantity decimal.Decimal
	Cost     decimal.Decimal
}

// FeatureSeries is one feature's days across all customers.
type FeatureSeries struct {
	Feature string // feature name, e.g. "gpt-4o.output_tokens" (required)
	// Attributed is true when some price or plan maps revenue to this
	// feature. Features without attribution are never called unprofitable:
	// their revenue is unattributed, not zero.
	Attributed bool
	Days       []FeatureDay
}

// FeatureDay is one feature's cost and attributed revenue for a UTC day.
type FeatureDay struct {
	Day               time.Time
	Cost              decimal.Decimal
	AttributedRevenue decimal.Decimal
}

// frame is the dense form of the data window: day i is start + i days, and
// the evaluation's "today" (excluded) is index n.
type frame struct {
	start time.Time
	n     int
}

func (f frame) index(t time.Time) (int, bool) {
	t = Day(t)
	i := int(t.Sub(f.start) / (24 * time.Hour))
	if t.Before(f.start) || i >= f.n {
		return 0, false
	}
	return i, true
}

func (f frame) date(i int) time.Time { return f.start.AddDate(0, 0, i) }

// window is the Window of indices [from, to).
func (f frame) window(from, to int) Window { return Window{Start: f.date(from), End: f.date(to)} }

// customer is a CustomerSeries densified over a frame.
type customer struct {
	id, name, plan string
	tier           int
	quota          decimal.Decimal
	revenue, cost  []decimal.Decimal
	metered        []decimal.Decimal
	features       []*feature // sorted by name
}

type feature struct {
	name string
	qty  []decimal.Decimal
	cost []decimal.Decimal
	f    []float64 // qty as float64, for the anomaly statistics only
}

func (c *customer) displayName() string {
	if c.name != "" {
		return c.name
	}
	return c.id
}

func zeros(n int) []decimal.Decimal {
	s := make([]decimal.Decimal, n)
	for i := range s {
		s[i] = decimal.Zero
	}
	return s
}

// densify merges series by customer id (a repeated id adds up) and spreads
// their days over fr.
func densify(fr frame, in []CustomerSeries) []*customer {
	byID := map[string]*customer{}
	var out []*customer
	for _, s := range in {
		if s.CustomerID == "" {
			continue
		}
		c := byID[s.CustomerID]
		if c == nil {
			c = &customer{id: s.CustomerID, revenue: zeros(fr.n), cost: zeros(fr.n), metered: zeros(fr.n)}
			byID[s.CustomerID] = c
			out = append(out, c)
		}
		if s.Name != "" {
			c.name = s.Name
		}
		if s.Plan != "" || c.plan == "" {
			c.plan, c.tier, c.quota = s.Plan, s.PlanTier, s.IncludedQuota
		}
		features := map[string]*feature{}
		for _, f := range c.features {
			features[f.name] = f
		}
		for _, d := range s.Days {
			i, ok := fr.index(d.Day)
			if !ok {
				continue
			}
			addTo(&c.revenue[i], d.Revenue)
			addTo(&c.cost[i], d.Cost)
			addTo(&c.metered[i], d.MeteredUsage)
			for name, u := range d.Usage {
				f := features[name]
				if f == nil {
					f = &feature{name: name, qty: zeros(fr.n), cost: zeros(fr.n)}
					features[name] = f
					c.features = append(c.features, f)
				}
				addTo(&f.qty[i], u.Quantity)
				addTo(&f.cost[i], u.Cost)
			}
		}
	}
	for _, c := range out {
		slices.SortFunc(c.features, func(a, b *feature) int { return cmp.Compare(a.name, b.name) })
		for _, f := range c.features {
			f.f = make([]float64, fr.n)
			for i, q := range f.qty {
				f.f[i] = toFloat(q)
			}
		}
	}
	slices.SortFunc(out, func(a, b *customer) int { return cmp.Compare(a.id, b.id) })
	return out
}

type featureTotals struct {
	name       string
	attributed bool
	cost, rev  []decimal.Decimal
}

func densifyFeatures(fr frame, in []FeatureSeries) []*featureTotals {
	byName := map[string]*featureTotals{}
	var out []*featureTotals
	for _, s := range in {
		if s.Feature == "" {
			continue
		}
		f := byName[s.Feature]
		if f == nil {
			f = &featureTotals{name: s.Feature, cost: zeros(fr.n), rev: zeros(fr.n)}
			byName[s.Feature] = f
			out = append(out, f)
		}
		f.attributed = f.attributed || s.Attributed
		for _, d := range s.Days {
			i, ok := fr.index(d.Day)
			if !ok {
				continue
			}
			addTo(&f.cost[i], d.Cost)
			addTo(&f.rev[i], d.AttributedRevenue)
		}
	}
	slices.SortFunc(out, func(a, b *featureTotals) int { return cmp.Compare(a.name, b.name) })
	return out
}

// addTo adds x to *dst; most slots receive one value, which is then copied
// instead of added (a decimal addition allocates).
func addTo(dst *decimal.Decimal, x decimal.Decimal) {
	switch {
	case x.IsZero():
	case dst.IsZero():
		*dst = x
	default:
		*dst = dst.Add(x)
	}
}

// toFloat converts a quantity for the anomaly statistics: coefficient times
// a power of ten when the coefficient fits a float64 exactly (the common
// case, and much faster than the exact conversion), else the exact one.
func toFloat(q decimal.Decimal) float64 {
	const exact = 1 << 53
	if c := q.Coefficient(); c.IsInt64() {
		if v := c.Int64(); v > -exact && v < exact {
			return float64(v) * math.Pow10(int(q.Exponent()))
		}
	}
	return q.InexactFloat64()
}

func sum(xs []decimal.Decimal, from, to int) decimal.Decimal {
	s := decimal.Zero
	for _, x := range xs[max(0, from):to] {
		s = s.Add(x)
	}
	return s
}
