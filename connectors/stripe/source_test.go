package stripe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/connectors/stripe"
)

const apiKey = "sk_test_51PlantedSecretKeyForRedaction0000"

// fakeStripe serves list endpoints the way Stripe pages them (newest first,
// limit, starting_after, created[gte], has_more) over recorded objects, and
// records every request. hook, when set, may answer a request itself.
type fakeStripe struct {
	t     *testing.T
	mu    sync.Mutex
	lists map[string][]json.RawMessage
	reqs  []*url.URL
	hook  func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newFake(t *testing.T) (*fakeStripe, *httptest.Server) {
	f := &fakeStripe{t: t, lists: map[string][]json.RawMessage{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeStripe) add(path string, objs ...json.RawMessage) {
	f.lists[path] = append(f.lists[path], objs...)
	sort.SliceStable(f.lists[path], func(i, j int) bool { return created(f.lists[path][i]) > created(f.lists[path][j]) })
}

func created(raw json.RawMessage) int64 {
	var o struct{ Created json.Number }
	_ = json.Unmarshal(raw, &o)
	n, _ := strconv.ParseFloat(o.Created.String(), 64)
	return int64(n)
}

func (f *fakeStripe) requests(path string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []url.Values
	for _, u := range f.reqs {
		if u.Path == path {
			out = append(out, u.Query())
		}
	}
	return out
}

// stripeError writes Stripe's documented error object.
func stripeError(w http.ResponseWriter, status int, typ, code, msg string, param ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if len(param) > 0 {
		e["param"] = param[0]
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	u := *r.URL
	f.reqs = append(f.reqs, &u)
	n := len(f.reqs)
	f.mu.Unlock()
	if f.hook != nil && f.hook(w, r, n) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		stripeError(w, 401, "invalid_request_error", "", "Invalid API Key provided: "+r.Header.Get("Authorization"))
		return
	}
	q := r.URL.Query()
	objs := f.lists[r.URL.Path]
	if gte := q.Get("created[gte]"); gte != "" {
		since, _ := strconv.ParseInt(gte, 10, 64)
		var kept []json.RawMessage
		for _, o := range objs {
			if created(o) >= since {
				kept = append(kept, o)
			}
		}
		objs = kept
	}
	if after := q.Get("starting_after"); after != "" {
		i := 0
		for i < len(objs) && recordIDOf(objs[i]) != after {
			i++
		}
		if i == len(objs) {
			stripeError(w, 400, "invalid_request_error", "resource_missing", "No such object: '"+after+"'", "starting_after")
			return
		}
		objs = objs[i+1:]
	}
	limit := 10
	if l := q.Get("limit"); l != "" {
		limit, _ = strconv.Atoi(l)
	}
	more := len(objs) > limit
	if more {
		objs = objs[:limit]
	}
	if objs == nil {
		objs = []json.RawMessage{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": objs, "has_more": more, "url": r.URL.Path})
}

func recordIDOf(raw json.RawMessage) string {
	var o struct{ ID string }
	_ = json.Unmarshal(raw, &o)
	return o.ID
}

var streamPaths = map[string]string{
	"customers": "/v1/customers", "invoices": "/v1/invoices", "charges": "/v1/charges", "refunds": "/v1/refunds",
	"credit_notes": "/v1/credit_notes", "disputes": "/v1/disputes", "subscriptions": "/v1/subscriptions",
}

// withSamples loads every sample record of the native streams.
func withSamples(t *testing.T, f *fakeStripe) {
	for stream, path := range streamPaths {
		f.add(path, streamRecords(t, stream)...)
	}
}

func newSource(t *testing.T, baseURL string, edit ...func(*stripe.Config)) (*stripe.Source, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg := stripe.Config{
		APIKey: apiKey, BaseURL: baseURL, PageSize: 2, RequestsPerSecond: 1000,
		NetworkRetries: -1, RetryWait: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := stripe.New(cfg)
	require.NoError(t, err)
	return s, &logs
}

func idsOf(m *sourcetest.Collector) map[string]bool {
	out := map[string]bool{}
	for _, ev := range m.Events {
		out[ev.ID] = true
	}
	return out
}

func cursorOf(t *testing.T, c source.Cursor) stripe.Cursor {
	t.Helper()
	var cur stripe.Cursor
	require.NoError(t, json.Unmarshal(c, &cur))
	return cur
}

func TestReadPagesIncrementally(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	s, logs := newSource(t, srv.URL)

	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Empty(t, out.Skipped)

	// The same events as the Mapper gives over the same records.
	want := map[string]bool{}
	for stream := range streamPaths {
		for _, raw := range streamRecords(t, stream) {
			evs, err := stripe.Mapper{}.Map(stream, raw)
			require.NoError(t, err)
			for _, ev := range evs {
				want[ev.ID] = true
			}
		}
	}
	assert.Equal(t, want, idsOf(&out))
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate())
	}
	// Pages of two: every page is an Emit with a cursor.
	assert.Equal(t, len(out.Cursors), out.Calls)
	assert.Equal(t, 11, out.Calls, "customers 2, invoices 2, charges 2, refunds 2, and one page each for the rest")

	reqs := f.requests("/v1/invoices")
	require.Len(t, reqs, 2, "three invoices in pages of two")
	assert.Empty(t, reqs[0].Get("created[gte]"), "no cursor, no start: everything")
	assert.Equal(t, "2", reqs[0].Get("limit"))
	assert.Equal(t, "in_1MX2yFEcXtiJtvvhMXhUCgKx", reqs[1].Get("starting_after"), "newest first; resumes after the last one read")
	assert.Equal(t, "data.charge", f.requests("/v1/refunds")[0].Get("expand[0]"))
	assert.Equal(t, "all", f.requests("/v1/subscriptions")[0].Get("status"))

	cur := cursorOf(t, out.LastCursor())
	assert.Equal(t, stripe.StreamCursor{Since: 1675345605}, *cur["invoices"], "the newest invoice's created")
	assert.Equal(t, stripe.StreamCursor{Since: 1692782173}, *cur["refunds"])
	assert.Equal(t, stripe.StreamCursor{}, *cur["subscriptions"], "listed whole every time")
	assert.NotContains(t, logs.String(), apiKey)

	// The next sync lists from the watermark: only the boundary second again,
	// whose ids are the same events.
	var again sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.LastCursor(), &again))
	reqs = f.requests("/v1/invoices")
	assert.Equal(t, "1675345605", reqs[len(reqs)-1].Get("created[gte]"))
	for id := range idsOf(&again) {
		assert.True(t, want[id], "%s repeats an earlier event", id)
	}
	assert.Less(t, len(again.Events), len(out.Events))
}

func TestReadResumesFromTheLastSavedPage(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	s, _ := newSource(t, srv.URL)

	// Customers: 3 in pages of 2 (emits 1 and 2); invoices page 1 is emit 3.
	first := sourcetest.Collector{FailAt: 4}
	err := s.Read(context.Background(), nil, &first)
	require.ErrorIs(t, err, sourcetest.ErrEmit)
	saved := first.LastCursor()
	cur := cursorOf(t, saved)
	require.Equal(t, "in_1MX2yFEcXtiJtvvhMXhUCgKx", cur["invoices"].After)

	var rest sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), saved, &rest))
	reqs := f.requests("/v1/invoices")
	assert.Equal(t, "in_1MX2yFEcXtiJtvvhMXhUCgKx", reqs[len(reqs)-1].Get("starting_after"))
	all := idsOf(&first)
	for id := range idsOf(&rest) {
		all[id] = true
	}
	assert.True(t, idsOf(&rest)["in_1K9GK0EcXtiJtvvhSo2LvGqT/il_1K9GKLEcXtiJtvvhhHaYMebN"], "the page that failed to emit is read again")
	assert.Len(t, all, 14, "every event of the samples, once the two reads are joined")
}

