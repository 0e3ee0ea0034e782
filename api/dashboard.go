package api

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
	_ "time/tzdata" // loadZone: the zones work on a host without /usr/share/zoneinfo (a distroless image)

	"github.com/gin-gonic/gin"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// defaultDashboardDays is the range when no dates are given: the last 30
// days, today included.
const defaultDashboardDays = 30

type dashboardBody struct {
	Summary        summaryBody   `json:"summary"`
	TimeSeries     []dayBody     `json:"time_series"`
	FeatureMetrics []featureBody `json:"feature_metrics"`
}

type summaryBody struct {
	TotalUsageCost         Number    `json:"total_usage_cost"`
	TotalRevenue           Number    `json:"total_revenue"`
	TotalProfit            Number    `json:"total_profit"`
	ProfitMarginPercentage Number    `json:"profit_margin_percentage"` // 0 when MarginDefined is false
	MarginDefined          bool      `json:"margin_defined"`           // false: no revenue, no margin
	DateRange              dateRange `json:"date_range"`
	Currency               string    `json:"currency"`
	Basis                  string    `json:"basis"`
	TZ                     string    `json:"tz"`
}

type dateRange struct {
	Start rawevents.Date `json:"start"`
	End   rawevents.Date `json:"end"`
}

type dayBody struct {
	Date      rawevents.Date `json:"date"`
	UsageCost Number         `json:"usage_cost"`
	Revenue   Number         `json:"revenue"`
	Profit    Number         `json:"profit"`
}

type featureBody struct {
	FeatureName string `json:"feature_name"`
	UsageCount  Number `json:"usage_count"`
	// UnpricedQuantity is the part of UsageCount no rate card priced (its
	// cost counted as zero: unpriced, not free).
	UnpricedQuantity Number `json:"unpriced_quantity"`
	TotalCost        Number `json:"total_cost"`
	Revenue          Number `json:"revenue"`
	ProfitMargin     Number `json:"profit_margin"`  // 0 when MarginDefined is false
	MarginDefined    bool   `json:"margin_defined"` // false: no revenue, no margin
}

// dashboard serves GET /api/dashboard?start_date=&end_date=&currency=&basis=&tz=
// in the shape REST clients of the original product already parse, from the
// analytics (the daily aggregates): money converted into currency, revenue on
// basis (default accrual) and attributed to features.
func (s *Server) dashboard(c *gin.Context) {
	r, loc, err := s.rangeParams(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if s.cfg.Analytics.Reader == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "the dashboard's analytics are not enabled on this server"})
		return
	}
	d, unpriced, err := s.dashboardFromAnalytics(c, r)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	body := dashboardBody{
		Summary: summaryBody{
			TotalUsageCost: num(d.Summary.TotalUsageCost),
			TotalRevenue:   num(d.Summary.TotalRevenue),
			TotalProfit:    num(d.Summary.TotalProfit),
			DateRange:      dateRange{Start: r.Start, End: r.End},
			Currency:       r.Currency,
			Basis:          string(r.Basis),
			TZ:             loc.String(),
		},
		TimeSeries:     make([]dayBody, len(d.TimeSeries)),
		FeatureMetrics: make([]featureBody, len(d.FeatureMetrics)),
	}
	body.Summary.ProfitMarginPercentage, body.Summary.MarginDefined = orZero(d.Summary.ProfitMarginPercentage)
	for i, p := range d.TimeSeries {
		body.TimeSeries[i] = dayBody{Date: p.Date, UsageCost: num(p.UsageCost), Revenue: num(p.Revenue), Profit: num(p.Profit)}
	}
	for i, f := range d.FeatureMetrics {
		body.FeatureMetrics[i] = featureBody{FeatureName: f.FeatureName, UsageCount: num(f.UsageCount),
			TotalCost: num(f.TotalCost), Revenue: num(f.Revenue)}
		body.FeatureMetrics[i].ProfitMargin, body.FeatureMetrics[i].MarginDefined = orZero(f.ProfitMargin)
		body.FeatureMetrics[i].UnpricedQuantity = num(unpriced[f.FeatureName])
	}
	c.JSON(200, body)
}

