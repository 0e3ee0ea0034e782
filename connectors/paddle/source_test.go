package paddle

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

const testKey = "pdl_live_apikey_01h8441jn5pcwrfhw"

// fakePaddle serves the Paddle SDK's recorded list answers
// (sourcetest's paddle/python-sdk/*__list_default.json, verbatim or split
// into pages with their own meta.pagination shape); pages are chosen by the
// "after" query parameter.
type fakePaddle struct {
	t            *testing.T
	pages        map[string]map[string]string // resource → after → body
	mu           sync.Mutex
	reqs         []*http.Request
	throttleOnce string
	throttled    bool
	status       int
	body         string
}

func (f *fakePaddle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	throttle := !f.throttled && r.URL.Path == "/"+f.throttleOnce
	if throttle {
		f.throttled = true
	}
	f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if throttle {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	body, ok := f.pages[strings.TrimPrefix(r.URL.Path, "/")][r.URL.Query().Get("after")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(sourcetest.Samples(t, "paddle", "python-sdk", name))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func listBody(t *testing.T, resource string, data []any, after string, hasMore bool) string {
	return string(sourcetest.MustJSON(t, map[string]any{"data": data, "meta": map[string]any{
		"request_id": "test",
		"pagination": map[string]any{"per_page": 50, "next": "https://api.paddle.com/" + resource + "?after=" + after,
			"has_more": hasMore, "estimated_total": len(data)},
	}}))
}

func newFake(t *testing.T) *fakePaddle {
	txs := fixture(t, "Transactions__list_default.json")["data"].([]any)
	bad := sampleObject(t, "transactions", "txn_01h857x99rw3vy424gsy6bgtfs")
	bad["id"] = "txn_01h857x99rw3vy424gsy6bgbad"
	bad["details"].(map[string]any)["totals"].(map[string]any)["total"] = "four hundred"
	adjustments, err := os.ReadFile(sourcetest.Samples(t, "paddle", "python-sdk", "Adjustments__list_default.json"))
	require.NoError(t, err)
	adj := strings.Replace(string(adjustments), `"has_more": false`, `"has_more": true`, 1)
	customers, err := os.ReadFile(sourcetest.Samples(t, "paddle", "python-sdk", "Customers__list_default.json"))
	require.NoError(t, err)
	return &fakePaddle{t: t, pages: map[string]map[string]string{
		"customers": {"": string(customers)},
		"subscriptions": {"": listBody(t, "subscriptions",
			[]any{fixture(t, "Subscriptions__full_entity.json")["data"]}, "sub_01hp463gxfvndqjjyqn2n7tkth", false)},
		"transactions": {
			"":                               listBody(t, "transactions", txs[:3], "txn_01h8bh19ag3brhyvakme2c91pa", true),
			"txn_01h8bh19ag3brhyvakme2c91pa": listBody(t, "transactions", append([]any{bad}, txs[3:]...), "txn_01h69ddtrb11km0wk46dn607ya", false),
		},
		"adjustments": {
			"":                               adj,
			"adj_01h468w41ttb2j2bh8av74gwt1": listBody(t, "adjustments", []any{}, "adj_01h468w41ttb2j2bh8av74gwt1", false),
		},
	}}
}

func newTestSource(t *testing.T, h http.Handler) *Source {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := New(Config{APIKey: testKey, VendorID: "10889", BaseURL: srv.URL, RequestsPerSecond: 1000,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	require.NoError(t, err)
	return s
}

func TestReadPaginatesSkipsAndResumes(t *testing.T) {
	fake := newFake(t)
	fake.throttleOnce = "transactions"
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	start := time.Now()
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 was honoured")
	sourcetest.RequireValid(t, out.Events)

	money := map[string]string{}
	for _, ev := range out.Events {
		if ev.Data.Amount != nil && !ev.Data.Void {
			money[ev.ID] = ev.Data.Kind + " " + ev.Data.Amount.StringFixed(2) + " " + ev.Data.Currency
		}
	}
	assert.Equal(t, map[string]string{
		// page 2 of transactions: the one completed transaction
		"transaction/txn_01h857x99rw3vy424gsy6bgtfs/txnitm_01h857x9nvtq3vmc89yccnxym6": "invoice_paid 100.00 USD",
		"transaction/txn_01h857x99rw3vy424gsy6bgtfs/txnitm_01h857x9nvtq3vmc89ydbye62d": "invoice_paid 300.00 USD",
		// approved credits of the adjustments page
		"adjustment/adj_01h7jgzjqt2s8sab70e03ptkhv": "credit_note -719.84 USD",
		"adjustment/adj_01h7jf6ptkfsc93hzc20fgf8wy": "credit_note -359.86 USD",
	}, money)
	require.Len(t, out.Skipped, 1)
	for name, reason := range out.Skipped {
		assert.Equal(t, "transaction txn_01h857x99rw3vy424gsy6bgbad (page 2 item 0)", name)
		assert.ErrorContains(t, reason, "details.totals.total")
	}

	// Pages: customers, subscriptions, transactions ×2, adjustments ×2
	// (the second empty). The 429 was retried.
	require.Len(t, out.Cursors, 6)
	var mid cursor
	require.NoError(t, json.Unmarshal(out.Cursors[2], &mid))
	assert.Equal(t, "transactions", mid.Resource)
	assert.Equal(t, "txn_01h8bh19ag3brhyvakme2c91pa", mid.After, "only the after of Paddle's absolute next link")
	var last cursor
	require.NoError(t, json.Unmarshal(out.Cursors[5], &last))
	assert.Equal(t, cursor{Marks: map[string]string{"transactions": "2023-08-21T08:54:11.273239Z"}}, last)
	var txCalls int
	for _, r := range fake.reqs {
		if r.URL.Path == "/transactions" {
			txCalls++
		}
		assert.Equal(t, "50", r.URL.Query().Get("per_page"))
	}
	assert.Equal(t, 3, txCalls, "429, page 1, page 2")

	// The next sync filters transactions from the mark, the rest is read whole.
	fake.reqs = nil
	var again sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[5], &again))
	for _, r := range fake.reqs {
		want := ""
		if r.URL.Path == "/transactions" {
			want = "2023-08-21T08:54:11.273239Z"
		}
		assert.Equal(t, want, r.URL.Query().Get("updated_at[GTE]"), r.URL.Path)
	}

	// Resuming inside transactions asks for the saved page first.
	fake.reqs = nil
	var resumed sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[2], &resumed))
	assert.Equal(t, "/transactions", fake.reqs[0].URL.Path)
	assert.Equal(t, "txn_01h8bh19ag3brhyvakme2c91pa", fake.reqs[0].URL.Query().Get("after"))
}

func TestReadAuthFailureStopsTheSync(t *testing.T) {
	fake := newFake(t)
	fake.status = http.StatusUnauthorized
	fake.body = `{"error":{"type":"request_error","code":"authentication_malformed","detail":"Authentication header included, but incorrectly formatted: Bearer ` + testKey + `"},"meta":{"request_id":"x"}}`
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.True(t, source.IsAuth(err), "%v", err)
	assert.NotContains(t, err.Error(), testKey)
	assert.Len(t, fake.reqs, 1)
	assert.Empty(t, out.Cursors)
	require.True(t, source.IsAuth(s.Check(context.Background())))
}

func TestCheck(t *testing.T) {
	fake := newFake(t)
	s := newTestSource(t, fake)
	require.NoError(t, s.Check(context.Background()))
	assert.Equal(t, "1", fake.reqs[0].URL.Query().Get("per_page"))
}

func TestFromCredentials(t *testing.T) {
	_, err := FromCredentials(map[string]string{}, source.Env{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"api_key"`)
	assert.Contains(t, err.Error(), `"vendor_id"`)

	_, err = FromCredentials(map[string]string{"api_key": testKey}, source.Env{})
	require.ErrorContains(t, err, `"vendor_id"`)
	assert.NotContains(t, err.Error(), testKey)

	fake := newFake(t)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"api_key": testKey, "vendor_id": "10889", "base_url": srv.URL}, sourcetest.Local(t))
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
	s, err := FromCredentials(map[string]string{"api_key": testKey, "vendor_id": "10889", "base_url": srv.URL}, source.Env{Logger: logger, Egress: sourcetest.Local(t).Egress})
	require.NoError(t, err)
	require.NoError(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	fake.status, fake.body = http.StatusUnauthorized, `{"error":{"detail":"bad key `+testKey+`"}}`
	require.Error(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	assert.Contains(t, buf.String(), "retrying request")
	assert.NotContains(t, buf.String(), testKey)
}
