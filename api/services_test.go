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
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/credentials/credentialstest"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/services/servicestest"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// plantedSecret must never come back in any response body or log line.
const (
	plantedSecret = "sk_live_PLANTED_api_5e1c9b7d"
	goodKey       = "sk_live_GOOD_api_a4f2"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type servicesAPI struct {
	url    string
	logs   *syncBuffer
	bodies *syncBuffer // every response body, searched for secrets at the end
}

// newServicesAPI runs the API with the real registry: a compacted-topic table on the real
// Kafka, credentials in the real Vault, and a catalog whose stripe connector calls vendor.
func newServicesAPI(t *testing.T, withRegistry bool) *servicesAPI {
	t.Helper()
	a := &servicesAPI{logs: &syncBuffer{}, bodies: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub,
		Logger: logger,
	}
	if withRegistry {
		table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.services")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = table.Close() })
		store, _ := credentialstest.Vault(t, logger)
		srv := servicestest.Vendor(t, goodKey)
		cat, err := catalog.Default(map[string]catalog.Factory{"stripe": servicestest.Factory("stripe", srv.URL)})
		require.NoError(t, err)
		reg, err := services.New(services.Config{Table: table, Credentials: store, Catalog: cat, Logger: logger})
		require.NoError(t, err)
		cfg.Services = reg
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(wrap(server.Handler()))
	t.Cleanup(ts.Close)
	a.url = ts.URL
	t.Cleanup(func() {
		assert.NotContains(t, a.bodies.String(), plantedSecret, "a credential came back in a response")
		assert.NotContains(t, a.bodies.String(), goodKey, "a credential came back in a response")
		assert.NotContains(t, a.logs.String(), plantedSecret, "a credential reached the logs")
		assert.NotContains(t, a.logs.String(), goodKey, "a credential reached the logs")
	})
	return a
}

// do sends a request and returns the status and the decoded JSON body.
func (a *servicesAPI) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_, _ = a.bodies.Write(append(raw, '\n'))
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	return resp.StatusCode, out
}

func TestServicesAPICreateListDelete(t *testing.T) {
	a := newServicesAPI(t, true)

	status, body := a.do(t, http.MethodGet, "/api/services", "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"services": []any{}}, body)
	status, body = a.do(t, http.MethodGet, "/api/health", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, false, body["stripe_configured"], body)
	assert.Equal(t, false, body["openai_configured"], body)

	status, body = a.do(t, http.MethodPost, "/api/services",
		`{"service_type":"stripe","service_name":"Main account","credentials":{"api_key":"`+plantedSecret+`"}}`)
	require.Equal(t, http.StatusCreated, status, body)
	assert.Equal(t, true, body["success"])
	assert.Contains(t, body["message"], "created")
	id, _ := body["service_id"].(string)
	require.NotEmpty(t, id)
	assert.NotContains(t, body, "airbyte_connection_id", "omitted when there is none")

	status, body = a.do(t, http.MethodGet, "/api/services", "")
	require.Equal(t, http.StatusOK, status)
	list := body["services"].([]any)
	require.Len(t, list, 1)
	svc := list[0].(map[string]any)
	assert.Equal(t, id, svc["id"])
	assert.Equal(t, "stripe", svc["service_type"])
	assert.Equal(t, "revenue", svc["service_category"])
	assert.Equal(t, "Main account", svc["service_name"])
	assert.Equal(t, "active", svc["status"])
	for _, k := range []string{"airbyte_source_id", "airbyte_connection_id", "last_sync"} {
		v, present := svc[k]
		assert.True(t, present, "%s is always in the body", k)
		assert.Nil(t, v, k)
	}
	assert.NotContains(t, svc, "credentials")
	status, body = a.do(t, http.MethodGet, "/api/health", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, true, body["stripe_configured"], "a stripe service is configured: %v", body)
	assert.Equal(t, false, body["openai_configured"], body)

	// Same type and name again: 409.
	status, body = a.do(t, http.MethodPost, "/api/services",
		`{"service_type":"stripe","service_name":"main account","credentials":{"api_key":"`+plantedSecret+`"}}`)
	assert.Equal(t, http.StatusConflict, status)
	assert.Contains(t, body["detail"], "already exists")

	status, body = a.do(t, http.MethodDelete, "/api/services/"+id, "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, map[string]any{"success": true, "message": "service " + id + " deleted"}, body)

	status, body = a.do(t, http.MethodDelete, "/api/services/"+id, "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "service "+id+" not found", body["detail"])

	status, body = a.do(t, http.MethodGet, "/api/services", "")
	require.Equal(t, http.StatusOK, status)
	assert.Empty(t, body["services"])
}

func TestServicesAPICreateRejects(t *testing.T) {
	a := newServicesAPI(t, true)
	tests := []struct {
		name   string
		body   string
		status int
		detail string
	}{
		{"missing fields", `{"service_type":"braintree","credentials":{"merchant_id":"m","public_key":"` + plantedSecret + `"}}`,
			400, "missing credential fields: private_key"},
		{"unknown type", `{"service_type":"mailchimp","credentials":{"api_key":"` + plantedSecret + `"}}`,
			400, `unknown service type "mailchimp"`},
		{"category contradicts", `{"service_type":"stripe","service_category":"usage","credentials":{"api_key":"` + plantedSecret + `"}}`,
			400, "stripe is a revenue service"},
		{"no credentials", `{"service_type":"stripe"}`, 400, "missing credential fields: api_key"},
		{"credential not a string", `{"service_type":"stripe","credentials":{"api_key":{"v":"` + plantedSecret + `"}}}`,
			400, "credentials.api_key must be a string"},
		{"not JSON", `{"service_type":"stripe","credentials":{"api_key":"` + plantedSecret + `"`, 400, "not a valid JSON object"},
		{"wrong type of field", `{"service_type":7}`, 400, "service_type must be a JSON string"},
		{"empty body", ``, 400, "request body is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := a.do(t, http.MethodPost, "/api/services", tt.body)
			assert.Equal(t, tt.status, status)
			assert.Contains(t, body["detail"], tt.detail)
		})
	}
	// A number is accepted as a credential value (and validated like a string).
	status, body := a.do(t, http.MethodPost, "/api/services", `{"service_type":"paddle","credentials":{"api_key":"`+plantedSecret+`","vendor_id":12345}}`)
	assert.Equal(t, http.StatusCreated, status, body)
	status, body = a.do(t, http.MethodGet, "/api/services", "")
	require.Equal(t, http.StatusOK, status)
	assert.Len(t, body["services"], 1, "only the valid request was stored")
}

func TestServicesAPITestService(t *testing.T) {
	a := newServicesAPI(t, true)

	status, body := a.do(t, http.MethodPost, "/api/test-service", `{"service_type":"stripe","credentials":{"api_key":"`+goodKey+`"}}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, true, body["success"], body)

	// The service refuses: 422 (clients judge by the status), success false,
	// its own message without the key, in message and detail.
	status, body = a.do(t, http.MethodPost, "/api/test-service", `{"service_type":"stripe","credentials":{"api_key":"`+plantedSecret+`"}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, body)
	assert.Equal(t, false, body["success"])
	assert.Contains(t, body["message"], "Invalid API Key provided")
	assert.Contains(t, body["message"], "[redacted]")
	assert.Equal(t, body["message"], body["detail"])

	// Cannot be tested at all: 400.
	status, body = a.do(t, http.MethodPost, "/api/test-service", `{"service_type":"stripe","credentials":{}}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body["detail"], "api_key")
	status, body = a.do(t, http.MethodPost, "/api/test-service", `{"service_type":`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body["detail"], "JSON")
	status, body = a.do(t, http.MethodPost, "/api/test-service", `{"service_type":"openai","credentials":{"api_key":"`+plantedSecret+`"}}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body["detail"], "no connector")

	// Testing stores nothing.
	status, body = a.do(t, http.MethodGet, "/api/services", "")
	require.Equal(t, http.StatusOK, status)
	assert.Empty(t, body["services"])
}

// POST /api/settings answers as the original product's deprecated route
// did, and keeps nothing of what it was sent.
func TestSettingsDeprecated(t *testing.T) {
	a := newServicesAPI(t, false)
	status, body := a.do(t, http.MethodPost, "/api/settings", `{"openai":{"api_key":"`+plantedSecret+`","org_id":"org-1"},"stripe":{"api_key":"`+goodKey+`"}}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, true, body["success"])
	assert.Equal(t, true, body["deprecated"])
	assert.Contains(t, body["message"], "/api/services")
	status, body = a.do(t, http.MethodPost, "/api/settings", `[1]`)
	assert.Equal(t, http.StatusBadRequest, status, body)
	assert.Contains(t, body["detail"], "JSON object")
}

func TestServicesAPIWithoutRegistry(t *testing.T) {
	a := newServicesAPI(t, false)
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/api/services"}, {http.MethodPost, "/api/services"},
		{http.MethodDelete, "/api/services/x"}, {http.MethodPost, "/api/test-service"},
	} {
		status, body := a.do(t, r.method, r.path, `{}`)
		assert.Equal(t, http.StatusServiceUnavailable, status, r.path)
		assert.Contains(t, body["detail"], "not enabled", r.path)
	}
}
