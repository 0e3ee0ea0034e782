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

	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
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
}

// Snapshot returns the current reference → canonical customer mapping
// (customers.Directory's Snapshot after a Sync, so that changes made by any
// instance apply); it is called once per query.
type Snapshot func(ctx context.Context) (map[customers.Ref]string, error)

// NewAnalytics returns Analytics on conn (open on the migrated database);
// snapshot returns the directory's mapping; nil: every reference is its own
// customer.
func NewAnalytics(conn driver.Conn, snapshot Snapshot) (*Analytics, error) {
	if conn == nil {
		return nil, errors.New("aggregates analytics: conn is required")
	}
	if snapshot == nil {
		snapshot = func(context.Context) (map[customers.Ref]string, error) { return nil, nil }
	}
	return &Analytics{conn: conn, snapshot: snapshot}, nil
}

// Range is a query's days (both included) and reporting currency: costs and
// revenue are summed in that currency only, quantities in every currency.
type Range struct {
	Start, End rawevents.Date
	Currency   string
}

func (r Range) validate() error {
	return rawevents.DashboardQuery{Start: r.Start, End: r.End, Currency: r.Currency}.Validate()
}

// CustomerTotal is one canonical customer's totals over a range.
type CustomerTotal struct {
	CustomerID string
	Quantity   decimal.Decimal
	Cost       decimal.Decimal
	Revenue    decimal.Decimal
}

// FeatureTotal is one feature's totals over a range. Revenue is attributed
// to no feature yet: it appears on the rawevents.UnattributedFeature row.
type FeatureTotal struct {
	Feature  string
	Quantity decimal.Decimal
	Cost     decimal.Decimal
	Revenue  decimal.Decimal
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
type Point struct {
	Period     rawevents.Date
	CustomerID string
	Feature    string
	Quantity   decimal.Decimal
	Cost       decimal.Decimal
	Revenue    decimal.Decimal
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

// points reads usage and revenue grouped by period and customer (and
// feature when byFeature), each customer canonical, summed in Go across the
// references of one customer.
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
	type key struct {
		period   rawevents.Date
		customer string
		feature  string
	}
	by := map[key]*Point{}
	add := func(k key, qty, cost, rev decimal.Decimal) {
		if customerID != "" && k.customer != customerID {
			return
		}
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
		p.Cost = p.Cost.Add(cost)
		p.Revenue = p.Revenue.Add(rev)
	}

	sql, args := usageByCustomerSQL(r, period, m)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			day                time.Time
			customer, src, ext string
			feature            string
			qty, cost          decimal.Decimal
		)
		if err := scan(&day, &customer, &src, &ext, &feature, &qty, &cost); err != nil {
			return err
		}
		add(key{rawevents.DateOf(day), m.canonical(customer, src, ext), feature}, qty, cost, decimal.Zero)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("usage by customer from %s: %w", TableDailyUsage, err)
	}
	sql, args = revenueByCustomerSQL(r, period, m)
	if err := chstore.QueryRows(m.context(ctx, sql), a.conn, sql, args, func(scan func(...any) error) error {
		var (
			day                time.Time
			customer, src, ext string
			rev                decimal.Decimal
		)
		if err := scan(&day, &customer, &src, &ext, &rev); err != nil {
			return err
		}
		add(key{rawevents.DateOf(day), m.canonical(customer, src, ext), rawevents.UnattributedFeature}, decimal.Zero, decimal.Zero, rev)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("revenue by customer from %s: %w", TableDailyRevenue, err)
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

// usageByCustomerSQL sums daily_usage per period × canonical customer ×
// feature: quantity in every currency, cost in the reporting one.
func usageByCustomerSQL(r Range, p Period, m mapping) (string, []any) {
	period, _ := periodExpr(p)
	cust, args := customerSQL(m)
	return `SELECT ` + period + ` AS period, ` + cust + `, feature, sum(quantity) AS quantity, sumIf(cost, currency = ?) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY period, customer, src, ext, feature
ORDER BY period, customer, src, ext, feature`, append(args, r.Currency, r.Start.String(), r.End.String())
}

// revenueByCustomerSQL sums daily_revenue's cash in the reporting currency
// per period × canonical customer.
func revenueByCustomerSQL(r Range, p Period, m mapping) (string, []any) {
	period, _ := periodExpr(p)
	cust, args := customerSQL(m)
	return `SELECT ` + period + ` AS period, ` + cust + `, sum(cash) AS revenue
FROM daily_revenue FINAL
WHERE events > 0 AND currency = ? AND day >= toDate(?) AND day <= toDate(?)
GROUP BY period, customer, src, ext
ORDER BY period, customer, src, ext`, append(args, r.Currency, r.Start.String(), r.End.String())
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
WHERE void = 0 AND day >= toDate(?) AND day <= toDate(?) AND kind IN (` + quoteAll(rawevents.RevenueKinds()) + `)
ORDER BY day, source, id`, append(args, r.Start.String(), r.End.String())
}
