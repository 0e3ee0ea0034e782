package source_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
)

const secret = "sk-test-9f8e7d6c5b4a"

func newClient(t *testing.T, h http.HandlerFunc) *source.HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := source.NewHTTP(source.HTTPConfig{
		Service: "svc", BaseURL: srv.URL, Secrets: []string{secret},
		Authorize:    func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) },
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, RequestsPerSecond: 1000,
	})
	require.NoError(t, err)
	return c
}

func TestHTTPRetriesThrottlingAndServerErrors(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "Bearer "+secret, r.Header.Get("Authorization"))
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	})
	var out struct{ OK bool }
	require.NoError(t, c.GetJSON(context.Background(), "/v1/things", nil, &out))
	assert.True(t, out.OK)
	assert.Equal(t, int32(3), calls.Load())
}

func TestHTTPAuthFailureIsRedactedAndNotRetried(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"Incorrect API key provided: ` + secret + `"}`))
	})
	err := c.GetJSON(context.Background(), "/v1/things", nil, nil)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.True(t, source.IsAuth(err))
	assert.Equal(t, http.StatusUnauthorized, auth.Status)
	assert.NotContains(t, err.Error(), secret)
	assert.Contains(t, err.Error(), "[redacted]")
	assert.Equal(t, int32(1), calls.Load())
}

func TestHTTPGivesUpWithStatusError(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("boom"))
	})
	err := c.GetJSON(context.Background(), "/v1/things", nil, nil)
	var st *source.StatusError
	require.True(t, errors.As(err, &st), "%v", err)
	assert.Equal(t, 500, st.Status)
	assert.Equal(t, int32(6), calls.Load(), "one attempt and five retries")
}

func TestHTTPMalformedJSONNamesThePath(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"data":[`)) })
	err := c.GetJSON(context.Background(), "/v1/usage", nil, &struct{}{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/v1/usage: malformed JSON")
}

func TestNewHTTPRejectsBadBaseURL(t *testing.T) {
	_, err := source.NewHTTP(source.HTTPConfig{Service: "svc", BaseURL: "api.example.com"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "absolute http(s) URL")
}
