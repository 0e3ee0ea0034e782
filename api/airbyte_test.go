package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

const airbyteToken = "airbyte-token-PLANTED-71c2"

// airbyteFixture is one of the Airbyte public API examples the airbyte
// package keeps (testdata/platform, cited in its README).
func airbyteFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "connectors", "airbyte", "testdata", "platform", name))
	require.NoError(t, err)
	return b
}

// airbyteAPI speaks Airbyte's public API with its documented examples; it
// stands in for Airbyte Cloud, an external service.
func airbyteAPI(t *testing.T) *httptest.Server {
	conn := map[string]any{}
	require.NoError(t, json.Unmarshal(airbyteFixture(t, "connection_get_response.json"), &conn))
	conn["connectionId"], conn["status"] = "conn-1", "active"
	page, err := json.Marshal(map[string]any{"data": []any{conn}})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+airbyteToken {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"invalid token ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}`))
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/connections":
			_, _ = w.Write(page)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/jobs":
			_, _ = w.Write(airbyteFixture(t, "job_create_response.json"))
		case r.Method == http.MethodGet && r.URL.Path == "/v1/jobs" && r.URL.Query().Get("connectionId") == "conn-1":
			_, _ = w.Write(airbyteFixture(t, "jobs_list_response.json"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func airbyteServer(t *testing.T, token string) string {
	t.Helper()
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: servicetest.KafkaBrokers(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub, // not called by these routes
		Logger: slog.New(slog.DiscardHandler),
	}
	if token != "" {
		platform, err := airbyte.NewPlatform(airbyte.PlatformConfig{URL: airbyteAPI(t).URL + "/v1", Token: token, Retries: -1})
		require.NoError(t, err)
		cfg.Airbyte = platform
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(wrap(server.Handler()))
	t.Cleanup(ts.Close)
	return ts.URL
}

func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAirbyteRoutes(t *testing.T) {
	base := airbyteServer(t, airbyteToken)

	status, body := call(t, http.MethodGet, base+"/api/airbyte/connections")
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"success":true,"connections":[{"id":"conn-1","name":"Postgres To Snowflake","status":"active",
		"source_id":"9924bcd0-99be-453d-ba47-c2c9766f7da5","destination_id":"744cc0ed-7f05-4949-9e60-2a814f90c035"}]}`, body)

	status, body = call(t, http.MethodPost, base+"/api/airbyte/sync/conn-1")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"success":true`)
	assert.Contains(t, body, `"job_id":1234`)

	status, body = call(t, http.MethodGet, base+"/api/airbyte/status/conn-1")
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"success":true,"status":{"status":"active","last_sync":null,"sync_status":"running","records_synced":0}}`, body)

	status, body = call(t, http.MethodGet, base+"/api/airbyte/status/conn-unknown")
	assert.Equal(t, http.StatusNotFound, status, body)
	assert.Contains(t, body, `"success":false`)
}

func TestAirbyteRoutesRejectedToken(t *testing.T) {
	status, body := call(t, http.MethodGet, airbyteServer(t, "wrong-token-PLANTED-99")+"/api/airbyte/connections")
	assert.Equal(t, http.StatusBadGateway, status, body)
	assert.Contains(t, body, "rejected the credentials")
	assert.NotContains(t, body, "wrong-token-PLANTED-99", "the token never comes back")
}

func TestAirbyteRoutesNotConfigured(t *testing.T) {
	status, body := call(t, http.MethodGet, airbyteServer(t, "")+"/api/airbyte/connections")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "UVR_AIRBYTE_URL")
}
