package aggregates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Analytics answers the per-customer, per-feature and time-series queries
// from the daily aggregates, grouping source references into canonical
// customers at query time.
//
// The grouping: the directory's Snapshot (reference → canonical customer) is
// passed into each query as two bound arrays and applied with transform():
// the aggregates keep the source reference they were written under, so a
// link, merge or split re-groups all history on the next query, with nothing
// re-ingested. transform() over constant arrays runs on ClickHouse 18.16 and
// current releases alike, needs no table to write, clean up or race on
// between concurrent queries (a customer_map table would need one per query
// or a version column), and the snapshot is small (one entry per reference);
// the arrays are bound into the query text, so each query raises its own
// max_query_size (default 256 KiB, about 5000 references) to what it
// holds. A reference missing from the snapshot is its own customer
// (customers.SelfID), computed in Go from the source and external id the
// query returns.
//
// Safe for concurrent use.
type Analytics struct {
	conn     driver.Conn
	snapshot Snapshot
	settings RevenueSettings
}

// RevenueSettings are the revenue settings applied at query time, so that a
// change applies to all history at once: the FX table (nil: none, and only
// amounts already in the asked currency can be summed) and the plan →
// feature mapping of revenue attribution. Safe for concurrent use.
type RevenueSettings interface {
	FX(ctx context.Context) (*pricing.FX, error)
	PlanFeatures(ctx context.Context) (map[string]string, error)
}

// noSettings: no FX table, no attribution.
type noSettings struct{}

func (noSettings) FX(context.Context) (*pricing.FX, error)                 { return nil, nil }
func (noSettings) PlanFeatures(context.Context) (map[string]string, error) { return nil, nil }

// Snapshot returns the current reference → canonical customer mapping
// (customers.Directory's Snapshot after a Sync, so that changes made by any
// instance apply); it is called once per query.
type Snapshot func(ctx context.Context) (map[customers.Ref]string, error)

// NewAnalytics returns Analytics on conn (open on the migrated database);
// snapshot returns the directory's mapping; nil: every reference is its own
// customer.
// settings (optional, at most one) gives the FX table and the revenue
// mapping; without it nothing is converted or attributed.
func NewAnalytics(conn driver.Conn, snapshot Snapshot, settings ...RevenueSettings) (*Analytics, error) {
	if conn == nil {
		return nil, errors.New("aggregates analytics: conn is required")
	}
	if snapshot == nil {
		snapshot = func(context.Context) (map[customers.Ref]string, error) { return nil, nil }
	}
	a := &Analytics{conn: conn, snapshot: snapshot, settings: noSettings{}}
	if len(settings) > 0 && settings[0] != nil {
		a.settings = settings[0]
	}
	return a, nil
}

// Range is a query's days (both included), the currency its money is
// converted into, and the basis of its revenue. Quantities are summed in
// every currency.
type Range struct {
	Start, End rawevents.Date
	Currency   string
	// Basis is BasisAccrual when empty.
	Basis Basis
}

// Basis is the view of revenue: cash (the day money moved) or accrual (spread
// over the service period; docs/analytics/revenue.md).
type Basis string

// The bases.
const (
	BasisCash    Basis = "cash"
	BasisAccrual Basis = "accrual"
)

func (r Range) validate() error {
	err := rawevents.DashboardQuery{Start: r.Start, End: r.End, Currency: r.Currency}.Validate()
	if r.Basis != "" && r.Basis != BasisCash && r.Basis != BasisAccrual {
		err = errors.Join(err, fmt.Errorf("%w: basis must be cash or accrual, got %q", rawevents.ErrInvalidQuery, string(r.Basis)))
	}
	return err
}

// CustomerTotal is one canonical customer's totals over a range.
// UnpricedQuantity is the part of Quantity no rate card priced (counted at
// zero cost; docs/analytics/costs.md).
type CustomerTotal struct {
	CustomerID       string
	Quantity         decimal.Decimal
	UnpricedQuantity decimal.Decimal
	Cost             decimal.Decimal
	Revenue          decimal.Decimal
}

// FeatureTotal is one feature's totals over a range. Revenue is attributed
// to no feature yet: it appears on the rawevents.UnattributedFeature row.
// UnpricedQuantity is the part of Quantity no rate card priced, so that a
// zero Cost can be told apart from usage whose price is unknown.
type FeatureTotal struct {
	Feature          string
	Quantity         decimal.Decimal
	UnpricedQuantity decimal.Decimal
	Cost             decimal.Decimal
	Revenue          decimal.Decimal
}

// Period groups a time series.
type Period string

// The periods: a week starts on Monday, a month on its first day.
const (
	PeriodDay   Period = "day"
	PeriodWeek  Period = "week"
	PeriodMonth Period = "month"
)

