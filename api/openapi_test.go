package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// openapiDoc loads and validates the embedded document with kin-openapi.
func openapiDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIYAML())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	return doc
}

// openapiServer is an api.Server with every optional route registered
// (/metrics included) and one healthy dependency, on a real Kafka publisher.
func openapiServer(t *testing.T) *api.Server {
	t.Helper()
	server, _ := openapiServerAuth(t)
	return server
}

// openapiHandler is openapiServer's handler sending an admin's token.
func openapiHandler(t *testing.T) http.Handler {
	t.Helper()
	server, wrap := openapiServerAuth(t)
	return wrap(server.Handler())
}

func openapiServerAuth(t *testing.T) (*api.Server, func(http.Handler) http.Handler) {
	t.Helper()
	brokers := servicetest.KafkaBrokers(t)
	topic := servicetest.Topic("test.api.openapi")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	reg := prometheus.NewRegistry()
	store, analytics := dashboardStore(t)
	cfg := api.Config{
		Addr: "127.0.0.1:0", Version: "test", EventsTopic: topic, Publisher: pub,
		Analytics:  api.Analytics{Reader: analytics},
		Health:     []api.HealthCheck{{Name: "clickhouse", Check: store.Ping}},
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: reg, Gatherer: reg,
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	return server, wrap
}

// dashboardStore is the real ClickHouse store on a database of this test,
// holding one usage and one revenue event of today projected the way the
// projector does (by-day rows, raw rows, then the day's aggregates), and the
// analytics that read them, so that the dashboard answer has every nested
// object (a feature, the unattributed row, margins).
func dashboardStore(t *testing.T) (*rawevents.ClickHouseStore, *aggregates.Analytics) {
	t.Helper()
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	store := rawevents.NewClickHouseStore(conn)
	now := time.Now().UTC()
	qty, cost, amount := decimal.RequireFromString("125000"), decimal.RequireFromString("0.3125"), decimal.RequireFromString("49")
	cust := event.Customer{Source: "test", ExternalID: "cus_1"}
	var rows []rawevents.Row
	for _, ev := range []event.Event{
		{SpecVersion: "1.0", ID: "u1", Source: "test", Type: event.TypeUsage, Time: now,
			Data: event.Data{Customer: cust, Version: 1, Feature: "gpt-4o.input_tokens", Quantity: &qty, Cost: &cost, Currency: "USD"}},
		{SpecVersion: "1.0", ID: "r1", Source: "test", Type: event.TypeRevenue, Time: now,
			Data: event.Data{Customer: cust, Version: 1, Kind: event.KindInvoicePaid, Amount: &amount, Currency: "USD"}},
	} {
		row, err := rawevents.NewRow(ev, now, -1, -1)
		require.NoError(t, err)
		rows = append(rows, row)
	}
	writer, err := aggregates.NewWriter(aggregates.WriterConfig{Conn: conn})
	require.NoError(t, err)
	require.NoError(t, writer.WriteBefore(ctx, rows))
	require.NoError(t, store.InsertBatch(ctx, rows))
	agg, err := aggregates.New(aggregates.Config{Conn: conn})
	require.NoError(t, err)
	_, err = agg.RecomputePending(ctx)
	require.NoError(t, err)
	analytics, err := aggregates.NewAnalytics(conn, nil)
	require.NoError(t, err)
	return store, analytics
}

// strictDoc is the document with every object schema that lists its
// properties closed (additionalProperties: false), so that validating a
// response also catches a field the handler sends but the document omits.
func strictDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc := openapiDoc(t)
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			closed := false
			s.AdditionalProperties.Has = &closed
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, refs := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, r := range refs {
				walk(r)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := openapiDoc(t)
	assert.Equal(t, "3.0.3", doc.OpenAPI)
	// Every operation has a tag (the docs page groups by tag) and an id.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			assert.NotEmpty(t, op.Tags, "%s %s has no tag", method, path)
			assert.NotEmpty(t, op.OperationID, "%s %s has no operationId", method, path)
		}
	}
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIDocumentsEveryRoute: the routes Gin serves and the operations of
// the document are the same set, with the same method and path template.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := openapiDoc(t)
	engine, ok := openapiServer(t).Handler().(*gin.Engine)
	require.True(t, ok, "Handler is the Gin engine")

	var served []string
	for _, r := range engine.Routes() {
		served = append(served, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	require.NotEmpty(t, served)
	assert.Contains(t, served, "GET /metrics", "the server under test registers every optional route")
	assert.Contains(t, served, "DELETE /api/services/{id}")
	assert.Equal(t, served, documented, "routes of api.New vs paths of api/openapi.yaml")
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestOpenAPIJSONServed(t *testing.T) {
	h := openapiServer(t).Handler()
	rec := get(t, h, "/api/openapi.json")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")

	// Equal to the embedded YAML, converted independently.
	var fromYAML any
	require.NoError(t, yaml.Unmarshal(api.OpenAPIYAML(), &fromYAML))
	want, err := json.Marshal(fromYAML)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), rec.Body.String())

	fn, err := api.OpenAPIJSON()
	require.NoError(t, err)
	assert.Equal(t, fn, rec.Body.Bytes())

	// And a valid OpenAPI document as JSON too.
	served, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	require.NoError(t, err)
	require.NoError(t, served.Validate(context.Background()))
}

