package datadog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/connectors/datadog"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const (
	apiKey = "dd-api-planted-0123456789abcdef"
	appKey = "dd-app-planted-fedcba9876543210"
)

// cassette returns the recorded response body of a go-vcr cassette of the
// datadog-usage samples, keyed by its request path.
func cassette(t *testing.T, name string) (path string, body []byte) {
	t.Helper()
	b, err := os.ReadFile(sourcetest.Samples(t, "datadog-usage", name))
	require.NoError(t, err)
	var c struct {
		Interactions []struct {
			Request struct {
				URL string `yaml:"url"`
			} `yaml:"request"`
			Response struct {
				Body string `yaml:"body"`
				Code int    `yaml:"code"`
			} `yaml:"response"`
		} `yaml:"interactions"`
	}
	require.NoError(t, yaml.Unmarshal(b, &c))
	require.Len(t, c.Interactions, 1)
	u, err := url.Parse(c.Interactions[0].Request.URL)
	require.NoError(t, err)
	require.Equal(t, 200, c.Interactions[0].Response.Code)
	return u.Path, []byte(c.Interactions[0].Response.Body)
}

// server serves the recorded bodies by path; the hourly usage body is page
// one of two (its meta gains a next_record_id, the documented v2 pagination
// field; page two is the same rows one day later).
type server struct {
	t        *testing.T
	mu       sync.Mutex
	bodies   map[string][]byte
	requests []*http.Request
	override func(w http.ResponseWriter, r *http.Request) bool
}

func newServer(t *testing.T) *server {
	s := &server{t: t, bodies: map[string][]byte{}}
	for _, name := range []string{
		"v2_Get_hourly_usage_by_product_family_returns_OK_response.yaml",
		"v1_Get_hourly_usage_attribution_returns_OK_response.yaml",
		"v2_Get_cost_across_multi-org_account_returns_OK_response.yaml",
		"v2_Get_estimated_cost_across_multi-org_account_with_date_returns_OK_response.yaml",
	} {
		p, b := cassette(t, name)
		s.bodies[p] = b
	}
	return s
}

