package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
)

// authAPI is a server on a real access store with no user yet.
func authAPI(t *testing.T, origins ...string) (http.Handler, *access.Store, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	store := emptyAuthStore(t)
	server, err := api.New(api.Config{
		EventsTopic: "events", Publisher: noPublisher{}, Auth: store, CORSOrigins: origins,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	return server.Handler(), store, logs
}

func TestAPINeverRunsOpen(t *testing.T) {
	_, err := api.New(api.Config{EventsTopic: "events", Publisher: noPublisher{}, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "Auth is required")
}

// documentedClient sends requests to h and checks every answer against the
// OpenAPI document (strict schemas); bodies collects what was answered.
func documentedClient(t *testing.T, h http.Handler, bodies *strings.Builder) func(t *testing.T, method, route, target, contentType, body, token string) (int, map[string]any) {
	doc := strictDoc(t)
	return func(t *testing.T, method, route, target, contentType, body, token string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		bodies.WriteString(rec.Body.String())
		item := doc.Paths.Value(route)
		require.NotNil(t, item, route)
		op := item.GetOperation(method)
		require.NotNil(t, op, "%s %s", method, route)
		err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req,
				Route: &routers.Route{Spec: doc, Path: route, PathItem: item, Method: method, Operation: op}},
			Status: rec.Code, Header: rec.Header(), Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		})
		assert.NoError(t, err, "%s %s → %d %s", method, target, rec.Code, rec.Body.String())
		var out map[string]any
		if rec.Body.Len() > 0 {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
		}
		return rec.Code, out
	}
}