func TestReadRelistsWhenTheResumePointIsGone(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	s, _ := newSource(t, srv.URL)
	cursor := json.RawMessage(`{"invoices":{"after":"in_deleted","high":1675345605}}`)
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), cursor, &out))
	assert.True(t, idsOf(&out)["in_1MX37hEcXtiJtvvhRSl1KbQm/il_1MX384EcXtiJtvvh3j2K123f"])
}

func TestWatermarkHeldByAnOpenInvoice(t *testing.T) {
	f, srv := newFake(t)
	open := with(t, sample(t, "invoices", "in_1MX37hEcXtiJtvvhRSl1KbQm"), map[string]any{"id": "in_open", "status": "open", "created": 1675000000})
	f.add("/v1/invoices", append(streamRecords(t, "invoices"), open)...)
	s, _ := newSource(t, srv.URL, func(c *stripe.Config) { c.Lookback = 100 * 365 * 24 * time.Hour })
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Equal(t, int64(1675000000), cursorOf(t, out.LastCursor())["invoices"].Since, "the next sync sees the open invoice again")

	// Past the lookback the open invoice no longer holds the watermark back.
	s, _ = newSource(t, srv.URL, func(c *stripe.Config) { c.Lookback = time.Hour })
	out = sourcetest.Collector{}
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Equal(t, int64(1675345605), cursorOf(t, out.LastCursor())["invoices"].Since)
}

