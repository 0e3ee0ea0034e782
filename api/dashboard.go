package api

import (
	"context"
	"errors"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/projections/rawevents"
)

// DashboardReader answers the dashboard's totals for a range of days.
// Errors wrapping rawevents.ErrInvalidQuery are the caller's fault (400).
type DashboardReader interface {
	Dashboard(ctx context.Context, q rawevents.DashboardQuery) (rawevents.Dashboard, error)
}

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
	ProfitMarginPercentage *Number   `json:"profit_margin_percentage"`
	DateRange              dateRange `json:"date_range"`
	Currency               string    `json:"currency"`
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
	FeatureName  string  `json:"feature_name"`
	UsageCount   Number  `json:"usage_count"`
	TotalCost    Number  `json:"total_cost"`
	Revenue      Number  `json:"revenue"`
	ProfitMargin *Number `json:"profit_margin"`
}

// dashboard serves GET /api/dashboard?start_date=&end_date=&currency= in the
// shape REST clients of the original product already parse.
func (s *Server) dashboard(c *gin.Context) {
	q, err := s.dashboardQuery(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	d, err := s.cfg.Dashboard.Dashboard(c.Request.Context(), q)
	if errors.Is(err, rawevents.ErrInvalidQuery) {
		s.writeError(c, invalid(err.Error()))
		return
	}
	if err != nil {
		s.writeError(c, unavailable("the dashboard could not be read from ClickHouse", err))
		return
	}
	body := dashboardBody{
		Summary: summaryBody{
			TotalUsageCost:         num(d.Summary.TotalUsageCost),
			TotalRevenue:           num(d.Summary.TotalRevenue),
			TotalProfit:            num(d.Summary.TotalProfit),
			ProfitMarginPercentage: optNum(d.Summary.ProfitMarginPercentage),
			DateRange:              dateRange{Start: q.Start, End: q.End},
			Currency:               q.Currency,
		},
		TimeSeries:     make([]dayBody, len(d.TimeSeries)),
		FeatureMetrics: make([]featureBody, len(d.FeatureMetrics)),
	}
	for i, p := range d.TimeSeries {
		body.TimeSeries[i] = dayBody{Date: p.Date, UsageCost: num(p.UsageCost), Revenue: num(p.Revenue), Profit: num(p.Profit)}
	}
	for i, f := range d.FeatureMetrics {
		body.FeatureMetrics[i] = featureBody{FeatureName: f.FeatureName, UsageCount: num(f.UsageCount),
			TotalCost: num(f.TotalCost), Revenue: num(f.Revenue), ProfitMargin: optNum(f.ProfitMargin)}
	}
	c.JSON(200, body)
}

// dashboardQuery reads the range and currency, naming the parameter at fault.
func (s *Server) dashboardQuery(c *gin.Context) (rawevents.DashboardQuery, error) {
	q := rawevents.DashboardQuery{Currency: s.cfg.ReportingCurrency}
	if cur := c.Query("currency"); cur != "" {
		q.Currency = cur
	}
	today := rawevents.DateOf(time.Now().UTC())
	q.End = today
	if v := c.Query("end_date"); v != "" {
		d, err := rawevents.ParseDate(v)
		if err != nil {
			return q, invalid("end_date must be a date as YYYY-MM-DD, got " + quote(v))
		}
		q.End = d
	}
	q.Start = q.End.AddDays(-(defaultDashboardDays - 1))
	if v := c.Query("start_date"); v != "" {
		d, err := rawevents.ParseDate(v)
		if err != nil {
			return q, invalid("start_date must be a date as YYYY-MM-DD, got " + quote(v))
		}
		q.Start = d
	}
	if q.End.Before(q.Start) {
		return q, invalid("start_date " + q.Start.String() + " is after end_date " + q.End.String())
	}
	if err := q.Validate(); err != nil {
		return q, invalid(err.Error())
	}
	return q, nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
