package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
)

// defaultCards lists the embedded default card as the only layer, as
// pricing.Store.Cards does before any file or override.
type defaultCards struct{}

func (defaultCards) Cards(context.Context) ([]pricing.LayeredCard, error) {
	cards, err := pricing.DefaultCards()
	if err != nil {
		return nil, err
	}
	out := make([]pricing.LayeredCard, len(cards))
	for i, c := range cards {
		out[i] = pricing.LayeredCard{Layer: pricing.LayerDefault, File: pricing.DefaultCardName, Card: c}
	}
	return out, nil
}

// simulateServer serves POST /api/simulate over daily aggregates in the real
// ClickHouse and a directory on the real Kafka: customer stripe/cus_sim used
// 1500 api.calls in March 2026 for a cost of 3, and paid 40.
func simulateServer(t *testing.T, enabled bool) http.Handler {
	t.Helper()
	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub, // not called by this route
		Logger: slog.New(slog.DiscardHandler),
	}
	if enabled {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.simulate.customers")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = table.Close() })
		dir, err := customers.New(customers.Config{Table: table})
		require.NoError(t, err)
		require.NoError(t, dir.Observe(ctx, event.Event{SpecVersion: event.SpecVersion, ID: "c1", Source: "stripe", Type: event.TypeCustomer,
			Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Data: event.Data{Customer: event.Customer{Source: "stripe", ExternalID: "cus_sim", Name: "Sim"}, Version: 1}}))

		addr, database := servicetest.ClickHouseDatabase(t)
		conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
		d := decimal.RequireFromString
		day1, day2 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
		require.NoError(t, chstore.InsertColumns(ctx, conn, aggregates.TableDailyUsage,
			[]string{"day", "customer_source", "customer_external_id", "feature", "currency", "quantity", "events", "cost", "computed_at"},
			[]any{[]time.Time{day1, day2}, []string{"stripe", "stripe"}, []string{"cus_sim", "cus_sim"}, []string{"api.calls", "api.calls"},
				[]string{"USD", "USD"}, []decimal.Decimal{d("500"), d("1000")}, []uint64{1, 1}, []decimal.Decimal{d("1"), d("2")}, []uint64{1, 1}}))
		require.NoError(t, chstore.InsertColumns(ctx, conn, aggregates.TableDailyRevenueLines,
			[]string{"day", "customer_source", "customer_external_id", "currency", "plan", "cash", "accrual", "refunds", "events", "computed_at"},
			[]any{[]time.Time{day1}, []string{"stripe"}, []string{"cus_sim"}, []string{"USD"}, []string{""}, []decimal.Decimal{d("40")},
				[]decimal.Decimal{d("40")}, []decimal.Decimal{d("0")}, []uint64{1}, []uint64{1}}))
		analytics, err := aggregates.NewAnalytics(conn, func(ctx context.Context) (map[customers.Ref]string, error) {
			if err := dir.Sync(ctx); err != nil {
				return nil, err
			}
			return dir.Snapshot(), nil
		})
		require.NoError(t, err)
		cfg.Simulator = api.Simulator{Usage: analytics, Customers: dir, Cards: defaultCards{}}
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	return wrap(server.Handler())
}

