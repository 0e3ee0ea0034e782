// Package servicestest gives tests of the service registry and its API an
// external service to check credentials against: a stand-in for a vendor's
// API (not for uvr's infrastructure) and a catalog factory that calls it.
package servicestest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/source"
)

// Vendor answers GET /v1/account with 200 for goodKey, else 401 quoting the
// key it was sent, as some real APIs do (so redaction is put to the test).
func Vendor(t testing.TB, goodKey string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/account" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if key != goodKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, `{"error":{"message":"Invalid API Key provided: %s"}}`, key)
			return
		}
		_, _ = w.Write([]byte(`{"id":"acct_1"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkSource is a Source whose Check is one real HTTP call through
// source.HTTP, the way a vendor connector's is.
type checkSource struct{ h *source.HTTP }

func (s checkSource) Check(ctx context.Context) error {
	return s.h.GetJSON(ctx, "/v1/account", nil, &struct{}{})
}

func (checkSource) Read(context.Context, source.Cursor, source.Emitter) error { return nil }

// Factory builds such a Source against baseURL with the api_key credential.
func Factory(service, baseURL string) catalog.Factory {
	return func(creds map[string]string, env source.Env) (source.Source, error) {
		key := creds["api_key"]
		h, err := source.NewHTTP(source.HTTPConfig{
			Service: service, BaseURL: baseURL, Secrets: []string{key}, Retries: -1, Logger: env.Logger,
			Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		})
		if err != nil {
			return nil, err
		}
		return checkSource{h: h}, nil
	}
}