func TestDocsPage(t *testing.T) {
	doc := openapiDoc(t)
	rec := get(t, openapiServer(t).Handler(), "/api/docs")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Header().Get("Content-Type"), "text/html")
	page := rec.Body.String()
	assert.True(t, strings.HasPrefix(page, "<!DOCTYPE html>"))
	for _, path := range doc.Paths.Keys() {
		assert.Contains(t, page, ">"+path+"<", "the page names %s", path)
	}
	for name := range doc.Components.Schemas {
		assert.Contains(t, page, `id="schema-`+name+`"`)
	}
	for _, want := range []string{`<span class="m m-delete">DELETE</span>`, "start_date", "Parameters", "Request body",
		"Responses", `<a class="ref" href="#schema-Error">Error</a>`, "application/cloudevents-batch+json", "<style>"} {
		assert.Contains(t, page, want)
	}
	// Self-contained: nothing fetched from elsewhere.
	for _, banned := range []string{"<script", "<link", "src=", "@import"} {
		assert.NotContains(t, page, banned)
	}
}

// TestOpenAPIResponsesMatchSchemas sends real requests and validates each
// answer against the document's schema for its route and status (an
// undocumented status fails too).
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	doc := strictDoc(t)
	h := openapiHandler(t)
	tests := []struct {
		name, method, route, target, contentType, body string
		status                                         int
	}{
		{"health", http.MethodGet, "/api/health", "/api/health", "", "", http.StatusOK},
		{"root health", http.MethodGet, "/health", "/health", "", "", http.StatusOK},
		{"invalid event", http.MethodPost, "/api/events", "/api/events", "application/cloudevents+json",
			`{"specversion":"1.0","id":"e1","source":"s","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z","data":{"customer":{"external_id":"c"}}}`,
			http.StatusBadRequest},
		{"invalid batch", http.MethodPost, "/api/events", "/api/events", "application/cloudevents-batch+json",
			`[{"specversion":"1.0","id":"e1","source":"s","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z",
			   "data":{"customer":{"external_id":"c"},"feature":"f","quantity":"1"}},{"id":""}]`,
			http.StatusBadRequest},
		{"accepted event", http.MethodPost, "/api/events", "/api/events", "application/cloudevents+json",
			`{"specversion":"1.0","id":"openapi-e1","source":"openapi-test","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z",
			  "data":{"customer":{"external_id":"c"},"feature":"f","quantity":"1"}}`,
			http.StatusAccepted},
		{"not json", http.MethodPost, "/api/events", "/api/events", "application/json", `{`, http.StatusBadRequest},
		{"wrong content type", http.MethodPost, "/api/events", "/api/events", "text/plain", `x`, http.StatusUnsupportedMediaType},
		{"dashboard", http.MethodGet, "/api/dashboard", "/api/dashboard?start_date=2026-11-01&end_date=2026-11-30", "", "", http.StatusOK},
		{"bad date", http.MethodGet, "/api/dashboard", "/api/dashboard?start_date=yesterday", "", "", http.StatusBadRequest},
		{"services disabled", http.MethodGet, "/api/services", "/api/services", "", "", http.StatusServiceUnavailable},
		{"sync disabled", http.MethodPost, "/api/services/{id}/sync", "/api/services/svc-1/sync", "", "", http.StatusServiceUnavailable},
		{"airbyte disabled", http.MethodGet, "/api/airbyte/status/{id}", "/api/airbyte/status/conn-1", "", "", http.StatusServiceUnavailable},
		{"document", http.MethodGet, "/api/openapi.json", "/api/openapi.json", "", "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())

			item := doc.Paths.Value(tc.route)
			require.NotNil(t, item, "%s is documented", tc.route)
			op := item.GetOperation(tc.method)
			require.NotNil(t, op, "%s %s is documented", tc.method, tc.route)
			err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: req,
					Route:   &routers.Route{Spec: doc, Path: tc.route, PathItem: item, Method: tc.method, Operation: op},
				},
				Status:  rec.Code,
				Header:  rec.Header(),
				Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			})
			assert.NoError(t, err, "response %d %s", rec.Code, rec.Body.String())
		})
	}

	// The schemas are strict enough to catch a wrong shape.
	item := doc.Paths.Value("/api/events")
	req := httptest.NewRequest(http.MethodPost, "/api/events", nil)
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req,
			Route:   &routers.Route{Spec: doc, Path: "/api/events", PathItem: item, Method: http.MethodPost, Operation: item.Post},
		},
		Status:  http.StatusBadRequest,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(`{"detail":"x","errors":[{"index":0,"field":"id"}]}`)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
	var resErr *openapi3filter.ResponseError
	require.True(t, errors.As(err, &resErr), "a problem without its reason is rejected: %v", err)
}

