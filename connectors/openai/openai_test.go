package openai_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/openai"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const apiKey = "sk-admin-planted-secret-4f3e2d1c"

// sample reads the openai-usage sample <name>.
func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(sourcetest.Samples(t, "openai-usage", name))
	require.NoError(t, err)
	return b
}

// endpoints of the samples: usage endpoint → sample file.
var samples = map[string]string{
	"completions":               "usage_completions.example.json",
	"embeddings":                "usage_embeddings.example.json",
	"moderations":               "usage_moderations.example.json",
	"images":                    "usage_images.example.json",
	"audio_speeches":            "usage_audio_speeches.example.json",
	"audio_transcriptions":      "usage_audio_transcriptions.example.json",
	"vector_stores":             "usage_vector_stores.example.json",
	"code_interpreter_sessions": "usage_code_interpreter_sessions.example.json",
	"file_search_calls":         "usage_file_search_calls.example.json",
	"web_search_calls":          "usage_web_search_calls.example.json",
}

const (
	sampleStart = 1730419200 // the samples' bucket: 2024-11-01, one day
	day         = 86400
)

// secondPage is the completions sample moved one day later, ending the
// pagination its next_page token starts (same shape and counters).
func secondPage(t *testing.T) []byte {
	var pg map[string]any
	require.NoError(t, json.Unmarshal(sample(t, "usage_completions.example.json"), &pg))
	b := pg["data"].([]any)[0].(map[string]any)
	b["start_time"], b["end_time"] = sampleStart+day, sampleStart+2*day
	pg["has_more"], pg["next_page"] = false, nil
	out, err := json.Marshal(pg)
	require.NoError(t, err)
	return out
}

type server struct {
	t        *testing.T
	mu       sync.Mutex
	requests []*http.Request
	handle   func(w http.ResponseWriter, r *http.Request) bool // true when handled
}

func newServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request) bool) (*server, *httptest.Server) {
	s := &server{t: t, handle: handle}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if s.handle != nil && s.handle(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/organization/costs" {
		_, _ = w.Write(sample(s.t, "costs.example.json"))
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/v1/organization/usage/")
	file, ok := samples[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "completions" && r.URL.Query().Get("page") == "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA=" {
		_, _ = w.Write(secondPage(s.t))
		return
	}
	_, _ = w.Write(sample(s.t, file))
}

func newSource(t *testing.T, url string, now time.Time, logger *slog.Logger) *openai.Source {
	t.Helper()
	src, err := openai.New(openai.Config{
		APIKey: apiKey, BaseURL: url, Start: time.Unix(sampleStart, 0),
		Now:          func() time.Time { return now },
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, RequestsPerSecond: 1000,
		Logger: logger,
	})
	require.NoError(t, err)
	return src
}

// sumCounters is an independent total of a sample page: every JSON number
// inside the results rows.
func sumCounters(t *testing.T, b []byte) decimal.Decimal {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var pg struct {
		Data []struct {
			Results []map[string]any `json:"results"`
		} `json:"data"`
	}
	require.NoError(t, dec.Decode(&pg))
	sum := decimal.Zero
	for _, b := range pg.Data {
		for _, r := range b.Results {
			for _, v := range r {
				if n, ok := v.(json.Number); ok {
					sum = sum.Add(decimal.RequireFromString(n.String()))
				}
			}
		}
	}
	return sum
}

func TestReadSamples(t *testing.T) {
	var logs bytes.Buffer
	srvState, srv := newServer(t, nil)
	src := newSource(t, srv.URL, time.Unix(sampleStart+10*day, 0), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	assert.Empty(t, out.Skipped)

	perEndpoint := map[string]decimal.Decimal{}
	ids := map[string]bool{}
	var costs []event.Event
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate(), ev.ID)
		assert.False(t, ids[ev.ID], "duplicate id %s", ev.ID)
		ids[ev.ID] = true
		assert.Equal(t, "openai", ev.Source)
		assert.Equal(t, event.Customer{Source: "openai", ExternalID: source.UnmappedCustomer}, ev.Data.Customer, "the samples are not grouped by project")
		assert.Equal(t, uint32(ev.Data.WindowEnd.Unix()+3600), ev.Data.Version, "complete bucket: end + settle")
		if ev.Data.Attributes["endpoint"] == "costs" {
			costs = append(costs, ev)
			continue
		}
		assert.Equal(t, "openai.costs", ev.Data.Attributes[openai.CostReportedBy])
		perEndpoint[ev.Data.Attributes["endpoint"]] = perEndpoint[ev.Data.Attributes["endpoint"]].Add(*ev.Data.Quantity)
	}
	for endpoint, file := range samples {
		want := sumCounters(t, sample(t, file))
		if endpoint == "completions" {
			want = want.Mul(decimal.NewFromInt(2)) // two pages of the same counters
		}
		assert.True(t, want.Equal(perEndpoint[endpoint]), "%s: got %s, want %s", endpoint, perEndpoint[endpoint], want)
	}
	require.Len(t, costs, 1)
	assert.Equal(t, "0.06", costs[0].Data.Cost.String())
	assert.Equal(t, "USD", costs[0].Data.Currency)
	assert.Equal(t, "openai.cost.total", costs[0].Data.Feature)
	assert.True(t, costs[0].Data.Quantity.IsZero())

	// A completions counter, named as documented.
	var cached *event.Event
	for i, ev := range out.Events {
		if ev.ID == "completions/1730419200//input_cached_tokens" {
			cached = &out.Events[i]
		}
	}
	require.NotNil(t, cached)
	assert.Equal(t, "completions.cached_input_tokens", cached.Data.Feature)
	assert.Equal(t, "400", cached.Data.Quantity.String())
	assert.Equal(t, "tokens", cached.Data.Unit)
	assert.Equal(t, time.Unix(sampleStart, 0).UTC(), cached.Time)

	// Every stream's cursor is past its last complete bucket.
	cur := sourcetest.DecodeCursor[map[string]int64](t, out.LastCursor())
	assert.Equal(t, int64(sampleStart+2*day), cur["completions"])
	assert.Equal(t, int64(sampleStart+day), cur["embeddings"])
	assert.Equal(t, int64(sampleStart+day), cur["costs"])

	// Requests: admin key, start, width, grouping, pagination token.
	var completions []*http.Request
	for _, r := range srvState.requests {
		if r.URL.Path == "/v1/organization/usage/completions" {
			completions = append(completions, r)
		}
	}
	require.Len(t, completions, 2)
	q := completions[0].URL.Query()
	assert.Equal(t, "1730419200", q.Get("start_time"))
	assert.Equal(t, "1d", q.Get("bucket_width"))
	assert.Equal(t, []string{"project_id", "api_key_id", "model", "batch"}, q["group_by"])
	assert.Equal(t, "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA=", completions[1].URL.Query().Get("page"))
	assert.NotContains(t, logs.String(), apiKey)

	// A second sync from the saved cursor asks from there.
	out2 := &sourcetest.Collector{}
	srvState.requests = nil
	require.NoError(t, src.Read(context.Background(), out.Cursors[len(out.Cursors)-1], out2))
	for _, r := range srvState.requests {
		if r.URL.Path == "/v1/organization/usage/completions" {
			assert.Equal(t, "1730592000", r.URL.Query().Get("start_time"))
		}
	}
}

func TestPartialBucketIsReplacedAndHoldsTheCursor(t *testing.T) {
	var starts []string
	_, srv := newServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/organization/usage/embeddings" {
			if r.URL.Path != "/v1/organization/usage/completions" || r.URL.Query().Get("page") != "" {
				_, _ = w.Write([]byte(`{"object":"page","data":[],"has_more":false,"next_page":null}`))
				return true
			}
		}
		starts = append(starts, r.URL.Path+"@"+r.URL.Query().Get("start_time"))
		if r.URL.Query().Get("start_time") != "1730419200" {
			// Nothing after the sample's day yet: an empty page.
			_, _ = w.Write([]byte(`{"object":"page","data":[],"has_more":false,"next_page":null}`))
			return true
		}
		return false
	})
	ctx := context.Background()

	// Noon on the sample's day: its bucket is incomplete.
	noon := time.Unix(sampleStart+day/2, 0)
	out := &sourcetest.Collector{}
	require.NoError(t, newSource(t, srv.URL, noon, nil).Read(ctx, nil, out))
	require.NotEmpty(t, out.Events)
	first := map[string]uint32{}
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate())
		assert.Equal(t, uint32(noon.Unix()), ev.Data.Version)
		first[ev.ID] = ev.Data.Version
	}
	cur := sourcetest.DecodeCursor[map[string]int64](t, out.LastCursor())
	assert.Equal(t, int64(sampleStart), cur["embeddings"], "the cursor stays at the partial bucket")

	// 30 minutes after the bucket ended it is still within Settle.
	later := time.Unix(sampleStart+day+1800, 0)
	out2 := &sourcetest.Collector{}
	require.NoError(t, newSource(t, srv.URL, later, nil).Read(ctx, out.Cursors[len(out.Cursors)-1], out2))
	for _, ev := range out2.Events {
		assert.Greater(t, ev.Data.Version, first[ev.ID], ev.ID)
	}
	assert.Equal(t, int64(sampleStart), sourcetest.DecodeCursor[map[string]int64](t, out2.LastCursor())["embeddings"])

	// Two days later it is complete: same ids, a higher version, cursor moves.
	done := time.Unix(sampleStart+3*day, 0)
	out3 := &sourcetest.Collector{}
	require.NoError(t, newSource(t, srv.URL, done, nil).Read(ctx, out2.Cursors[len(out2.Cursors)-1], out3))
	require.Len(t, out3.Events, len(out.Events))
	for _, ev := range out3.Events {
		require.Contains(t, first, ev.ID)
		assert.Equal(t, uint32(sampleStart+day+3600), ev.Data.Version)
		assert.Greater(t, ev.Data.Version, uint32(later.Unix()))
	}
	assert.Equal(t, int64(sampleStart+day), sourcetest.DecodeCursor[map[string]int64](t, out3.LastCursor())["embeddings"])

	// The next sync starts after it and finds an empty page: no events.
	out4 := &sourcetest.Collector{}
	require.NoError(t, newSource(t, srv.URL, done, nil).Read(ctx, out3.Cursors[len(out3.Cursors)-1], out4))
	assert.Empty(t, out4.Events)
	assert.Equal(t, int64(sampleStart+day), sourcetest.DecodeCursor[map[string]int64](t, out4.LastCursor())["embeddings"])
	assert.Contains(t, starts, "/v1/organization/usage/embeddings@1730505600")
}

