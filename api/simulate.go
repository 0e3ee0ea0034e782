package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
	"github.com/uvrhq/uvr/projections/whatif"
)

// UsageSeries reads day × customer × feature points of the daily aggregates
// (aggregates.Analytics.Series), money in the range's currency. Errors
// wrapping rawevents.ErrInvalidQuery are the caller's fault. Safe for
// concurrent use.
type UsageSeries interface {
	Series(ctx context.Context, r aggregates.Range, period aggregates.Period, customerID string) ([]aggregates.Point, error)
}

// CustomerLookup resolves a canonical customer id, following merges; an
// unknown id is a *customers.Error of KindNotFound (customers.Directory).
type CustomerLookup interface {
	Get(ctx context.Context, id string) (customers.Customer, error)
}

// CardLister lists the cards of the effective rate card, lowest precedence
// first (pricing.Store.Cards). Safe for concurrent use.
type CardLister interface {
	Cards(ctx context.Context) ([]pricing.LayeredCard, error)
}

var (
	_ UsageSeries    = (*aggregates.Analytics)(nil)
	_ CustomerLookup = (*customers.Directory)(nil)
	_ CardLister     = (*pricing.Store)(nil)
)

// Simulator wires POST /api/simulate; every part is required (a missing
// one answers 503).
type Simulator struct {
	Usage     UsageSeries
	Customers CustomerLookup
	Cards     CardLister
}

// maxSimulateBody bounds a POST /api/simulate body: a plan and a card file.
const maxSimulateBody = 1 << 20

func (s *Server) registerSimulate(api *gin.RouterGroup) {
	api.POST("/simulate", s.simulate)
}

type simulateRequest struct {
	CustomerID string          `json:"customer_id"`
	StartDate  string          `json:"start_date"`
	EndDate    string          `json:"end_date"`
	Currency   string          `json:"currency"`
	Basis      string          `json:"basis"`
	Plan       *planRequest    `json:"plan" api:"nullable"`
	RateCard   json.RawMessage `json:"rate_card" api:"nullable"`
}

type planRequest struct {
	Price            *exactNumber     `json:"price"`
	IncludedQuantity *numberOrPerName `json:"included_quantity"`
	OveragePrice     *numberOrPerName `json:"overage_price"`
}

// exactNumber is a JSON number or a decimal string, kept as its text:
// simulationInput parses it with its field's bounds (event.ParseDecimal), so
// a hostile exponent is refused by name before any big number exists.
type exactNumber string

func (n *exactNumber) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return err
		}
		*n = exactNumber(s)
		return nil
	}
	if len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
		return fmt.Errorf("want a decimal number, got %s", t)
	}
	*n = exactNumber(t)
	return nil
}

// numberOrPerName is one number for everything, or an object of a number per feature.
type numberOrPerName struct {
	all    *exactNumber
	byName map[string]exactNumber
}

func (n *numberOrPerName) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return json.Unmarshal(t, &n.byName)
	}
	n.all = new(exactNumber)
	return n.all.UnmarshalJSON(b)
}

type totalsBody struct {
	Revenue          Number  `json:"revenue"`
	Cost             Number  `json:"cost"`
	Profit           Number  `json:"profit"`
	MarginPercentage *Number `json:"margin_percentage"` // null without revenue
}

type simulatedFeatureBody struct {
	Feature       string `json:"feature"`
	Quantity      Number `json:"quantity"`
	ActualCost    Number `json:"actual_cost"`
	SimulatedCost Number `json:"simulated_cost"`
}

type simulateResponse struct {
	CustomerID  string                 `json:"customer_id"`
	StartDate   rawevents.Date         `json:"start_date"`
	EndDate     rawevents.Date         `json:"end_date"`
	Currency    string                 `json:"currency"`
	Basis       string                 `json:"basis"`
	Actual      totalsBody             `json:"actual"`
	Simulated   totalsBody             `json:"simulated"`
	Delta       totalsBody             `json:"delta"`
	ByFeature   []simulatedFeatureBody `json:"by_feature"`
	Assumptions []string               `json:"assumptions"`
}

// allCustomers is the customer_id of a simulation over every customer.
const allCustomers = "all"

