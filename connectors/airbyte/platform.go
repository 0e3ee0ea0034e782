package airbyte

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
)

// CloudURL is the base URL of Airbyte Cloud's public API. A self-hosted
// Airbyte serves the same API at <host>/api/public/v1.
const CloudURL = "https://api.airbyte.com/v1"

// PlatformConfig configures a Platform client.
type PlatformConfig struct {
	URL   string // default CloudURL
	Token string // bearer token (an application's access token); never logged
	// WorkspaceIDs limits listings to these workspaces (empty: every
	// workspace the token may see).
	WorkspaceIDs []string
	// HTTP client tuning (see source.HTTPConfig); zero values take its defaults.
	RequestsPerSecond          float64
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	Timeout                    time.Duration
	Logger                     *slog.Logger
}

// Platform is a client of Airbyte's public API (Cloud or self-hosted):
// connections, sync jobs and sources. Safe for concurrent use.
//
// The request and response shapes are those of Airbyte's public OpenAPI
// spec (airbytehq/airbyte-api-python-sdk airbyte-api.openapi.yaml, and the
// SDK's models); testdata/platform holds its documented examples.
type Platform struct {
	http         *source.HTTP
	workspaceIDs []string
}

// NewPlatform checks cfg and builds the client.
func NewPlatform(cfg PlatformConfig) (*Platform, error) {
	if cfg.URL == "" {
		cfg.URL = CloudURL
	}
	if cfg.Token == "" {
		return nil, errors.New("airbyte platform: token is required")
	}
	token := cfg.Token
	h, err := source.NewHTTP(source.HTTPConfig{
		Service:           "airbyte",
		BaseURL:           strings.TrimRight(cfg.URL, "/"),
		Authorize:         func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
		Secrets:           []string{token},
		RequestsPerSecond: cfg.RequestsPerSecond,
		Retries:           cfg.Retries,
		RetryWaitMin:      cfg.RetryWaitMin,
		RetryWaitMax:      cfg.RetryWaitMax,
		Timeout:           cfg.Timeout,
		Logger:            cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &Platform{http: h, workspaceIDs: cfg.WorkspaceIDs}, nil
}

// Connection is an Airbyte connection (source → destination).
type Connection struct {
	ID            string   `json:"connection_id"`
	Name          string   `json:"name"`
	SourceID      string   `json:"source_id"`
	DestinationID string   `json:"destination_id"`
	WorkspaceID   string   `json:"workspace_id"`
	Status        string   `json:"status"`        // active, inactive, deprecated, locked
	ScheduleType  string   `json:"schedule_type"` // manual, cron, basic
	Schedule      string   `json:"schedule,omitempty"`
	Streams       []string `json:"streams,omitempty"`
}

// JobStatus is a job's state: pending, queued, running, incomplete, failed,
// succeeded or cancelled.
type JobStatus string

// Job statuses of the public API (JobStatusEnum).
const (
	JobPending    JobStatus = "pending"
	JobQueued     JobStatus = "queued"
	JobRunning    JobStatus = "running"
	JobIncomplete JobStatus = "incomplete"
	JobFailed     JobStatus = "failed"
	JobSucceeded  JobStatus = "succeeded"
	JobCancelled  JobStatus = "cancelled"
)

// Done reports whether the job will not change any more.
func (s JobStatus) Done() bool {
	return s == JobFailed || s == JobSucceeded || s == JobCancelled
}

// Job is a sync (or reset/refresh/clear) job of a connection.
type Job struct {
	ID            int64     `json:"id"`
	ConnectionID  string    `json:"connection_id,omitempty"`
	Type          string    `json:"type"` // sync, reset, refresh, clear
	Status        JobStatus `json:"status"`
	StartTime     string    `json:"start_time,omitempty"`
	LastUpdatedAt string    `json:"last_updated_at,omitempty"`
	Duration      string    `json:"duration,omitempty"` // ISO 8601, e.g. PT8M42S
	RowsSynced    int64     `json:"rows_synced"`
	BytesSynced   int64     `json:"bytes_synced"`
}

// ErrNoJobs is JobStatus's answer for a connection that never ran a sync.
var ErrNoJobs = errors.New("airbyte: the connection has no sync job yet")

// wire forms of the public API.
type (
	apiConnection struct {
		ConnectionID  string `json:"connectionId"`
		Name          string `json:"name"`
		SourceID      string `json:"sourceId"`
		DestinationID string `json:"destinationId"`
		WorkspaceID   string `json:"workspaceId"`
		Status        string `json:"status"`
		Schedule      *struct {
			ScheduleType   string `json:"scheduleType"`
			CronExpression string `json:"cronExpression"`
			BasicTiming    string `json:"basicTiming"`
		} `json:"schedule"`
		Configurations *struct {
			Streams []struct {
				Name string `json:"name"`
			} `json:"streams"`
		} `json:"configurations"`
	}
	apiConnections struct {
		Data []apiConnection `json:"data"`
		Next string          `json:"next"`
	}
	apiJob struct {
		// The spec's JobResponse has jobId (int64); its own list and get
		// examples write "id" instead. Both are read.
		JobID         json.RawMessage `json:"jobId"`
		ID            json.RawMessage `json:"id"`
		ConnectionID  string          `json:"connectionId"`
		JobType       string          `json:"jobType"`
		Status        string          `json:"status"`
		StartTime     string          `json:"startTime"`
		LastUpdatedAt string          `json:"lastUpdatedAt"`
		Duration      string          `json:"duration"`
		RowsSynced    int64           `json:"rowsSynced"`
		BytesSynced   int64           `json:"bytesSynced"`
	}
	apiJobs struct {
		Data []apiJob `json:"data"`
		Next string   `json:"next"`
	}
)

func (c apiConnection) plain() Connection {
	out := Connection{ID: c.ConnectionID, Name: c.Name, SourceID: c.SourceID, DestinationID: c.DestinationID,
		WorkspaceID: c.WorkspaceID, Status: c.Status}
	if c.Schedule != nil {
		out.ScheduleType = c.Schedule.ScheduleType
		out.Schedule = c.Schedule.CronExpression
		if out.Schedule == "" {
			out.Schedule = c.Schedule.BasicTiming
		}
	}
	if c.Configurations != nil {
		for _, s := range c.Configurations.Streams {
			out.Streams = append(out.Streams, s.Name)
		}
	}
	return out
}

func (j apiJob) plain() Job {
	id, ok := jobID(j.JobID)
	if !ok {
		id, _ = jobID(j.ID) // a non-numeric id (a spec example's UUID) stays 0
	}
	return Job{ID: id, ConnectionID: j.ConnectionID, Type: j.JobType, Status: JobStatus(j.Status),
		StartTime: j.StartTime, LastUpdatedAt: j.LastUpdatedAt, Duration: j.Duration,
		RowsSynced: j.RowsSynced, BytesSynced: j.BytesSynced}
}

// jobID reads a job id given as a JSON number or a numeric string.
func jobID(raw json.RawMessage) (int64, bool) {
	text := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	n, err := strconv.ParseInt(text, 10, 64)
	return n, err == nil
}

// pageSize is the public API's maximum limit.
const pageSize = 100

// maxPages bounds a listing, in case a server keeps answering "next".
const maxPages = 1000

// ListConnections lists every connection, page by page.
func (p *Platform) ListConnections(ctx context.Context) ([]Connection, error) {
	var out []Connection
	offset := 0
	for range maxPages {
		q := url.Values{"limit": {strconv.Itoa(pageSize)}, "offset": {strconv.Itoa(offset)}}
		if len(p.workspaceIDs) > 0 {
			q["workspaceIds"] = p.workspaceIDs // an array parameter: repeated (OpenAPI form, explode)
		}
		var page apiConnections
		if err := p.http.GetJSON(ctx, "/connections", q, &page); err != nil {
			return nil, fmt.Errorf("list airbyte connections: %w", err)
		}
		for _, c := range page.Data {
			out = append(out, c.plain())
		}
		next, ok := nextOffset(page.Next)
		if !ok || len(page.Data) == 0 || next <= offset {
			return out, nil
		}
		offset = next
	}
	return nil, fmt.Errorf("list airbyte connections: more than %d pages", maxPages)
}

// nextOffset reads the offset of a "next" page URL. The URL itself is not
// followed: it names the server's public host, which may not be the one
// this client reaches it by.
func nextOffset(next string) (int, bool) {
	if next == "" {
		return 0, false
	}
	u, err := url.Parse(next)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(u.Query().Get("offset"))
	return n, err == nil
}

// TriggerSync starts a sync job of the connection (POST /jobs).
func (p *Platform) TriggerSync(ctx context.Context, connectionID string) (Job, error) {
	if connectionID == "" {
		return Job{}, errors.New("trigger airbyte sync: connection id is required")
	}
	body := map[string]string{"connectionId": connectionID, "jobType": "sync"}
	var job apiJob
	if err := p.http.Do(ctx, http.MethodPost, "/jobs", nil, body, &job); err != nil {
		return Job{}, fmt.Errorf("trigger airbyte sync of connection %s: %w", connectionID, err)
	}
	out := job.plain()
	if out.ConnectionID == "" {
		out.ConnectionID = connectionID
	}
	return out, nil
}

// JobStatus returns the latest sync job of the connection, ErrNoJobs if it
// never synced.
func (p *Platform) JobStatus(ctx context.Context, connectionID string) (Job, error) {
	if connectionID == "" {
		return Job{}, errors.New("airbyte job status: connection id is required")
	}
	q := url.Values{"connectionId": {connectionID}, "jobType": {"sync"}, "limit": {"1"}, "orderBy": {"createdAt|DESC"}}
	var page apiJobs
	if err := p.http.GetJSON(ctx, "/jobs", q, &page); err != nil {
		return Job{}, fmt.Errorf("airbyte jobs of connection %s: %w", connectionID, err)
	}
	if len(page.Data) == 0 {
		return Job{}, ErrNoJobs
	}
	out := page.Data[0].plain()
	if out.ConnectionID == "" {
		out.ConnectionID = connectionID
	}
	return out, nil
}

// Job returns one job by id (GET /jobs/{jobId}).
func (p *Platform) Job(ctx context.Context, id int64) (Job, error) {
	var job apiJob
	if err := p.http.GetJSON(ctx, "/jobs/"+strconv.FormatInt(id, 10), nil, &job); err != nil {
		return Job{}, fmt.Errorf("airbyte job %d: %w", id, err)
	}
	return job.plain(), nil
}

// NewSource is a source to create in a workspace.
type NewSource struct {
	Name        string
	WorkspaceID string
	// SourceType is the connector's name ("stripe", "chargebee"): it goes in
	// configuration.sourceType. DefinitionID may be given instead.
	SourceType   string
	DefinitionID string
	// Configuration is the connector's config (its spec's fields). It holds
	// credentials: it is sent, never logged.
	Configuration map[string]any
}

// SourceInfo is a created source.
type SourceInfo struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	SourceType  string `json:"source_type"`
	WorkspaceID string `json:"workspace_id"`
}

// CreateSource creates a source for a service (POST /sources).
func (p *Platform) CreateSource(ctx context.Context, s NewSource) (SourceInfo, error) {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if s.WorkspaceID == "" {
		errs = append(errs, errors.New("workspace id is required"))
	}
	if s.SourceType == "" && s.DefinitionID == "" {
		errs = append(errs, errors.New("a source type or a definition id is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return SourceInfo{}, fmt.Errorf("create airbyte source: %w", err)
	}
	config := make(map[string]any, len(s.Configuration)+1)
	for k, v := range s.Configuration {
		config[k] = v
	}
	if s.SourceType != "" {
		config["sourceType"] = s.SourceType
	}
	body := map[string]any{"name": s.Name, "workspaceId": s.WorkspaceID, "configuration": config}
	if s.DefinitionID != "" {
		body["definitionId"] = s.DefinitionID
	}
	var resp struct {
		SourceID    string `json:"sourceId"`
		Name        string `json:"name"`
		SourceType  string `json:"sourceType"`
		WorkspaceID string `json:"workspaceId"`
	}
	if err := p.http.Do(ctx, http.MethodPost, "/sources", nil, body, &resp); err != nil {
		return SourceInfo{}, fmt.Errorf("create airbyte source %q: %w", s.Name, err)
	}
	out := SourceInfo{ID: resp.SourceID, Name: resp.Name, SourceType: resp.SourceType, WorkspaceID: resp.WorkspaceID}
	if out.Name == "" {
		out.Name = s.Name
	}
	if out.SourceType == "" {
		out.SourceType = s.SourceType
	}
	if out.WorkspaceID == "" {
		out.WorkspaceID = s.WorkspaceID
	}
	return out, nil
}

// NewConnection is a connection to create from a source to a destination
// (for uvr, a destination-kafka writing to the topic uvr consumes).
type NewConnection struct {
	Name          string
	SourceID      string
	DestinationID string
	// Streams to sync (empty: the platform's default selection).
	Streams []string
	// Cron, if set, schedules the connection (Quartz cron, UTC); else it
	// runs when triggered.
	Cron string
}

// CreateConnection creates a connection (POST /connections).
func (p *Platform) CreateConnection(ctx context.Context, c NewConnection) (Connection, error) {
	if c.SourceID == "" || c.DestinationID == "" {
		return Connection{}, errors.New("create airbyte connection: source id and destination id are required")
	}
	body := map[string]any{"sourceId": c.SourceID, "destinationId": c.DestinationID}
	if c.Name != "" {
		body["name"] = c.Name
	}
	if len(c.Streams) > 0 {
		streams := make([]map[string]string, len(c.Streams))
		for i, s := range c.Streams {
			streams[i] = map[string]string{"name": s}
		}
		body["configurations"] = map[string]any{"streams": streams}
	}
	if c.Cron != "" {
		body["schedule"] = map[string]string{"scheduleType": "cron", "cronExpression": c.Cron}
	}
	var resp apiConnection
	if err := p.http.Do(ctx, http.MethodPost, "/connections", nil, body, &resp); err != nil {
		return Connection{}, fmt.Errorf("create airbyte connection %q: %w", c.Name, err)
	}
	out := resp.plain()
	if out.SourceID == "" {
		out.SourceID, out.DestinationID = c.SourceID, c.DestinationID
	}
	if out.Name == "" {
		out.Name = c.Name
	}
	return out, nil
}
