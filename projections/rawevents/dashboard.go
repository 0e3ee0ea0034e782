package rawevents

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
)

// ErrInvalidQuery marks a DashboardQuery the store refuses (test with
// errors.Is); the API answers it with 400.
var ErrInvalidQuery = errors.New("invalid query")

// MaxDashboardDays bounds a dashboard's range, so that a typo in a year cannot
// make the store build a series of a million days.
const MaxDashboardDays = 3660

// UnattributedFeature names the FeatureMetrics row that carries the revenue
// not yet attributed to any feature.
const UnattributedFeature = "(unattributed)"

// DashboardQuery selects the days and the reporting currency of a dashboard.
type DashboardQuery struct {
	// Start and End are UTC days, both included.
	Start, End Date
	// Currency is the ISO 4217 code of the reporting currency. Only amounts
	// in this currency are summed: there is no FX conversion yet, so usage
	// costs and revenue in other currencies are left out, not converted.
	Currency string
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports every problem of q, wrapped in ErrInvalidQuery.
func (q DashboardQuery) Validate() error {
	var errs []error
	if !currencyCode.MatchString(q.Currency) {
		errs = append(errs, fmt.Errorf("%w: currency must be an ISO 4217 code such as USD, got %q", ErrInvalidQuery, q.Currency))
	}
	if q.Start.Year < 1970 || q.End.Year > 2105 {
		errs = append(errs, fmt.Errorf("%w: dates must be in the years 1970 to 2105", ErrInvalidQuery))
	}
	switch days := q.Start.DaysUntil(q.End) + 1; {
	case days < 1:
		errs = append(errs, fmt.Errorf("%w: end %s is before start %s", ErrInvalidQuery, q.End, q.Start))
	case days > MaxDashboardDays:
		errs = append(errs, fmt.Errorf("%w: %d days asked, at most %d", ErrInvalidQuery, days, MaxDashboardDays))
	}
	return errors.Join(errs...)
}

// Dashboard is the usage cost, revenue and profit of a range of days in one
// reporting currency, exact to the last digit.
//
// Every event identity counts once, at its latest version, and not at all
// once voided. Usage cost is the sum of the cost of usage events on their UTC
// day. Revenue is cash basis: the sum of the amounts of charge, invoice_paid,
// refund, credit_note and dispute events on their UTC day (refunds and credit
// notes are negative; subscription_* events move no money). Only amounts in
// the reporting currency are summed (no FX conversion yet).
type Dashboard struct {
	Summary        Summary
	TimeSeries     []DayMetrics     // one entry per day of the range, oldest first, empty days included
	FeatureMetrics []FeatureMetrics // by feature name, then UnattributedFeature
}

// Summary totals the whole range.
type Summary struct {
	TotalUsageCost decimal.Decimal
	TotalRevenue   decimal.Decimal
	TotalProfit    decimal.Decimal // TotalRevenue - TotalUsageCost
	// ProfitMarginPercentage is TotalProfit / TotalRevenue × 100, rounded
	// half away from zero to MarginPlaces places; nil when revenue is zero.
	ProfitMarginPercentage *decimal.Decimal
}

// DayMetrics is one UTC day.
type DayMetrics struct {
	Date      Date
	UsageCost decimal.Decimal
	Revenue   decimal.Decimal
	Profit    decimal.Decimal
}

// FeatureMetrics is one feature over the range.
//
// Revenue is not attributed to features yet: every feature's Revenue is zero
// (its ProfitMargin nil) and one extra row named UnattributedFeature carries
// the whole revenue with zero cost, so that the rows' revenues sum to the
// total and no revenue is silently dropped. That row is present when the
// range has revenue events in the currency.
type FeatureMetrics struct {
	FeatureName string
	// UsageCount is the total quantity consumed, whatever the currency of
	// its cost (quantities of one feature are assumed to share a unit).
	UsageCount decimal.Decimal
	// TotalCost counts only costs in the reporting currency.
	TotalCost decimal.Decimal
	Revenue   decimal.Decimal
	// ProfitMargin is (Revenue - TotalCost) / Revenue × 100, rounded like
	// the summary's; nil when Revenue is zero.
	ProfitMargin *decimal.Decimal
}

// MarginPlaces is the number of decimal places of the margin percentages.
const MarginPlaces = 4

// revenueKinds move money; subscription_* kinds only record a state change.
var revenueKinds = []string{event.KindCharge, event.KindInvoicePaid, event.KindRefund, event.KindCreditNote, event.KindDispute}

// Every read below uses FINAL and filters void = 0 in WHERE: FINAL leaves the
// highest rev of each identity (duplicates and older versions gone even in
// unmerged parts), and only then may voided rows be dropped. The filters stay
// in WHERE, never PREWHERE: a PREWHERE is applied before FINAL collapses the
// versions and would let an older, unvoided version or one on another day
// through. ClickHouse does not move WHERE to PREWHERE on FINAL queries (18.16
// never, current releases unless optimize_move_to_prewhere_if_final is set).
// Sums stay Decimal: sum(Decimal(P, 9)) is Decimal(38, 9) in ClickHouse.

// usageQuery is the cost and quantity of usage per day and feature. Quantity
// counts every currency; cost only the reporting one.
type usageQuery struct {
	start, end Date
	currency   string
}

func (q usageQuery) toSQL() (string, []any) {
	return `SELECT day, feature, sum(quantity) AS quantity, sumIf(cost, currency = ?) AS cost
FROM usage_events FINAL
WHERE void = 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, feature
ORDER BY day, feature`, []any{q.currency, q.start.String(), q.end.String()}
}

// revenueQuery is the revenue per day in the reporting currency.
type revenueQuery struct {
	start, end Date
	currency   string
}

func (q revenueQuery) toSQL() (string, []any) {
	return `SELECT day, sum(amount) AS revenue
FROM revenue_events FINAL
WHERE void = 0 AND currency = ? AND kind IN (` + quoteAll(revenueKinds) + `) AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day
ORDER BY day`, []any{q.currency, q.start.String(), q.end.String()}
}

// quoteAll writes constant strings (never user input) as SQL literals.
func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// Dashboard reads the dashboard of q from the raw events: a scan of every
// event of the range, so the API reads the daily aggregates instead
// (aggregates.Analytics); this is the reference the aggregates are tested
// against. Errors: ErrInvalidQuery for
// a bad q, otherwise a ClickHouse error.
func (s *ClickHouseStore) Dashboard(ctx context.Context, q DashboardQuery) (Dashboard, error) {
	if err := q.Validate(); err != nil {
		return Dashboard{}, err
	}

	var usage []usageRow
	sql, args := usageQuery{start: q.Start, end: q.End, currency: q.Currency}.toSQL()
	if err := s.query(ctx, sql, args, func(scan func(...any) error) error {
		var (
			r   usageRow
			day time.Time
		)
		if err := scan(&day, &r.Feature, &r.Quantity, &r.Cost); err != nil {
			return err
		}
		r.Day = DateOf(day)
		usage = append(usage, r)
		return nil
	}); err != nil {
		return Dashboard{}, fmt.Errorf("dashboard usage: %w", err)
	}

	var revenue []revenueRow
	sql, args = revenueQuery{start: q.Start, end: q.End, currency: q.Currency}.toSQL()
	if err := s.query(ctx, sql, args, func(scan func(...any) error) error {
		var (
			r   revenueRow
			day time.Time
		)
		if err := scan(&day, &r.Amount); err != nil {
			return err
		}
		r.Day = DateOf(day)
		revenue = append(revenue, r)
		return nil
	}); err != nil {
		return Dashboard{}, fmt.Errorf("dashboard revenue: %w", err)
	}

	return buildDashboard(q, usage, revenue)
}

func (s *ClickHouseStore) query(ctx context.Context, sql string, args []any, row func(scan func(...any) error) error) error {
	return chstore.QueryRows(ctx, s.conn, sql, args, row)
}

// UsageTotal is the usage of one feature on one day: the quantity in every
// currency, the cost in the reporting currency only. BuildDashboard's input;
// a (day, feature) has a row when it has at least one counted usage event.
type UsageTotal struct {
	Day            Date
	Feature        string
	Quantity, Cost decimal.Decimal
}

// RevenueTotal is the revenue of one day in the reporting currency; a day has
// a row when it has at least one counted revenue event in that currency.
type RevenueTotal struct {
	Day    Date
	Amount decimal.Decimal
}

type (
	usageRow   = UsageTotal
	revenueRow = RevenueTotal
)

// RevenueKinds lists the event kinds that move money, the ones Dashboard's
// revenue sums (a copy: callers may keep it).
func RevenueKinds() []string { return slices.Clone(revenueKinds) }

// BuildDashboard assembles the dashboard of q from per-day totals, whatever
// store computed them (the raw events here, the daily aggregates in
// projections/aggregates), so both give the same response.
func BuildDashboard(q DashboardQuery, usage []UsageTotal, revenue []RevenueTotal) (Dashboard, error) {
	return buildDashboard(q, usage, revenue)
}

// buildDashboard assembles the dashboard from the query results: it fills
// the days without events and derives totals, profits and margins, all in
// exact decimal arithmetic. Totals come from the same rows as the series and
// the features, so they always agree with them.
func buildDashboard(q DashboardQuery, usage []usageRow, revenue []revenueRow) (Dashboard, error) {
	days := q.Start.DaysUntil(q.End) + 1
	d := Dashboard{TimeSeries: make([]DayMetrics, days)}
	for i := range d.TimeSeries {
		d.TimeSeries[i] = DayMetrics{Date: q.Start.AddDays(i)}
	}
	dayOf := func(date Date) (*DayMetrics, error) {
		i := q.Start.DaysUntil(date)
		if i < 0 || i >= days {
			return nil, fmt.Errorf("dashboard: ClickHouse returned day %s outside %s..%s", date, q.Start, q.End)
		}
		return &d.TimeSeries[i], nil
	}

	features := map[string]*FeatureMetrics{}
	for _, u := range usage {
		day, err := dayOf(u.Day)
		if err != nil {
			return Dashboard{}, err
		}
		day.UsageCost = day.UsageCost.Add(u.Cost)
		f := features[u.Feature]
		if f == nil {
			f = &FeatureMetrics{FeatureName: u.Feature}
			features[u.Feature] = f
		}
		f.UsageCount = f.UsageCount.Add(u.Quantity)
		f.TotalCost = f.TotalCost.Add(u.Cost)
		d.Summary.TotalUsageCost = d.Summary.TotalUsageCost.Add(u.Cost)
	}
	for _, r := range revenue {
		day, err := dayOf(r.Day)
		if err != nil {
			return Dashboard{}, err
		}
		day.Revenue = day.Revenue.Add(r.Amount)
		d.Summary.TotalRevenue = d.Summary.TotalRevenue.Add(r.Amount)
	}
	for i := range d.TimeSeries {
		day := &d.TimeSeries[i]
		day.Profit = day.Revenue.Sub(day.UsageCost)
	}
	d.Summary.TotalProfit = d.Summary.TotalRevenue.Sub(d.Summary.TotalUsageCost)
	d.Summary.ProfitMarginPercentage = margin(d.Summary.TotalProfit, d.Summary.TotalRevenue)

	d.FeatureMetrics = make([]FeatureMetrics, 0, len(features)+1)
	for _, f := range features {
		f.ProfitMargin = margin(f.Revenue.Sub(f.TotalCost), f.Revenue)
		d.FeatureMetrics = append(d.FeatureMetrics, *f)
	}
	slices.SortFunc(d.FeatureMetrics, func(a, b FeatureMetrics) int { return strings.Compare(a.FeatureName, b.FeatureName) })
	if len(revenue) > 0 {
		total := d.Summary.TotalRevenue
		d.FeatureMetrics = append(d.FeatureMetrics, FeatureMetrics{
			FeatureName:  UnattributedFeature,
			Revenue:      total,
			ProfitMargin: margin(total, total),
		})
	}
	return d, nil
}

// margin is profit / revenue × 100 rounded to MarginPlaces; nil when revenue
// is zero.
func margin(profit, revenue decimal.Decimal) *decimal.Decimal {
	if revenue.IsZero() {
		return nil
	}
	m := profit.Mul(decimal.NewFromInt(100)).DivRound(revenue, MarginPlaces)
	return &m
}
