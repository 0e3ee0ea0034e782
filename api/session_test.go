package api_test

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
)

// sessionAPI is a server with one admin (authStore) allowing proxy as a
// browser origin; trustProto trusts X-Forwarded-Proto.
func sessionAPI(t *testing.T, trustProto bool) (http.Handler, *access.Store) {
	t.Helper()
	store := authStore(t)
	server, err := api.New(api.Config{
		EventsTopic: "events", Publisher: noPublisher{}, Auth: store, Logger: slog.New(slog.DiscardHandler),
		CORSOrigins: []string{"http://127.0.0.1:3000"}, TrustForwardedProto: trustProto,
	})
	require.NoError(t, err)
	return server.Handler(), store
}

// browserRequest is what a browser sends: the session cookie, and the
// given Origin and Referer (either may be "").
func browserRequest(method, target, cookie, origin, referer string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(`{"name":"k"}`))
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: cookie})
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if referer != "" {
		req.Header.Set("Referer", referer)
	}
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func sessionCookieOf(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == api.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", api.SessionCookie, rec.Header()["Set-Cookie"])
	return nil
}

// Login sets the session cookie; the cookie authenticates like the bearer
// token; a write on it must come from an allowed origin or the server's
// own; logout clears it.
func TestSessionCookie(t *testing.T) {
	h, store := sessionAPI(t, false)
	login := func(r *http.Request) *httptest.ResponseRecorder {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return serve(h, r)
	}
	form := url.Values{"username": {"admin@uvr.test"}, "password": {testAdminPassword}}.Encode()
	rec := login(httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/login", strings.NewReader(form)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	ck := sessionCookieOf(t, rec)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.False(t, ck.Secure, "plain HTTP: not Secure, or the browser would drop it")
	assert.Equal(t, "/", ck.Path)
	assert.Equal(t, int(store.TokenTTL().Seconds()), ck.MaxAge, "the cookie lives as long as the token")
	assert.Contains(t, rec.Body.String(), `"access_token":"`+ck.Value+`"`, "the same token as the answer's")

	// Reads on the cookie alone, no header.
	rec = serve(h, browserRequest(http.MethodGet, "http://127.0.0.1:8000/api/auth/me", ck.Value, "", ""))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "admin@uvr.test")

	// Writes on the cookie: the origin decides.
	for _, tc := range []struct {
		name, host, origin, referer string
		status                      int
		reason                      string
	}{
		{"an allowed origin (a proxying client)", "127.0.0.1:8000", "http://127.0.0.1:3000", "", http.StatusCreated, ""},
		{"the server's own origin", "127.0.0.1:8000", "http://127.0.0.1:8000", "", http.StatusCreated, ""},
		{"Referer when there is no Origin", "127.0.0.1:8000", "", "http://127.0.0.1:3000/dashboard", http.StatusCreated, ""},
		{"neither Origin nor Referer", "127.0.0.1:8000", "", "", http.StatusForbidden, "must carry an Origin or Referer"},
		{"another site's Referer", "127.0.0.1:8000", "", "http://evil.example/x", http.StatusForbidden, `Referer \"http://evil.example\" is not an allowed origin`},
		{"another site's Origin", "127.0.0.1:8000", "http://evil.example", "", http.StatusForbidden, ""},
		{"an opaque Origin and another site's Referer", "127.0.0.1:8000", "null", "https://evil.example/", http.StatusForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := browserRequest(http.MethodPost, "http://"+tc.host+"/api/auth/api-keys", ck.Value, tc.origin, tc.referer)
			rec := serve(h, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), tc.reason)
		})
	}

	// A bearer token needs no origin: a browser never adds it on its own.
	req := browserRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/api-keys", "", "", "")
	_, token, err := store.Login(req.Context(), "admin@uvr.test", testAdminPassword)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	rec = serve(h, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	// Without credentials: the same 401 as ever (the client's login redirect).
	rec = serve(h, browserRequest(http.MethodGet, "http://127.0.0.1:8000/api/customers", "", "", ""))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = serve(h, browserRequest(http.MethodGet, "http://127.0.0.1:8000/api/auth/me", "not-a-token", "", ""))
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "a stale cookie is a 401 too")

	// Logout clears the cookie.
	rec = serve(h, browserRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/logout", ck.Value, "http://127.0.0.1:3000", ""))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	cleared := sessionCookieOf(t, rec)
	assert.Empty(t, cleared.Value)
	assert.Negative(t, cleared.MaxAge, "Max-Age=0 on the wire: the browser deletes it")
}

// Secure is set over TLS, and over X-Forwarded-Proto https only when the
// proxy is trusted.
func TestSessionCookieSecure(t *testing.T) {
	form := url.Values{"username": {"admin@uvr.test"}, "password": {testAdminPassword}}.Encode()
	login := func(h http.Handler, tlsConn bool, proto string) *http.Cookie {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/login", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tlsConn {
			req.TLS = &tls.ConnectionState{}
		}
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		rec := serve(h, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		return sessionCookieOf(t, rec)
	}
	untrusted, _ := sessionAPI(t, false)
	assert.True(t, login(untrusted, true, "").Secure, "TLS")
	assert.False(t, login(untrusted, false, "https").Secure, "an untrusted X-Forwarded-Proto is anyone's claim")
	trusted, _ := sessionAPI(t, true)
	assert.True(t, login(trusted, false, "https").Secure, "a trusted proxy terminated TLS")
	assert.False(t, login(trusted, false, "http").Secure)
}

// The open first registration logs the new admin in (cookie); an admin
// registering someone keeps their own session.
func TestRegisterSession(t *testing.T) {
	h, _, _ := authAPI(t)
	body := `{"email":"first@example.com","password":"long enough 1"}`
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := serve(h, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	ck := sessionCookieOf(t, rec)
	rec = serve(h, browserRequest(http.MethodGet, "http://127.0.0.1:8000/api/auth/me", ck.Value, "", ""))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "first@example.com")

	req = httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8000/api/auth/register", strings.NewReader(`{"email":"second@example.com","password":"long enough 2"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://127.0.0.1:8000")
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: ck.Value})
	rec = serve(h, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"access_token"`)
	assert.Empty(t, rec.Result().Cookies(), "the admin's session is not replaced by the new user's")
}
