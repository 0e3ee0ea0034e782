package main

import (
	"bytes"
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

// featureCosts is GET /api/features over [start, end]: usage, cost and
// unpriced quantity by feature, exact.
func featureCosts(t *testing.T, baseURL, start, end string) map[string][3]string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/features?start_date=%s&end_date=%s", baseURL, start, end))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var body struct {
		Features []struct {
			Feature  string          `json:"feature"`
			Usage    decimal.Decimal `json:"usage"`
			Cost     decimal.Decimal `json:"cost"`
			Unpriced decimal.Decimal `json:"unpriced_quantity"`
		} `json:"features"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&body))
	out := map[string][3]string{}
	for _, f := range body.Features {
		out[f.Feature] = [3]string{f.Usage.String(), f.Cost.String(), f.Unpriced.String()}
	}
	return out
}

func putRateCards(t *testing.T, baseURL, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, baseURL+"/api/rate-cards", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Token events without a cost are priced from the default card (gpt-4o
// input $2.50/1M, cached input $1.25/1M, gpt-4o-mini output $0.60/1M) to
// the last of 9 decimals; a given cost is kept; a token event whose cost
// other events report is not priced; an unknown feature stays at zero. A
// price change through PUT /api/rate-cards, effective from a mid-range day,
// re-costs exactly the days from it, and a second API instance sees it.
func TestUsageCostFromRateCardsEndToEnd(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	base := time.Now().UTC().AddDate(0, 0, -10).Truncate(24 * time.Hour)
	days := make([]string, 4)
	var events []event.Event
	n := 0
	add := func(day int, feature, qty string, mod func(*event.Event)) {
		n++
		q := decimal.RequireFromString(qty)
		ev := event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("cost-%d", n), Source: "e2e", Type: event.TypeUsage,
			Time: base.AddDate(0, 0, day).Add(9 * time.Hour),
			Data: event.Data{Customer: event.Customer{Source: "test", ExternalID: "cus_cost"}, Version: 1, Feature: feature, Quantity: &q, Unit: "tokens"}}
		if mod != nil {
			mod(&ev)
		}
		events = append(events, ev)
	}
	for d := range days {
		days[d] = base.AddDate(0, 0, d).Format(time.DateOnly)
		add(d, "gpt-4o.input_tokens", "1000000", nil)
	}
	add(0, "gpt-4o.input_tokens", "1234567.891", nil)
	add(1, "gpt-4o.cached_input_tokens", "333333", nil)
	add(1, "gpt-4o-mini.output_tokens", "7777777", nil)
	add(1, "gpt-4o.output_tokens", "500", func(e *event.Event) {
		c := decimal.RequireFromString("0.123456789")
		e.Data.Cost, e.Data.Currency = &c, "USD"
	})
	add(1, "gpt-4o.output_tokens", "900", func(e *event.Event) { e.Data.Attributes = map[string]string{"cost_reported_by": "openai_costs"} })
	add(2, "api.calls", "42", nil)
	// A correction (higher version, new quantity) and a void.
	corrected := events[len(days)] // the 1234567.891 tokens of day 0
	q := decimal.RequireFromString("2000000")
	corrected.Data.Version, corrected.Data.Quantity = 2, &q
	voided := events[len(days)+1] // the cached input of day 1
	voided.Data.Version, voided.Data.Void = 2, true
	postAll(t, m.URL(), events, 100)
	postAll(t, m.URL(), []event.Event{corrected, voided}, 100)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	// The test's own prices: the default card's list prices per 1M tokens.
	price := func(perMillion, qty string) decimal.Decimal {
		return decimal.RequireFromString(qty).Mul(decimal.RequireFromString(perMillion)).Div(decimal.NewFromInt(1_000_000)).RoundBank(9)
	}
	inputDay0 := price("2.50", "3000000") // 1M + the correction's 2M
	assert.Equal(t, "7.5", inputDay0.String())
	// Usage, cost, unpriced quantity: the unknown feature's zero cost shows
	// as 42 unpriced units, never silently free; priced features have none.
	got := featureCosts(t, m.URL(), days[0], days[3])
	assert.Equal(t, map[string][3]string{
		"gpt-4o.input_tokens":       {"6000000", inputDay0.Add(price("2.50", "3000000")).String(), "0"},
		"gpt-4o-mini.output_tokens": {"7777777", price("0.60", "7777777").String(), "0"},
		"gpt-4o.output_tokens":      {"1400", "0.123456789", "0"},
		"api.calls":                 {"42", "0", "42"},
	}, got)
	assert.Equal(t, "4.6666662", got["gpt-4o-mini.output_tokens"][1])
	assert.Equal(t, map[string][3]string{"api.calls": {"42", "0", "42"}, "gpt-4o.input_tokens": {"1000000", "2.5", "0"}},
		featureCosts(t, m.URL(), days[2], days[2]), "the unpriced units are on the day they were used")
	resp, err := http.Get(m.URL() + "/api/features?format=csv&start_date=" + days[2] + "&end_date=" + days[2])
	require.NoError(t, err)
	csvBody, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(csvBody))
	assert.Equal(t, "feature,usage,unpriced_quantity,cost,revenue,profit,margin_percentage\napi.calls,42,42,0,0,0,\ngpt-4o.input_tokens,1000000,0,2.5,0,-2.5,\n", string(csvBody))
	status, dash := getBody(t, m.URL()+"/api/dashboard?start_date="+days[0]+"&end_date="+days[3])
	require.Equal(t, http.StatusOK, status, dash)
	assert.Contains(t, dash, `{"feature_name":"api.calls","usage_count":42,"unpriced_quantity":42,"total_cost":0,`)
	assert.Contains(t, dash, `{"feature_name":"gpt-4o.output_tokens","usage_count":1400,"unpriced_quantity":0,"total_cost":0.123456789,`)

	// Bad card: 400 naming the entry and field.
	status, body := putRateCards(t, m.URL(), "application/yaml", "cards:\n  - provider: openai\n    version: v\n    effective_from: 2026-01-01\n    source: s\n    as_of: 2026-01-01\n    per: 1000000\n    models: [{model: gpt-4o, prices: {input_tokens: cheap}}]\n")
	require.Equal(t, http.StatusBadRequest, status, body)
	assert.Contains(t, body, `"field":"cards[0] (openai v)`)
	assert.Contains(t, body, "input_tokens")

	// gpt-4o input becomes $1.75/1M from day 2.
	status, body = putRateCards(t, m.URL(), "application/yaml", fmt.Sprintf(`cards:
  - provider: openai
    version: cut
    effective_from: %s
    source: e2e
    as_of: %s
    per: 1000000
    models:
      - model: gpt-4o
        prices: {input_tokens: "1.75"}
`, days[2], days[0]))
	require.Equal(t, http.StatusOK, status, body)
	var change struct {
		Recost []struct {
			Provider, Model, Unit, From string
			To                          *string
		} `json:"recost"`
		DaysMarked int `json:"days_marked"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &change))
	require.Len(t, change.Recost, 1, body)
	assert.Equal(t, "openai gpt-4o input_tokens "+days[2], change.Recost[0].Provider+" "+change.Recost[0].Model+" "+change.Recost[0].Unit+" "+change.Recost[0].From)
	assert.Nil(t, change.Recost[0].To)
	assert.Equal(t, 2, change.DaysMarked, "days 2 and 3 hold usage to price; days 0 and 1 keep their price")

	want := map[string]string{days[0]: "7.5", days[1]: "2.5", days[2]: "1.75", days[3]: "1.75"}
	require.Eventually(t, func() bool {
		for d, cost := range want {
			if featureCosts(t, m.URL(), d, d)["gpt-4o.input_tokens"][1] != cost {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "days before %s keep the old price, the others get the new one", days[2])
	got = featureCosts(t, m.URL(), days[0], days[3])
	assert.Equal(t, "13.5", got["gpt-4o.input_tokens"][1])
	assert.Equal(t, "4.6666662", got["gpt-4o-mini.output_tokens"][1], "other prices unchanged")

	// Reconcile (the CLI, with the shared card from Kafka) finds nothing.
	env := map[string]string{"UVR_CLICKHOUSE_ADDR": cfg.ClickHouseAddr, "UVR_CLICKHOUSE_DATABASE": cfg.ClickHouseDatabase,
		"UVR_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","), "UVR_CONNECTOR_PREFIX": cfg.ConnectorPrefix}
	for _, d := range days {
		out, err := runCLI(t, env, "reconcile", "--day", d, "--check")
		require.NoError(t, err, out)
		assert.Contains(t, out, d+": the stored aggregates match")
	}

	// A second API instance lists the override.
	second := startMain(t, cfg, Roles{API: true})
	status, body = getBody(t, second.URL()+"/api/rate-cards")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"layer":"override"`)
	assert.Contains(t, body, `"version":"cut"`)
}