func TestRetryAfterIsHonoured(t *testing.T) {
	var mu sync.Mutex
	throttled := false
	_, srv := newServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if !throttled {
			throttled = true
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	src := newSource(t, srv.URL, time.Unix(sampleStart+10*day, 0), nil)
	out := &sourcetest.Collector{}
	begin := time.Now()
	require.NoError(t, src.Read(context.Background(), nil, out))
	// Backoff is capped at 5ms in this test: only Retry-After waits a second.
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond)
	assert.Empty(t, out.Skipped)
	assert.NotEmpty(t, out.Events)
}

func TestAuthFailureStopsTheSync(t *testing.T) {
	var logs bytes.Buffer
	srvState, srv := newServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided: ` + apiKey + `"}}`))
		return true
	})
	src := newSource(t, srv.URL, time.Unix(sampleStart+10*day, 0), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := &sourcetest.Collector{}
	err := src.Read(context.Background(), nil, out)
	require.Error(t, err)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.Equal(t, http.StatusUnauthorized, auth.Status)
	assert.NotContains(t, err.Error(), apiKey)
	assert.Len(t, srvState.requests, 1, "no request after the auth failure")
	assert.Empty(t, out.Events)
	assert.Empty(t, out.Cursors)
	assert.NotContains(t, logs.String(), apiKey)

	err = src.Check(context.Background())
	assert.True(t, source.IsAuth(err))
	assert.NotContains(t, err.Error(), apiKey)
}

func TestMalformedPageAndRecordAreSkipped(t *testing.T) {
	_, srv := newServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/v1/organization/usage/embeddings":
			_, _ = w.Write([]byte(`{"object":"page","data":[{"object":"bucket","start_time":`)) // cut short
			return true
		case "/v1/organization/usage/moderations":
			// The sample with a second result row that has a negative count
			// and a third that is not an object.
			var pg map[string]any
			require.NoError(t, json.Unmarshal(sample(t, "usage_moderations.example.json"), &pg))
			b := pg["data"].([]any)[0].(map[string]any)
			b["results"] = append(b["results"].([]any),
				map[string]any{"object": "organization.usage.moderations.result", "input_tokens": -3, "num_model_requests": 1},
				42)
			body, _ := json.Marshal(pg)
			_, _ = w.Write(body)
			return true
		}
		return false
	})
	src := newSource(t, srv.URL, time.Unix(sampleStart+10*day, 0), nil)
	out := &sourcetest.Collector{}
	err := src.Read(context.Background(), nil, out)
	require.Error(t, err, "the failed stream is reported")
	assert.Contains(t, err.Error(), "embeddings page 1")
	assert.Contains(t, err.Error(), "malformed JSON")

	require.Contains(t, out.Skipped, "openai embeddings")
	require.Contains(t, out.Skipped, "openai moderations bucket 1730419200 result 1")
	assert.ErrorContains(t, out.Skipped["openai moderations bucket 1730419200 result 1"], "input_tokens: negative count -3")
	require.Contains(t, out.Skipped, "openai moderations bucket 1730419200 result 2")
	assert.Len(t, out.Skipped, 3)

	// The rest is not lost: the good moderations row and every other stream.
	endpoints := map[string]int{}
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate())
		endpoints[ev.Data.Attributes["endpoint"]]++
	}
	assert.Equal(t, 2, endpoints["moderations"])
	assert.Positive(t, endpoints["completions"])
	assert.Positive(t, endpoints["costs"])
	assert.Zero(t, endpoints["embeddings"])
	cur := sourcetest.DecodeCursor[map[string]int64](t, out.LastCursor())
	_, moved := cur["embeddings"]
	assert.False(t, moved, "the failed stream keeps its cursor")
}

