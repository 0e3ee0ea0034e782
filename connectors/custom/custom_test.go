package custom_test

// The custom source reads the user's own API, so its fixtures are shaped
// like a typical paginated JSON API (records under "data", a cursor, page
// numbers, offsets or a Link header). That is the contract here, not a
// vendor payload.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/custom"
	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const apiKey = "cust-planted-secret-1234567890"

const usageMapping = `
version: 1
source: acme-billing
streams:
  custom-usage:
    - type: usage
      id: {path: id}
      time: {path: timestamp}
      customer: {external_id: {path: customer_id}}
      feature: {path: metric}
      quantity: {path: quantity}
      unit: {const: calls}
`

const revenueMapping = `
version: 1
source: acme-billing
streams:
  payments:
    - type: revenue
      filter: [{path: status, equals: paid}]
      id: {path: id}
      time: {path: created, format: unix}
      customer: {external_id: {path: account}}
      kind: {const: charge}
      amount: {path: amount_cents, units: minor}
      currency: {path: currency}
`

// record i of the fake API: deterministic quantity i+1, customers c0..c2.
func record(i int) map[string]any {
	return map[string]any{
		"id": fmt.Sprintf("u_%03d", i), "customer_id": fmt.Sprintf("c%d", i%3), "metric": "api_calls",
		"quantity": i + 1, "timestamp": time.Date(2026, 11, 1, 0, i, 0, 0, time.UTC).Format(time.RFC3339),
	}
}

const total = 25 // records served by every pagination style

type api struct {
	t        *testing.T
	mu       sync.Mutex
	requests []*http.Request
	handle   func(w http.ResponseWriter, r *http.Request)
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, r)
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+apiKey && r.Header.Get("X-Api-Key") != apiKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"bad key ` + r.Header.Get("Authorization") + `"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	a.handle(w, r)
}

func slice(from, to int) []map[string]any {
	var out []map[string]any
	for i := from; i < to && i < total; i++ {
		out = append(out, record(i))
	}
	return out
}

func write(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	_, _ = w.Write(b)
}

// styles serve the same 25 records, 10 per page, in each pagination style.
var styles = map[string]func(w http.ResponseWriter, r *http.Request){
	custom.PageCursor: func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		var next any
		if from+10 < total {
			next = strconv.Itoa(from + 10)
		}
		write(w, map[string]any{"data": slice(from, from+10), "next_cursor": next})
	},
	custom.PagePage: func(w http.ResponseWriter, r *http.Request) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		size, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		write(w, map[string]any{"data": slice((p-1)*size, p*size)})
	},
	custom.PageOffset: func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		write(w, map[string]any{"data": slice(off, off+limit)})
	},
	custom.PageLink: func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		if from+10 < total {
			w.Header().Add("Link", fmt.Sprintf(`<%s?account_id=acct_9&from=%d>; rel="next", <%s?from=0>; rel="first"`, r.URL.Path, from+10, r.URL.Path))
		}
		write(w, slice(from, from+10)) // the body is the array itself
	},
	"link-json": func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		var next any
		if from+10 < total {
			next = fmt.Sprintf("http://%s%s?from=%d", r.Host, r.URL.Path, from+10)
		}
		write(w, map[string]any{"items": slice(from, from+10), "links": map[string]any{"next": next}})
	},
}

func newSource(t *testing.T, a *api, cfg custom.Config) *custom.Source {
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	cfg.BaseURL, cfg.APIKey = srv.URL, apiKey
	if cfg.Mapping == nil {
		m, err := mapping.Parse([]byte(usageMapping))
		require.NoError(t, err)
		cfg.Mapping = m
	}
	cfg.RequestsPerSecond, cfg.RetryWaitMin, cfg.RetryWaitMax = 1000, time.Millisecond, 5*time.Millisecond
	src, err := custom.New(cfg)
	require.NoError(t, err)
	return src
}