// simulate serves POST /api/simulate: the revenue, cost and margin a
// customer (or every customer) would have had over a range under another
// plan and/or rate card, from its real usage (projections/whatif).
func (s *Server) simulate(c *gin.Context) {
	sim := s.cfg.Simulator
	if sim.Usage == nil || sim.Customers == nil || sim.Cards == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "simulation is not enabled on this server"})
		return
	}
	var req simulateRequest
	raw, err := s.readBody(c, maxSimulateBody)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if err := refuseNulls(raw, &req); err != nil {
		s.writeError(c, err)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(c, simulateBodyError(err))
		return
	}
	in, r, err := s.simulationInput(req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	customerID := cmp.Or(req.CustomerID, allCustomers)
	if customerID != allCustomers {
		cust, err := sim.Customers.Get(ctx, customerID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		customerID = cust.ID // a merged id simulates the customer it merged into
	}
	if len(req.RateCard) > 0 && string(req.RateCard) != "null" {
		if in.Card, in.UserLayer, err = s.simulatedCard(ctx, req.RateCard); err != nil {
			s.writeError(c, err)
			return
		}
	}
	filter := customerID
	if filter == allCustomers {
		filter = ""
	}
	points, err := sim.Usage.Series(ctx, r, aggregates.PeriodDay, filter)
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	revenue := map[string]decimal.Decimal{}
	for _, p := range points {
		revenue[p.CustomerID] = revenue[p.CustomerID].Add(p.Revenue)
		if p.Feature != rawevents.UnattributedFeature && !(p.Quantity.IsZero() && p.Cost.IsZero()) {
			in.Usage = append(in.Usage, whatif.Usage{Day: p.Period, CustomerID: p.CustomerID, Feature: p.Feature, Quantity: p.Quantity, Cost: p.Cost})
		}
	}
	if customerID != allCustomers {
		in.Customers = []string{customerID}
	} else {
		for id := range revenue {
			in.Customers = append(in.Customers, id)
		}
		slices.Sort(in.Customers)
	}
	for _, id := range in.Customers {
		in.Revenue = append(in.Revenue, whatif.Revenue{CustomerID: id, Amount: revenue[id]})
	}
	res, err := whatif.Simulate(ctx, in)
	if ctx.Err() != nil {
		return // the client went away: nobody reads an answer
	}
	if err != nil {
		s.writeError(c, invalid(err.Error()))
		return
	}
	body := simulateResponse{
		CustomerID: customerID, StartDate: in.Start, EndDate: in.End, Currency: in.Currency, Basis: string(cmp.Or(r.Basis, aggregates.BasisAccrual)),
		Actual: totalsOf(res.Actual), Simulated: totalsOf(res.Simulated), Delta: totalsOf(res.Delta),
		ByFeature: make([]simulatedFeatureBody, 0, len(res.ByFeature)), Assumptions: res.Assumptions,
	}
	for _, f := range res.ByFeature {
		body.ByFeature = append(body.ByFeature, simulatedFeatureBody{Feature: f.Feature, Quantity: num(f.Quantity),
			ActualCost: num(f.ActualCost), SimulatedCost: num(f.SimulatedCost)})
	}
	c.JSON(http.StatusOK, body)
}

func totalsOf(t whatif.Totals) totalsBody {
	return totalsBody{Revenue: num(t.Revenue), Cost: num(t.Cost), Profit: num(t.Profit), MarginPercentage: optNum(t.Margin)}
}

// simulateBodyError names the field of a body that does not decode.
func simulateBodyError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fieldError(typeErr.Field, "want a "+typeErr.Value+" of another type: "+typeErr.Error())
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return fieldError(field, "unknown field "+quote(field))
	}
	return invalid("the body is not a valid simulation request (a JSON object): " + msg)
}