// Point is one period × customer × feature of a time series. Usage rows
// carry a feature; revenue rows carry rawevents.UnattributedFeature.
// UnpricedQuantity is the part of Quantity no rate card priced.
type Point struct {
	Period           rawevents.Date
	CustomerID       string
	Feature          string
	Quantity         decimal.Decimal
	UnpricedQuantity decimal.Decimal
	Cost             decimal.Decimal
	Revenue          decimal.Decimal
}

// Customers sums usage, cost and revenue per canonical customer over r, by
// customer id. Errors: rawevents.ErrInvalidQuery for a bad r, otherwise a
// ClickHouse error.
func (a *Analytics) Customers(ctx context.Context, r Range) ([]CustomerTotal, error) {
	points, err := a.points(ctx, r, PeriodDay, "", false, false)
	if err != nil {
		return nil, err
	}
	by := map[string]*CustomerTotal{}
	for _, p := range points {
		t := by[p.CustomerID]
		if t == nil {
			t = &CustomerTotal{CustomerID: p.CustomerID}
			by[p.CustomerID] = t
		}
		t.Quantity = t.Quantity.Add(p.Quantity)
		t.UnpricedQuantity = t.UnpricedQuantity.Add(p.UnpricedQuantity)
		t.Cost = t.Cost.Add(p.Cost)
		t.Revenue = t.Revenue.Add(p.Revenue)
	}
	out := make([]CustomerTotal, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(x, y CustomerTotal) int { return cmp.Compare(x.CustomerID, y.CustomerID) })
	return out, nil
}

// Features sums usage and cost per feature over r (of one customer when
// customerID is not empty), by feature, with the range's revenue on the
// rawevents.UnattributedFeature row when there is any.
func (a *Analytics) Features(ctx context.Context, r Range, customerID string) ([]FeatureTotal, error) {
	points, err := a.points(ctx, r, PeriodDay, customerID, true, false)
	if err != nil {
		return nil, err
	}
	by := map[string]*FeatureTotal{}
	for _, p := range points {
		t := by[p.Feature]
		if t == nil {
			t = &FeatureTotal{Feature: p.Feature}
			by[p.Feature] = t
		}
		t.Quantity = t.Quantity.Add(p.Quantity)
		t.UnpricedQuantity = t.UnpricedQuantity.Add(p.UnpricedQuantity)
		t.Cost = t.Cost.Add(p.Cost)
		t.Revenue = t.Revenue.Add(p.Revenue)
	}
	out := make([]FeatureTotal, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(x, y FeatureTotal) int { return cmp.Compare(x.Feature, y.Feature) })
	return out, nil
}

// Series returns the points of r per period × customer × feature (of one
// customer when customerID is not empty), by period, customer, feature. The
// caller folds them into the grouping it serves (customer, feature, plan).
func (a *Analytics) Series(ctx context.Context, r Range, period Period, customerID string) ([]Point, error) {
	return a.points(ctx, r, period, customerID, true, true)
}

// points reads usage and revenue per day × customer × feature × currency,
// converts each row's money into r.Currency with the FX table of that day
// (see convert), attributes revenue to features through the plan mapping,
// and folds the rows into periods and canonical customers in Go.
func (a *Analytics) points(ctx context.Context, r Range, period Period, customerID string, byFeature, byPeriod bool) ([]Point, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if _, err := periodExpr(period); err != nil {
		return nil, err
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("customer snapshot: %w", err)
	}
	m := newMapping(snap)
	conv, err := a.converter(ctx, r.Currency)
	if err != nil {
		return nil, err
	}
	plans, err := a.settings.PlanFeatures(ctx)
	if err != nil {
		return nil, fmt.Errorf("revenue mapping: %w", err)
	}
	type key struct {
		period   rawevents.Date
		customer string
		feature  string
	}
	by := map[key]*Point{}
	add := func(day rawevents.Date, customer, feature string, qty, unpriced, cost, rev decimal.Decimal) {
		if customerID != "" && customer != customerID {
			return
		}
		k := key{periodOf(period, day), customer, feature}
		if !byFeature {
			k.feature = ""
		}
		if !byPeriod {
			k.period = rawevents.Date{}
		}
		p := by[k]
		if p == nil {
			p = &Point{Period: k.period, CustomerID: k.customer, Feature: k.feature}
			by[k] = p
		}
		p.Quantity = p.Quantity.Add(qty)
		p.UnpricedQuantity = p.UnpricedQuantity.Add(unpriced)
		p.Cost = p.Cost.Add(cost)
		p.Revenue = p.Revenue.Add(rev)
	}

	sql, args := usageByCustomerSQL(r, m)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			day                time.Time
			customer, src, ext string
			feature, currency  string
			qty, unpriced      decimal.Decimal
			cost               decimal.Decimal
		)
		if err := scan(&day, &customer, &src, &ext, &feature, &currency, &qty, &unpriced, &cost); err != nil {
			return err
		}
		d := rawevents.DateOf(day)
		cost, err := conv.convert(cost, currency, d)
		if err != nil {
			return err
		}
		// Quantities are not money: only the cost is converted.
		add(d, m.canonical(customer, src, ext), feature, qty, unpriced, cost, decimal.Zero)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("usage by customer from %s: %w", TableDailyUsage, err)
	}
	sql, args = revenueByCustomerSQL(r, m)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			day                time.Time
			customer, src, ext string
			plan, currency     string
			rev                decimal.Decimal
		)
		if err := scan(&day, &customer, &src, &ext, &plan, &currency, &rev); err != nil {
			return err
		}
		d := rawevents.DateOf(day)
		rev, err := conv.convert(rev, currency, d)
		if err != nil {
			return err
		}
		feature, ok := plans[plan]
		if !ok || plan == "" {
			feature = rawevents.UnattributedFeature
		}
		add(d, m.canonical(customer, src, ext), feature, decimal.Zero, decimal.Zero, decimal.Zero, rev)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("revenue by customer from %s: %w", TableDailyRevenueLines, err)
	}
	out := make([]Point, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(x, y Point) int {
		return cmp.Or(cmp.Compare(x.Period.String(), y.Period.String()),
			cmp.Compare(x.CustomerID, y.CustomerID), cmp.Compare(x.Feature, y.Feature))
	})
	return out, nil
}

