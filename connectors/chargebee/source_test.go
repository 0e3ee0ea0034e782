package chargebee

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

const testKey = "test_cbKey9f8e7d6c5b4a"

// fakeChargebee serves Chargebee list answers built from the real Airbyte
// sample records. The list envelope {"list":[{"<object>":{…}}],
// "next_offset":"…"} is Chargebee API v2's, as in chargebee/chargebee-go
// tests/sample_data.go (listSubscription) and its ResultList.NextOffset; the
// query parameters (limit, offset, include_deleted, updated_at[after]) are
// those airbyte source-chargebee sends (unit_tests/test_streams.py).
type fakeChargebee struct {
	t     *testing.T
	pages map[string][]string // resource → bodies, page i answered for offset "p<i>"
	mu    sync.Mutex
	reqs  []*http.Request
	// throttleOnce answers 429 with Retry-After: 1 to the first request for it.
	throttleOnce string
	throttled    bool
	status       int // when set, every answer has this status and body
	body         string
}

func (f *fakeChargebee) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	throttle := !f.throttled && strings.HasSuffix(r.URL.Path, "/"+f.throttleOnce)
	if throttle {
		f.throttled = true
	}
	f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != testKey || pass != "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if throttle {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	res := strings.TrimPrefix(r.URL.Path, "/api/v2/")
	pages, ok := f.pages[res]
	if !ok {
		http.NotFound(w, r)
		return
	}
	i := 0
	if off := r.URL.Query().Get("offset"); off != "" {
		var err error
		i, err = strconv.Atoi(strings.TrimPrefix(off, "p"))
		require.NoError(f.t, err)
	}
	_, _ = w.Write([]byte(pages[i]))
}

// page wraps sample records of object in a list answer; next is "" on the
// last page.
func page(t *testing.T, object string, records []map[string]any, next string) string {
	t.Helper()
	list := make([]map[string]any, len(records))
	for i, r := range records {
		list[i] = map[string]any{object: r}
	}
	body := map[string]any{"list": list}
	if next != "" {
		body["next_offset"] = next
	}
	return string(sourcetest.MustJSON(t, body))
}

func newFake(t *testing.T) *fakeChargebee {
	malformed := sampleObject(t, "credit_note", "TEST-CN-6")
	malformed["total"] = "two hundred"
	return &fakeChargebee{t: t, pages: map[string][]string{
		"customers": {page(t, "customer", []map[string]any{
			sampleObject(t, "customer", "Customer-5"), sampleObject(t, "customer", "cbdemo_simon"),
		}, "")},
		"subscriptions": {page(t, "subscription", []map[string]any{sampleObject(t, "subscription", "AzZTZgTTHdIU1NP")}, "")},
		"invoices": {
			page(t, "invoice", []map[string]any{sampleObject(t, "invoice", "cbdemo_inv_003"), sampleObject(t, "invoice", "23")}, "p1"),
			page(t, "invoice", []map[string]any{sampleObject(t, "invoice", "24")}, ""),
		},
		"credit_notes": {
			page(t, "credit_note", []map[string]any{sampleObject(t, "credit_note", "TEST-CN-5"), malformed, sampleObject(t, "credit_note", "TEST-CN-7")}, "p1"),
			`{"list":[]}`, // an empty last page
		},
	}}
}

func newTestSource(t *testing.T, h http.Handler) *Source {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := New(Config{APIKey: testKey, BaseURL: srv.URL, RequestsPerSecond: 1000,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	require.NoError(t, err)
	return s
}

func TestReadPaginatesSkipsAndResumes(t *testing.T) {
	fake := newFake(t)
	fake.throttleOnce = "subscriptions"
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	start := time.Now()
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 was honoured")
	sourcetest.RequireValid(t, out.Events)

	ids := map[string]bool{}
	for _, ev := range out.Events {
		ids[ev.ID] = true
	}
	for _, id := range []string{
		"customer/Customer-5", "customer/cbdemo_simon",
		"subscription/AzZTZgTTHdIU1NP/started", "subscription/AzZTZgTTHdIU1NP/canceled",
		"invoice/cbdemo_inv_003/li_AzZlweSefvesUUyx", "invoice/23/li_AzZTZgTTHdIUcNR", // page 1
		"invoice/24/li_6olOsTTHieXBYC", // page 2
		"credit_note/TEST-CN-5", "credit_note/TEST-CN-7",
	} {
		assert.True(t, ids[id], "missing %s", id)
	}
	assert.False(t, ids["credit_note/TEST-CN-6"])
	require.Len(t, out.Skipped, 1)
	for name, reason := range out.Skipped {
		assert.Contains(t, name, "credit_note TEST-CN-6")
		assert.Contains(t, reason.Error(), "credit_note")
	}

	// One Emit per page: customers, subscriptions, invoices ×2, credit notes ×2.
	require.Len(t, out.Cursors, 6)
	var mid cursor
	require.NoError(t, json.Unmarshal(out.Cursors[2], &mid))
	assert.Equal(t, cursor{After: map[string]int64{"customers": 1678987385, "subscriptions": 1678806943},
		Resource: "invoices", Offset: "p1", Max: 1674035428}, mid)
	var last cursor
	require.NoError(t, json.Unmarshal(out.Cursors[5], &last))
	assert.Equal(t, map[string]int64{"customers": 1678987385, "subscriptions": 1678806943,
		"invoices": 1674036524, "credit_notes": 1676456650}, last.After)

	// Requests: basic auth checked by the fake; the 429 retried once.
	var subs int
	for _, r := range fake.reqs {
		if strings.HasSuffix(r.URL.Path, "/subscriptions") {
			subs++
		}
		assert.Equal(t, "true", r.URL.Query().Get("include_deleted"))
		assert.Equal(t, "100", r.URL.Query().Get("limit"))
		assert.Empty(t, r.URL.Query().Get("updated_at[after]"), "first sync reads everything")
	}
	assert.Equal(t, 2, subs)

	// The next sync starts from the saved marks, one second early.
	fake.reqs = nil
	var again sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[5], &again))
	for _, r := range fake.reqs {
		res := strings.TrimPrefix(r.URL.Path, "/api/v2/")
		assert.Equal(t, map[string]string{"customers": "1678987384", "subscriptions": "1678806942",
			"invoices": "1674036523", "credit_notes": "1676456649"}[res], r.URL.Query().Get("updated_at[after]"), res)
	}
}

