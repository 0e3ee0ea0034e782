package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
)

// An ingest API key sends events and does nothing else: on the real router
// with every optional route, each other /api route answers 403 naming why,
// before reading anything; public routes stay public.
func TestIngestKeyOnlySendsEvents(t *testing.T) {
	server, wrap := openapiServerAuth(t)
	h := wrap(server.Handler()) // the admin's token where a request has none
	do := func(method, target, contentType, body, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := do(http.MethodPost, "/api/auth/api-keys", "application/json", `{"name":"billing sdk","role":"ingest"}`, "")
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var created struct{ Key, Role string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
	assert.Equal(t, "ingest", created.Role)
	rec = do(http.MethodPost, "/api/auth/api-keys", "application/json", `{"name":"x","role":"owner"}`, "")
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), "admin, analyst, viewer or ingest")
	rec = do(http.MethodPost, "/api/auth/register", "application/json", `{"email":"i@example.com","password":"long enough","role":"ingest"}`, "")
	assert.Equal(t, http.StatusBadRequest, rec.Code, "ingest is for keys, not users: %s", rec.Body.String())

	// What it may do: send events (one and a batch), and the public routes.
	rec = do(http.MethodPost, "/api/events", "application/cloudevents+json",
		`{"specversion":"1.0","id":"ingest-key-1","source":"sdk","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z","data":{"customer":{"external_id":"c"},"feature":"f","quantity":"1"}}`, created.Key)
	assert.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	rec = do(http.MethodPost, "/api/events", "application/cloudevents-batch+json",
		`[{"specversion":"1.0","id":"ingest-key-2","source":"sdk","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z","data":{"customer":{"external_id":"c"},"feature":"f","quantity":"2"}}]`, created.Key)
	assert.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	for _, public := range []string{"/api/health", "/health", "/api/openapi.json"} {
		rec = do(http.MethodGet, public, "", "", created.Key)
		assert.Equal(t, http.StatusOK, rec.Code, public)
	}

	// Everything else: 403 with the reason.
	engine, ok := server.Handler().(*gin.Engine)
	require.True(t, ok)
	checked := 0
	for _, r := range engine.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") || api.PublicRoute(r.Path) || (r.Method == http.MethodPost && r.Path == "/api/events") {
			continue
		}
		target := ginParam.ReplaceAllString(r.Path, "x")
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			rec := do(r.Method, target, "application/json", `{}`, created.Key)
			assert.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), "an ingest API key may only send events (POST /api/events)")
		})
		checked++
	}
	assert.Greater(t, checked, 30, "every route of the server was tried")
}
