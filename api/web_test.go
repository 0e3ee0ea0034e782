package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// TestWebServesTheDashboard: files by path with their cache policy, the app's
// own routes get index.html, and the API's namespaces keep their JSON 404.
// Requests carry no credentials: the app (and its login page) is public.
func TestWebServesTheDashboard(t *testing.T) {
	const index = `<!doctype html><script src="/assets/app-3f2a.js"></script>`
	site := fstest.MapFS{
		"index.html":         {Data: []byte(index)},
		"assets/app-3f2a.js": {Data: []byte("console.log(1)")},
		"favicon.svg":        {Data: []byte("<svg/>")},
	}
	brokers := servicetest.KafkaBrokers(t)
	topic := servicetest.Topic("test.api.web")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	server, err := api.New(api.Config{
		EventsTopic: topic, Publisher: pub, Logger: slog.New(slog.DiscardHandler), Web: site, Auth: emptyAuthStore(t),
	})
	require.NoError(t, err)

	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType, cache string
		body               string // exact body; empty: not checked
	}{
		{"root is the app", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", index},
		{"index by name", "GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache", index},
		{"an app route", "GET", "/insights", 200, "text/html; charset=utf-8", "no-cache", index},
		{"a nested app route", "GET", "/customers/cus_1", 200, "text/html; charset=utf-8", "no-cache", index},
		{"hashed asset, cached for good", "GET", "/assets/app-3f2a.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "console.log(1)"},
		{"unhashed file", "GET", "/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg/>"},
		{"HEAD of the app", "HEAD", "/overview", 200, "text/html; charset=utf-8", "no-cache", ""},
		{"missing hashed asset", "GET", "/assets/gone-1234.js", 404, "application/json; charset=utf-8", "", ""},
		{"unknown API route", "GET", "/api/nope", 404, "application/json; charset=utf-8", "", ""},
		{"the API prefix itself", "GET", "/api", 404, "application/json; charset=utf-8", "", ""},
		{"metrics namespace", "GET", "/metrics/x", 404, "application/json; charset=utf-8", "", ""},
		{"a write outside the API", "POST", "/insights", 404, "application/json; charset=utf-8", "", ""},
		{"dot segments stay inside the site", "GET", "/../../etc/passwd", 200, "text/html; charset=utf-8", "no-cache", index},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			server.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			assert.Equal(t, tc.status, rec.Code)
			assert.Equal(t, tc.contentType, rec.Header().Get("Content-Type"))
			assert.Equal(t, tc.cache, rec.Header().Get("Cache-Control"))
			if tc.body != "" {
				assert.Equal(t, tc.body, rec.Body.String())
			}
			if tc.status == 404 {
				assert.Contains(t, rec.Body.String(), `"detail":"no route `)
			}
		})
	}

	t.Run("index revalidates with its ETag", func(t *testing.T) {
		rec := httptest.NewRecorder()
		server.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		etag := rec.Header().Get("ETag")
		require.NotEmpty(t, etag)
		req := httptest.NewRequest("GET", "/settings", nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		server.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusNotModified, rec.Code)
	})

	t.Run("a server without Web keeps the JSON 404", func(t *testing.T) {
		bare, err := api.New(api.Config{EventsTopic: topic, Publisher: pub, Logger: slog.New(slog.DiscardHandler), Auth: emptyAuthStore(t)})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		bare.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusNotFound, rec.Code)
	})
}
