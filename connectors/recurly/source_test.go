package recurly

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

const testKey = "rcly_9f8e7d6c5b4a3f2e1d0c"

// fakeRecurly answers v3 list requests with pages built from the Fivetran
// seed rows in the documented v3 shapes (testdata/README.md); a page is
// chosen by path and the "cursor" query parameter.
type fakeRecurly struct {
	t            *testing.T
	pages        map[string]string // path + "?" + cursor → body
	mu           sync.Mutex
	reqs         []*http.Request
	throttleOnce string
	throttled    bool
	status       int
	body         string
}

func (f *fakeRecurly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	throttle := !f.throttled && r.URL.Path == f.throttleOnce
	if throttle {
		f.throttled = true
	}
	f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != testKey || p != "" || r.Header.Get("Accept") != Accept {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if throttle {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	body, ok := f.pages[r.URL.Path+"?"+r.URL.Query().Get("cursor")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

func page(t *testing.T, data []any, next string) string {
	body := map[string]any{"object": "list", "has_more": next != "", "data": data}
	if next != "" {
		body["next"] = next
	}
	return string(sourcetest.MustJSON(t, body))
}

func newFake(t *testing.T) *fakeRecurly {
	var txs, accounts, subs []any
	for _, r := range seedRows(t, "transaction_data") {
		txs = append(txs, v3Transaction(r))
	}
	bad := v3Transaction(seedRows(t, "transaction_data")[3])
	bad["id"], bad["amount"] = "b4dr3c0rd", "five dollars"
	for _, r := range seedRows(t, "account_history_data") {
		accounts = append(accounts, v3Account(r))
	}
	for _, r := range seedRows(t, "subscription_history_data") {
		subs = append(subs, v3Subscription(r))
	}
	return &fakeRecurly{t: t, pages: map[string]string{
		"/accounts?":        page(t, accounts, ""),
		"/subscriptions?":   page(t, subs, "/subscriptions?cursor=s2&limit=200&order=asc&sort=updated_at"),
		"/subscriptions?s2": page(t, []any{}, ""),
		"/transactions?":    page(t, txs[:3], "/transactions?cursor=t2&limit=200&order=asc&sort=updated_at"),
		"/transactions?t2":  page(t, append([]any{bad}, txs[3:]...), ""),
	}}
}

func newTestSource(t *testing.T, h http.Handler) *Source {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := New(Config{APIKey: testKey, Subdomain: "test", BaseURL: srv.URL, RequestsPerSecond: 1000,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	require.NoError(t, err)
	return s
}

func TestReadPaginatesSkipsAndResumes(t *testing.T) {
	fake := newFake(t)
	fake.throttleOnce = "/accounts"
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	start := time.Now()
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 was honoured")
	sourcetest.RequireValid(t, out.Events)

	money := map[string]string{}
	for _, ev := range out.Events {
		if ev.Data.Amount != nil {
			money[ev.ID] = ev.Data.Kind + " " + ev.Data.Amount.String()
		}
	}
	assert.Equal(t, map[string]string{
		"transaction/571096af8e160294851c9189309ba52f": "charge 5", // page 2
		"transaction/660f729d818a9cbf075a293c613ec979": "charge 0", // page 2, void
	}, money)
	require.Len(t, out.Skipped, 1)
	for name, reason := range out.Skipped {
		assert.Equal(t, "transaction b4dr3c0rd (page 2 item 0)", name)
		assert.ErrorContains(t, reason, "amount")
	}

	// Pages: accounts, subscriptions ×2 (the second empty), transactions ×2.
	require.Len(t, out.Cursors, 5)
	var mid cursor
	require.NoError(t, json.Unmarshal(out.Cursors[1], &mid))
	assert.Equal(t, "/subscriptions?cursor=s2&limit=200&order=asc&sort=updated_at", mid.Next)
	var last cursor
	require.NoError(t, json.Unmarshal(out.Cursors[4], &last))
	assert.Equal(t, map[string]string{"accounts": "2022-08-20T09:32:55Z", "subscriptions": "2022-08-11T08:20:39Z"}, last.Marks,
		"seed transactions have no updated_at: no mark yet")
	for _, r := range fake.reqs {
		assert.Equal(t, Accept, r.Header.Get("Accept"))
	}
	first := fake.reqs[1].URL.Query() // after the 429
	assert.Equal(t, "updated_at", first.Get("sort"))
	assert.Equal(t, "asc", first.Get("order"))
	assert.Empty(t, first.Get("begin_time"))

	// The next sync lists from the marks.
	fake.reqs = nil
	var again sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[4], &again))
	assert.Equal(t, "2022-08-20T09:32:55Z", fake.reqs[0].URL.Query().Get("begin_time"))
	assert.Equal(t, "2022-08-11T08:20:39Z", fake.reqs[1].URL.Query().Get("begin_time"))

	// Resuming inside transactions follows the saved next.
	var txMid cursor
	require.NoError(t, json.Unmarshal(out.Cursors[3], &txMid))
	fake.reqs = nil
	var resumed sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[3], &resumed))
	assert.Equal(t, "/transactions", fake.reqs[0].URL.Path)
	assert.Equal(t, "t2", fake.reqs[0].URL.Query().Get("cursor"))
}

// The key travels with every page request: a next link is followed on the
// configured host only; one naming another host is an error, never a request.
func TestReadFollowsNextOnlyOnTheConfiguredHost(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached another host: %s", r.URL)
	}))
	t.Cleanup(other.Close)
	for _, tc := range []struct {
		name, next string // next: "%s" is the fake's own address
		refused    bool
	}{
		{name: "path", next: "/subscriptions?cursor=s2"},
		{name: "absolute on the configured host", next: "%s/subscriptions?cursor=s2"},
		{name: "another host", next: other.URL + "/subscriptions?cursor=s2", refused: true},
		{name: "the vendor's host while configured elsewhere", next: "https://v3.recurly.com/subscriptions?cursor=s2", refused: true},
		{name: "scheme-relative elsewhere", next: "//" + strings.TrimPrefix(other.URL, "http://") + "/subscriptions?cursor=s2", refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t)
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			next := tc.next
			if strings.Contains(next, "%s") {
				next = fmt.Sprintf(next, srv.URL)
			}
			fake.pages["/subscriptions?"] = page(t, []any{}, next)
			s, err := New(Config{APIKey: testKey, Subdomain: "test", BaseURL: srv.URL, RequestsPerSecond: 1000})
			require.NoError(t, err)
			var out sourcetest.Collector
			err = s.Read(context.Background(), nil, &out)
			if !tc.refused {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "leaves the configured host")
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestReadAuthFailureStopsTheSync(t *testing.T) {
	fake := newFake(t)
	fake.status = http.StatusUnauthorized
	fake.body = `{"error":{"type":"unauthorized","message":"Invalid API key ` + testKey + `"}}`
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.True(t, source.IsAuth(err), "%v", err)
	assert.NotContains(t, err.Error(), testKey)
	assert.Len(t, fake.reqs, 1)
	assert.Empty(t, out.Cursors)
	require.True(t, source.IsAuth(s.Check(context.Background())))
}

func TestFromCredentials(t *testing.T) {
	_, err := FromCredentials(map[string]string{}, source.Env{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"api_key"`)
	assert.Contains(t, err.Error(), `"subdomain"`)

	fake := newFake(t)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"api_key": testKey, "subdomain": "test", "base_url": srv.URL}, sourcetest.Local(t))
	require.NoError(t, err)
	require.NoError(t, s.Check(context.Background()))
	assert.Equal(t, "1", fake.reqs[0].URL.Query().Get("limit"))
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := newFake(t)
	fake.throttleOnce = "/accounts" // a retry is logged
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"api_key": testKey, "subdomain": "test", "base_url": srv.URL}, source.Env{Logger: logger, Egress: sourcetest.Local(t).Egress})
	require.NoError(t, err)
	require.NoError(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	fake.status, fake.body = http.StatusUnauthorized, `{"error":{"message":"bad key `+testKey+`"}}`
	require.Error(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	assert.Contains(t, buf.String(), "retrying request")
	assert.NotContains(t, buf.String(), testKey)
}