func TestMapperMapsABucket(t *testing.T) {
	var pg struct {
		Data []json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(sample(t, "costs.example.json"), &pg))
	evs, err := openai.Mapper{}.Map("costs", pg.Data[0])
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NoError(t, evs[0].Validate())
	assert.Equal(t, "0.06", evs[0].Data.Cost.String())

	// Float text beyond 9 decimals is rounded half to even, and only then.
	evs, err = openai.Mapper{}.Map("costs", json.RawMessage(`{"start_time":1730419200,"end_time":1730505600,"results":[
		{"object":"organization.costs.result","amount":{"value":0.060000000000000005,"currency":"usd"},"line_item":"gpt-4o, input","project_id":"proj_1"},
		{"object":"organization.costs.result","amount":{"value":12345.123456789,"currency":"usd"},"line_item":"gpt-4o, output","project_id":"proj_1"}]}`))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, "0.06", evs[0].Data.Cost.String())
	assert.Equal(t, "openai.cost.gpt-4o, input", evs[0].Data.Feature)
	assert.Equal(t, "proj_1", evs[0].Data.Customer.ExternalID)
	assert.Equal(t, "12345.123456789", evs[1].Data.Cost.String())
	assert.NotEqual(t, evs[0].ID, evs[1].ID)

	_, err = openai.Mapper{}.Map("completions", json.RawMessage(`{"start_time":1,"end_time":2,"results":[{"input_tokens":{"x":1}}]}`))
	assert.ErrorContains(t, err, "completions bucket 1 result 0: input_tokens: unexpected object")
	_, err = openai.Mapper{}.Map("completions", json.RawMessage(`{"start_time":1,"end_time":2,"results":[{"input_tokens":"1200"}]}`))
	assert.ErrorContains(t, err, `completions bucket 1 result 0: input_tokens: "1200" is not a number`)
}

// org_id becomes the OpenAI-Organization header of every call (Check and
// Read alike); without it the header is absent and the key's default
// organization answers.
func TestOrganizationHeader(t *testing.T) {
	for _, org := range []string{"org-planted1234", ""} {
		state, srv := newServer(t, nil)
		creds := map[string]string{"api_key": apiKey, "base_url": srv.URL}
		if org != "" {
			creds["org_id"] = org
		}
		src, err := openai.FromCredentials(creds, sourcetest.Local(t))
		require.NoError(t, err)
		require.NoError(t, src.Check(context.Background()), "the recorded completions page answers the check")
		state.mu.Lock()
		require.NotEmpty(t, state.requests)
		for _, r := range state.requests {
			assert.Equal(t, org, r.Header.Get("OpenAI-Organization"), r.URL.Path)
			_, sent := r.Header["Openai-Organization"]
			assert.Equal(t, org != "", sent, "the header is sent only with an org_id")
		}
		state.mu.Unlock()
	}
}

func TestFromCredentials(t *testing.T) {
	_, err := openai.FromCredentials(map[string]string{}, source.Env{})
	assert.EqualError(t, err, "openai credentials: missing api_key")
	src, err := openai.FromCredentials(map[string]string{"api_key": apiKey, "base_url": "http://127.0.0.1:1"}, sourcetest.Local(t))
	require.NoError(t, err)
	assert.NotNil(t, src)
	_, err = openai.New(openai.Config{APIKey: apiKey, BucketWidth: "1w", Endpoints: []string{"chat"}})
	assert.ErrorContains(t, err, `bucket width must be 1d or 1h, got "1w"`)
	assert.ErrorContains(t, err, `unknown usage endpoint "chat"`)
}