func TestStartBoundsTheFirstSync(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	s, _ := newSource(t, srv.URL, func(c *stripe.Config) { c.Start = time.Unix(1675345000, 0) })
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Equal(t, "1675345000", f.requests("/v1/invoices")[0].Get("created[gte]"))
	ids := idsOf(&out)
	assert.True(t, ids["in_1MX37hEcXtiJtvvhRSl1KbQm/il_1MX384EcXtiJtvvh3j2K123f"])
	assert.False(t, ids["in_1K9GK0EcXtiJtvvhSo2LvGqT/il_1K9GKLEcXtiJtvvhhHaYMebN"], "created before Start")
}

func TestEmptyAccount(t *testing.T) {
	_, srv := newFake(t)
	s, _ := newSource(t, srv.URL, func(c *stripe.Config) { c.Start = time.Unix(1700000000, 0) })
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Empty(t, out.Events)
	assert.Equal(t, 7, out.Calls, "one empty page per stream, each saving the cursor")
	assert.Equal(t, int64(1700000000), cursorOf(t, out.LastCursor())["charges"].Since)
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	f, srv := newFake(t)
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			stripeError(w, http.StatusTooManyRequests, "invalid_request_error", "rate_limit",
				"Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.")
			return true
		}
		return false
	}
	s, logs := newSource(t, srv.URL)
	start := time.Now()
	require.NoError(t, s.Check(context.Background()))
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "waited Retry-After, not the 1 ms backoff")
	assert.Len(t, f.requests("/v1/customers"), 2)
	assert.Contains(t, logs.String(), "rate limited")
}

func TestRateLimitGivesUp(t *testing.T) {
	f, srv := newFake(t)
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		stripeError(w, http.StatusTooManyRequests, "invalid_request_error", "rate_limit", "Request rate limit exceeded.")
		return true
	}
	s, _ := newSource(t, srv.URL, func(c *stripe.Config) { c.Retries = 2 })
	err := s.Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "429")
	assert.Len(t, f.requests("/v1/customers"), 3)
}

func TestAuthFailureStopsTheSync(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	// A rejecting server that echoes the whole key back: nothing of it may
	// reach the error or the logs.
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == "/v1/invoices" {
			stripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided: "+apiKey)
			return true
		}
		return false
	}
	s, logs := newSource(t, srv.URL)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.Error(t, err)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.Equal(t, http.StatusUnauthorized, auth.Status)
	assert.NotContains(t, err.Error(), apiKey)
	assert.Contains(t, err.Error(), "[redacted]")
	assert.NotContains(t, logs.String(), apiKey)
	assert.Len(t, f.requests("/v1/invoices"), 1, "not retried")
	assert.Empty(t, f.requests("/v1/charges"), "the sync stopped")
	assert.Equal(t, 2, out.Calls, "the customers read before it were kept")

	// Check reports it too.
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		stripeError(w, http.StatusForbidden, "invalid_request_error", "", "The provided key '"+apiKey+"' does not have access to account")
		return true
	}
	err = s.Check(context.Background())
	require.True(t, source.IsAuth(err))
	assert.NotContains(t, err.Error(), apiKey)
}

func TestServerErrorsAfterRetries(t *testing.T) {
	f, srv := newFake(t)
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		stripeError(w, http.StatusInternalServerError, "api_error", "", "An unknown error occurred with key "+apiKey)
		return true
	}
	s, _ := newSource(t, srv.URL, func(c *stripe.Config) { c.Retries = 1 })
	err := s.Check(context.Background())
	require.Error(t, err)
	assert.False(t, source.IsAuth(err))
	assert.Contains(t, err.Error(), "HTTP 500")
	assert.NotContains(t, err.Error(), apiKey)
	assert.Len(t, f.requests("/v1/customers"), 2, "retried once")
}

func TestMalformedRecordIsSkippedAndTheSyncGoesOn(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	bad := with(t, sample(t, "invoices", "in_1MX37hEcXtiJtvvhRSl1KbQm"), map[string]any{"id": "in_bad", "currency": "dollars"})
	f.add("/v1/invoices", bad, json.RawMessage(`"garbage"`))
	s, _ := newSource(t, srv.URL)
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	require.Len(t, out.Skipped, 2, "%v", out.Skipped)
	require.Contains(t, out.Skipped, "invoices in_bad")
	assert.Contains(t, out.Skipped["invoices in_bad"].Error(), "currency")
	var noID string
	for k := range out.Skipped {
		if k != "invoices in_bad" {
			noID = k
		}
	}
	assert.Regexp(t, `^invoices page \d item \d$`, noID)
	ids := idsOf(&out)
	assert.True(t, ids["in_1MX37hEcXtiJtvvhRSl1KbQm/il_1MX384EcXtiJtvvh3j2K123f"], "the rest of the page and sync were kept")
	assert.True(t, ids["re_3MngeoEcXtiJtvvh0c4KeMOd"])
}

