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
	points, err := a.points(ctx, r, PeriodDay, grouping{byCustomer: true})
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
	points, err := a.points(ctx, r, PeriodDay, grouping{customerID: customerID, byCustomer: customerID != "", byFeature: true})
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
	return a.points(ctx, r, period, grouping{customerID: customerID, byCustomer: true, byFeature: true, byPeriod: true})
}

// Totals returns the points of r per period × feature, all customers
// together (CustomerID empty), by period, feature: what the dashboard shows.
// The money already in r.Currency is summed over customers in ClickHouse,
// so the rows read back number periods × features, not periods × customers
// × features; only other currencies' rows are read per customer, to convert
// them by the rule.
func (a *Analytics) Totals(ctx context.Context, r Range, period Period) ([]Point, error) {
	return a.points(ctx, r, period, grouping{byFeature: true, byPeriod: true})
}

// grouping is what points keeps apart; a dimension left out is summed over.
type grouping struct {
	customerID string // only this canonical customer (needs byCustomer)
	byCustomer bool
	byFeature  bool
	byPeriod   bool
}

// points reads usage and revenue per day × customer × feature × currency,
// converts each row's money into r.Currency with the FX table of that day
// (see convert), attributes revenue to features through the plan mapping,
// and folds the rows into periods and canonical customers in Go.
func (a *Analytics) points(ctx context.Context, r Range, period Period, g grouping) ([]Point, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if _, err := periodExpr(period); err != nil {
		return nil, err
	}
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
		if g.customerID != "" && customer != g.customerID {
			return
		}
		k := key{periodOf(period, day), customer, feature}
		if !g.byCustomer {
			k.customer = ""
		}
		if !g.byFeature {
			k.feature = ""
		}
		if !g.byPeriod {
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

	// fold adds a line, already one day × canonical customer × plan or
	// feature × currency sum, converting its money by the rule.
	fold := func(l line, customer string) error {
		money, err := conv.convert(l.money, l.currency, l.day)
		if err != nil {
			return err
		}
		if !l.revenue {
			// Quantities are not money: only the cost is converted.
			add(l.day, customer, l.key, l.qty, l.unpriced, money, decimal.Zero)
			return nil
		}
		feature, ok := plans[l.key]
		if !ok || l.key == "" {
			feature = rawevents.UnattributedFeature
		}
		add(l.day, customer, feature, decimal.Zero, decimal.Zero, decimal.Zero, money)
		return nil
	}
	if g.byCustomer {
		snap, err := a.snapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("customer snapshot: %w", err)
		}
		m := newMapping(snap)
		if err := a.eachLine(ctx, r, m, true, allCurrencies, func(l line) error {
			return fold(l, m.canonical(l.customer, l.src, l.ext))
		}); err != nil {
			return nil, err
		}
	} else {
		// The money already in r.Currency needs no conversion: summed over
		// customers in ClickHouse, with no customer directory in the query.
		if err := a.eachLine(ctx, r, mapping{}, false, onlyCurrency, func(l line) error {
			return fold(l, "")
		}); err != nil {
			return nil, err
		}
		// Other currencies convert per day × canonical customer × plan or
		// feature × currency sum (docs/analytics/revenue.md): read per
		// reference, grouped into canonical customers here — the directory
		// is read only when there is such money.
		var foreign []line
		if err := a.eachLine(ctx, r, mapping{}, true, otherCurrencies, func(l line) error {
			foreign = append(foreign, l)
			return nil
		}); err != nil {
			return nil, err
		}
		if len(foreign) > 0 {
			snap, err := a.snapshot(ctx)
			if err != nil {
				return nil, fmt.Errorf("customer snapshot: %w", err)
			}
			for _, l := range byCanonical(foreign, newMapping(snap).canonical) {
				if err := fold(l, l.customer); err != nil {
					return nil, err
				}
			}
		}
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

// line is one row of usageSQL or revenueSQL: a day × customer (canonical,
// or a reference when customer is empty) × feature or plan (key) ×
// currency sum.
type line struct {
	day                rawevents.Date
	customer, src, ext string
	key, currency      string
	revenue            bool
	qty, unpriced      decimal.Decimal // usage only
	money              decimal.Decimal // cost or revenue, in currency
}

// eachLine reads the usage and revenue lines of r (see usageSQL,
// revenueSQL) and hands each to fn as it comes, so memory follows what fn
// keeps, not the rows read.
func (a *Analytics) eachLine(ctx context.Context, r Range, m mapping, byCustomer bool, scope currencyScope, fn func(line) error) error {
	sql, args := usageSQL(r, m, byCustomer, scope)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			l   line
			day time.Time
		)
		if err := scan(&day, &l.customer, &l.src, &l.ext, &l.key, &l.currency, &l.qty, &l.unpriced, &l.money); err != nil {
			return err
		}
		l.day = rawevents.DateOf(day)
		return fn(l)
	}); err != nil {
		return fmt.Errorf("usage from %s: %w", TableDailyUsage, err)
	}
	sql, args = revenueSQL(r, m, byCustomer, scope)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		l := line{revenue: true}
		var day time.Time
		if err := scan(&day, &l.customer, &l.src, &l.ext, &l.key, &l.currency, &l.money); err != nil {
			return err
		}
		l.day = rawevents.DateOf(day)
		return fn(l)
	}); err != nil {
		return fmt.Errorf("revenue from %s: %w", TableDailyRevenueLines, err)
	}
	return nil
}

