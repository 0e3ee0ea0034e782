package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/chinsights"
)

type noCustomers struct{}

func (noCustomers) Snapshot() map[customers.Ref]string { return nil }
func (noCustomers) List(context.Context, string, int, int) ([]customers.Customer, int, error) {
	return nil, 0, nil
}

// The insight routes on the real ClickHouse store: every response matches
// its documented schema (closed), with the statuses of bad filters, unknown
// and resolved flags.
func TestInsightRoutes(t *testing.T) {
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	store, err := chinsights.NewStore(conn)
	require.NoError(t, err)
	source, err := chinsights.NewSource(chinsights.SourceConfig{Conn: conn, Customers: noCustomers{}, ReportingCurrency: "USD"})
	require.NoError(t, err)
	eval, err := insights.NewEvaluator(insights.EvaluatorConfig{Rules: insights.DefaultConfig(), Source: source, Store: store})
	require.NoError(t, err)
	svc, err := chinsights.NewService(eval, store, nil)
	require.NoError(t, err)

	now := time.Now().UTC().Truncate(time.Second)
	open := insights.Flag{
		ID: insights.FlagID("a"), Key: "a", Kind: insights.KindUnprofitableCustomer, Severity: insights.SeverityCritical,
		CustomerID: "cust_1", CustomerName: "Acme", Window: insights.LastDays(now, 30),
		Evidence: map[string]string{"cost": "120", "revenue": "49", "loss": "71"}, Title: "Acme loses money",
		Description: "d", Status: insights.StatusOpen, FirstSeen: now, LastSeen: now, Version: 1,
	}
	resolved := open
	resolved.ID, resolved.Key, resolved.Kind, resolved.Severity = insights.FlagID("b"), "b", insights.KindUnprofitableFeature, insights.SeverityWarning
	resolved.CustomerID, resolved.CustomerName, resolved.Feature = "", "", "gpt-4o.output_tokens"
	resolved.Status, resolved.ResolvedAt = insights.StatusResolved, now
	require.NoError(t, store.Save(ctx, []insights.Flag{open, resolved}))

	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.insights"), Publisher: pub,
		Insights: svc, InsightRunner: svc, Logger: slog.New(slog.DiscardHandler),
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	h := wrap(server.Handler())
	doc := strictDoc(t)

	tests := []struct {
		name, method, route, target string
		status                      int
		check                       func(t *testing.T, body []byte)
	}{
		{"list", http.MethodGet, "/api/insights", "/api/insights", http.StatusOK, func(t *testing.T, body []byte) {
			var out struct{ Insights []map[string]any }
			require.NoError(t, json.Unmarshal(body, &out))
			require.Len(t, out.Insights, 2)
			assert.Equal(t, "critical", out.Insights[0]["type"]) // most severe first
			assert.Equal(t, map[string]any{"name": "loss", "value": "71"}, out.Insights[0]["metric"])
			assert.Equal(t, map[string]any{"id": "cust_1", "name": "Acme"}, out.Insights[0]["customer"])
		}},
		{"filtered", http.MethodGet, "/api/insights", "/api/insights?status=resolved&kind=unprofitable_feature&severity=warning", http.StatusOK, func(t *testing.T, body []byte) {
			assert.Contains(t, string(body), resolved.ID)
			assert.NotContains(t, string(body), open.ID)
		}},
		{"bad status", http.MethodGet, "/api/insights", "/api/insights?status=closed", http.StatusBadRequest, func(t *testing.T, body []byte) {
			assert.Contains(t, string(body), `unknown status \"closed\"`)
		}},
		{"bad kind", http.MethodGet, "/api/insights", "/api/insights?kind=loss", http.StatusBadRequest, func(t *testing.T, body []byte) {
			assert.Contains(t, string(body), `unknown kind \"loss\"`)
		}},
		{"acknowledge", http.MethodPost, "/api/insights/{id}/acknowledge", "/api/insights/" + open.ID + "/acknowledge", http.StatusOK, func(t *testing.T, body []byte) {
			assert.Contains(t, string(body), `"status":"acknowledged"`)
		}},
		{"acknowledge resolved", http.MethodPost, "/api/insights/{id}/acknowledge", "/api/insights/" + resolved.ID + "/acknowledge", http.StatusConflict, nil},
		{"acknowledge unknown", http.MethodPost, "/api/insights/{id}/acknowledge", "/api/insights/flg_x/acknowledge", http.StatusNotFound, nil},
		{"resolve unknown", http.MethodPost, "/api/insights/{id}/resolve", "/api/insights/flg_x/resolve", http.StatusNotFound, nil},
		// No data: the run resolves the flag whose condition no longer holds.
		{"run", http.MethodPost, "/api/insights/run", "/api/insights/run", http.StatusOK, func(t *testing.T, body []byte) {
			var r insights.RunResult
			require.NoError(t, json.Unmarshal(body, &r))
			assert.Equal(t, 1, r.Resolved)
			assert.Zero(t, r.InsightsGenerated)
		}},
		{"resolve", http.MethodPost, "/api/insights/{id}/resolve", "/api/insights/" + open.ID + "/resolve", http.StatusOK, func(t *testing.T, body []byte) {
			assert.Contains(t, string(body), `"status":"resolved"`)
		}},
	}
	for _, tc := range tests { // in order: each step sees the one before
		req := httptest.NewRequest(tc.method, tc.target, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, "%s: %s", tc.name, rec.Body.String())
		if tc.check != nil {
			tc.check(t, rec.Body.Bytes())
		}
		item := doc.Paths.Value(tc.route)
		require.NotNil(t, item, tc.route)
		op := item.GetOperation(tc.method)
		require.NotNil(t, op, tc.route)
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
		assert.NoError(t, err, "%s: response %d %s", tc.name, rec.Code, rec.Body.String())
	}
}