// The auth routes answer what the document says (closed schemas), with the
// register rules: the first user is open and an admin, then admin only.
func TestAuthRoutes(t *testing.T) {
	h, _, logs := authAPI(t)
	const password = "planted-password-42"
	var bodies strings.Builder
	send := documentedClient(t, h, &bodies)
	const jsonCT = "application/json"
	form := func(user, pass string) string { return url.Values{"username": {user}, "password": {pass}}.Encode() }

	// No user yet: anyone may register the first, who is an admin whatever
	// the request says.
	status, body := send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT,
		`{"email":"ann@example.com","password":"`+password+`","full_name":"Ann","role":"viewer"}`, "")
	require.Equal(t, http.StatusCreated, status, body)
	require.IsType(t, map[string]any{}, body["user"], "register answers like login: %v", body)
	assert.Equal(t, "admin", body["user"].(map[string]any)["role"])
	assert.Equal(t, "ann@example.com", body["user"].(map[string]any)["username"])
	assert.Equal(t, true, body["user"].(map[string]any)["is_active"])
	assert.Equal(t, "bearer", body["token_type"])
	status, me := send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", body["access_token"].(string))
	require.Equal(t, http.StatusOK, status, "the token register returns works: %v", me)
	assert.Equal(t, "Ann", me["full_name"])

	// Now registering needs an admin.
	status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"eve@example.com","password":"long enough"}`, "")
	assert.Equal(t, http.StatusUnauthorized, status, body)

	status, body = send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded", form("ann@example.com", password), "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "bearer", body["token_type"])
	admin := body["access_token"].(string)
	status, body = send(t, "POST", "/api/auth/login", "/api/auth/login", jsonCT, `{"username":"ANN@example.com","password":"`+password+`"}`, "")
	require.Equal(t, http.StatusOK, status, "JSON login, email in another case: %v", body)

	// Wrong password and unknown email: the same 401.
	status, wrong := send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded", form("ann@example.com", "nope-nope"), "")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, unknown := send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded", form("who@example.com", password), "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, wrong, unknown, "no hint whether the email exists")

	status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", admin)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "Ann", body["full_name"])
	assert.Equal(t, "admin", body["role"])

	// Register validation names the field.
	for _, tc := range []struct{ body, field string }{
		{`{"email":"bob","password":"long enough"}`, "email"},
		{`{"email":"bob@example.com","password":"short"}`, "password"},
		{`{"email":"bob@example.com","password":"long enough","role":"root"}`, "role"},
	} {
		status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, tc.body, admin)
		assert.Equal(t, http.StatusBadRequest, status, body)
		require.NotEmpty(t, body["errors"], body)
		assert.Equal(t, tc.field, body["errors"].([]any)[0].(map[string]any)["field"])
	}
	status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"bob@example.com","password":"long enough"}`, admin)
	require.Equal(t, http.StatusCreated, status, body)
	assert.Equal(t, "viewer", body["user"].(map[string]any)["role"], "an admin registers viewers by default")
	status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"Bob@example.com","password":"long enough"}`, admin)
	assert.Equal(t, http.StatusConflict, status, body)

	// API keys: shown once, listed without the key, revoked ⇒ 401.
	status, body = send(t, "POST", "/api/auth/api-keys", "/api/auth/api-keys", jsonCT, `{"name":"loader","role":"admin"}`, admin)
	require.Equal(t, http.StatusCreated, status, body)
	key, id := body["key"].(string), body["id"].(string)
	assert.Equal(t, key[len(key)-4:], body["last4"])
	status, body = send(t, "GET", "/api/auth/api-keys", "/api/auth/api-keys", "", "", key)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, body["api_keys"], 1)
	listed, _ := json.Marshal(body)
	assert.NotContains(t, string(listed), key, "the key is shown once")
	status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", key)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, id, body["id"])
	status, _ = send(t, "DELETE", "/api/auth/api-keys/{id}", "/api/auth/api-keys/"+id, "", "", admin)
	require.Equal(t, http.StatusNoContent, status)
	status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", key)
	assert.Equal(t, http.StatusUnauthorized, status, body)
	status, _ = send(t, "DELETE", "/api/auth/api-keys/{id}", "/api/auth/api-keys/"+id, "", "", admin)
	assert.Equal(t, http.StatusNotFound, status)

	// A viewer reads but does not write.
	status, body = send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded", form("bob@example.com", "long enough"), "")
	require.Equal(t, http.StatusOK, status, body)
	viewer := body["access_token"].(string)
	status, _ = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", viewer)
	assert.Equal(t, http.StatusOK, status)
	status, body = send(t, "POST", "/api/auth/api-keys", "/api/auth/api-keys", jsonCT, `{"name":"x"}`, viewer)
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.NotEmpty(t, body["detail"])

	for _, secret := range []string{password, admin, viewer, key, "argon2id"} {
		assert.NotContains(t, logs.String(), secret)
	}
	for _, secret := range []string{password, "argon2id", "password_hash"} {
		assert.NotContains(t, bodies.String(), secret)
	}
}

func TestCORS(t *testing.T) {
	h, _, _ := authAPI(t, "http://localhost:3000", "https://uvr.example.com")
	preflight := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, "http://127.0.0.1:8000/api/dashboard", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, origin := range []string{"http://localhost:3000", "https://uvr.example.com"} {
		rec := preflight(origin)
		assert.Equal(t, http.StatusNoContent, rec.Code, origin)
		assert.Equal(t, origin, rec.Header().Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
		assert.Contains(t, strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "authorization")
	}
	rec := preflight("http://evil.example")
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))

	// A simple request from a refused origin never reaches a handler; the
	// server's own origin is not a cross-origin request.
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/login", strings.NewReader("username=a&password=b"))
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	req = httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/login", strings.NewReader("username=a@b.co&password=b"))
	req.Header.Set("Origin", "http://127.0.0.1:8000")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "own origin reaches login: %s", rec.Body.String())

	// Default: no other origin (make run configures the usual local ones).
	h, _, _ = authAPI(t)
	req = httptest.NewRequest(http.MethodOptions, "http://127.0.0.1:8000/api/dashboard", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "GET")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}