// simulationInput validates the request's range and plan, every problem at once.
func (s *Server) simulationInput(req simulateRequest) (whatif.Input, aggregates.Range, error) {
	var problems []event.Problem
	add := func(field, reason string) {
		problems = append(problems, event.Problem{Index: -1, Field: field, Reason: reason})
	}
	in := whatif.Input{Currency: cmp.Or(req.Currency, s.cfg.ReportingCurrency)}
	var err error
	if req.StartDate == "" {
		add("start_date", "start_date is required (YYYY-MM-DD)")
	} else if in.Start, err = rawevents.ParseDate(req.StartDate); err != nil {
		add("start_date", "start_date must be a date as YYYY-MM-DD, got "+quote(req.StartDate))
	}
	if req.EndDate == "" {
		add("end_date", "end_date is required (YYYY-MM-DD)")
	} else if in.End, err = rawevents.ParseDate(req.EndDate); err != nil {
		add("end_date", "end_date must be a date as YYYY-MM-DD, got "+quote(req.EndDate))
	}
	if len(problems) == 0 {
		switch days := in.Start.DaysUntil(in.End) + 1; {
		case days < 1:
			add("end_date", "end_date "+in.End.String()+" is before start_date "+in.Start.String())
		case days > whatif.MaxDays:
			add("end_date", fmt.Sprintf("the range holds %d days, at most %d", days, whatif.MaxDays))
		}
	}
	r := aggregates.Range{Start: in.Start, End: in.End, Currency: in.Currency, Basis: aggregates.Basis(req.Basis)}
	if req.Basis != "" && r.Basis != aggregates.BasisCash && r.Basis != aggregates.BasisAccrual {
		add("basis", "basis must be cash or accrual, got "+quote(req.Basis))
	}
	if p := req.Plan; p != nil {
		// parse reads one number of the plan, never negative, within the
		// digits of its kind (event.ParseDecimal).
		parse := func(field string, text exactNumber, intDigits int) (decimal.Decimal, bool) {
			d, err := event.ParseDecimal(string(text), intDigits, event.MaxScale)
			switch {
			case err != nil:
				add(field, field+" "+err.Error())
			case d.IsNegative():
				add(field, field+" must not be negative, got "+d.String())
			default:
				return d, true
			}
			return decimal.Decimal{}, false
		}
		parseEach := func(field string, n *numberOrPerName, intDigits int) (map[string]decimal.Decimal, *decimal.Decimal) {
			if n == nil {
				return nil, nil
			}
			if n.all != nil {
				d, _ := parse(field, *n.all, intDigits)
				return nil, &d
			}
			byName := make(map[string]decimal.Decimal, len(n.byName))
			for _, name := range slices.Sorted(maps.Keys(n.byName)) {
				byName[name], _ = parse(field+"."+name, n.byName[name], intDigits)
			}
			return byName, nil
		}
		plan := &whatif.Plan{}
		if p.Price == nil {
			add("plan.price", "plan.price is required (per month, in the currency)")
		} else {
			plan.Price, _ = parse("plan.price", *p.Price, event.MoneyDigits)
		}
		plan.Included, plan.IncludedTotal = parseEach("plan.included_quantity", p.IncludedQuantity, event.QuantityDigits)
		plan.Overage, plan.OverageAll = parseEach("plan.overage_price", p.OveragePrice, event.MoneyDigits)
		in.Plan = plan
	}
	if len(problems) > 0 {
		return in, r, &Error{Kind: KindInvalid, Detail: problems[0].Reason, Problems: problems}
	}
	return in, r, nil
}

// simulatedCard puts the request's card file (a JSON object in the card
// file format, or the file's text as a string) on top of the effective
// card's layers, and returns the card and the user layer's index.
func (s *Server) simulatedCard(ctx context.Context, raw json.RawMessage) (*pricing.RateCard, int, error) {
	data := []byte(raw)
	var text string
	if json.Unmarshal(raw, &text) == nil {
		data = []byte(text)
	}
	user, err := pricing.Parse("rate_card", data)
	if err != nil {
		return nil, 0, rateCardError(err)
	}
	cards, err := s.cfg.Simulator.Cards.Cards(ctx)
	if err != nil {
		return nil, 0, unavailable("the current rate card could not be read", err)
	}
	// Consecutive cards of one layer and file form one layer.
	var layers [][]pricing.Card
	var last string
	for _, c := range cards {
		if key := c.Layer + "\x00" + c.File; key != last || len(layers) == 0 {
			layers = append(layers, nil)
			last = key
		}
		layers[len(layers)-1] = append(layers[len(layers)-1], c.Card)
	}
	layers = append(layers, user)
	card, err := pricing.New(layers...)
	if err != nil {
		return nil, 0, fieldError("rate_card", err.Error())
	}
	return card, len(layers) - 1, nil
}

// rateCardError lists a card file's problems, each under rate_card.
func rateCardError(err error) error {
	var v *pricing.ValidationError
	if !errors.As(err, &v) {
		return fieldError("rate_card", err.Error())
	}
	out := &Error{Kind: KindInvalid, Detail: err.Error()}
	for _, p := range v.Problems {
		field := "rate_card"
		if p.Entry != "" { // "cards[0] (openai v1): models[2] (o3)" as a path
			field += "." + strings.ReplaceAll(p.Entry, ": ", ".")
		}
		if p.Field != "" {
			field += "." + p.Field
		}
		out.Problems = append(out.Problems, event.Problem{Index: -1, Field: field, Reason: p.Reason})
	}
	return out
}
