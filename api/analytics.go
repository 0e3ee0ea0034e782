package api

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// AnalyticsReader answers range queries per canonical customer, feature and
// period from the daily aggregates (aggregates.Analytics), grouping
// references through the customer directory at query time. Errors wrapping
// rawevents.ErrInvalidQuery are the caller's fault (400); others mean the
// store is unreachable. Safe for concurrent use.
type AnalyticsReader interface {
	Customers(ctx context.Context, r aggregates.Range) ([]aggregates.CustomerTotal, error)
	Features(ctx context.Context, r aggregates.Range, customerID string) ([]aggregates.FeatureTotal, error)
	Series(ctx context.Context, r aggregates.Range, period aggregates.Period, customerID string) ([]aggregates.Point, error)
	Totals(ctx context.Context, r aggregates.Range, period aggregates.Period) ([]aggregates.Point, error)
}

// RevenueItemReader lists the revenue events of one customer over a range
// (aggregates.Analytics). Errors as AnalyticsReader's.
type RevenueItemReader interface {
	RevenueItems(ctx context.Context, r aggregates.Range, customerID string) ([]aggregates.RevenueItem, error)
}

// CustomerCatalog names the canonical customers (customers.Directory):
// List matches q in ids, names, emails and external ids (limit ≤ 0: all);
// Get follows merge aliases and returns a *customers.Error of KindNotFound
// for an unknown id. Safe for concurrent use.
type CustomerCatalog interface {
	List(ctx context.Context, q string, limit, offset int) ([]customers.Customer, int, error)
	Get(ctx context.Context, id string) (customers.Customer, error)
}

var (
	_ AnalyticsReader   = (*aggregates.Analytics)(nil)
	_ RevenueItemReader = (*aggregates.Analytics)(nil)
	_ CustomerCatalog   = (*customers.Directory)(nil)
)

// Analytics wires the analytics routes; the first three are required for
// them (nil answers 503), MRR for GET /api/mrr.
type Analytics struct {
	Reader    AnalyticsReader
	Items     RevenueItemReader
	Customers CustomerCatalog
	MRR       MRRReader
}

// List limits of GET /api/customers.
const (
	defaultCustomerLimit = 100
	maxCustomerLimit     = 1000
)

// maxPageRows bounds one page of the long lists (GET /api/timeseries, the
// customers of GET /api/mrr, GET /api/customer-references): limit defaults
// to it and cannot exceed it; offset and the total page through the rest.
// A year of daily rows for 130 features fits in one page.
const maxPageRows = 50_000

// pageParams reads limit (1..most, default def) and offset: every paged route's parameters.
func pageParams(c *gin.Context, def, most int) (limit, offset int, err error) {
	if limit, err = intParam(c, "limit", def, 1, most); err != nil {
		return 0, 0, err
	}
	if offset, err = intParam(c, "offset", 0, 0, 1<<30); err != nil {
		return 0, 0, err
	}
	return limit, offset, nil
}

// page is rows[offset:offset+limit], within bounds.
func page[T any](rows []T, limit, offset int) []T {
	rows = rows[min(offset, len(rows)):]
	return rows[:min(limit, len(rows))]
}

// registerAnalytics adds the per-customer, per-feature and time-series
// routes. GET /api/customers/:id is registered next to the POST identity
// routes (/customers/link…): Gin tells them apart by method.
func (s *Server) registerAnalytics(api *gin.RouterGroup) {
	g := api.Group("", s.requireAnalytics)
	g.GET("/customers", s.listCustomers)
	g.GET("/customers/:id", s.getCustomer)
	g.GET("/features", s.listFeatures)
	g.GET("/timeseries", s.timeSeries)
	g.GET("/mrr", s.mrr)
}

func (s *Server) requireAnalytics(c *gin.Context) {
	a := s.cfg.Analytics
	if a.Reader == nil || a.Items == nil || a.Customers == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "customer analytics are not enabled on this server"})
		return
	}
	c.Next()
}

type customerRow struct {
	ID                    string `json:"id"`
	ExternalID            string `json:"external_id"`
	Name                  string `json:"name"`
	Plan                  string `json:"plan"`
	Usage                 Number `json:"usage"`
	Revenue               Number `json:"revenue"`
	RevenuePerUnit        Number `json:"revenue_per_unit"`         // 0 when RevenuePerUnitDefined is false
	RevenuePerUnitDefined bool   `json:"revenue_per_unit_defined"` // false: no usage
	Cost                  Number `json:"cost"`
	Profit                Number `json:"profit"`
	MarginPercentage      Number `json:"margin_percentage"` // 0 when MarginDefined is false
	MarginDefined         bool   `json:"margin_defined"`    // false: no revenue, no margin
}

