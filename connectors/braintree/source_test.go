package braintree

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

const (
	testPublic  = "pub_7h3k2j1"
	testPrivate = "priv_9f8e7d6c5b4a3f2e"
)

// fakeBraintree answers the GraphQL endpoint with the cited fixtures in
// testdata/: the page is chosen by the request's "after" variable.
type fakeBraintree struct {
	t            *testing.T
	mu           sync.Mutex
	bodies       []gqlRequest
	headers      []http.Header
	throttleOnce bool
	status       int
	body         string
}

func (f *fakeBraintree) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var req gqlRequest
	require.NoError(f.t, json.Unmarshal(raw, &req))
	f.mu.Lock()
	f.bodies = append(f.bodies, req)
	f.headers = append(f.headers, r.Header.Clone())
	throttle := f.throttleOnce
	f.throttleOnce = false
	f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/graphql" {
		http.NotFound(w, r)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != testPublic || p != testPrivate {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if throttle {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if req.Query == "query { ping }" {
		_, _ = w.Write([]byte(`{"data":{"ping":"pong"}}`))
		return
	}
	name := map[any]string{nil: "payments_page1.json", "Y3Vyc29yMQ": "payments_page2.json", "Y3Vyc29yMg": "payments_page3.json"}[req.Variables["after"]]
	b, err := readFixture(name)
	require.NoError(f.t, err)
	_, _ = w.Write(b)
}

func newTestSource(t *testing.T, h http.Handler) *Source {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := New(Config{MerchantID: "airbyte", PublicKey: testPublic, PrivateKey: testPrivate, BaseURL: srv.URL,
		RequestsPerSecond: 1000, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	require.NoError(t, err)
	return s
}

func TestReadPaginatesSkipsAndResumes(t *testing.T) {
	fake := &fakeBraintree{t: t, throttleOnce: true}
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	start := time.Now()
	require.NoError(t, s.Read(context.Background(), nil, &out))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 was honoured")
	sourcetest.RequireValid(t, out.Events)

	got := map[string]string{}
	for _, ev := range out.Events {
		got[ev.ID] = ev.Data.Kind + " " + ev.Data.Amount.StringFixed(2) + " " + ev.Data.Customer.ExternalID
	}
	assert.Equal(t, map[string]string{
		"transaction/hncnkbsy": "charge 500.00 896865626", // page 1
		"transaction/2cdqmzsg": "charge 2.00 unmapped",
		"transaction/50t6xqhk": "charge 2.00 unmapped", // page 2
		"transaction/rb476y0x": "charge 666.00 unmapped",
		"transaction/r1fund01": "refund -100.00 896865626", // the refund's customer is its transaction's
	}, got, "ccqytq62 is only authorized")
	require.Len(t, out.Skipped, 1)
	for name, reason := range out.Skipped {
		assert.Equal(t, "payment k3malfrm (page 2 item 1)", name)
		assert.ErrorContains(t, reason, "amount")
	}

	// Three pages (the last one empty), each emitted with its cursor; the
	// 429 was retried once.
	require.Len(t, out.Cursors, 3)
	assert.JSONEq(t, `{"after":"Y3Vyc29yMQ","max":"2023-11-08T14:39:15Z"}`, string(out.Cursors[0]),
		"the authorized ccqytq62 maps to nothing but was seen")
	assert.JSONEq(t, `{"since":"2023-11-05T14:39:15Z","max":"2023-11-08T14:39:15Z"}`, string(out.Cursors[2]),
		"next pass starts the lookback before the newest payment")
	require.Len(t, fake.bodies, 4)
	assert.Equal(t, map[string]any{"input": map[string]any{}, "first": float64(50)}, fake.bodies[1].Variables)
	assert.Equal(t, "Y3Vyc29yMQ", fake.bodies[2].Variables["after"])
	for _, h := range fake.headers {
		assert.Equal(t, APIVersion, h.Get("Braintree-Version"))
	}

	// The next sync searches from the saved bound.
	fake.bodies = nil
	var again sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[2], &again))
	assert.Equal(t, map[string]any{"createdAt": map[string]any{"greaterThanOrEqualTo": "2023-11-05T14:39:15Z"}},
		fake.bodies[0].Variables["input"])

	// Resuming inside a pass asks for the saved page.
	fake.bodies = nil
	var mid sourcetest.Collector
	require.NoError(t, s.Read(context.Background(), out.Cursors[0], &mid))
	assert.Equal(t, "Y3Vyc29yMQ", fake.bodies[0].Variables["after"])
	assert.Len(t, mid.Cursors, 2)
}

func TestReadAuthFailureStopsTheSync(t *testing.T) {
	fake := &fakeBraintree{t: t, status: http.StatusUnauthorized,
		body: `{"errors":[{"message":"Authentication failed for key ` + testPrivate + `","extensions":{"errorClass":"AUTHENTICATION"}}]}`}
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	err := s.Read(context.Background(), nil, &out)
	require.True(t, source.IsAuth(err), "%v", err)
	assert.NotContains(t, err.Error(), testPrivate)
	assert.Len(t, fake.bodies, 1)
	assert.Empty(t, out.Cursors)
}

func TestGraphQLAuthenticationErrorIsAnAuthError(t *testing.T) {
	// GraphQL can also answer 200 with an error of class AUTHENTICATION.
	fake := &fakeBraintree{t: t, status: http.StatusOK,
		body: `{"data":null,"errors":[{"message":"Invalid credentials","extensions":{"errorClass":"AUTHENTICATION"}}]}`}
	s := newTestSource(t, fake)
	var out sourcetest.Collector
	require.True(t, source.IsAuth(s.Read(context.Background(), nil, &out)))
	require.True(t, source.IsAuth(s.Check(context.Background())))

	fake.body = `{"data":null,"errors":[{"message":"Variable 'input' has an invalid value","extensions":{"errorClass":"VALIDATION"}}]}`
	err := s.Read(context.Background(), nil, &out)
	require.ErrorContains(t, err, "invalid value")
	assert.False(t, source.IsAuth(err))
}

func TestCheck(t *testing.T) {
	fake := &fakeBraintree{t: t}
	s := newTestSource(t, fake)
	require.NoError(t, s.Check(context.Background()))
	assert.Equal(t, "query { ping }", fake.bodies[0].Query)
}

func TestFromCredentials(t *testing.T) {
	_, err := FromCredentials(map[string]string{"private_key": testPrivate}, source.Env{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"merchant_id"`)
	assert.Contains(t, err.Error(), `"public_key"`)
	assert.NotContains(t, err.Error(), `"private_key"`)
	assert.NotContains(t, err.Error(), testPrivate)

	fake := &fakeBraintree{t: t}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"merchant_id": "airbyte", "public_key": testPublic, "private_key": testPrivate, "base_url": srv.URL}, sourcetest.Local(t))
	require.NoError(t, err)
	require.NoError(t, s.Check(context.Background()))
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := &fakeBraintree{t: t, throttleOnce: true} // a retry is logged
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := FromCredentials(map[string]string{"merchant_id": "airbyte", "public_key": testPublic, "private_key": testPrivate, "base_url": srv.URL}, source.Env{Logger: logger, Egress: sourcetest.Local(t).Egress})
	require.NoError(t, err)
	require.NoError(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	fake.status, fake.body = http.StatusUnauthorized, `{"errors":[{"message":"bad key `+testPrivate+`"}]}`
	require.Error(t, s.Read(context.Background(), nil, &sourcetest.Collector{}))
	assert.Contains(t, buf.String(), "retrying request")
	assert.NotContains(t, buf.String(), testPrivate)
}
