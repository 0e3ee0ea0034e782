package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
)

// Every path of the route table answers a method it does not have with 405
// and an Allow header listing exactly the methods it has (TRACE got 404). A
// path without parameters has only its own routes: GET /api/customers/link
// is 405, not a customer named "link".
func TestMethodNotAllowedOverEveryRoute(t *testing.T) {
	t.Parallel()
	server, wrap := openapiServerAuth(t)
	engine, ok := server.Handler().(*gin.Engine)
	require.True(t, ok)
	type route struct {
		method string
		match  *regexp.Regexp
	}
	var routes []route
	static := map[string]bool{} // a path without parameters has only its own routes
	for _, r := range engine.Routes() {
		pattern := regexp.MustCompile(`:[^/]+`).ReplaceAllString(regexp.QuoteMeta(r.Path), `[^/]+`)
		pattern = regexp.MustCompile(`\\\*[^/]+`).ReplaceAllString(pattern, `.*`)
		routes = append(routes, route{r.Method, regexp.MustCompile("^" + pattern + "$")})
		if !strings.ContainsAny(r.Path, ":*") {
			static[r.Path] = true
		}
	}
	h := wrap(engine)
	checked := 0
	for _, r := range engine.Routes() {
		path := regexp.MustCompile(`[:*][^/]+`).ReplaceAllString(r.Path, "x")
		var allowed []string
		for _, other := range routes {
			if static[path] && other.match.String() != "^"+regexp.QuoteMeta(path)+"$" {
				continue
			}
			if other.match.MatchString(path) && !slices.Contains(allowed, other.method) {
				allowed = append(allowed, other.method)
			}
		}
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodTrace, http.MethodOptions} {
			if slices.Contains(allowed, method) {
				continue
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			if !assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s: %s", method, path, rec.Body.String()) {
				continue
			}
			got := strings.Split(rec.Header().Get("Allow"), ", ")
			assert.ElementsMatch(t, allowed, got, "Allow of %s", path)
			assert.Contains(t, rec.Body.String(), method+" is not allowed on "+path)
			checked++
		}
	}
	assert.Greater(t, checked, 100, "the whole table was exercised")
}

// One event larger than Kafka's record limit is a 413 naming the limit
// (it was a 503 telling the client to retry, forever).
func TestOversizedEventIs413(t *testing.T) {
	t.Parallel()
	h := openapiHandler(t)
	var attrs strings.Builder
	for i := range 40_000 { // ≈ 4 MB of attributes, each value within the 512-byte string limit
		if i > 0 {
			attrs.WriteByte(',')
		}
		fmt.Fprintf(&attrs, `"a%d":"%s"`, i, strings.Repeat("x", 90))
	}
	body := `{"specversion":"1.0","id":"big-1","source":"test","type":"uvr.usage.v1","time":"` + time.Now().UTC().Format(time.RFC3339) +
		`","data":{"customer":{"external_id":"c1"},"feature":"f","quantity":"1","attributes":{` + attrs.String() + `}}}`
	require.Greater(t, len(body), 4_000_000)
	req := httptest.NewRequest(http.MethodPost, "/api/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "event 0 (big-1) is ")
	assert.Contains(t, rec.Body.String(), "more than the limit of 524288 bytes per event")
}

// MaxBodyBytes is the ceiling of every route, below the routes' own limits.
func TestEveryBodyHasALimit(t *testing.T) {
	t.Parallel()
	cfg := api.Config{EventsTopic: "unused", Publisher: noPublisher{}, Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 10}
	wrap := withAuth(t, &cfg)
	srv, err := api.New(cfg)
	require.NoError(t, err)
	h := wrap(srv.Handler())
	for _, route := range [][2]string{
		{http.MethodPost, "/api/events"}, {http.MethodPost, "/api/auth/login"}, {http.MethodPost, "/api/auth/api-keys"},
	} {
		req := httptest.NewRequest(route[0], route[1], strings.NewReader(`{"name":"`+strings.Repeat("x", 4<<10)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "%v: %s", route, rec.Body.String())
		assert.Contains(t, rec.Body.String(), "request body is larger than the limit of 1024 bytes", route)
	}
}

// The server's timeouts are configurable: a client that never finishes its
// headers is disconnected after ReadHeaderTimeout.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	cfg := api.Config{Addr: "127.0.0.1:0", EventsTopic: "unused", Publisher: noPublisher{}, Logger: slog.New(slog.DiscardHandler),
		ReadHeaderTimeout: 200 * time.Millisecond}
	withAuth(t, &cfg)
	srv, err := api.New(cfg)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: uvr\r\n") // never the blank line
	require.NoError(t, err)
	// The default (10 s) would outlast this deadline; the configured 200 ms does not.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = bufio.NewReader(conn).ReadString('\n')
	var nerr net.Error
	if err != nil && errors.As(err, &nerr) {
		require.False(t, nerr.Timeout(), "the server kept the half-sent request open")
	}
}

