package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// syncBuffer is a log sink tests read while the Main writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMainLogged is startMain with every log line (debug included) kept.
func startMainLogged(t *testing.T, cfg Config, roles Roles) (*Main, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain(cfg, roles, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, m.Open(ctx))
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, logs
}

type reply struct {
	status int
	header http.Header
	body   string
}

// call sends exactly one request with the given credential header (none
// when auth is empty), through plainClient.
func call(t *testing.T, method, target, contentType, body string, auth http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range auth {
		req.Header[k] = v
	}
	resp, err := plainClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func login(t *testing.T, base, email, password string) string {
	t.Helper()
	form := url.Values{"username": {email}, "password": {password}}
	r := call(t, http.MethodPost, base+"/api/auth/login", "application/x-www-form-urlencoded", form.Encode(), nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		User        struct {
			ID, Email, Username, FullName string
			IsActive                      bool `json:"is_active"`
		} `json:"user"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	require.Equal(t, "bearer", body.TokenType)
	require.Equal(t, email, body.User.Email)
	return body.AccessToken
}

func detailOf(t *testing.T, r reply) string {
	t.Helper()
	var body struct {
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body), r.body)
	return body.Detail
}

var ginParam = regexp.MustCompile(`:(\w+)`)

// badParams is one request per route with an invalid parameter, and the
// field the 400 must name; a route without parameters says why instead. The
// test fails for a route missing here, so a new route gets a case.
var badParams = map[string]struct {
	target, contentType, body, field string
	none                             string // why the route has no bad-parameter case
}{
	"GET /api/health":                    {none: "public, no parameters"},
	"GET /api/openapi.json":              {none: "public, no parameters"},
	"GET /api/docs":                      {none: "public, no parameters"},
	"POST /api/auth/login":               {target: "/api/auth/login", contentType: "application/x-www-form-urlencoded", body: "password=x", field: "username"},
	"POST /api/auth/register":            {target: "/api/auth/register", contentType: "application/json", body: `{"email":"not-an-email","password":"long enough"}`, field: "email"},
	"POST /api/auth/logout":              {none: "public, no parameters: clears the session cookie"},
	"GET /api/auth/me":                   {none: "no parameters"},
	"GET /api/auth/api-keys":             {none: "no parameters"},
	"POST /api/auth/api-keys":            {target: "/api/auth/api-keys", contentType: "application/json", body: `{"name":"k","role":"owner"}`, field: "role"},
	"DELETE /api/auth/api-keys/:id":      {none: "only a path id: an unknown one is 404"},
	"GET /api/users":                     {none: "no parameters"},
	"GET /api/deadletters":               {target: "/api/deadletters?limit=0", field: "limit"},
	"PATCH /api/users/:id":               {target: "/api/users/x", contentType: "application/json", body: `{"role":"root"}`, field: "role"},
	"DELETE /api/users/:id":              {none: "only a path id: an unknown one is 404"},
	"POST /api/events":                   {target: "/api/events", contentType: "application/cloudevents+json", body: `{"specversion":"1.0","source":"s","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z","data":{"customer":{"external_id":"c"},"feature":"f","quantity":"1"}}`, field: "id"},
	"GET /api/dashboard":                 {target: "/api/dashboard?start_date=yesterday", field: "start_date"},
	"GET /api/services":                  {none: "no parameters"},
	"POST /api/services":                 {target: "/api/services", contentType: "application/json", body: `{"service_type":"stripe","credentials":"sk_test"}`, field: "credentials"},
	"DELETE /api/services/:id":           {none: "only a path id: an unknown one is 404"},
	"POST /api/test-service":             {target: "/api/test-service", contentType: "application/json", body: `{"service_type":"stripe","credentials":"sk_test"}`, field: "credentials"},
	"GET /api/service-types":             {none: "no parameters"},
	"POST /api/settings":                 {target: "/api/settings", contentType: "application/json", body: `["not an object"]`, field: "JSON object"},
	"GET /api/sync-runs":                 {target: "/api/sync-runs?limit=lots", field: "limit"},
	"POST /api/sync":                     {none: "no parameters: syncs every active service"},
	"POST /api/services/:id/sync":        {none: "only a path id: an unknown one is 404"},
	"GET /api/airbyte/connections":       {none: "no parameters"},
	"POST /api/airbyte/sync/:id":         {none: "only a path id, passed to Airbyte"},
	"GET /api/airbyte/status/:id":        {none: "only a path id, passed to Airbyte"},
	"GET /api/customers":                 {target: "/api/customers?sort=shoe_size", field: "sort"},
	"GET /api/customers/:id":             {target: "/api/customers/x?end_date=31-12-2026", field: "end_date"},
	"GET /api/features":                  {target: "/api/features?format=xml", field: "format"},
	"GET /api/timeseries":                {target: "/api/timeseries?group_by=year", field: "group_by"},
	"GET /api/mrr":                       {target: "/api/mrr?start_date=soon", field: "start_date"},
	"POST /api/customers/link":           {target: "/api/customers/link", contentType: "application/json", body: `{"customer_id":"c"}`, field: "source"},
	"POST /api/customers/unlink":         {target: "/api/customers/unlink", contentType: "application/json", body: `{}`, field: "source"},
	"POST /api/customers/merge":          {target: "/api/customers/merge", contentType: "application/json", body: `{}`, field: "into"},
	"POST /api/customers/split":          {target: "/api/customers/split", contentType: "application/json", body: `{}`, field: "customer_id"},
	"GET /api/customer-references":       {target: "/api/customer-references?unmapped=maybe", field: "unmapped"},
	"GET /api/insights":                  {target: "/api/insights?severity=dire", field: "severity"},
	"POST /api/insights/run":             {none: "no parameters: evaluates every rule now"},
	"POST /api/insights/:id/acknowledge": {none: "only a path id: an unknown one is 404"},
	"POST /api/insights/:id/resolve":     {none: "only a path id: an unknown one is 404"},
	"GET /api/rate-cards":                {none: "no parameters"},
	"PUT /api/rate-cards":                {target: "/api/rate-cards", contentType: "application/json", body: `{"cards":[{"provider":"openai","effective_from":"someday"}]}`, field: "effective_from"},
	"GET /api/fx-rates":                  {none: "no parameters"},
	"PUT /api/fx-rates":                  {target: "/api/fx-rates", contentType: "application/json", body: `{"rates":"x"}`, field: "rates"},
	"GET /api/revenue-mapping":           {none: "no parameters"},
	"PUT /api/revenue-mapping":           {target: "/api/revenue-mapping", contentType: "application/json", body: `{"mappings":"x"}`, field: "mappings"},
	"POST /api/simulate":                 {target: "/api/simulate", contentType: "application/json", body: `{"start_date":"tomorrow-ish"}`, field: "start_date"},
}

// The issue's test: every route answers 401 without credentials (and with a
// bad, forged, expired or revoked one), 403 to a viewer or an analyst on
// write routes, lets them read, lets an admin through, and answers 400 naming
// the field to a bad parameter. Routes come from the Gin engine, so a route
// added later is covered by the same checks.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	cfg := testConfig(t)
	m, logs := startMainLogged(t, cfg, Roles{API: true, Projector: true, Connectors: true})
	base := m.URL()
	ctx := context.Background()
	engine, ok := m.server.Handler().(*gin.Engine)
	require.True(t, ok)

	admin := login(t, base, testAdminEmail, testAdminPassword)
	var secrets []string // nothing here may appear in a log line
	secrets = append(secrets, testAdminPassword, admin)
	tokenOf := func(role access.Role) string {
		email, password := string(role)+"@uvr.test", "password-of-"+string(role)
		r := call(t, http.MethodPost, base+"/api/auth/register", "application/json",
			`{"email":"`+email+`","password":"`+password+`","role":"`+string(role)+`"}`, bearer(admin))
		require.Equal(t, http.StatusCreated, r.status, r.body)
		assert.NotContains(t, r.body, password)
		assert.NotContains(t, r.body, "argon2")
		token := login(t, base, email, password)
		secrets = append(secrets, password, token)
		return token
	}
	viewer, analyst := tokenOf(access.RoleViewer), tokenOf(access.RoleAnalyst)

	// An API key, revoked: it must stop working at once.
	r := call(t, http.MethodPost, base+"/api/auth/api-keys", "application/json", `{"name":"ci","role":"admin"}`, bearer(admin))
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var created struct{ ID, Key string }
	require.NoError(t, json.Unmarshal([]byte(r.body), &created))
	secrets = append(secrets, created.Key)
	require.Equal(t, http.StatusOK, call(t, http.MethodGet, base+"/api/auth/me", "", "", http.Header{"X-Api-Key": {created.Key}}).status)
	require.Equal(t, http.StatusNoContent, call(t, http.MethodDelete, base+"/api/auth/api-keys/"+created.ID, "", "", bearer(admin)).status)

	// A token that expired: signed with the deployment's secret by a store
	// whose clock is 13 hours behind.
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: m.Brokers, Topic: cfg.topicNames().Users})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	sealer, _, err := openSealer(cfg, nil, nil)
	require.NoError(t, err)
	past, err := access.New(access.Config{Table: table, Sealer: sealer, Now: func() time.Time { return time.Now().Add(-13 * time.Hour) }})
	require.NoError(t, err)
	require.NoError(t, past.Open(ctx))
	me, err := m.access.Authenticate(ctx, admin)
	require.NoError(t, err)
	expired, err := past.IssueToken(me.UserID, 0)
	require.NoError(t, err)
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: "uvr", Subject: me.UserID,
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString([]byte("not the secret, but 32 bytes long"))
	require.NoError(t, err)

	refused := map[string]http.Header{
		"no credentials":    nil,
		"garbage token":     bearer("garbage"),
		"forged token":      bearer(forged),
		"expired token":     bearer(expired),
		"revoked API key":   bearer(created.Key),
		"revoked X-API-Key": {"X-Api-Key": {created.Key}},
		"basic auth":        {"Authorization": {"Basic YWRtaW46cGFzcw=="}},
		"empty bearer":      {"Authorization": {"Bearer "}},
		"unknown API key":   bearer("uvr_" + strings.Repeat("A", 43)),
	}

	var routes int
	for _, route := range engine.Routes() {
		if !strings.HasPrefix(route.Path, "/api/") {
			continue
		}
		routes++
		key := route.Method + " " + route.Path
		target := base + ginParam.ReplaceAllString(route.Path, "x")
		// POST /api/simulate computes a what-if and stores nothing: every role may call it.
		write := route.Method != http.MethodGet && route.Path != "/api/simulate"
		t.Run(key, func(t *testing.T) {
			if api.PublicRoute(route.Path) {
				r := call(t, route.Method, target, "", "", nil)
				assert.NotEqual(t, http.StatusUnauthorized, r.status, "public route")
			} else {
				for name, h := range refused {
					r := call(t, route.Method, target, "", "", h)
					require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", name, r.body)
					assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", name)
					assert.NotEmpty(t, detailOf(t, r), name)
				}
				for name, token := range map[string]string{"viewer": viewer, "analyst": analyst} {
					r := call(t, route.Method, target, "", "", bearer(token))
					if write || api.AdminRead(route.Path) {
						require.Equal(t, http.StatusForbidden, r.status, "%s: %s", name, r.body)
						assert.NotEmpty(t, detailOf(t, r), name)
					} else {
						assert.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.status, "%s may read: %s", name, r.body)
					}
				}
				if route.Path != "/api/auth/register" { // an empty register body is the bad-parameter case below
					r := call(t, route.Method, target, "", "", bearer(admin))
					assert.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.status, "admin: %s", r.body)
				}
			}

			bad, ok := badParams[key]
			require.True(t, ok, "%s has no bad-parameter case in badParams: add one, or the reason it has none", key)
			if bad.none != "" {
				return
			}
			r := call(t, route.Method, base+bad.target, bad.contentType, bad.body, bearer(admin))
			require.Equal(t, http.StatusBadRequest, r.status, r.body)
			assert.Contains(t, r.body, bad.field, "the 400 names the field")
		})
	}
	assert.Greater(t, routes, 30)
	for key := range badParams {
		method, path, _ := strings.Cut(key, " ")
		found := false
		for _, route := range engine.Routes() {
			found = found || (route.Method == method && route.Path == path)
		}
		assert.True(t, found, "badParams lists %s, which is not a route", key)
	}

	for _, s := range secrets {
		assert.NotContains(t, logs.String(), s, "a secret in the logs")
	}
	assert.NotContains(t, logs.String(), "argon2id")
	metrics := call(t, http.MethodGet, base+"/metrics", "", "", nil)
	assert.Contains(t, metrics.body, `uvr_auth_attempts_total{method="token",result="expired"}`)
	for _, s := range secrets {
		assert.NotContains(t, metrics.body, s)
	}
}

// cli runs the uvr command line in-process with env as its environment.
func cli(env map[string]string) func(stdin string, args ...string) (string, error) {
	return func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCommand(&out, &out, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
}

// `uvr user role|deactivate|activate|delete` change users on the topic a
// running API reads: a deactivated or deleted user's token is refused at its
// next request there; the last active admin stays.
func TestUserChangeCommands(t *testing.T) {
	cfg := testConfig(t)
	// The same data dir: the CLI seals with the key of the server's.
	run := cli(map[string]string{"UVR_KAFKA_BROKERS": strings.Join(servicetest.KafkaBrokers(t), ","),
		"UVR_CONNECTOR_PREFIX": cfg.ConnectorPrefix, "UVR_DATA_DIR": cfg.DataDir})
	for _, email := range []string{"ops@example.com", "ann@example.com"} {
		out, err := run("", "user", "create", "--email", email, "--password", "long enough", "--role", "admin")
		require.NoError(t, err, out)
	}
	cfg.AdminEmail, cfg.AdminPassword = "", ""
	m := startMain(t, cfg, Roles{API: true})
	ann := login(t, m.URL(), "ann@example.com", "long enough")
	me := func() int { return call(t, http.MethodGet, m.URL()+"/api/auth/me", "", "", bearer(ann)).status }

	for _, tc := range []struct {
		args    []string
		want    string // in the output, or in the error when fails
		fails   bool
		meAfter int // the status of ann's next request
	}{
		{args: []string{"role", "--email", "ann@example.com", "--role", "viewer"}, want: "role viewer, active true", meAfter: http.StatusOK},
		{args: []string{"role", "--email", "ann@example.com", "--role", "root"}, want: "--role: role must be admin, analyst or viewer", fails: true, meAfter: http.StatusOK},
		{args: []string{"role", "--email", "ops@example.com", "--role", "analyst"}, want: "the last active admin cannot be demoted", fails: true, meAfter: http.StatusOK},
		{args: []string{"deactivate", "--email", "ops@example.com"}, want: "the last active admin cannot be deactivated", fails: true, meAfter: http.StatusOK},
		{args: []string{"delete", "--email", "OPS@example.com"}, want: "the last active admin cannot be deleted", fails: true, meAfter: http.StatusOK},
		{args: []string{"deactivate", "--email", "nobody@example.com"}, want: "--email: no user with this email", fails: true, meAfter: http.StatusOK},
		{args: []string{"deactivate", "--email", "ann@example.com"}, want: "active false", meAfter: http.StatusUnauthorized},
		{args: []string{"activate", "--email", "ann@example.com"}, want: "active true", meAfter: http.StatusOK},
		{args: []string{"delete", "--email", "ann@example.com"}, want: "user deleted: ann@example.com", meAfter: http.StatusUnauthorized},
		{args: []string{"role"}, want: `required flag(s) "email", "role" not set`, fails: true, meAfter: http.StatusUnauthorized},
	} {
		out, err := run("", append([]string{"user"}, tc.args...)...)
		if tc.fails {
			require.Error(t, err, out)
			assert.Contains(t, err.Error(), tc.want, tc.args)
		} else {
			require.NoError(t, err, out)
			assert.Contains(t, out, tc.want, tc.args)
		}
		// The API reads the topic: the change reaches it within moments.
		waitUntil(t, 10*time.Second, 20*time.Millisecond, func() bool { return me() == tc.meAfter },
			func() string { return fmt.Sprintf("%v: ann's next request answers %d", tc.args, tc.meAfter) })
	}
}

// `uvr user create` writes a user every API instance can log in as; a bad
// email or password exits with a line naming the flag.
func TestUserCreateCommand(t *testing.T) {
	brokers := strings.Join(servicetest.KafkaBrokers(t), ",")
	cfg := testConfig(t)
	env := map[string]string{"UVR_KAFKA_BROKERS": brokers, "UVR_CONNECTOR_PREFIX": cfg.ConnectorPrefix, "UVR_DATA_DIR": cfg.DataDir}
	const password = "a-planted-password"

	run := cli(env)
	out, err := run(password+"\n", "user", "create", "--email", "ops@example.com", "--password-stdin", "--role", "admin")
	require.NoError(t, err, out)
	assert.Contains(t, out, "user created: ops@example.com")
	assert.NotContains(t, out, password)
	out, err = run("", "user", "create", "--email", "viewer@example.com", "--password", "long enough", "--role", "viewer")
	require.NoError(t, err, out)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--email", "not-an-email", "--password", "long enough"}, "--email: email is not a valid address"},
		{[]string{"--email", "short@example.com", "--password", "short"}, "--password: password must be at least 8 characters"},
		{[]string{"--email", "ops@example.com", "--password", "long enough"}, "already exists"},
		{[]string{"--email", "x@example.com", "--password", "long enough", "--role", "root"}, "--role must be admin, analyst or viewer"},
		{[]string{"--password", "long enough"}, `required flag(s) "email" not set`},
	} {
		out, err := run("", append([]string{"user", "create"}, tc.args...)...)
		require.Error(t, err, out)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "long enough")
	}

	// The API of a Main on the same topics logs the user in.
	cfg.AdminEmail, cfg.AdminPassword = "", ""
	m := startMain(t, cfg, Roles{API: true})
	token := login(t, m.URL(), "ops@example.com", password)
	r := call(t, http.MethodGet, m.URL()+"/api/auth/me", "", "", bearer(token))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `"role":"admin"`)
}

// uvr run's admin from the environment is created once: a second start
// with another password leaves it as it is.
func TestAdminFromConfigIsIdempotent(t *testing.T) {
	cfg := testConfig(t)
	first := NewMain(cfg, Roles{API: true}, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, first.Open(ctx))
	login(t, first.URL(), testAdminEmail, testAdminPassword)
	require.NoError(t, first.Close())

	cfg.AdminPassword = "another-password"
	m := startMain(t, cfg, Roles{API: true})
	login(t, m.URL(), testAdminEmail, testAdminPassword)
	form := url.Values{"username": {testAdminEmail}, "password": {"another-password"}}
	r := call(t, http.MethodPost, m.URL()+"/api/auth/login", "application/x-www-form-urlencoded", form.Encode(), nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
}