type customerListBody struct {
	Customers []customerRow `json:"customers"`
	Total     int           `json:"total"`
	DateRange dateRange     `json:"date_range"`
	Currency  string        `json:"currency"`
	Basis     string        `json:"basis"`
	TZ        string        `json:"tz"`
}

type featureRow struct {
	Feature string `json:"feature"`
	Usage   Number `json:"usage"`
	// UnpricedQuantity is the part of Usage no rate card priced: its cost is
	// unknown and counted as zero, so a zero cost reads as unpriced, not free.
	UnpricedQuantity Number `json:"unpriced_quantity"`
	Cost             Number `json:"cost"`
	Revenue          Number `json:"revenue"`
	Profit           Number `json:"profit"`
	MarginPercentage Number `json:"margin_percentage"` // 0 when MarginDefined is false
	MarginDefined    bool   `json:"margin_defined"`
}

type featureListBody struct {
	Features  []featureRow `json:"features"`
	DateRange dateRange    `json:"date_range"`
	Currency  string       `json:"currency"`
	Basis     string       `json:"basis"`
	TZ        string       `json:"tz"`
}

type seriesRow struct {
	Period  rawevents.Date `json:"period"`
	Key     string         `json:"key"` // the customer id, feature or plan
	Usage   Number         `json:"usage"`
	Cost    Number         `json:"cost"`
	Revenue Number         `json:"revenue"`
	Profit  Number         `json:"profit"`
}

type seriesBody struct {
	GroupBy   string      `json:"group_by"`
	By        string      `json:"by"`
	Series    []seriesRow `json:"series"`
	Total     int         `json:"total"` // rows of every page
	DateRange dateRange   `json:"date_range"`
	Currency  string      `json:"currency"`
	Basis     string      `json:"basis"`
	TZ        string      `json:"tz"`
}

type revenueItemBody struct {
	Date     rawevents.Date `json:"date"`
	Source   string         `json:"source"`
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	Currency string         `json:"currency"`
	Amount   Number         `json:"amount"`
}

type customerDetailBody struct {
	Customer     customerRow       `json:"customer"`
	References   []referenceBody   `json:"references"`
	DailySeries  []seriesRow       `json:"daily_series"` // key is the day's feature, or (unattributed) for revenue
	Features     []featureRow      `json:"features"`
	RevenueItems []revenueItemBody `json:"revenue_items"`
	DateRange    dateRange         `json:"date_range"`
	Currency     string            `json:"currency"`
	Basis        string            `json:"basis"`
	TZ           string            `json:"tz"`
}

// sortFields are the columns GET /api/customers sorts by.
var sortFields = []string{"id", "external_id", "name", "plan", "usage", "revenue", "revenue_per_unit", "cost", "profit", "margin_percentage"}

// listCustomers serves GET /api/customers?limit=&offset=&sort=&q=&start_date=&end_date=&currency=&format=.
// sort is a field, descending with a leading "-" (default -revenue); a
// customer with no activity in the range is listed with zeros.
func (s *Server) listCustomers(c *gin.Context) {
	r, err := s.analyticsRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit, offset, err := pageParams(c, defaultCustomerLimit, maxCustomerLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	sortBy := cmp.Or(c.Query("sort"), "-revenue")
	field, desc := strings.CutPrefix(sortBy, "-")
	if !slices.Contains(sortFields, field) {
		s.writeError(c, invalid("sort must be one of "+strings.Join(sortFields, ", ")+" (descending with a leading -), got "+quote(sortBy)))
		return
	}
	format, err := formatParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	q := strings.TrimSpace(c.Query("q"))
	ctx := c.Request.Context()
	known, _, err := s.cfg.Analytics.Customers.List(ctx, q, 0, 0)
	if err != nil {
		s.writeError(c, err)
		return
	}
	totals, err := s.cfg.Analytics.Reader.Customers(ctx, r)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	byID := make(map[string]aggregates.CustomerTotal, len(totals))
	for _, t := range totals {
		byID[t.CustomerID] = t
	}
	rows := make([]customerRow, 0, len(known))
	listed := map[string]bool{}
	for _, k := range known {
		rows = append(rows, rowOf(k, byID[k.ID]))
		listed[k.ID] = true
	}
	// A customer the directory does not know yet (its events were aggregated
	// before the directory saw them) is listed under its id.
	for _, t := range totals {
		if !listed[t.CustomerID] && (q == "" || strings.Contains(strings.ToLower(t.CustomerID), strings.ToLower(q))) {
			rows = append(rows, rowOf(customers.Customer{ID: t.CustomerID}, t))
		}
	}
	slices.SortStableFunc(rows, func(a, b customerRow) int {
		c := compareRows(a, b, field)
		if desc {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.ID, b.ID))
	})
	total := len(rows)
	rows = page(rows, limit, offset)
	if format == "csv" {
		header := []string{"id", "external_id", "name", "plan", "usage", "revenue", "revenue_per_unit", "cost", "profit", "margin_percentage"}
		records := make([][]string, len(rows))
		for i, r := range rows {
			records[i] = []string{csvText(r.ID), csvText(r.ExternalID), csvText(r.Name), csvText(r.Plan), r.Usage.String(), r.Revenue.String(),
				definedString(r.RevenuePerUnit, r.RevenuePerUnitDefined), r.Cost.String(), r.Profit.String(), definedString(r.MarginPercentage, r.MarginDefined)}
		}
		s.writeCSV(c, "customers.csv", header, records)
		return
	}
	body := customerListBody{Customers: rows, Total: total}
	body.DateRange, body.Currency, body.Basis, body.TZ = echo(c, r)
	c.JSON(http.StatusOK, body)
}