// loginServer is an API whose logins are limited by limits, with auth
// wrapped by wrap (nil: the real store as it is).
func loginServer(t *testing.T, limits api.LoginLimits, wrap func(api.Auth) api.Auth) http.Handler {
	t.Helper()
	cfg := api.Config{EventsTopic: "unused", Publisher: noPublisher{}, Logger: slog.New(slog.DiscardHandler), Logins: limits}
	withAuth(t, &cfg)
	if wrap != nil {
		cfg.Auth = wrap(cfg.Auth)
	}
	srv, err := api.New(cfg)
	require.NoError(t, err)
	return srv.Handler()
}

func tryLogin(h http.Handler, email, password, remote string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/auth/login", strings.NewReader(`{"username":"`+email+`","password":"`+password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Password attempts are limited per account and per client address: 429
// with Retry-After; X-Forwarded-For from an untrusted client changes nothing.
func TestLoginIsRateLimited(t *testing.T) {
	t.Parallel()
	h := loginServer(t, api.LoginLimits{AccountBurst: 3, AccountEvery: time.Hour, ClientBurst: 5, ClientEvery: time.Hour}, nil)
	const a, b = "192.0.2.1:1000", "192.0.2.2:1000"
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, tryLogin(h, "admin@uvr.test", "wrong", a).Code)
	}
	rec := tryLogin(h, "ADMIN@uvr.test", testAdminPassword, b) // the account, from elsewhere, even with the right password
	assert.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "too many login attempts")
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err, "Retry-After in seconds")
	assert.InDelta(t, 3600, retry, 5)

	// Address a has 2 attempts left, whatever the account.
	assert.Equal(t, http.StatusUnauthorized, tryLogin(h, "x@uvr.test", "wrong", a).Code)
	assert.Equal(t, http.StatusUnauthorized, tryLogin(h, "y@uvr.test", "wrong", a).Code)
	assert.Equal(t, http.StatusTooManyRequests, tryLogin(h, "z@uvr.test", "wrong", a).Code)
	assert.Equal(t, http.StatusTooManyRequests, tryLogin(h, "z@uvr.test", "wrong", a, "X-Forwarded-For", "203.0.113.9").Code,
		"a client cannot pick the address it is counted under")
	assert.Equal(t, http.StatusUnauthorized, tryLogin(h, "z@uvr.test", "wrong", b).Code, "a refused attempt took nothing from z's account")
}

// countingAuth records how many logins run at once.
type countingAuth struct {
	api.Auth
	mu        sync.Mutex
	now, peak int
}

func (c *countingAuth) Login(ctx context.Context, email, password string) (access.User, string, error) {
	c.mu.Lock()
	c.now++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	return c.Auth.Login(ctx, email, password)
}

// At most Hashes password checks (19 MiB of argon2id each) run at once;
// the others wait their turn. Unknown emails are checked the same way
// (access.Store verifies a dummy hash), inside the same bound.
func TestLoginHashesAreBounded(t *testing.T) {
	t.Parallel()
	counting := &countingAuth{}
	h := loginServer(t, api.LoginLimits{Hashes: 2, HashWait: time.Minute, AccountBurst: 100, AccountEvery: time.Second}, func(a api.Auth) api.Auth { counting.Auth = a; return counting })
	var wg sync.WaitGroup
	codes := make([]int, 16)
	for i := range codes {
		wg.Go(func() {
			email := "admin@uvr.test"
			if i%2 == 1 {
				email = fmt.Sprintf("nobody%d@uvr.test", i)
			}
			codes[i] = tryLogin(h, email, "wrong", fmt.Sprintf("192.0.2.%d:1000", i+1)).Code
		})
	}
	wg.Wait()
	for i, code := range codes {
		assert.Equal(t, http.StatusUnauthorized, code, "login %d", i)
	}
	assert.LessOrEqual(t, counting.peak, 2)
	assert.Equal(t, 2, counting.peak, "the logins did overlap, up to the bound")
}
