package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/revsettings"
)

// RevenueSettings reads and replaces the FX table and the revenue mapping
// (revsettings.Store): Rates and Mapping return the setting in force and
// its source (api, file or none); PutFX fails with a
// *pricing.ValidationError, PutMapping with a *revsettings.MappingError on
// bad input. Safe for concurrent use.
type RevenueSettings interface {
	Rates() ([]pricing.FXRate, string, error)
	PutFX(ctx context.Context, rates []pricing.FXRate) error
	Mapping() ([]revsettings.PlanFeature, string, error)
	PutMapping(ctx context.Context, m []revsettings.PlanFeature) error
}

var _ RevenueSettings = (*revsettings.Store)(nil)

type fxRateBody struct {
	Date  string `json:"date"`
	Base  string `json:"base"`
	Quote string `json:"quote"`
	Rate  Number `json:"rate"`
}

type fxRatesBody struct {
	ReportingCurrency string       `json:"reporting_currency"`
	Source            string       `json:"source"`
	Rates             []fxRateBody `json:"rates"`
}

type fxRatesRequest struct {
	Rates []struct {
		Date  string      `json:"date"`
		Base  string      `json:"base"`
		Quote string      `json:"quote"`
		Rate  exactNumber `json:"rate"`
	} `json:"rates"`
}

func (s *Server) registerRevenueSettings(api *gin.RouterGroup) {
	g := api.Group("", s.requireRevenueSettings)
	g.GET("/fx-rates", s.getFXRates)
	g.PUT("/fx-rates", s.putFXRates)
	g.GET("/revenue-mapping", s.getRevenueMapping)
	g.PUT("/revenue-mapping", s.putRevenueMapping)
}

func (s *Server) requireRevenueSettings(c *gin.Context) {
	if s.cfg.RevenueSettings == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "revenue settings are not enabled on this server"})
		return
	}
	c.Next()
}

// getFXRates serves GET /api/fx-rates: the daily FX table in force.
func (s *Server) getFXRates(c *gin.Context) {
	rates, source, err := s.cfg.RevenueSettings.Rates()
	if err != nil {
		s.writeError(c, err)
		return
	}
	body := fxRatesBody{ReportingCurrency: s.cfg.ReportingCurrency, Source: source, Rates: make([]fxRateBody, len(rates))}
	for i, r := range rates {
		body.Rates[i] = fxRateBody{Date: r.Day.Format(time.DateOnly), Base: r.Base, Quote: r.Quote, Rate: num(r.Rate)}
	}
	c.JSON(http.StatusOK, body)
}

// putFXRates serves PUT /api/fx-rates {"rates": [{date, base, quote, rate}]}:
// replaces the whole table (stored on uvr.fx-rates.v1). Conversion happens at
// query time, so the new rates apply to all history at once.
func (s *Server) putFXRates(c *gin.Context) {
	var req fxRatesRequest
	if err := s.decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Rates == nil {
		s.writeError(c, invalidParam("rates", "is required (an empty list clears the table)"))
		return
	}
	rates := make([]pricing.FXRate, len(req.Rates))
	var problems []event.Problem
	for i, r := range req.Rates {
		day, err := time.Parse(time.DateOnly, r.Date)
		if err != nil {
			problems = append(problems, event.Problem{Index: i, Field: fmt.Sprintf("rates[%d].date", i), Reason: "must be a date as YYYY-MM-DD, got " + quote(r.Date)})
		}
		rate, err := event.ParseDecimal(string(r.Rate), event.MoneyDigits, event.MaxScale)
		if err != nil {
			problems = append(problems, event.Problem{Index: i, Field: fmt.Sprintf("rates[%d].rate", i), Reason: err.Error()})
		}
		rates[i] = pricing.FXRate{Day: day, Base: r.Base, Quote: r.Quote, Rate: rate}
	}
	if len(problems) > 0 {
		s.writeError(c, &Error{Kind: KindInvalid, Detail: "invalid FX rates", Problems: problems})
		return
	}
	err := s.cfg.RevenueSettings.PutFX(c.Request.Context(), rates)
	var verr *pricing.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			// Entry is "rates[i]"; the field within it is p.Field.
			var idx int
			_, _ = fmt.Sscanf(p.Entry, "rates[%d]", &idx)
			problems = append(problems, event.Problem{Index: idx, Field: strings.TrimPrefix(p.Entry+"."+p.Field, "."), Reason: p.Reason})
		}
		s.writeError(c, &Error{Kind: KindInvalid, Detail: "invalid FX rates: " + verr.Error(), Problems: problems})
		return
	}
	if err != nil {
		s.writeError(c, unavailable("the FX rates could not be stored", err))
		return
	}
	s.getFXRates(c)
}

// maxSettingsBody bounds a PUT of the FX table or the revenue mapping:
// years of daily rates of a few dozen pairs.
const maxSettingsBody = 4 << 20

// decodeBody reads a JSON body of at most maxSettingsBody strictly: unknown
// fields are an error naming them.
func (s *Server) decodeBody(c *gin.Context, v any) error {
	body, err := s.readBody(c, maxSettingsBody)
	if err != nil {
		return err
	}
	if err := refuseNulls(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Kind: KindInvalid, Detail: "the body must be JSON of the documented shape: " + err.Error(),
			Problems: []event.Problem{{Index: -1, Field: "body", Reason: err.Error()}}}
	}
	return nil
}