func TestPaginationStyles(t *testing.T) {
	want := decimal.Zero
	for i := 0; i < total; i++ {
		want = want.Add(decimal.NewFromInt(int64(i + 1)))
	}
	for style, handler := range styles {
		t.Run(style, func(t *testing.T) {
			a := &api{t: t, handle: handler}
			cfg := custom.Config{Path: "/v1/usage", RecordsPath: "data", Pagination: style, PageSize: 10, AccountID: "acct_9"}
			switch style {
			case custom.PageLink:
				cfg.RecordsPath = ""
			case "link-json":
				cfg.Pagination, cfg.RecordsPath, cfg.NextURLPath = custom.PageLink, "items", "links.next"
			}
			out := &sourcetest.Collector{}
			require.NoError(t, newSource(t, a, cfg).Read(context.Background(), nil, out))
			assert.Empty(t, out.Skipped)
			require.Len(t, out.Events, total)
			sum := decimal.Zero
			ids := map[string]bool{}
			for _, ev := range out.Events {
				require.NoError(t, ev.Validate())
				assert.Equal(t, "acme-billing", ev.Source)
				sum = sum.Add(*ev.Data.Quantity)
				ids[ev.ID] = true
			}
			assert.Len(t, ids, total)
			assert.True(t, want.Equal(sum), "sum %s, want %s", sum, want)
			assert.Len(t, a.requests, 3, "10 + 10 + 5")
			assert.Equal(t, "acct_9", a.requests[0].URL.Query().Get("account_id"))
			// Between pages the cursor points at the next page; after the
			// last it keeps only the latest event time.
			var mid, last map[string]string
			require.NoError(t, json.Unmarshal(out.Cursors[0], &mid))
			assert.NotEmpty(t, mid["next"])
			require.NoError(t, json.Unmarshal(out.Cursors[len(out.Cursors)-1], &last))
			assert.Equal(t, map[string]string{"since": "2026-11-01T00:24:00Z"}, last)
		})
	}
}

func TestResumeFromASavedPageAndSince(t *testing.T) {
	a := &api{t: t, handle: styles[custom.PageCursor]}
	src := newSource(t, a, custom.Config{Path: "/v1/usage", RecordsPath: "data", Pagination: custom.PageCursor, SinceParam: "updated_since"})
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), json.RawMessage(`{"since":"2026-10-31T00:00:00Z","next":"20"}`), out))
	assert.Len(t, out.Events, 5, "only the page after the saved one")
	require.Len(t, a.requests, 1)
	q := a.requests[0].URL.Query()
	assert.Equal(t, "20", q.Get("cursor"))
	assert.Equal(t, "2026-10-31T00:00:00Z", q.Get("updated_since"))
}