// POST /api/simulate answers what the document says (closed schemas),
// exact numbers from the aggregates, and a 400 naming the field (or a 404)
// for bad input.
func TestSimulateRoute(t *testing.T) {
	t.Parallel()
	doc := strictDoc(t)
	h := simulateServer(t, true)
	id := customers.SelfID(customers.Ref{Source: "stripe", ExternalID: "cus_sim"})
	card := `"rate_card":"cards:\n  - provider: internal\n    version: \"1\"\n    effective_from: 2026-03-10\n    source: test\n    as_of: 2026-03-01\n    per: 1000\n    models:\n      - model: api\n        prices: {calls: \"1.00\"}\n"`
	tests := []struct {
		name, body string
		status     int
		contains   []string
	}{
		{"actual only", `{"customer_id":"` + id + `","start_date":"2026-03-01","end_date":"2026-03-31","basis":"cash"}`, 200, []string{
			`"actual":{"revenue":40,"cost":3,"profit":37,"margin_percentage":92.5}`,
			`"simulated":{"revenue":40,"cost":3,"profit":37,"margin_percentage":92.5}`,
			`"delta":{"revenue":0,"cost":0,"profit":0,"margin_percentage":0}`,
			`"by_feature":[{"feature":"api.calls","quantity":1500,"actual_cost":3,"simulated_cost":3}]`}},
		// Plan: 30 + (1500 − 1000) × 0.02 = 40; card from March 10: 1000 × 0.001 = 1 instead of 2.
		{"plan and card", `{"customer_id":"` + id + `","start_date":"2026-03-01","end_date":"2026-03-31","basis":"cash",
			"plan":{"price":"30","included_quantity":{"api.calls":"1000"},"overage_price":{"api.calls":0.02}},` + card + `}`, 200, []string{
			`"simulated":{"revenue":40,"cost":2,"profit":38,"margin_percentage":95}`,
			`"delta":{"revenue":0,"cost":-1,"profit":1,"margin_percentage":2.5}`,
			`{"feature":"api.calls","quantity":1500,"actual_cost":3,"simulated_cost":2}`}},
		{"every customer", `{"start_date":"2026-03-01","end_date":"2026-03-31","basis":"cash","plan":{"price":10}}`, 200, []string{
			`"customer_id":"all"`, `"simulated":{"revenue":10,"cost":3,"profit":7,"margin_percentage":70}`}},
		{"bad date", `{"start_date":"2026-03-32","end_date":"2026-03-31"}`, 400, []string{`"field":"start_date"`}},
		{"reversed", `{"start_date":"2026-03-10","end_date":"2026-03-01"}`, 400, []string{`"field":"end_date"`, "before start_date"}},
		{"too long", `{"start_date":"2025-01-01","end_date":"2026-03-01"}`, 400, []string{`"field":"end_date"`, "at most 366"}},
		{"bad basis", `{"start_date":"2026-03-01","end_date":"2026-03-31","basis":"both"}`, 400, []string{`"field":"basis"`}},
		{"negative price", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":-1}}`, 400, []string{`"field":"plan.price"`}},
		{"no price", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{}}`, 400, []string{`"field":"plan.price"`}},
		{"negative quota", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":1,"included_quantity":-5}}`, 400, []string{`"field":"plan.included_quantity"`}},
		// Hostile exponents are refused from their text, by field, before
		// any arithmetic (they used to take seconds to minutes of CPU each).
		{"huge price exponent", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":9e99999999}}`, 400,
			[]string{`"field":"plan.price"`, "has an exponent beyond what the field holds"}},
		{"tiny quota exponent", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":1,"included_quantity":"1e-30000000"}}`, 400,
			[]string{`"field":"plan.included_quantity"`, "has an exponent beyond"}},
		{"huge overage exponent", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":1,"overage_price":{"api.calls":"1e999999999999"}}}`, 400,
			[]string{`"field":"plan.overage_price.api.calls"`, "has an exponent beyond"}},
		{"price too precise", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":"0.0000000001"}}`, 400,
			[]string{`"field":"plan.price"`, "more than 9 decimal places"}},
		{"price not a number", `{"start_date":"2026-03-01","end_date":"2026-03-31","plan":{"price":true}}`, 400, []string{"want a decimal number"}},
		{"unknown field", `{"start_date":"2026-03-01","end_date":"2026-03-31","coupon":"x"}`, 400, []string{`"field":"coupon"`}},
		{"invalid card", `{"start_date":"2026-03-01","end_date":"2026-03-31","rate_card":{"cards":[{"provider":"internal","version":"1","source":"s","as_of":"2026-01-01","per":1,"models":[{"model":"api","prices":{"calls":"x"}}]}]}}`,
			400, []string{`"field":"rate_card.cards[0] (internal 1).effective_from"`, `"field":"rate_card.cards[0] (internal 1).models[0] (api).prices.calls"`}},
		{"unknown customer", `{"customer_id":"nobody","start_date":"2026-03-01","end_date":"2026-03-31"}`, 404, nil},
		{"not json", `{"start_date":`, 400, []string{"JSON object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/api/simulate", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			for _, s := range tc.contains {
				assert.Contains(t, rec.Body.String(), s)
			}
			item := doc.Paths.Value("/api/simulate")
			require.NotNil(t, item)
			err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: req,
					Route:   &routers.Route{Spec: doc, Path: "/api/simulate", PathItem: item, Method: http.MethodPost, Operation: item.Post},
				},
				Status: rec.Code, Header: rec.Header(),
				Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			})
			assert.NoError(t, err, "response %d %s", rec.Code, rec.Body.String())
		})
	}

	rec := httptest.NewRecorder()
	simulateServer(t, false).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/simulate", strings.NewReader(`{}`)))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