// The document's lists are the server's: every service type of the catalog
// and no other, and time zones that all load (the server accepts exactly
// the document's TimeZone enum, a name outside it is a 400).
func TestOpenAPIEnumsAreTheServers(t *testing.T) {
	t.Parallel()
	doc := openapiDoc(t)
	var types []string
	for _, typ := range catalog.Builtin() {
		types = append(types, typ.Name)
	}
	sort.Strings(types)
	assert.Equal(t, types, enumOf(t, doc, "ServiceTypeName"), "components.schemas.ServiceTypeName.enum")

	zones := enumOf(t, doc, "TimeZone")
	require.Greater(t, len(zones), 400)
	for _, z := range zones {
		_, err := time.LoadLocation(z)
		assert.NoError(t, err, "TimeZone %s", z)
	}
	h := openapiHandler(t)
	for _, tc := range []struct {
		tz   string
		want int
	}{{"Europe/Paris", http.StatusOK}, {"America/Argentina/Buenos_Aires", http.StatusOK}, {"UTC", http.StatusOK},
		{"Local", http.StatusBadRequest}, {"Mars/Olympus", http.StatusBadRequest}, {"europe/paris", http.StatusBadRequest}} {
		rec := get(t, h, "/api/dashboard?tz="+tc.tz)
		assert.Equal(t, tc.want, rec.Code, "tz=%s: %s", tc.tz, rec.Body.String())
	}
}

func enumOf(t *testing.T, doc *openapi3.T, schema string) []string {
	t.Helper()
	ref, ok := doc.Components.Schemas[schema]
	require.True(t, ok, "components.schemas.%s", schema)
	var out []string
	for _, v := range ref.Value.Enum {
		s, ok := v.(string)
		require.True(t, ok, "%s: %v", schema, v)
		out = append(out, s)
	}
	return out
}

// Every route that reads a body documents the 413 of a body over its limit
// (readBody), and every route behind authentication its 401.
func TestOpenAPIDocumentsTheLimits(t *testing.T) {
	t.Parallel()
	doc := openapiDoc(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil {
				assert.NotNil(t, op.Responses.Value("413"), "%s %s reads a body: document its 413", method, path)
			}
			if op.Security == nil || len(*op.Security) > 0 {
				assert.NotNil(t, op.Responses.Value("401"), "%s %s needs credentials: document its 401", method, path)
			}
		}
	}
}