func TestRevenueRetryAfterAndCustomHeader(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	a := &api{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{"payments":[
			{"id":"pay_1","status":"paid","created":1793491200,"account":"acme","amount_cents":4900,"currency":"usd"},
			{"id":"pay_2","status":"failed","created":1793491300,"account":"acme","amount_cents":4900,"currency":"usd"},
			{"id":"pay_3","status":"paid","created":1793491400,"account":"zeta","amount_cents":"12x","currency":"usd"},
			{"id":"pay_4","status":"paid","created":1793491500,"account":"zeta","amount_cents":150000,"currency":"jpy"}]}`))
	}}
	m, err := mapping.Parse([]byte(revenueMapping))
	require.NoError(t, err)
	src := newSource(t, a, custom.Config{Kind: custom.KindRevenue, Stream: "payments", RecordsPath: "payments", Mapping: m, AuthHeader: "X-Api-Key"})
	out := &sourcetest.Collector{}
	begin := time.Now()
	require.NoError(t, src.Read(context.Background(), nil, out))
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond, "Retry-After honoured (backoff capped at 5ms)")
	assert.Equal(t, apiKey, a.requests[0].Header.Get("X-Api-Key"))
	assert.Empty(t, a.requests[0].Header.Get("Authorization"))
	require.Len(t, out.Events, 2, "paid records; the failed one is filtered, the malformed one skipped")
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate())
		assert.Equal(t, event.TypeRevenue, ev.Type)
	}
	assert.Equal(t, "49", out.Events[0].Data.Amount.String())
	assert.Equal(t, "150000", out.Events[1].Data.Amount.String(), "JPY has no minor unit")
	require.Contains(t, out.Skipped, "custom-revenue record pay_3 (page 1 item 2)")
	assert.ErrorContains(t, out.Skipped["custom-revenue record pay_3 (page 1 item 2)"], `amount: "12x" is not a decimal number`)
}

func TestAuthFailureMalformedAndEmptyPages(t *testing.T) {
	var logs bytes.Buffer
	a := &api{t: t, handle: func(w http.ResponseWriter, r *http.Request) {}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	m, err := mapping.Parse([]byte(usageMapping))
	require.NoError(t, err)
	src, err := custom.New(custom.Config{BaseURL: srv.URL, APIKey: "wrong-key-but-secret", Mapping: m, RecordsPath: "data",
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	out := &sourcetest.Collector{}
	err = src.Read(context.Background(), nil, out)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.NotContains(t, err.Error(), "wrong-key-but-secret")
	assert.Contains(t, err.Error(), "[redacted]")
	assert.Len(t, a.requests, 1)
	assert.Empty(t, out.Cursors)
	assert.True(t, source.IsAuth(src.Check(context.Background())))
	assert.NotContains(t, logs.String(), "wrong-key-but-secret")

	// Page 2 is not JSON: page 1 is kept, the sync stops there with an error
	// naming the page, and the saved cursor repeats page 2 next time.
	b := &api{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") == "10" {
			_, _ = w.Write([]byte(`<html>oops</html>`))
			return
		}
		styles[custom.PageCursor](w, r)
	}}
	out2 := &sourcetest.Collector{}
	err = newSource(t, b, custom.Config{RecordsPath: "data", Pagination: custom.PageCursor}).Read(context.Background(), nil, out2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "custom-usage page 2: the answer is not valid JSON")
	assert.Contains(t, out2.Skipped, "custom-usage page 2")
	assert.Len(t, out2.Events, 10)
	assert.JSONEq(t, `{"next":"10"}`, string(out2.Cursors[len(out2.Cursors)-1]))

	// An empty page: no events, no error.
	e := &api{t: t, handle: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"data":[],"next_cursor":null}`)) }}
	out3 := &sourcetest.Collector{}
	require.NoError(t, newSource(t, e, custom.Config{RecordsPath: "data", Pagination: custom.PageCursor}).Read(context.Background(), nil, out3))
	assert.Empty(t, out3.Events)
	assert.Empty(t, out3.Skipped)
}

func TestLinkToAnotherHostIsRefused(t *testing.T) {
	a := &api{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://evil.example.com/steal>; rel="next"`)
		write(w, slice(0, 1))
	}}
	out := &sourcetest.Collector{}
	err := newSource(t, a, custom.Config{Pagination: custom.PageLink}).Read(context.Background(), nil, out)
	assert.ErrorContains(t, err, "next page URL points to another host")
	assert.Len(t, a.requests, 1, "the key is never sent elsewhere")
}