// getCustomer serves GET /api/customers/{id}: the customer's totals, daily
// series, features, revenue items and references over the range.
func (s *Server) getCustomer(c *gin.Context) {
	r, err := s.analyticsRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	cust, err := s.cfg.Analytics.Customers.Get(ctx, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	feats, err := s.cfg.Analytics.Reader.Features(ctx, r, cust.ID)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	points, err := s.cfg.Analytics.Reader.Series(ctx, r, aggregates.PeriodDay, cust.ID)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	items, err := s.cfg.Analytics.Items.RevenueItems(ctx, r, cust.ID)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	var total aggregates.CustomerTotal
	for _, f := range feats {
		total.Quantity = total.Quantity.Add(f.Quantity)
		total.Cost = total.Cost.Add(f.Cost)
		total.Revenue = total.Revenue.Add(f.Revenue)
	}
	body := customerDetailBody{
		Customer:     rowOf(cust, total),
		References:   make([]referenceBody, 0, len(cust.References)),
		DailySeries:  seriesRows(points, func(p aggregates.Point) string { return p.Feature }),
		Features:     featureRows(feats),
		RevenueItems: make([]revenueItemBody, 0, len(items)),
	}
	body.DateRange, body.Currency, body.Basis, body.TZ = echo(c, r)
	for _, ref := range cust.References {
		body.References = append(body.References, referenceBody{Source: ref.Source, ExternalID: ref.ExternalID})
	}
	for _, it := range items {
		body.RevenueItems = append(body.RevenueItems, revenueItemBody{Date: it.Day, Source: it.Source, ID: it.ID,
			Kind: it.Kind, Currency: it.Currency, Amount: num(it.Amount)})
	}
	c.JSON(http.StatusOK, body)
}

// listFeatures serves GET /api/features?start_date=&end_date=&currency=&basis=&tz=&format=:
// usage (and the part of it no rate card priced), cost and attributed
// revenue per feature; revenue of a plan the revenue mapping does not
// attribute shows on the (unattributed) row.
func (s *Server) listFeatures(c *gin.Context) {
	r, err := s.analyticsRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	format, err := formatParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	feats, err := s.cfg.Analytics.Reader.Features(c.Request.Context(), r, "")
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	rows := featureRows(feats)
	if format == "csv" {
		records := make([][]string, len(rows))
		for i, f := range rows {
			records[i] = []string{csvText(f.Feature), f.Usage.String(), f.UnpricedQuantity.String(), f.Cost.String(), f.Revenue.String(), f.Profit.String(), definedString(f.MarginPercentage, f.MarginDefined)}
		}
		s.writeCSV(c, "features.csv", []string{"feature", "usage", "unpriced_quantity", "cost", "revenue", "profit", "margin_percentage"}, records)
		return
	}
	body := featureListBody{Features: rows}
	body.DateRange, body.Currency, body.Basis, body.TZ = echo(c, r)
	c.JSON(http.StatusOK, body)
}

// timeSeries serves GET /api/timeseries?group_by=day|week|month&by=customer|feature|plan
// (&customer_id= to keep one customer). by=plan groups by the customer's
// plan, "" until plans are tracked.
func (s *Server) timeSeries(c *gin.Context) {
	r, err := s.analyticsRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	groupBy := cmp.Or(c.Query("group_by"), "day")
	period := aggregates.Period(groupBy)
	if !slices.Contains([]aggregates.Period{aggregates.PeriodDay, aggregates.PeriodWeek, aggregates.PeriodMonth}, period) {
		s.writeError(c, invalid("group_by must be day, week or month, got "+quote(groupBy)))
		return
	}
	by := cmp.Or(c.Query("by"), "customer")
	if !slices.Contains([]string{"customer", "feature", "plan"}, by) {
		s.writeError(c, invalid("by must be customer, feature or plan, got "+quote(by)))
		return
	}
	format, err := formatParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit, offset, err := pageParams(c, maxPageRows, maxPageRows)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	points, err := s.cfg.Analytics.Reader.Series(ctx, r, period, c.Query("customer_id"))
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	key := func(p aggregates.Point) string { return p.CustomerID }
	switch by {
	case "feature":
		key = func(p aggregates.Point) string { return p.Feature }
	case "plan":
		all, _, err := s.cfg.Analytics.Customers.List(ctx, "", 0, 0)
		if err != nil {
			s.writeError(c, err)
			return
		}
		plans := make(map[string]string, len(all))
		for _, cu := range all {
			plans[cu.ID] = cu.Plan
		}
		key = func(p aggregates.Point) string { return plans[p.CustomerID] }
	}
	rows := seriesRows(points, key)
	total := len(rows)
	rows = page(rows, limit, offset)
	if format == "csv" {
		records := make([][]string, len(rows))
		for i, p := range rows {
			records[i] = []string{p.Period.String(), csvText(p.Key), p.Usage.String(), p.Cost.String(), p.Revenue.String(), p.Profit.String()}
		}
		s.writeCSV(c, "timeseries.csv", []string{"period", "key", "usage", "cost", "revenue", "profit"}, records)
		return
	}
	body := seriesBody{GroupBy: groupBy, By: by, Series: rows, Total: total}
	body.DateRange, body.Currency, body.Basis, body.TZ = echo(c, r)
	c.JSON(http.StatusOK, body)
}

// analyticsRange reads the range parameters (rangeParams) and stores the
// zone for the response.
func (s *Server) analyticsRange(c *gin.Context) (aggregates.Range, error) {
	r, loc, err := s.rangeParams(c)
	if err == nil {
		c.Set(tzKey, loc.String())
	}
	return r, err
}

const tzKey = "uvr.tz"

// echo is what every analytics body reports of its query.
func echo(c *gin.Context, r aggregates.Range) (dateRange, string, string, string) {
	return dateRange{Start: r.Start, End: r.End}, r.Currency, string(r.Basis), c.GetString(tzKey)
}

// analyticsError maps a query error: a missing FX rate names currency (the
// money exists and cannot be converted: never dropped silently), another
// invalid query is a 400, anything else means ClickHouse is unavailable.
func (s *Server) analyticsError(err error) error {
	if errors.Is(err, pricing.ErrNoRate) {
		return invalidParam("currency", "cannot be reported: "+err.Error()+" (add the rate with PUT /api/fx-rates or the --fx-rates file)")
	}
	if errors.Is(err, rawevents.ErrInvalidQuery) {
		return invalid(err.Error())
	}
	return unavailable("the analytics could not be read from ClickHouse", err)
}

func intParam(c *gin.Context, name string, def, lo, hi int) (int, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalid(name + " must be an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi) + ", got " + quote(v))
	}
	return n, nil
}

func formatParam(c *gin.Context) (string, error) {
	f := cmp.Or(c.Query("format"), "json")
	if f != "json" && f != "csv" {
		return "", invalid("format must be json or csv, got " + quote(f))
	}
	return f, nil
}

// writeCSV answers text/csv: a header row, then the records; numbers in
// the exact text of their JSON form, an absent (null) one empty. Every
// text cell that comes from outside goes through csvText.
//
// The rule against formula injection: a spreadsheet opening the file runs a
// cell that starts with =, +, -, @, tab or CR as a formula. Text cells
// (names, ids, features, plans: anything a source or a client chose) are
// neutralised by csvText. Number cells are never touched: they are the
// decimal text uvr itself formats ("-12.5" is a refund, and must stay a
// number a spreadsheet sums), never text from outside.
func (s *Server) writeCSV(c *gin.Context, filename string, header []string, records [][]string) {
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+filename+`"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.Write(header)
	_ = w.WriteAll(records) // a write error is a gone client: nothing left to answer
}

// csvText neutralises a text cell a spreadsheet would run as a formula by
// prefixing it with an apostrophe (OWASP's advice: shown as text, the
// apostrophe hidden); other text is written as it is.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

var hundred = decimal.NewFromInt(100)

// marginPlaces and perUnitPlaces round the two ratios; everything else is
// an exact sum.
const (
	marginPlaces  = rawevents.MarginPlaces
	perUnitPlaces = 9
)

func rowOf(c customers.Customer, t aggregates.CustomerTotal) customerRow {
	row := customerRow{ID: c.ID, Name: c.Name, Plan: c.Plan, Usage: num(t.Quantity), Revenue: num(t.Revenue),
		Cost: num(t.Cost), Profit: num(t.Revenue.Sub(t.Cost))}
	if len(c.References) > 0 {
		row.ExternalID = c.References[0].ExternalID
	}
	if !t.Quantity.IsZero() {
		row.RevenuePerUnit, row.RevenuePerUnitDefined = orZero(ptr(t.Revenue.DivRound(t.Quantity, perUnitPlaces)))
	}
	row.MarginPercentage, row.MarginDefined = orZero(marginOf(t.Revenue, t.Cost))
	return row
}

// marginOf is profit / revenue × 100 (marginPlaces); nil without revenue.
func marginOf(revenue, cost decimal.Decimal) *decimal.Decimal {
	if revenue.IsZero() {
		return nil
	}
	return ptr(revenue.Sub(cost).Mul(hundred).DivRound(revenue, marginPlaces))
}

func featureRows(feats []aggregates.FeatureTotal) []featureRow {
	out := make([]featureRow, len(feats))
	for i, f := range feats {
		out[i] = featureRow{Feature: f.Feature, Usage: num(f.Quantity), UnpricedQuantity: num(f.UnpricedQuantity), Cost: num(f.Cost), Revenue: num(f.Revenue),
			Profit: num(f.Revenue.Sub(f.Cost))}
		out[i].MarginPercentage, out[i].MarginDefined = orZero(marginOf(f.Revenue, f.Cost))
	}
	return out
}

// seriesRows folds points (sorted by period) into one row per period × key,
// by period then key.
func seriesRows(points []aggregates.Point, key func(aggregates.Point) string) []seriesRow {
	type k struct {
		period rawevents.Date
		key    string
	}
	by := map[k]*seriesRow{}
	var order []k
	for _, p := range points {
		kk := k{p.Period, key(p)}
		row := by[kk]
		if row == nil {
			row = &seriesRow{Period: p.Period, Key: kk.key}
			by[kk] = row
			order = append(order, kk)
		}
		row.Usage = num(decimal.Decimal(row.Usage).Add(p.Quantity))
		row.Cost = num(decimal.Decimal(row.Cost).Add(p.Cost))
		row.Revenue = num(decimal.Decimal(row.Revenue).Add(p.Revenue))
		row.Profit = num(decimal.Decimal(row.Revenue).Sub(decimal.Decimal(row.Cost)))
	}
	slices.SortFunc(order, func(a, b k) int {
		return cmp.Or(cmp.Compare(a.period.String(), b.period.String()), cmp.Compare(a.key, b.key))
	})
	out := make([]seriesRow, len(order))
	for i, kk := range order {
		out[i] = *by[kk]
	}
	return out
}

func compareRows(a, b customerRow, field string) int {
	switch field {
	case "id":
		return cmp.Compare(a.ID, b.ID)
	case "external_id":
		return cmp.Compare(a.ExternalID, b.ExternalID)
	case "name":
		return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	case "plan":
		return cmp.Compare(a.Plan, b.Plan)
	case "usage":
		return a.Usage.cmp(b.Usage)
	case "revenue":
		return a.Revenue.cmp(b.Revenue)
	case "revenue_per_unit":
		return cmpDefined(a.RevenuePerUnit, a.RevenuePerUnitDefined, b.RevenuePerUnit, b.RevenuePerUnitDefined)
	case "cost":
		return a.Cost.cmp(b.Cost)
	case "profit":
		return a.Profit.cmp(b.Profit)
	default: // margin_percentage
		return cmpDefined(a.MarginPercentage, a.MarginDefined, b.MarginPercentage, b.MarginDefined)
	}
}

// cmpDefined orders an undefined ratio before any number.
func cmpDefined(a Number, aDefined bool, b Number, bDefined bool) int {
	if aDefined != bDefined {
		if aDefined {
			return 1
		}
		return -1
	}
	return a.cmp(b)
}

func (n Number) cmp(o Number) int { return decimal.Decimal(n).Cmp(decimal.Decimal(o)) }

// String is the number's exact text, as in JSON.
func (n Number) String() string { return decimal.Decimal(n).String() }

// definedString is a ratio's CSV cell: empty when undefined.
func definedString(n Number, defined bool) string {
	if !defined {
		return ""
	}
	return n.String()
}

func ptr[T any](v T) *T { return &v }