// periodOf is the first day of day's period (toMonday / toStartOfMonth).
func periodOf(p Period, day rawevents.Date) rawevents.Date {
	switch p {
	case PeriodWeek:
		t := day.Midnight()
		return rawevents.DateOf(t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)))
	case PeriodMonth:
		t := day.Midnight()
		return rawevents.DateOf(time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC))
	}
	return day
}

// mapping is a snapshot as the two arrays transform() takes: keys
// (refKey) and canonical ids, sorted by key so the SQL is deterministic.
type mapping struct {
	keys, ids []string
}

// defaultMaxQuerySize is ClickHouse's default max_query_size.
const defaultMaxQuerySize = 256 << 10

// context raises max_query_size for sql's query when the bound arrays may
// not fit in the default: each entry is quoted and escaped (at most twice
// its bytes) with a separator.
func (m mapping) context(ctx context.Context, sql string) context.Context {
	size := len(sql) + 4096
	for i := range m.keys {
		size += 2*(len(m.keys[i])+len(m.ids[i])) + 8
	}
	if size <= defaultMaxQuerySize {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_query_size": size}))
}

func newMapping(snap map[customers.Ref]string) mapping {
	refs := make([]customers.Ref, 0, len(snap))
	for r := range snap {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(x, y customers.Ref) int {
		return cmp.Compare(refKey(x.Source, x.ExternalID), refKey(y.Source, y.ExternalID))
	})
	m := mapping{keys: make([]string, len(refs)), ids: make([]string, len(refs))}
	for i, r := range refs {
		m.keys[i], m.ids[i] = refKey(r.Source, r.ExternalID), snap[r]
	}
	return m
}

// refKey is a reference as one string, unambiguous whatever either part
// holds: the source's length in bytes, a colon, the source, the external id.
// customerKeySQL computes the same in ClickHouse (length counts bytes too).
func refKey(source, externalID string) string {
	return strconv.Itoa(len(source)) + ":" + source + externalID
}

// canonical is the customer of a row: the id transform() found, else the
// reference's own customer.
func (m mapping) canonical(found, source, externalID string) string {
	if found != "" {
		return found
	}
	return customers.SelfID(customers.Ref{Source: source, ExternalID: externalID})
}

// customerSQL is the canonical customer of a row (” when the snapshot does
// not know the reference) followed by the reference itself, which the query
// groups by too only when it is unknown (so a known customer is one group).
func customerSQL(m mapping) (string, []any) {
	if len(m.keys) == 0 { // transform() of empty arrays has no type on 18.16
		return `'' AS customer, customer_source AS src, customer_external_id AS ext`, nil
	}
	return `transform(concat(toString(length(customer_source)), ':', customer_source, customer_external_id), ?, ?, '') AS customer, if(customer = '', customer_source, '') AS src, if(customer = '', customer_external_id, '') AS ext`,
		[]any{m.keys, m.ids}
}

func periodExpr(p Period) (string, error) {
	switch p {
	case PeriodDay:
		return "day", nil
	case PeriodWeek:
		return "toMonday(day)", nil
	case PeriodMonth:
		return "toStartOfMonth(day)", nil
	}
	return "", fmt.Errorf("%w: group_by must be day, week or month, got %q", rawevents.ErrInvalidQuery, string(p))
}

// usageByCustomerSQL sums daily_usage per day × canonical customer ×
// feature × currency (currencies are converted in Go, per row): the
// quantity, the part of it no rate card priced, and the cost.
func usageByCustomerSQL(r Range, m mapping) (string, []any) {
	cust, args := customerSQL(m)
	return `SELECT day, ` + cust + `, feature, currency, sum(quantity) AS quantity, sum(unpriced_quantity) AS unpriced_quantity, sum(cost) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, customer, src, ext, feature, currency
ORDER BY day, customer, src, ext, feature, currency`, append(args, r.Start.String(), r.End.String())
}

// revenueByCustomerSQL sums daily_revenue_lines' cash or accrual (r.Basis)
// per day × canonical customer × plan × currency.
func revenueByCustomerSQL(r Range, m mapping) (string, []any) {
	cust, args := customerSQL(m)
	column := "accrual"
	if r.Basis == BasisCash {
		column = "cash"
	}
	return `SELECT day, ` + cust + `, plan, currency, sum(` + column + `) AS revenue
FROM daily_revenue_lines FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, customer, src, ext, plan, currency
ORDER BY day, customer, src, ext, plan, currency`, append(args, r.Start.String(), r.End.String())
}

// RevenueItem is one revenue event of a range, as revenue_by_day holds its
// current version.
type RevenueItem struct {
	Day        rawevents.Date
	Source, ID string
	Kind       string
	Currency   string
	Amount     decimal.Decimal
}

// MaxRevenueItems bounds RevenueItems.
const MaxRevenueItems = 1000

// RevenueItems lists the revenue events of customerID over r (every
// currency, the kinds that move money), by day, source and id, at most
// MaxRevenueItems of them.
func (a *Analytics) RevenueItems(ctx context.Context, r Range, customerID string) ([]RevenueItem, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("customer snapshot: %w", err)
	}
	m := newMapping(snap)
	var out []RevenueItem
	sql, args := revenueItemsSQL(r, m)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			day                time.Time
			customer, src, ext string
			it                 RevenueItem
		)
		if err := scan(&day, &customer, &src, &ext, &it.Source, &it.ID, &it.Kind, &it.Currency, &it.Amount); err != nil {
			return err
		}
		if m.canonical(customer, src, ext) != customerID || len(out) >= MaxRevenueItems {
			return nil
		}
		it.Day = rawevents.DateOf(day)
		out = append(out, it)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("revenue items from %s: %w", TableRevenueByDay, err)
	}
	return out, nil
}