// dashboardFromAnalytics folds the range's daily points into the
// dashboard: every day of the range (empty ones included), per-feature
// usage, cost and attributed revenue (unattributed revenue on the
// (unattributed) row), totals from the same points; and per feature the
// unpriced quantity, which rawevents.Dashboard has no field for.
func (s *Server) dashboardFromAnalytics(c *gin.Context, r aggregates.Range) (rawevents.Dashboard, map[string]decimal.Decimal, error) {
	points, err := s.cfg.Analytics.Reader.Totals(c.Request.Context(), r, aggregates.PeriodDay)
	if err != nil {
		return rawevents.Dashboard{}, nil, err
	}
	unpriced := map[string]decimal.Decimal{}
	days := r.Start.DaysUntil(r.End) + 1
	d := rawevents.Dashboard{TimeSeries: make([]rawevents.DayMetrics, days)}
	for i := range d.TimeSeries {
		d.TimeSeries[i].Date = r.Start.AddDays(i)
	}
	features := map[string]*rawevents.FeatureMetrics{}
	for _, p := range points {
		i := r.Start.DaysUntil(p.Period)
		if i < 0 || i >= days {
			continue
		}
		day := &d.TimeSeries[i]
		day.UsageCost = day.UsageCost.Add(p.Cost)
		day.Revenue = day.Revenue.Add(p.Revenue)
		f := features[p.Feature]
		if f == nil {
			f = &rawevents.FeatureMetrics{FeatureName: p.Feature}
			features[p.Feature] = f
		}
		f.UsageCount = f.UsageCount.Add(p.Quantity)
		unpriced[p.Feature] = unpriced[p.Feature].Add(p.UnpricedQuantity)
		f.TotalCost = f.TotalCost.Add(p.Cost)
		f.Revenue = f.Revenue.Add(p.Revenue)
		d.Summary.TotalUsageCost = d.Summary.TotalUsageCost.Add(p.Cost)
		d.Summary.TotalRevenue = d.Summary.TotalRevenue.Add(p.Revenue)
	}
	for i := range d.TimeSeries {
		d.TimeSeries[i].Profit = d.TimeSeries[i].Revenue.Sub(d.TimeSeries[i].UsageCost)
	}
	d.Summary.TotalProfit = d.Summary.TotalRevenue.Sub(d.Summary.TotalUsageCost)
	d.Summary.ProfitMarginPercentage = marginOf(d.Summary.TotalRevenue, d.Summary.TotalUsageCost)
	for _, name := range slices.Sorted(maps.Keys(features)) {
		f := features[name]
		f.ProfitMargin = marginOf(f.Revenue, f.TotalCost)
		d.FeatureMetrics = append(d.FeatureMetrics, *f)
	}
	return d, unpriced, nil
}

var currencyParam = regexp.MustCompile(`^[A-Z]{3}$`)

// rangeParams reads the parameters every money route shares, naming the one
// at fault: start_date, end_date (YYYY-MM-DD), currency (ISO 4217, default
// the reporting currency), basis (cash|accrual, default accrual: margin
// compares cost with the revenue of the days served) and tz (an IANA zone,
// default UTC). The aggregates are UTC days, so tz does not re-bucket them:
// it decides which day "today" is when end_date is missing, and is reported
// back. An empty parameter takes its default.
func (s *Server) rangeParams(c *gin.Context) (aggregates.Range, *time.Location, error) {
	r := aggregates.Range{Currency: s.cfg.ReportingCurrency, Basis: aggregates.BasisAccrual}
	if v := c.Query("currency"); v != "" {
		if !currencyParam.MatchString(v) {
			return r, nil, invalidParam("currency", "must be a 3-letter ISO 4217 code such as USD, got "+quote(v))
		}
		r.Currency = v
	}
	if v := c.Query("basis"); v != "" {
		if b := aggregates.Basis(v); b != aggregates.BasisCash && b != aggregates.BasisAccrual {
			return r, nil, invalidParam("basis", "must be cash or accrual, got "+quote(v))
		}
		r.Basis = aggregates.Basis(v)
	}
	loc := time.UTC
	if v := c.Query("tz"); v != "" {
		l, err := loadZone(v)
		if err != nil {
			return r, nil, err
		}
		loc = l
	}
	now := time.Now().In(loc)
	r.End = rawevents.Date{Year: now.Year(), Month: now.Month(), Day: now.Day()}
	if v := c.Query("end_date"); v != "" {
		d, err := rawevents.ParseDate(v)
		if err != nil {
			return r, nil, invalidParam("end_date", "must be a date as YYYY-MM-DD, got "+quote(v))
		}
		r.End = d
	}
	r.Start = r.End.AddDays(-(defaultDashboardDays - 1))
	if r.Start.Before(firstDay) {
		r.Start = firstDay // end_date in January 1970: the range starts where dates do
	}
	if v := c.Query("start_date"); v != "" {
		d, err := rawevents.ParseDate(v)
		if err != nil {
			return r, nil, invalidParam("start_date", "must be a date as YYYY-MM-DD, got "+quote(v))
		}
		r.Start = d
	}
	if r.End.Before(r.Start) {
		return r, nil, invalidParam("start_date", "is after end_date: "+r.Start.String()+" > "+r.End.String())
	}
	if err := (rawevents.DashboardQuery{Start: r.Start, End: r.End, Currency: r.Currency}).Validate(); err != nil {
		return r, nil, invalidParam("end_date", err.Error())
	}
	return r, loc, nil
}

// firstDay is the first day a range may hold (rawevents.DashboardQuery).
var firstDay = rawevents.Date{Year: 1970, Month: time.January, Day: 1}

// loadZone is the zone tz names: one of the document's TimeZone enum (the
// IANA database embedded by time/tzdata, so that no host's files decide
// which names work), else a 400 naming it.
func loadZone(name string) (*time.Location, error) {
	zones, err := openapiTimeZones()
	if err != nil {
		return nil, err
	}
	if !zones[name] {
		return nil, invalidParam("tz", "must be an IANA time zone such as Europe/Paris (the list is in /api/openapi.json, TimeZone), got "+quote(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %s of the document does not load: %w", name, err)
	}
	return loc, nil
}

// invalidParam is a 400 naming the query parameter at fault.
func invalidParam(field, reason string) error {
	return &Error{Kind: KindInvalid, Detail: field + " " + reason, Problems: []event.Problem{{Index: -1, Field: field, Reason: reason}}}
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