func TestMalformedPageStopsWithTheCursorSaved(t *testing.T) {
	f, srv := newFake(t)
	withSamples(t, f)
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == "/v1/charges" {
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"ch_1"`))
			return true
		}
		return false
	}
	s, _ := newSource(t, srv.URL)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "charges")
	cur := cursorOf(t, out.LastCursor())
	assert.Equal(t, int64(1675345605), cur["invoices"].Since, "streams read before the bad page keep their progress")
	assert.Nil(t, cur["charges"])
}

// API 2025-03-31.basil charges say nothing of invoices: the source asks
// /v1/invoice_payments by payment intent before mapping.
func TestBasilChargesAreLinkedToTheirInvoice(t *testing.T) {
	f, srv := newFake(t)
	base := with(t, sample(t, "charges", "ch_3K9FSOEcXtiJtvvh0zxb7clc"), map[string]any{"invoice": del})
	paysInvoice := with(t, base, map[string]any{"id": "ch_pays_invoice", "payment_intent": "pi_invoice"})
	standalone := with(t, base, map[string]any{"id": "ch_standalone", "payment_intent": "pi_standalone"})
	f.add("/v1/charges", paysInvoice, standalone)
	payment := with(t, stripeMockResource(t, "invoice_payment"), map[string]any{"invoice": "in_paid_by_charge", "payment": map[string]any{"type": "payment_intent", "payment_intent": "pi_invoice"}})
	f.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != "/v1/invoice_payments" {
			return false
		}
		data := []json.RawMessage{}
		if r.URL.Query().Get("payment[payment_intent]") == "pi_invoice" {
			data = append(data, payment)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "has_more": false})
		return true
	}
	s, _ := newSource(t, srv.URL)
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Empty(t, out.Skipped)
	assert.Equal(t, map[string]bool{"ch_standalone": true}, idsOf(&out))
	reqs := f.requests("/v1/invoice_payments")
	require.Len(t, reqs, 2)
	assert.Equal(t, "payment_intent", reqs[0].Get("payment[type]"))
}

// An invoice with more lines than the list embeds: the source fetches them
// all, so the events are the real lines rather than a remainder.
func TestInvoiceLinesBeyondTheFirstPage(t *testing.T) {
	f, srv := newFake(t)
	inv := testdata(t, "invoice_basil_paid.json")
	var obj map[string]any
	require.NoError(t, json.Unmarshal(inv, &obj))
	lines := obj["lines"].(map[string]any)["data"].([]any)
	var rawLines []json.RawMessage
	for _, l := range lines {
		b, _ := json.Marshal(l)
		rawLines = append(rawLines, b)
	}
	truncated := with(t, inv, map[string]any{"lines": map[string]any{"object": "list", "data": lines[:1], "has_more": true, "url": "/v1/invoices/in_basil_paid/lines"}})
	f.add("/v1/invoices", truncated)
	f.lists["/v1/invoices/in_basil_paid/lines"] = rawLines // Stripe's line order
	s, _ := newSource(t, srv.URL)
	var out sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.Equal(t, map[string]bool{
		"in_basil_paid/il_basil_unused": true, "in_basil_paid/il_basil_remaining": true, "in_basil_paid/il_basil_setup": true,
	}, idsOf(&out))
	assert.Equal(t, "47.50", sum(out.Events).StringFixed(2))
	assert.Len(t, f.requests("/v1/invoices/in_basil_paid/lines"), 1, "100 a page")
}

func TestConfigAndCredentials(t *testing.T) {
	_, err := stripe.FromCredentials(map[string]string{"base_url": "http://127.0.0.1:1"}, sourcetest.Local(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "api_key")

	s, err := stripe.FromCredentials(map[string]string{"api_key": apiKey}, source.Env{})
	require.NoError(t, err)
	require.NotNil(t, s)

	_, err = stripe.New(stripe.Config{BaseURL: "api.stripe.com", PageSize: 500})
	require.Error(t, err)
	for _, s := range []string{"api_key is required", "absolute http(s) URL", "page size 500"} {
		assert.Contains(t, err.Error(), s)
	}

	// Nothing listens on this port: a network error, without the key.
	_, srvURL := func() (*httptest.Server, string) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		return srv, u
	}()
	src, _ := newSource(t, srvURL)
	err = src.Check(context.Background())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), apiKey)
	assert.Contains(t, fmt.Sprint(err), "/v1/customers")
}