// revenueItemsSQL lists the current, unvoided revenue events of a range
// with their canonical customer.
func revenueItemsSQL(r Range, m mapping) (string, []any) {
	cust, args := customerSQL(m)
	cust = strings.ReplaceAll(cust, "if(customer = '', customer_source, '')", "customer_source")
	cust = strings.ReplaceAll(cust, "if(customer = '', customer_external_id, '')", "customer_external_id")
	return `SELECT day, ` + cust + `, source, id, kind, currency, amount
FROM revenue_by_day FINAL
WHERE ` + CountedSQL(event.TypeRevenue) + ` AND day >= toDate(?) AND day <= toDate(?) AND kind IN (` + quoteAll(rawevents.RevenueKinds()) + `)
ORDER BY day, source, id`, append(args, r.Start.String(), r.End.String())
}

// FeatureRevenue returns the revenue attributed to features over r, per
// feature and day (r's basis, converted into r.Currency as every query
// is), and every feature the revenue mapping attributes a plan to, with
// revenue in r or not: such a feature's revenue is known, so zero means
// zero, whereas unattributed revenue is unknown per feature. The insights'
// unprofitable-feature rule reads it.
func (a *Analytics) FeatureRevenue(ctx context.Context, r Range) ([]string, map[string]map[rawevents.Date]decimal.Decimal, error) {
	plans, err := a.settings.PlanFeatures(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("revenue mapping: %w", err)
	}
	var features []string
	for _, f := range plans {
		if !slices.Contains(features, f) {
			features = append(features, f)
		}
	}
	slices.Sort(features)
	if len(features) == 0 {
		return nil, nil, nil
	}
	points, err := a.points(ctx, r, PeriodDay, "", true, true)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]map[rawevents.Date]decimal.Decimal{}
	for _, p := range points {
		if p.Revenue.IsZero() || !slices.Contains(features, p.Feature) {
			continue
		}
		if out[p.Feature] == nil {
			out[p.Feature] = map[rawevents.Date]decimal.Decimal{}
		}
		out[p.Feature][p.Period] = out[p.Feature][p.Period].Add(p.Revenue)
	}
	return features, out, nil
}