// byCanonical sums lines read per reference into lines per canonical
// customer (in customer), the grouping the SQL transform gives.
func byCanonical(lines []line, canonical func(customer, src, ext string) string) []line {
	type key struct {
		day                     rawevents.Date
		customer, key, currency string
		revenue                 bool
	}
	by := map[key]*line{}
	var order []key
	for _, l := range lines {
		k := key{l.day, canonical(l.customer, l.src, l.ext), l.key, l.currency, l.revenue}
		sum := by[k]
		if sum == nil {
			sum = &line{day: l.day, customer: k.customer, key: l.key, currency: l.currency, revenue: l.revenue}
			by[k] = sum
			order = append(order, k)
		}
		sum.qty, sum.unpriced, sum.money = sum.qty.Add(l.qty), sum.unpriced.Add(l.unpriced), sum.money.Add(l.money)
	}
	out := make([]line, len(order))
	for i, k := range order {
		out[i] = *by[k]
	}
	return out
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

// usageSQL sums daily_usage per day × feature × currency (currencies are
// converted in Go, per row), and per canonical customer when byCustomer:
// the quantity, the part of it no rate card priced, and the cost. Without
// byCustomer the customer columns are empty and the directory stays out of
// the query. scope keeps the rows of r.Currency, the others, or all.
func usageSQL(r Range, m mapping, byCustomer bool, scope currencyScope) (string, []any) {
	cust, args, group := noCustomerSQL, []any(nil), ""
	if byCustomer {
		cust, args = customerSQL(m)
		group = "customer, src, ext, "
	}
	cond, args := scope.where(r, append(args, r.Start.String(), r.End.String()))
	return `SELECT day, ` + cust + `, feature, currency, sum(quantity) AS quantity, sum(unpriced_quantity) AS unpriced_quantity, sum(cost) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)` + cond + `
GROUP BY day, ` + group + `feature, currency
ORDER BY day, ` + group + `feature, currency`, args
}

// revenueSQL sums daily_revenue_lines' cash or accrual (r.Basis) per day ×
// plan × currency, and per canonical customer when byCustomer.
func revenueSQL(r Range, m mapping, byCustomer bool, scope currencyScope) (string, []any) {
	cust, args, group := noCustomerSQL, []any(nil), ""
	if byCustomer {
		cust, args = customerSQL(m)
		group = "customer, src, ext, "
	}
	column := "accrual"
	if r.Basis == BasisCash {
		column = "cash"
	}
	cond, args := scope.where(r, append(args, r.Start.String(), r.End.String()))
	return `SELECT day, ` + cust + `, plan, currency, sum(` + column + `) AS revenue
FROM daily_revenue_lines FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)` + cond + `
GROUP BY day, ` + group + `plan, currency
ORDER BY day, ` + group + `plan, currency`, args
}

// currencyScope says which currencies' rows a query reads.
type currencyScope int

const (
	allCurrencies   currencyScope = iota
	onlyCurrency                  // r.Currency's rows, and those without a currency
	otherCurrencies               // every other currency's rows
)

// A row without a currency carries no money: usage with neither a cost nor
// a price (a priced row takes its rate card's currency). It needs no
// conversion, so it goes with r.Currency's rows.

// where is the scope's condition and the arguments with its own appended.
func (s currencyScope) where(r Range, args []any) (string, []any) {
	switch s {
	case onlyCurrency:
		return " AND currency IN (?, '')", append(args, r.Currency)
	case otherCurrencies:
		return " AND currency NOT IN (?, '')", append(args, r.Currency)
	}
	return "", args
}

// noCustomerSQL fills the customer columns of a query summed over customers.
const noCustomerSQL = `'' AS customer, '' AS src, '' AS ext`

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
	points, err := a.points(ctx, r, PeriodDay, grouping{byFeature: true, byPeriod: true})
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