func TestCredentials(t *testing.T) {
	_, err := custom.FromCredentials(map[string]string{}, source.Env{})
	assert.EqualError(t, err, "custom credentials: missing api_key, base_url, mapping (or mapping_file)")
	_, err = custom.FromCredentials(map[string]string{"api_key": "k", "base_url": "http://127.0.0.1:1", "mapping": "version: 2"}, sourcetest.Local(t))
	assert.ErrorContains(t, err, "version: must be 1")
	src, err := custom.FromCredentials(map[string]string{"api_key": "k", "base_url": "http://127.0.0.1:1", "mapping": usageMapping,
		"account_id": "acct_1", "pagination": "page", "page_size": "50"}, sourcetest.Local(t))
	require.NoError(t, err)
	assert.NotNil(t, src)
	inExamples := sourcetest.Local(t)
	inExamples.MappingDir = "../mapping/examples"
	_, err = custom.FromCredentials(map[string]string{"api_key": "k", "base_url": "http://127.0.0.1:1", "mapping_file": "faker.yaml", "page_size": "x"}, inExamples)
	assert.ErrorContains(t, err, `page_size must be a positive integer, got "x"`)
	_, err = custom.New(custom.Config{Kind: "custom-cost", BaseURL: "ftp://x", Pagination: "scroll"})
	for _, want := range []string{`kind must be custom-usage or custom-revenue`, "base_url must be an absolute http(s) URL", "api_key is required", "a mapping is required", `pagination must be none, cursor, page, offset or link, got "scroll"`} {
		assert.ErrorContains(t, err, want)
	}
}

// mapping_file comes through the API: it may name a file inside the mapping
// directory only, however it is spelled.
func TestMappingFileStaysInItsDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "mappings")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	for _, f := range []string{filepath.Join(dir, "good.yaml"), filepath.Join(dir, "sub", "ok.yaml"), filepath.Join(root, "outside.yaml")} {
		require.NoError(t, os.WriteFile(f, []byte(usageMapping), 0o600))
	}
	require.NoError(t, os.Symlink(filepath.Join(root, "outside.yaml"), filepath.Join(dir, "link-out.yaml")))
	require.NoError(t, os.Symlink(filepath.Join("sub", "ok.yaml"), filepath.Join(dir, "link-in.yaml")))
	require.NoError(t, os.Symlink(filepath.Join("..", "outside.yaml"), filepath.Join(dir, "link-up.yaml")))
	require.NoError(t, os.Symlink(root, filepath.Join(dir, "up")))

	for _, tc := range []struct {
		name, file, dir string
		outside         bool // refused as leaving the directory
		otherErr        string
	}{
		{name: "relative", file: "good.yaml"},
		{name: "in a subdirectory", file: "sub/ok.yaml"},
		{name: "absolute inside", file: filepath.Join(dir, "good.yaml")},
		{name: "a link inside to inside", file: "link-in.yaml"},
		{name: "dot-dot out", file: "../outside.yaml", outside: true},
		{name: "dot-dot through a subdirectory", file: "sub/../../outside.yaml", outside: true},
		{name: "absolute elsewhere", file: "/etc/passwd", outside: true},
		{name: "absolute with dot-dot", file: dir + "/../outside.yaml", outside: true},
		{name: "a link to outside", file: "link-out.yaml", outside: true},
		{name: "a relative link climbing out", file: "link-up.yaml", outside: true},
		{name: "through a directory link to outside", file: "up/outside.yaml", outside: true},
		{name: "no directory configured", file: "good.yaml", dir: "-", outside: true},
		{name: "missing", file: "nope.yaml", otherErr: "read mapping file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := sourcetest.Local(t)
			env.MappingDir = dir
			if tc.dir == "-" {
				env.MappingDir = ""
			}
			src, err := custom.FromCredentials(map[string]string{"api_key": "k", "base_url": "http://127.0.0.1:1", "mapping_file": tc.file}, env)
			switch {
			case tc.outside:
				require.Error(t, err)
				assert.ErrorIs(t, err, mapping.ErrOutsideDir)
				assert.Contains(t, err.Error(), "mapping_file: ")
			case tc.otherErr != "":
				assert.ErrorContains(t, err, tc.otherErr)
				assert.NotErrorIs(t, err, mapping.ErrOutsideDir)
			default:
				require.NoError(t, err)
				assert.NotNil(t, src)
			}
		})
	}
}
