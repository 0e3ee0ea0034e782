package airbyte

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
)

const platformToken = "abt_PLANTED_token_0123456789"

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "platform", name))
	require.NoError(t, err)
	return b
}

// connectionItem is a ConnectionResponse built from the spec's documented
// examples (see testdata/platform/README.md).
func connectionItem(t *testing.T, status, scheduleType, cron string) map[string]any {
	t.Helper()
	var c map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, "connection_get_response.json"), &c))
	var created map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, "connection_create_response.json"), &created))
	c["connectionId"] = created["connectionId"]
	c["status"] = status
	c["schedule"] = map[string]any{"scheduleType": scheduleType}
	if cron != "" {
		c["schedule"].(map[string]any)["cronExpression"] = cron
	}
	return c
}

// platformServer speaks the documented requests and responses of the
// public API, and checks the bearer token on every request.
func platformServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var jobPosts atomic.Int32
	mux := http.NewServeMux()
	requireJSON := func(r *http.Request, want []byte) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(body), "%s %s body", r.Method, r.URL.Path)
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	}
	write := func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
	mux.HandleFunc("GET /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "100", r.URL.Query().Get("limit"))
		assert.Equal(t, []string{"744cc0ed-7f05-4949-9e60-2a814f90c035", "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826"}, r.URL.Query()["workspaceIds"])
		page := map[string]any{}
		switch r.URL.Query().Get("offset") {
		case "0":
			page["data"] = []any{connectionItem(t, "active", "cron", "0 0 * * * ?")}
			page["next"] = "https://api.airbyte.com/v1/connections?limit=100&offset=100"
		case "100":
			c := connectionItem(t, "inactive", "manual", "")
			c["connectionId"] = "e735894a-e773-4938-969f-45f53957b75b"
			page["data"] = []any{c}
			page["previous"] = "https://api.airbyte.com/v1/connections?limit=100&offset=0"
		default:
			t.Errorf("unexpected offset %q", r.URL.Query().Get("offset"))
		}
		b, _ := json.Marshal(page)
		write(w, b)
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if jobPosts.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		requireJSON(r, fixture(t, "job_create_request.json"))
		write(w, fixture(t, "job_create_response.json"))
	})
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		assert.Equal(t, "1", q.Get("limit"))
		assert.Equal(t, "sync", q.Get("jobType"))
		assert.Equal(t, "createdAt|DESC", q.Get("orderBy"))
		switch q.Get("connectionId") {
		case "e735894a-e773-4938-969f-45f53957b75b":
			write(w, fixture(t, "jobs_list_response.json"))
		default:
			write(w, []byte(`{"data":[]}`))
		}
	})
	mux.HandleFunc("GET /v1/jobs/1234", func(w http.ResponseWriter, r *http.Request) {
		write(w, fixture(t, "job_get_response.json"))
	})
	mux.HandleFunc("POST /v1/sources", func(w http.ResponseWriter, r *http.Request) {
		var want map[string]any
		require.NoError(t, json.Unmarshal(fixture(t, "source_create_request.json"), &want))
		want["configuration"].(map[string]any)["sourceType"] = "google-ads"
		b, _ := json.Marshal(want)
		requireJSON(r, b)
		write(w, fixture(t, "source_create_response.json"))
	})
	mux.HandleFunc("POST /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		requireJSON(r, fixture(t, "connection_create_request.json"))
		write(w, fixture(t, "connection_create_response.json"))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+platformToken {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`Not allowed: token ` + r.Header.Get("Authorization")))
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &jobPosts
}

func newTestPlatform(t *testing.T, url, token string) *Platform {
	t.Helper()
	p, err := NewPlatform(PlatformConfig{URL: url + "/v1", Token: token, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 2 * time.Second,
		WorkspaceIDs: []string{"744cc0ed-7f05-4949-9e60-2a814f90c035", "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826"}})
	require.NoError(t, err)
	return p
}

