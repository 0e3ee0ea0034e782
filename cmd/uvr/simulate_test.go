package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/customers"
)

type simTotals struct {
	Revenue decimal.Decimal  `json:"revenue"`
	Cost    decimal.Decimal  `json:"cost"`
	Profit  decimal.Decimal  `json:"profit"`
	Margin  *decimal.Decimal `json:"margin_percentage"`
}

type simResult struct {
	CustomerID string    `json:"customer_id"`
	Actual     simTotals `json:"actual"`
	Simulated  simTotals `json:"simulated"`
	Delta      simTotals `json:"delta"`
	ByFeature  []struct {
		Feature       string          `json:"feature"`
		Quantity      decimal.Decimal `json:"quantity"`
		ActualCost    decimal.Decimal `json:"actual_cost"`
		SimulatedCost decimal.Decimal `json:"simulated_cost"`
	} `json:"by_feature"`
	Assumptions []string `json:"assumptions"`
}

// A customer's known usage and revenue through the whole program; POST
// /api/simulate with a plan and a rate card answers the revenue, cost and
// margin this test computes itself from the events and the rules, exactly;
// bad input is a 400 naming the field, an unknown customer a 404.
func TestSimulateEndToEnd(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	cust := event.Customer{Source: "test", ExternalID: "cus_sim"}
	at := func(s string) time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, dayOf(s)) }
	d := decimal.RequireFromString
	usage := func(id, day, feature, qty, cost string) event.Event {
		q, c := d(qty), d(cost)
		return event.Event{SpecVersion: event.SpecVersion, ID: id, Source: "e2e", Type: event.TypeUsage, Time: at(day),
			Data: event.Data{Customer: cust, Version: 1, Feature: feature, Quantity: &q, Unit: "units", Cost: &c, Currency: "USD"}}
	}
	revenue := func(id, day, kind, amount string) event.Event {
		a := d(amount)
		return event.Event{SpecVersion: event.SpecVersion, ID: id, Source: "e2e", Type: event.TypeRevenue, Time: at(day),
			Data: event.Data{Customer: cust, Version: 1, Kind: kind, Amount: &a, Currency: "USD"}}
	}
	events := []event.Event{
		usage("u1", "2026-01-05", "api.calls", "600", "1.20"),
		usage("u2", "2026-01-20", "api.calls", "900", "1.80"),
		usage("u3", "2026-02-03", "api.calls", "400", "0.80"),
		usage("u4", "2026-02-12", "api.calls", "1000", "2.00"),
		usage("u5", "2026-02-10", "gpt-4o.input_tokens", "2000000", "5.00"),
		usage("u6", "2026-02-20", "api.calls", "5000", "10.00"), // after the range
		revenue("r1", "2026-01-01", event.KindInvoicePaid, "50.00"),
		revenue("r2", "2026-02-01", event.KindInvoicePaid, "50.00"),
		revenue("r3", "2026-02-05", event.KindRefund, "-10.00"),
	}
	postAll(t, m.URL(), events, 100)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup+"-customers", cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)
	id := customers.SelfID(customers.Ref{Source: cust.Source, ExternalID: cust.ExternalID})

	// What the test expects, from the events above and the documented rules.
	// Range: January whole (31/31), February 1–14 (14/28).
	actualRevenue := d("50").Add(d("50")).Sub(d("10"))
	actualCost := d("1.20").Add(d("1.80")).Add(d("0.80")).Add(d("2.00")).Add(d("5.00"))
	price, included, overage := d("100"), d("1000"), d("0.01")
	half := d("14").Div(d("28"))
	janOver := d("600").Add(d("900")).Sub(included).Mul(overage)
	febOver := d("400").Add(d("1000")).Sub(included.Mul(half)).Mul(overage)
	simRevenue := price.Add(janOver).Add(price.Mul(half)).Add(febOver)
	// The card prices internal api calls at 1.50 per 1000 from February 1:
	// January keeps its actual cost, gpt-4o (not on the card) too.
	cardPrice := d("0.0015")
	simAPICost := d("1.20").Add(d("1.80")).Add(d("400").Mul(cardPrice)).Add(d("1000").Mul(cardPrice))
	simCost := simAPICost.Add(d("5.00"))
	margin := func(rev, cost decimal.Decimal) decimal.Decimal {
		return rev.Sub(cost).Mul(decimal.NewFromInt(100)).DivRound(rev, 4)
	}

	body := `{"customer_id":"` + id + `","start_date":"2026-01-01","end_date":"2026-02-14",
	  "plan":{"price":"100","included_quantity":{"api.calls":1000},"overage_price":{"api.calls":"0.01"}},
	  "rate_card":{"cards":[{"provider":"internal","version":"sim","effective_from":"2026-02-01","source":"what-if","as_of":"2026-01-15",
	    "per":1000,"models":[{"model":"api","prices":{"calls":"1.50"}}]}]}}`
	var res simResult
	var code int
	var raw string
	require.Eventually(t, func() bool { // the directory learns the customer from its own consumer
		code, raw = post(t, m.URL()+"/api/simulate", "application/json", []byte(body))
		return code != http.StatusNotFound
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusOK, code, raw)
	require.NoError(t, json.Unmarshal([]byte(raw), &res))
	t.Logf("simulation: %s", raw)

	assert.Equal(t, id, res.CustomerID)
	eq := func(name string, got, want decimal.Decimal) {
		t.Helper()
		assert.True(t, got.Equal(want), "%s %s, want %s", name, got, want)
	}
	eq("actual revenue", res.Actual.Revenue, actualRevenue)
	eq("actual cost", res.Actual.Cost, actualCost)
	eq("actual profit", res.Actual.Profit, actualRevenue.Sub(actualCost))
	require.NotNil(t, res.Actual.Margin)
	eq("actual margin", *res.Actual.Margin, margin(actualRevenue, actualCost))
	eq("simulated revenue", res.Simulated.Revenue, simRevenue)
	eq("simulated cost", res.Simulated.Cost, simCost)
	eq("simulated profit", res.Simulated.Profit, simRevenue.Sub(simCost))
	require.NotNil(t, res.Simulated.Margin)
	eq("simulated margin", *res.Simulated.Margin, margin(simRevenue, simCost))
	eq("delta profit", res.Delta.Profit, simRevenue.Sub(simCost).Sub(actualRevenue.Sub(actualCost)))
	require.Len(t, res.ByFeature, 2)
	assert.Equal(t, "api.calls", res.ByFeature[0].Feature)
	eq("api.calls quantity", res.ByFeature[0].Quantity, d("2900"))
	eq("api.calls simulated cost", res.ByFeature[0].SimulatedCost, simAPICost)
	eq("gpt-4o simulated cost", res.ByFeature[1].SimulatedCost, d("5"))
	assert.NotEmpty(t, res.Assumptions)

	// Every customer ("all", the default): here the same one customer.
	code, raw = post(t, m.URL()+"/api/simulate", "application/json", []byte(`{"start_date":"2026-01-01","end_date":"2026-02-14","plan":{"price":100}}`))
	require.Equal(t, http.StatusOK, code, raw)
	var all simResult
	require.NoError(t, json.Unmarshal([]byte(raw), &all))
	assert.Equal(t, "all", all.CustomerID)
	eq("all: simulated revenue", all.Simulated.Revenue, price.Add(price.Mul(half)))
	eq("all: simulated cost", all.Simulated.Cost, actualCost)

	for _, tt := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"bad date", `{"start_date":"2026-13-01","end_date":"2026-02-14"}`, 400, "start_date"},
		{"missing end", `{"start_date":"2026-01-01"}`, 400, "end_date"},
		{"over 366 days", `{"start_date":"2025-01-01","end_date":"2026-02-14"}`, 400, "end_date"},
		{"negative price", `{"start_date":"2026-01-01","end_date":"2026-01-31","plan":{"price":"-5"}}`, 400, "plan.price"},
		{"negative overage", `{"start_date":"2026-01-01","end_date":"2026-01-31","plan":{"price":1,"overage_price":{"api.calls":-1}}}`, 400, "plan.overage_price.api.calls"},
		{"not a number", `{"start_date":"2026-01-01","end_date":"2026-01-31","plan":{"price":"ten"}}`, 400, ""},
		{"unknown field", `{"start_date":"2026-01-01","end_date":"2026-01-31","discount":3}`, 400, "discount"},
		{"invalid rate card", `{"start_date":"2026-01-01","end_date":"2026-01-31","rate_card":{"cards":[{"provider":"internal","version":"x","effective_from":"2026-01-01","source":"s","as_of":"2026-01-01","per":1,"models":[{"model":"api","prices":{"calls":"-1"}}]}]}}`, 400, "rate_card.cards[0]"},
		{"unknown customer", `{"customer_id":"cust_nobody","start_date":"2026-01-01","end_date":"2026-01-31"}`, 404, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, raw := post(t, m.URL()+"/api/simulate", "application/json", []byte(tt.body))
			assert.Equal(t, tt.status, code, raw)
			var e struct {
				Detail string `json:"detail"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			require.NoError(t, json.Unmarshal([]byte(raw), &e), raw)
			assert.NotEmpty(t, e.Detail)
			if tt.field != "" {
				require.NotEmpty(t, e.Errors, raw)
				assert.Contains(t, e.Errors[0].Field, tt.field, raw)
			}
		})
	}
}

// dayOf is the number of days from 2026-01-01 to s.
func dayOf(s string) int {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return int(t.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Hours() / 24)
}