func hourlyPages(t *testing.T) (first, second []byte) {
	_, b := cassette(t, "v2_Get_hourly_usage_by_product_family_returns_OK_response.yaml")
	var pg map[string]any
	require.NoError(t, json.Unmarshal(b, &pg))
	pg["meta"] = map[string]any{"pagination": map[string]any{"next_record_id": "rec-2"}}
	first, _ = json.Marshal(pg)
	for _, d := range pg["data"].([]any) {
		a := d.(map[string]any)["attributes"].(map[string]any)
		ts, err := time.Parse(time.RFC3339, a["timestamp"].(string))
		require.NoError(t, err)
		a["timestamp"] = ts.Add(24 * time.Hour).Format(time.RFC3339)
	}
	delete(pg, "meta")
	second, _ = json.Marshal(pg)
	return first, second
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if s.override != nil && s.override(w, r) {
		return
	}
	if r.Header.Get("DD-API-KEY") != apiKey || r.Header.Get("DD-APPLICATION-KEY") != appKey {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/api/v2/usage/hourly_usage" {
		first, second := hourlyPages(s.t)
		if r.URL.Query().Get("page[next_record_id]") == "rec-2" {
			_, _ = w.Write(second)
		} else {
			_, _ = w.Write(first)
		}
		return
	}
	b, ok := s.bodies[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(b)
}

var now = time.Date(2022, 7, 20, 0, 0, 0, 0, time.UTC)

func newSource(t *testing.T, s *server, tag string, logger *slog.Logger) *datadog.Source {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	src, err := datadog.New(datadog.Config{
		APIKey: apiKey, AppKey: appKey, BaseURL: srv.URL, AttributionTag: tag,
		AttributionTypes: []string{"infra_host_usage"},
		Start:            time.Date(2022, 4, 1, 0, 0, 0, 0, time.UTC), Now: func() time.Time { return now },
		RequestsPerSecond: 1000, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: logger,
	})
	require.NoError(t, err)
	return src
}

// sums is an independent reading of the cassettes: every non-null
// measurement, every total_usage_sum, every cost_by_org total_cost.
func sums(t *testing.T) (hourly, attributed, billed decimal.Decimal) {
	dec := func(name string, v any) {
		_, b := cassette(t, name)
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		require.NoError(t, d.Decode(v))
	}
	var h struct {
		Data []struct {
			Attributes struct {
				Measurements []struct{ Value *json.Number } `json:"measurements"`
			} `json:"attributes"`
		} `json:"data"`
	}
	dec("v2_Get_hourly_usage_by_product_family_returns_OK_response.yaml", &h)
	for _, d := range h.Data {
		for _, m := range d.Attributes.Measurements {
			if m.Value != nil {
				hourly = hourly.Add(decimal.RequireFromString(m.Value.String()))
			}
		}
	}
	var a struct {
		Usage []struct {
			Total json.Number `json:"total_usage_sum"`
		} `json:"usage"`
	}
	dec("v1_Get_hourly_usage_attribution_returns_OK_response.yaml", &a)
	for _, u := range a.Usage {
		attributed = attributed.Add(decimal.RequireFromString(u.Total.String()))
	}
	var c struct {
		Data []struct {
			Attributes struct {
				Total json.Number `json:"total_cost"`
			} `json:"attributes"`
		} `json:"data"`
	}
	dec("v2_Get_cost_across_multi-org_account_returns_OK_response.yaml", &c)
	for _, d := range c.Data {
		billed = billed.Add(decimal.RequireFromString(d.Attributes.Total.String()))
	}
	return hourly, attributed, billed
}

func TestReadCassettes(t *testing.T) {
	var logs bytes.Buffer
	s := newServer(t)
	src := newSource(t, s, "project", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	assert.Empty(t, out.Skipped)

	wantHourly, wantAttributed, wantBilled := sums(t)
	hourly, attributed, billed := decimal.Zero, decimal.Zero, decimal.Zero
	versions := map[string][]uint32{}
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate(), ev.ID)
		assert.Equal(t, "datadog", ev.Source)
		switch ev.Data.Attributes["stream"] {
		case "hourly_usage":
			hourly = hourly.Add(*ev.Data.Quantity)
			assert.Equal(t, event.Customer{Source: "datadog", ExternalID: "fasjyydbcgwwc2uc", Name: "DD Integration Tests (321813)"}, ev.Data.Customer)
			assert.True(t, strings.HasPrefix(ev.Data.Feature, "datadog.infra_hosts."), ev.Data.Feature)
		case "hourly_attribution":
			attributed = attributed.Add(*ev.Data.Quantity)
			assert.Equal(t, source.UnmappedCustomer, ev.Data.Customer.ExternalID, "the recorded rows have no tags")
			assert.Equal(t, "datadog.infra_host_usage", ev.Data.Feature)
		case "costs":
			versions[ev.ID] = append(versions[ev.ID], ev.Data.Version)
			if ev.Data.Attributes["cost"] == "billed" {
				billed = billed.Add(*ev.Data.Cost)
			}
			assert.Equal(t, "USD", ev.Data.Currency)
		default:
			t.Fatalf("event without stream: %s", ev.ID)
		}
	}
	assert.True(t, wantHourly.Mul(decimal.NewFromInt(2)).Equal(hourly), "hourly %s, want 2×%s", hourly, wantHourly)
	assert.True(t, wantAttributed.Equal(attributed), "attributed %s, want %s", attributed, wantAttributed)
	assert.True(t, wantBilled.Equal(billed), "billed %s, want %s", billed, wantBilled)
	assert.Equal(t, "73.17", billed.String())

	// The estimate and the bill of a month share ids; the bill's version wins.
	// Two infra_host committed charges of the recorded row are summed into one id.
	require.Len(t, versions, 2)
	for id, v := range versions {
		require.Len(t, v, 2, id)
		assert.Equal(t, v[0]-1, v[1], "estimate one below the bill: %s", id)
	}

	// Hours older than Settle (72h) are final, later ones carry the read time.
	var final, open int
	for _, ev := range out.Events {
		if ev.Data.Attributes["stream"] != "hourly_usage" {
			continue
		}
		if ev.Data.WindowEnd.Add(72 * time.Hour).After(now) {
			assert.Equal(t, uint32(now.Unix()), ev.Data.Version, ev.ID)
			open++
		} else {
			assert.Equal(t, uint32(ev.Data.WindowEnd.Add(72*time.Hour).Unix()), ev.Data.Version, ev.ID)
			final++
		}
	}
	assert.Positive(t, final)
	assert.Positive(t, open)

	cur := sourcetest.DecodeCursor[map[string]string](t, out.LastCursor())
	assert.Equal(t, "2022-07-17T00:00:00Z", cur["hourly_usage"], "the cursor stops where data may still change")
	assert.Equal(t, "2022-07-17T00:00:00Z", cur["hourly_attribution/infra_host_usage"])
	assert.Equal(t, "2022-07-01T00:00:00Z", cur["costs"])

	// Requests: keys in headers, windows, pagination, tag breakdown.
	paths := map[string][]url.Values{}
	for _, r := range s.requests {
		paths[r.URL.Path] = append(paths[r.URL.Path], r.URL.Query())
	}
	require.Len(t, paths["/api/v2/usage/hourly_usage"], 2)
	assert.Equal(t, "2022-04-01T00:00:00Z", paths["/api/v2/usage/hourly_usage"][0].Get("filter[timestamp][start]"))
	assert.Equal(t, "all", paths["/api/v2/usage/hourly_usage"][0].Get("filter[product_families]"))
	assert.Equal(t, "rec-2", paths["/api/v2/usage/hourly_usage"][1].Get("page[next_record_id]"))
	assert.Equal(t, "project", paths["/api/v1/usage/hourly-attribution"][0].Get("tag_breakdown_keys"))
	assert.Equal(t, "infra_host_usage", paths["/api/v1/usage/hourly-attribution"][0].Get("usage_type"))
	assert.Equal(t, "2022-06-01T00:00:00Z", paths["/api/v2/usage/estimated_cost_by_org"][0].Get("start_month"))
	assert.NotContains(t, logs.String(), apiKey)
	assert.NotContains(t, logs.String(), appKey)
}

