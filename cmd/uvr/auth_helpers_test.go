package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// The admin testConfig gives every Main (UVR_ADMIN_EMAIL/PASSWORD).
const (
	testAdminEmail    = "admin@uvr.test"
	testAdminPassword = "uvr-test-password"
)

// plainClient sends exactly what a test asks, credentials included or not.
var plainClient = &http.Client{Transport: http.DefaultTransport}

// The end-to-end helpers (post, getBody, getDashboard, …) and every other
// test of this package that calls a Main's API with the default client get
// its admin's token from here: one place, so that a test written before
// access control (or by someone who never thinks of it) keeps working.
func init() {
	http.DefaultTransport = &adminTransport{base: http.DefaultTransport, tokens: map[string]string{}}
}

// adminTransport adds "Authorization: Bearer <token>" to requests for /api/
// on a loopback address that carry no credentials, logging in as the test
// admin once per server; a token a server refuses (a new Main on a reused
// port) is dropped and fetched again.
type adminTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	tokens map[string]string // scheme://host → token; "" = not a uvr API
}

func (a *adminTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-API-Key") != "" ||
		!strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api/auth/login" || !loopback(r.URL.Hostname()) {
		return a.base.RoundTrip(r)
	}
	origin := r.URL.Scheme + "://" + r.URL.Host
	token := a.token(origin)
	if token == "" {
		return a.base.RoundTrip(r)
	}
	retry := r.Body == nil || r.GetBody != nil
	resp, err := a.base.RoundTrip(withToken(r, token))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !retry {
		return resp, err
	}
	a.forget(origin, token)
	if token = a.token(origin); token == "" {
		return resp, nil
	}
	_ = resp.Body.Close()
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = body
	}
	return a.base.RoundTrip(withToken(r, token))
}

func withToken(r *http.Request, token string) *http.Request {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func (a *adminTransport) token(origin string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tok, ok := a.tokens[origin]; ok {
		return tok
	}
	form := url.Values{"username": {testAdminEmail}, "password": {testAdminPassword}}
	resp, err := (&http.Client{Transport: a.base}).PostForm(origin+"/api/auth/login", form)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) == nil && body.AccessToken != "" {
			a.tokens[origin] = body.AccessToken
			return body.AccessToken
		}
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		a.tokens[origin] = "" // not a uvr API (Prometheus, a test server)
	}
	return ""
}

func (a *adminTransport) forget(origin, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens[origin] == token {
		delete(a.tokens, origin)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