func TestPlatformClient(t *testing.T) {
	srv, jobPosts := platformServer(t)
	p := newTestPlatform(t, srv.URL, platformToken)
	ctx := context.Background()

	t.Run("list connections, every page", func(t *testing.T) {
		conns, err := p.ListConnections(ctx)
		require.NoError(t, err)
		assert.Equal(t, []Connection{
			{ID: "9924bcd0-99be-453d-ba47-c2c9766f7da5", Name: "Postgres To Snowflake", SourceID: "9924bcd0-99be-453d-ba47-c2c9766f7da5",
				DestinationID: "744cc0ed-7f05-4949-9e60-2a814f90c035", WorkspaceID: "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
				Status: "active", ScheduleType: "cron", Schedule: "0 0 * * * ?"},
			{ID: "e735894a-e773-4938-969f-45f53957b75b", Name: "Postgres To Snowflake", SourceID: "9924bcd0-99be-453d-ba47-c2c9766f7da5",
				DestinationID: "744cc0ed-7f05-4949-9e60-2a814f90c035", WorkspaceID: "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
				Status: "inactive", ScheduleType: "manual"},
		}, conns)
	})

	t.Run("trigger a sync, after a 429 with Retry-After", func(t *testing.T) {
		start := time.Now()
		job, err := p.TriggerSync(ctx, "e735894a-e773-4938-969f-45f53957b75b")
		require.NoError(t, err)
		assert.Equal(t, Job{ID: 1234, ConnectionID: "e735894a-e773-4938-969f-45f53957b75b", Type: "sync", Status: JobRunning}, job)
		assert.Equal(t, int32(2), jobPosts.Load())
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "waited as Retry-After said")
		assert.False(t, job.Status.Done())
	})

	t.Run("job status of a connection", func(t *testing.T) {
		job, err := p.JobStatus(ctx, "e735894a-e773-4938-969f-45f53957b75b")
		require.NoError(t, err)
		assert.Equal(t, JobRunning, job.Status)
		assert.Equal(t, "sync", job.Type)
		assert.Equal(t, "e735894a-e773-4938-969f-45f53957b75b", job.ConnectionID)

		_, err = p.JobStatus(ctx, "95e66a59-8045-4307-9678-63bc3c9b8c93")
		assert.ErrorIs(t, err, ErrNoJobs)

		job, err = p.Job(ctx, 1234)
		require.NoError(t, err)
		assert.Equal(t, JobRunning, job.Status)
	})

	t.Run("create a source and a connection", func(t *testing.T) {
		var req struct {
			Configuration map[string]any `json:"configuration"`
			Name          string         `json:"name"`
			WorkspaceID   string         `json:"workspaceId"`
		}
		require.NoError(t, json.Unmarshal(fixture(t, "source_create_request.json"), &req))
		src, err := p.CreateSource(ctx, NewSource{Name: req.Name, WorkspaceID: req.WorkspaceID, SourceType: "google-ads", Configuration: req.Configuration})
		require.NoError(t, err)
		assert.Equal(t, SourceInfo{ID: "0c31738c-0b2d-4887-b506-e2cd1c39cc35", Name: "My Source", SourceType: "google-ads", WorkspaceID: req.WorkspaceID}, src)

		conn, err := p.CreateConnection(ctx, NewConnection{Name: "Postgres-to-Bigquery",
			SourceID: "95e66a59-8045-4307-9678-63bc3c9b8c93", DestinationID: "e478de0d-a3a0-475c-b019-25f7dd29e281"})
		require.NoError(t, err)
		assert.Equal(t, "9924bcd0-99be-453d-ba47-c2c9766f7da5", conn.ID)
		assert.Equal(t, "Postgres-to-Bigquery", conn.Name)

		_, err = p.CreateSource(ctx, NewSource{})
		assert.EqualError(t, err, "create airbyte source: name is required\nworkspace id is required\na source type or a definition id is required")
	})
}

// A rejected token is a *source.AuthError at once (no retry), and neither
// it nor the token the server echoes back appears in the error.
func TestPlatformRejectedToken(t *testing.T) {
	srv, _ := platformServer(t)
	p := newTestPlatform(t, srv.URL, "abt_WRONG_token_0123456789")
	for name, call := range map[string]func() error{
		"list": func() error { _, err := p.ListConnections(context.Background()); return err },
		"trigger": func() error {
			_, err := p.TriggerSync(context.Background(), "e735894a-e773-4938-969f-45f53957b75b")
			return err
		},
		"status": func() error {
			_, err := p.JobStatus(context.Background(), "e735894a-e773-4938-969f-45f53957b75b")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			var auth *source.AuthError
			require.True(t, errors.As(err, &auth), "%v", err)
			assert.Equal(t, http.StatusForbidden, auth.Status)
			assert.NotContains(t, err.Error(), "abt_WRONG_token_0123456789")
			assert.Contains(t, err.Error(), "[redacted]")
		})
	}
	_, err := NewPlatform(PlatformConfig{})
	assert.EqualError(t, err, "airbyte platform: token is required")
}

func TestPlatformMalformedAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data": [`))
	}))
	defer srv.Close()
	p := newTestPlatform(t, srv.URL, platformToken)
	_, err := p.ListConnections(context.Background())
	assert.ErrorContains(t, err, "list airbyte connections: airbyte /v1/connections: malformed JSON answer")
}
