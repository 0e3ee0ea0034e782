package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/pricing"
)

// rateCardsServer is an api.Server whose rate cards live on topic of the
// real Kafka, re-costing on the real ClickHouse database of conn.
func rateCardsServer(t *testing.T, topic string, recoster pricing.Recoster) http.Handler {
	t.Helper()
	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: topic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	store, err := pricing.NewStore(pricing.StoreConfig{Table: table, Recoster: recoster})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = store.Start(ctx)
	require.NoError(t, err)
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub, // not called by these routes
		Logger:    slog.New(slog.DiscardHandler),
		RateCards: store,
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	return wrap(server.Handler())
}

// sendDoc sends a request, checks the response against the OpenAPI
// document (closed schemas) and decodes it.
func sendDoc(t *testing.T, doc *openapi3.T, h http.Handler, method, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	item := doc.Paths.Value(path)
	require.NotNil(t, item, "%s is documented", path)
	op := item.GetOperation(method)
	require.NotNil(t, op)
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req,
			Route:   &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
		},
		Status: rec.Code, Header: rec.Header(),
		Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	assert.NoError(t, err, "response %d %s", rec.Code, rec.Body.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	return rec.Code, out
}

// GET lists the layers' cards; PUT validates (400 naming the entry and
// field), stores the override on Kafka, returns the ranges it re-costs and
// marks the days holding priced usage in them; a second instance sees it.
func TestRateCardRoutes(t *testing.T) {
	t.Parallel()
	doc := strictDoc(t)
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	// Priced usage on four days, one usage with a cost (not priced) after.
	require.NoError(t, conn.Exec(ctx, `INSERT INTO usage_by_day (day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost, price)
SELECT toDate(r.1), 'test', r.1, toUInt64(2), toUInt8(0), 'test', 'cus_1', 'gpt-4o.input_tokens', '', toDecimal128(1000, 9), toDecimal64(0, 9), toUInt8(r.2)
FROM (SELECT arrayJoin([('2026-03-01', 1), ('2026-03-02', 1), ('2026-03-03', 1), ('2026-03-04', 1), ('2026-03-05', 0)]) AS r)`))
	recoster, err := aggregates.NewRecoster(conn, nil)
	require.NoError(t, err)
	topic := servicetest.Topic("test.api.ratecards")
	a := rateCardsServer(t, topic, recoster)

	code, body := sendDoc(t, doc, a, http.MethodGet, "/api/rate-cards", "", "")
	require.Equal(t, http.StatusOK, code, body)
	first := body["cards"].([]any)[0].(map[string]any)
	assert.Equal(t, "default", first["layer"])
	assert.Equal(t, pricing.DefaultCardName, first["file"])

	code, body = sendDoc(t, doc, a, http.MethodPut, "/api/rate-cards", "application/yaml", `cards:
  - provider: openai
    version: bad
    effective_from: 2026-13-01
    source: test
    as_of: 2026-03-01
    per: 1000000
    models: [{model: gpt-4o, prices: {input_tokens: "1.75"}}]
`)
	require.Equal(t, http.StatusBadRequest, code, body)
	problem := body["errors"].([]any)[0].(map[string]any)
	assert.Equal(t, "cards[0] (openai bad): effective_from", problem["field"])
	assert.NotEmpty(t, problem["reason"])

	code, body = sendDoc(t, doc, a, http.MethodPut, "/api/rate-cards", "text/html", `<p>`)
	require.Equal(t, http.StatusUnsupportedMediaType, code, body)

	cut := `{"cards":[{"provider":"openai","version":"cut","effective_from":"2026-03-03","source":"test","as_of":"2026-03-01","per":1000000,
	  "models":[{"model":"gpt-4o","prices":{"input_tokens":"1.75"}}]}]}`
	code, body = sendDoc(t, doc, a, http.MethodPut, "/api/rate-cards", "application/json", cut)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, []any{map[string]any{"provider": "openai", "model": "gpt-4o", "unit": "input_tokens", "from": "2026-03-03", "to": nil}}, body["recost"])
	assert.Equal(t, float64(2), body["days_marked"], "2026-03-03 and 2026-03-04 hold priced usage")
	var pending []string
	require.NoError(t, chstore.QueryRows(ctx, conn, "SELECT toString(day) FROM dirty_days FINAL WHERE done = 0 AND kind = 'usage' ORDER BY day", nil,
		func(scan func(...any) error) error {
			var d string
			if err := scan(&d); err != nil {
				return err
			}
			pending = append(pending, d)
			return nil
		}))
	assert.Equal(t, []string{"2026-03-03", "2026-03-04"}, pending)

	// A second instance, with its own table on the topic, lists the override.
	b := rateCardsServer(t, topic, recoster)
	code, body = sendDoc(t, doc, b, http.MethodGet, "/api/rate-cards", "", "")
	require.Equal(t, http.StatusOK, code, body)
	cards := body["cards"].([]any)
	last := cards[len(cards)-1].(map[string]any)
	assert.Equal(t, "override", last["layer"])
	assert.Equal(t, "cut", last["version"])
	assert.Nil(t, last["effective_to"])
	model := last["models"].([]any)[0].(map[string]any)
	assert.Equal(t, map[string]any{"input_tokens": 0.00000175}, model["prices"])
}