func TestReadResumesInsideAResource(t *testing.T) {
	fake := newFake(t)
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	resume := `{"after":{"customers":1678987385,"subscriptions":1678806943},"resource":"invoices","offset":"p1","max":1674035428}`
	require.NoError(t, s.Read(context.Background(), source.Cursor(resume), &out))
	require.NotEmpty(t, fake.reqs)
	first := fake.reqs[0]
	assert.Equal(t, "/api/v2/invoices", first.URL.Path, "customers and subscriptions were done")
	assert.Equal(t, "p1", first.URL.Query().Get("offset"))
	assert.Empty(t, first.URL.Query().Get("updated_at[after]"), "invoices had no mark yet")
	var ids []string
	for _, ev := range out.Events {
		ids = append(ids, ev.ID)
	}
	assert.NotContains(t, ids, "invoice/23/li_AzZTZgTTHdIUcNR", "page 1 was already emitted")
	assert.Contains(t, ids, "invoice/24/li_6olOsTTHieXBYC")
}

func TestReadAuthFailureStopsTheSync(t *testing.T) {
	fake := newFake(t)
	// A planted secret in the answer must not reach the error.
	fake.status, fake.body = http.StatusUnauthorized, `{"message":"Sorry, authentication failed. Invalid api key `+testKey+`","http_status_code":401}`
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.True(t, source.IsAuth(err), "%v", err)
	assert.NotContains(t, err.Error(), testKey)
	assert.Len(t, fake.reqs, 1, "no retry, no further resource")
	assert.Empty(t, out.Events)
	assert.Empty(t, out.Cursors)

	require.True(t, source.IsAuth(s.Check(context.Background())))
}

func TestReadStopsWhenEmitFails(t *testing.T) {
	fake := newFake(t)
	s := newTestSource(t, fake)
	out := sourcetest.Collector{FailAt: 1}
	err := s.Read(context.Background(), nil, &out)
	require.ErrorIs(t, err, sourcetest.ErrEmit)
	assert.Len(t, fake.reqs, 1)
}

func TestCheck(t *testing.T) {
	fake := newFake(t)
	s := newTestSource(t, fake)
	require.NoError(t, s.Check(context.Background()))
	assert.Equal(t, "1", fake.reqs[0].URL.Query().Get("limit"))
}

func TestFromCredentials(t *testing.T) {
	_, err := FromCredentials(map[string]string{}, source.Env{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"api_key"`)
	assert.Contains(t, err.Error(), `"site"`)

	_, err = FromCredentials(map[string]string{"api_key": testKey}, source.Env{})
	require.ErrorContains(t, err, `"site"`)
	assert.NotContains(t, err.Error(), testKey)

	_, err = FromCredentials(map[string]string{"api_key": testKey, "site": "acme.chargebee.com"}, source.Env{})
	require.ErrorContains(t, err, "bare site name")

	s, err := FromCredentials(map[string]string{"api_key": testKey, "site": "acme"}, source.Env{})
	require.NoError(t, err)
	assert.Equal(t, "https://acme.chargebee.com", s.BaseURL(), "site names the API host")

	fake := newFake(t)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err = FromCredentials(map[string]string{"api_key": testKey, "site": "acme", "base_url": srv.URL}, sourcetest.Local(t))
	require.NoError(t, err)
	require.NoError(t, s.Check(context.Background()))
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := newFake(t)
	fake.throttleOnce = "customers" // a retry is logged
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"api_key": testKey, "site": "acme", "base_url": srv.URL}, source.Env{Logger: logger, Egress: sourcetest.Local(t).Egress})
	require.NoError(t, err)
	require.NoError(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	fake.status, fake.body = http.StatusUnauthorized, `{"message":"bad key `+testKey+`"}`
	require.Error(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	assert.Contains(t, buf.String(), "retrying request")
	assert.NotContains(t, buf.String(), testKey)
}
