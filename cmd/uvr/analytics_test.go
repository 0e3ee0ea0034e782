package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// customerMoney is one row of GET /api/customers as the test reads it:
// the money fields as exact decimals (json.Number keeps their digits).
type customerMoney struct {
	ID      string      `json:"id"`
	Usage   json.Number `json:"usage"`
	Revenue json.Number `json:"revenue"`
	Cost    json.Number `json:"cost"`
	Profit  json.Number `json:"profit"`
}

type moneyTotals struct{ usage, revenue, cost decimal.Decimal }

// Three references, two linked by one email: /api/customers shows two
// canonical customers whose sums equal the test's own ledger; a merge then
// re-groups all history into one customer with nothing re-ingested; the CSV
// export holds the rows of the JSON.
func TestCustomerAnalyticsFollowIdentity(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	start, end := day.AddDate(0, 0, -10).Format(time.DateOnly), day.AddDate(0, 0, 10).Format(time.DateOnly)

	refs := []event.Customer{
		{Source: "stripe", ExternalID: "cus_acme", Email: "Ops@Acme.io", Name: "Acme"},
		{Source: "chargebee", ExternalID: "acme-cb", Email: "ops@acme.io"},
		{Source: "openai", ExternalID: "proj_solo"},
	}
	var events []event.Event
	ledger := map[string]*moneyTotals{} // by reference external id
	n := 0
	for i, ref := range refs {
		ledger[ref.ExternalID] = &moneyTotals{}
		if ref.Email != "" {
			n++
			events = append(events, event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("c%d", n), Source: ref.Source,
				Type: event.TypeCustomer, Time: day, Data: event.Data{Customer: ref, Version: 1}})
		}
		for k := range 4 {
			n++
			qty := decimal.New(int64(100*(i+1)+k), 0)
			cost := decimal.New(int64(1234567*(i+1)+k), -9) // nine places: exact sums, no float
			events = append(events, event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("u%d", n), Source: ref.Source,
				Type: event.TypeUsage, Time: day.Add(time.Duration(k) * 25 * time.Hour),
				Data: event.Data{Customer: event.Customer{Source: ref.Source, ExternalID: ref.ExternalID}, Version: 1,
					Feature: fmt.Sprintf("feature-%d", k%2), Quantity: &qty, Unit: "tokens", Cost: &cost, Currency: "USD"}})
			l := ledger[ref.ExternalID]
			l.usage, l.cost = l.usage.Add(qty), l.cost.Add(cost)
		}
		for k := range 2 {
			n++
			amount := decimal.New(int64(1999*(i+1)+k), -2)
			kind := event.KindCharge
			if k == 1 {
				kind, amount = event.KindRefund, amount.Neg().Div(decimal.NewFromInt(4)).Round(2)
			}
			events = append(events, event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("r%d", n), Source: ref.Source,
				Type: event.TypeRevenue, Time: day.Add(time.Duration(k) * 30 * time.Hour),
				Data: event.Data{Customer: event.Customer{Source: ref.Source, ExternalID: ref.ExternalID}, Version: 1,
					Kind: kind, Amount: &amount, Currency: "USD"}})
			ledger[ref.ExternalID].revenue = ledger[ref.ExternalID].revenue.Add(amount)
		}
	}
	postAll(t, m.URL(), events, 100)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	sum := func(ids ...string) moneyTotals {
		var s moneyTotals
		for _, id := range ids {
			s.usage, s.revenue, s.cost = s.usage.Add(ledger[id].usage), s.revenue.Add(ledger[id].revenue), s.cost.Add(ledger[id].cost)
		}
		return s
	}
	listURL := m.URL() + "/api/customers?sort=id&start_date=" + start + "&end_date=" + end
	// active lists the customers with money in the range, by id.
	active := func() []customerMoney {
		code, raw := getBody(t, listURL)
		require.Equal(t, http.StatusOK, code, raw)
		var body struct{ Customers []customerMoney }
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&body))
		var out []customerMoney
		for _, c := range body.Customers {
			if c.Usage.String() != "0" || c.Revenue.String() != "0" {
				out = append(out, c)
			}
		}
		return out
	}
	matches := func(got customerMoney, want moneyTotals) bool {
		d := func(n json.Number) decimal.Decimal { return decimal.RequireFromString(n.String()) }
		return d(got.Usage).Equal(want.usage) && d(got.Revenue).Equal(want.revenue) && d(got.Cost).Equal(want.cost) &&
			d(got.Profit).Equal(want.revenue.Sub(want.cost))
	}

	// The two Acme references resolve to one customer once the directory
	// has seen both customer events.
	acme, solo := sum("cus_acme", "acme-cb"), sum("proj_solo")
	var last []customerMoney
	require.Eventually(t, func() bool {
		last = active()
		if len(last) != 2 {
			return false
		}
		return (matches(last[0], acme) && matches(last[1], solo)) || (matches(last[0], solo) && matches(last[1], acme))
	}, time.Minute, 100*time.Millisecond, "the customers never matched the ledger: %+v", func() any { return last })
	acmeID, soloID := last[0].ID, last[1].ID
	if matches(last[0], solo) {
		acmeID, soloID = soloID, acmeID
	}

	// The detail of one customer: its references and the same totals.
	code, raw := getBody(t, m.URL()+"/api/customers/"+acmeID+"?start_date="+start+"&end_date="+end)
	require.Equal(t, http.StatusOK, code, raw)
	var detail struct {
		Customer     customerMoney
		References   []struct{ Source, ExternalID string }
		RevenueItems []json.RawMessage `json:"revenue_items"`
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&detail))
	assert.True(t, matches(detail.Customer, acme), raw)
	assert.Len(t, detail.References, 2)
	assert.Len(t, detail.RevenueItems, 4)

	// CSV export: the same rows as the JSON, field for field.
	resp, err := http.Get(listURL + "&format=csv")
	require.NoError(t, err)
	rawCSV, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(rawCSV))
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	raw = string(rawCSV)
	records, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, records)
	assert.Equal(t, []string{"id", "external_id", "name", "plan", "usage", "revenue", "revenue_per_unit", "cost", "profit", "margin_percentage"}, records[0])
	code, js := getBody(t, listURL)
	require.Equal(t, http.StatusOK, code)
	var jsonRows struct{ Customers []map[string]any }
	dec = json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&jsonRows))
	require.Len(t, records, len(jsonRows.Customers)+1)
	for i, row := range jsonRows.Customers {
		for j, field := range records[0] {
			want := ""
			if v := row[field]; v != nil {
				want = fmt.Sprint(v)
			}
			assert.Equal(t, want, records[i+1][j], "row %d %s", i, field)
		}
	}

	// Merge the solo customer into Acme: one customer with the summed money,
	// the same aggregates re-grouped.
	status, body := post(t, m.URL()+"/api/customers/merge", "application/json",
		[]byte(`{"customer_id":"`+soloID+`","into":"`+acmeID+`"}`))
	require.Equal(t, http.StatusOK, status, body)
	all := sum("cus_acme", "acme-cb", "proj_solo")
	require.Eventually(t, func() bool {
		last = active()
		return len(last) == 1 && last[0].ID == acmeID && matches(last[0], all)
	}, time.Minute, 100*time.Millisecond, "the merge never re-grouped the history: %+v", func() any { return last })

	// Bad parameters are named.
	for param, url := range map[string]string{
		"sort":     "/api/customers?sort=price",
		"limit":    "/api/customers?limit=0",
		"end_date": "/api/customers?end_date=tomorrow",
		"group_by": "/api/timeseries?group_by=year",
	} {
		code, raw := getBody(t, m.URL()+url)
		assert.Equal(t, http.StatusBadRequest, code, url)
		assert.Contains(t, raw, param, url)
	}
}
