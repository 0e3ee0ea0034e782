package anthropic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/anthropic"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const apiKey = "sk-ant-admin01-planted-secret-77aa"

// fixture reads a documented response example (see testdata/README.md).
func fixture(t *testing.T, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// nextDay is the documented example moved one day later, ending the
// pagination its next_page token starts.
func nextDay(t *testing.T, name string) []byte {
	var pg map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, name), &pg))
	b := pg["data"].([]any)[0].(map[string]any)
	b["starting_at"], b["ending_at"] = "2025-08-02T00:00:00Z", "2025-08-03T00:00:00Z"
	pg["has_more"], pg["next_page"] = false, nil
	out, _ := json.Marshal(pg)
	return out
}

type server struct {
	t        *testing.T
	mu       sync.Mutex
	requests []*http.Request
	override func(w http.ResponseWriter, r *http.Request) bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if s.override != nil && s.override(w, r) {
		return
	}
	if r.Header.Get("x-api-key") != apiKey || r.Header.Get("anthropic-version") != "2023-06-01" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	file := map[string]string{
		"/v1/organizations/usage_report/messages": "usage_report_messages.json",
		"/v1/organizations/cost_report":           "cost_report.json",
	}[r.URL.Path]
	if file == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("page") == "page_MjAyNS0wNS0xNFQwMDowMDowMFo=" {
		_, _ = w.Write(nextDay(s.t, file))
		return
	}
	_, _ = w.Write(fixture(s.t, file))
}

func newSource(t *testing.T, s *server, now time.Time, logger *slog.Logger) *anthropic.Source {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	src, err := anthropic.New(anthropic.Config{
		APIKey: apiKey, BaseURL: srv.URL, Start: time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC),
		Now:               func() time.Time { return now },
		RequestsPerSecond: 1000, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: logger,
	})
	require.NoError(t, err)
	return src
}

func TestReadDocumentedExamples(t *testing.T) {
	var logs bytes.Buffer
	s := &server{t: t}
	// Noon on Aug 2: Aug 1 is complete, Aug 2 (page two) is partial.
	now := time.Date(2025, 8, 2, 12, 0, 0, 0, time.UTC)
	out := &sourcetest.Collector{}
	require.NoError(t, newSource(t, s, now, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).Read(context.Background(), nil, out))
	assert.Empty(t, out.Skipped)

	byFeature := map[string]decimal.Decimal{}
	var costs []event.Event
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate(), ev.ID)
		assert.Equal(t, event.Customer{Source: "anthropic", ExternalID: "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"}, ev.Data.Customer)
		if ev.Data.Attributes["stream"] == "costs" {
			costs = append(costs, ev)
			continue
		}
		assert.Equal(t, "anthropic.costs", ev.Data.Attributes[anthropic.CostReportedBy])
		byFeature[ev.Data.Feature] = byFeature[ev.Data.Feature].Add(*ev.Data.Quantity)
	}
	// Two pages of the documented row: every class twice.
	want := map[string]string{
		"claude-sonnet-4-20250514.uncached_input_tokens":          "3000",
		"claude-sonnet-4-20250514.cache_creation_1h_input_tokens": "2000",
		"claude-sonnet-4-20250514.cache_creation_5m_input_tokens": "1000",
		"claude-sonnet-4-20250514.cache_read_input_tokens":        "400",
		"claude-sonnet-4-20250514.output_tokens":                  "1000",
		"claude-sonnet-4-20250514.web_search_requests":            "20",
	}
	require.Len(t, byFeature, len(want))
	for f, q := range want {
		assert.Equal(t, q, byFeature[f].String(), f)
	}

	// The documented amount is in cents: "123.78912" USD = $1.2378912.
	require.Len(t, costs, 2)
	assert.Equal(t, "1.2378912", costs[0].Data.Cost.String())
	assert.Equal(t, "USD", costs[0].Data.Currency)
	assert.Equal(t, "anthropic.cost.claude-sonnet-4-20250514.uncached_input_tokens", costs[0].Data.Feature)

	// Versions: Aug 1 final (end + 1h), Aug 2 partial (now).
	for _, ev := range out.Events {
		if ev.Time.Day() == 1 {
			assert.Equal(t, uint32(time.Date(2025, 8, 2, 1, 0, 0, 0, time.UTC).Unix()), ev.Data.Version, ev.ID)
		} else {
			assert.Equal(t, uint32(now.Unix()), ev.Data.Version, ev.ID)
		}
	}
	cur := sourcetest.DecodeCursor[map[string]string](t, out.LastCursor())
	assert.Equal(t, "2025-08-02T00:00:00Z", cur["usage"], "stops at the partial bucket")
	assert.Equal(t, "2025-08-02T00:00:00Z", cur["costs"])

	q := s.requests[0].URL.Query()
	assert.Equal(t, "2025-08-01T00:00:00Z", q.Get("starting_at"))
	assert.Equal(t, []string{"workspace_id", "api_key_id", "model", "service_tier", "context_window"}, q["group_by[]"])
	assert.Equal(t, "page_MjAyNS0wNS0xNFQwMDowMDowMFo=", s.requests[1].URL.Query().Get("page"))
	assert.NotContains(t, logs.String(), apiKey)

	// The next day, the partial bucket is read again and replaces.
	later := time.Date(2025, 8, 4, 0, 0, 0, 0, time.UTC)
	s2 := &server{t: t}
	s2.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("starting_at") == "2025-08-02T00:00:00Z" && r.URL.Query().Get("page") == "" {
			_, _ = w.Write(nextDay(t, map[string]string{"/v1/organizations/usage_report/messages": "usage_report_messages.json", "/v1/organizations/cost_report": "cost_report.json"}[r.URL.Path]))
			return true
		}
		return false
	}
	out2 := &sourcetest.Collector{}
	require.NoError(t, newSource(t, s2, later, nil).Read(context.Background(), out.Cursors[len(out.Cursors)-1], out2))
	first := map[string]uint32{}
	for _, ev := range out.Events {
		first[ev.ID] = ev.Data.Version
	}
	require.NotEmpty(t, out2.Events)
	for _, ev := range out2.Events {
		require.Contains(t, first, ev.ID)
		assert.Greater(t, ev.Data.Version, first[ev.ID])
	}
	assert.Equal(t, "2025-08-03T00:00:00Z", sourcetest.DecodeCursor[map[string]string](t, out2.LastCursor())["usage"])
}