func TestAttributionTagNamesTheCustomer(t *testing.T) {
	s := newServer(t)
	s.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/api/v1/usage/hourly-attribution" {
			return false
		}
		var pg map[string]any
		require.NoError(t, json.Unmarshal(s.bodies[r.URL.Path], &pg))
		rows := pg["usage"].([]any)
		rows[0].(map[string]any)["tags"] = map[string]any{"project": []any{"acme"}}
		rows[1].(map[string]any)["tags"] = map[string]any{"project": []any{"zeta", "beta"}, "env": []any{"prod"}}
		rows[2].(map[string]any)["total_usage_sum"] = "lots" // malformed record
		b, _ := json.Marshal(pg)
		_, _ = w.Write(b)
		return true
	}
	src := newSource(t, s, "project", nil)
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	customers := map[string]int{}
	for _, ev := range out.Events {
		if ev.Data.Attributes["stream"] == "hourly_attribution" {
			customers[ev.Data.Customer.ExternalID]++
		}
	}
	assert.Equal(t, map[string]int{"acme": 1, "beta,zeta": 1, source.UnmappedCustomer: 13}, customers)
	require.Contains(t, out.Skipped, "datadog hourly attribution infra_host_usage page 1 item 2")
	assert.Len(t, out.Skipped, 1)
}

func TestRetryAfterAndAuthFailure(t *testing.T) {
	s := newServer(t)
	var mu sync.Mutex
	throttled := false
	s.override = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if !throttled {
			throttled = true
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	out := &sourcetest.Collector{}
	begin := time.Now()
	require.NoError(t, newSource(t, s, "", nil).Read(context.Background(), nil, out))
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond, "Retry-After honoured (backoff is capped at 5ms)")
	assert.NotEmpty(t, out.Events)

	denied := newServer(t)
	denied.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":["Forbidden: api key ` + apiKey + ` / app key ` + appKey + `"]}`))
		return true
	}
	src := newSource(t, denied, "", nil)
	out2 := &sourcetest.Collector{}
	err := src.Read(context.Background(), nil, out2)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.NotContains(t, err.Error(), apiKey)
	assert.NotContains(t, err.Error(), appKey)
	assert.Len(t, denied.requests, 1, "the sync stops at the first refusal")
	assert.Empty(t, out2.Cursors)
	assert.True(t, source.IsAuth(src.Check(context.Background())))
}

func TestMalformedPageAndEmptyPage(t *testing.T) {
	s := newServer(t)
	s.override = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/api/v2/usage/cost_by_org":
			_, _ = w.Write([]byte(`{"data":[{"attributes":`))
			return true
		case "/api/v2/usage/hourly_usage":
			_, _ = w.Write([]byte(`{"data":[],"meta":{"pagination":{"next_record_id":null}}}`))
			return true
		}
		return false
	}
	out := &sourcetest.Collector{}
	err := newSource(t, s, "", nil).Read(context.Background(), nil, out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cost_by_org")
	require.Contains(t, out.Skipped, "datadog costs")
	cur := sourcetest.DecodeCursor[map[string]string](t, out.LastCursor())
	_, moved := cur["costs"]
	assert.False(t, moved, "the failed stream keeps its cursor")
	assert.Equal(t, "2022-07-17T00:00:00Z", cur["hourly_usage"], "an empty page still moves past settled hours")
	var attributed int
	for _, ev := range out.Events {
		assert.NotEqual(t, "costs", ev.Data.Attributes["stream"])
		if ev.Data.Attributes["stream"] == "hourly_attribution" {
			attributed++
		}
	}
	assert.Equal(t, 16, attributed, "the other streams are not lost")
}

func TestCredentials(t *testing.T) {
	_, err := datadog.FromCredentials(map[string]string{}, source.Env{})
	assert.EqualError(t, err, "datadog credentials: missing api_key, app_key")
	_, err = datadog.FromCredentials(map[string]string{"api_key": apiKey}, source.Env{})
	assert.EqualError(t, err, "datadog credentials: missing app_key")
	// site picks the API host; base_url wins over it.
	src, err := datadog.FromCredentials(map[string]string{"api_key": apiKey, "app_key": appKey, "site": "datadoghq.eu"}, source.Env{})
	require.NoError(t, err)
	assert.Equal(t, "https://api.datadoghq.eu", src.BaseURL())
	src, err = datadog.FromCredentials(map[string]string{"api_key": apiKey, "app_key": appKey, "site": ""}, source.Env{})
	require.NoError(t, err)
	assert.Equal(t, "https://api.datadoghq.com", src.BaseURL(), "the form's blank site is US1")
	src, err = datadog.FromCredentials(map[string]string{"api_key": apiKey, "app_key": appKey, "site": "us5.datadoghq.com", "base_url": "http://127.0.0.1:1"}, sourcetest.Local(t))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:1", src.BaseURL())
	_, err = datadog.New(datadog.Config{APIKey: "a", AppKey: "b", Streams: []string{"logs"}})
	assert.ErrorContains(t, err, `unknown stream "logs"`)
}