func TestRetryAfterAuthAndMalformed(t *testing.T) {
	var mu sync.Mutex
	throttled := false
	s := &server{t: t}
	s.override = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if !throttled {
			throttled = true
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		if r.URL.Path == "/v1/organizations/cost_report" {
			_, _ = w.Write([]byte(`{"data":[{"starting_at":`))
			return true
		}
		if r.URL.Query().Get("page") == "" {
			var pg map[string]any
			require.NoError(t, json.Unmarshal(fixture(t, "usage_report_messages.json"), &pg))
			b := pg["data"].([]any)[0].(map[string]any)
			b["results"] = append(b["results"].([]any), map[string]any{"output_tokens": "many", "model": "claude-x"}, map[string]any{"output_tokens": -1})
			body, _ := json.Marshal(pg)
			_, _ = w.Write(body)
			return true
		}
		return false
	}
	out := &sourcetest.Collector{}
	begin := time.Now()
	err := newSource(t, s, time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), nil).Read(context.Background(), nil, out)
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond, "Retry-After honoured")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "costs page 1")
	require.Contains(t, out.Skipped, "anthropic costs")
	require.Contains(t, out.Skipped, "anthropic usage bucket 2025-08-01T00:00:00Z result 1")
	require.Contains(t, out.Skipped, "anthropic usage bucket 2025-08-01T00:00:00Z result 2")
	assert.ErrorContains(t, out.Skipped["anthropic usage bucket 2025-08-01T00:00:00Z result 2"], "negative count")
	assert.Len(t, out.Events, 12, "the good rows of both usage pages are kept")
	_, moved := sourcetest.DecodeCursor[map[string]string](t, out.LastCursor())["costs"]
	assert.False(t, moved)

	denied := &server{t: t}
	denied.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key ` + apiKey + `"}}`))
		return true
	}
	src := newSource(t, denied, time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), nil)
	out2 := &sourcetest.Collector{}
	err = src.Read(context.Background(), nil, out2)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.NotContains(t, err.Error(), apiKey)
	assert.Len(t, denied.requests, 1)
	assert.Empty(t, out2.Cursors)
	assert.True(t, source.IsAuth(src.Check(context.Background())))
}

func TestEmptyPageAndCredentials(t *testing.T) {
	s := &server{t: t}
	s.override = func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = w.Write([]byte(`{"data":[],"has_more":false,"next_page":null}`))
		return true
	}
	out := &sourcetest.Collector{}
	require.NoError(t, newSource(t, s, time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), nil).Read(context.Background(), nil, out))
	assert.Empty(t, out.Events)
	assert.Equal(t, "2025-08-01T00:00:00Z", sourcetest.DecodeCursor[map[string]string](t, out.LastCursor())["usage"], "nothing read, nothing skipped")

	_, err := anthropic.FromCredentials(map[string]string{}, source.Env{})
	assert.EqualError(t, err, "anthropic credentials: missing api_key")
	_, err = anthropic.New(anthropic.Config{APIKey: "k", BucketWidth: "1m"})
	assert.ErrorContains(t, err, `bucket width must be 1d or 1h, got "1m"`)
}
