package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/syncer"
)

// SyncEngine runs connector syncs (connectors/syncer.Engine). Safe for
// concurrent use.
type SyncEngine interface {
	// SyncAll requests a sync of every active service and waits until they
	// finished or ctx ends (a timeout is a summary, not an error).
	SyncAll(ctx context.Context, trigger syncer.Trigger) (syncer.Summary, error)
	// RequestSync requests one service's sync and returns its run id; an
	// unknown service is an error wrapping syncer.ErrServiceNotFound.
	RequestSync(ctx context.Context, serviceID string, trigger syncer.Trigger) (string, error)
	// ListRuns lists sync runs newest first (every service's when serviceID
	// is empty), at most limit.
	ListRuns(ctx context.Context, serviceID string, limit int) ([]syncer.Run, error)
}

// Bounds of the sync routes.
const (
	defaultSyncRunsLimit = 50
	maxSyncRunsLimit     = 1000
	// DefaultSyncWait bounds how long POST /api/sync waits for the runs.
	DefaultSyncWait = 5 * time.Minute
)

type syncRunBody struct {
	ID             string     `json:"id"`
	ServiceID      string     `json:"service_id"`
	ServiceType    string     `json:"service_type"`
	Trigger        string     `json:"trigger"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	Status         string     `json:"status"`
	RecordsRead    uint64     `json:"records_read"`
	EventsEmitted  uint64     `json:"events_emitted"`
	RecordsSkipped uint64     `json:"records_skipped"`
	Error          *string    `json:"error"`
}

type syncRunsBody struct {
	SyncRuns []syncRunBody `json:"sync_runs"`
}

// syncAllBody is POST /api/sync's answer. aggregates_created and
// insights_generated stay 0 until the analytics issue plugs its jobs in.
type syncAllBody struct {
	Status             string `json:"status"`
	ConnectionsSynced  int    `json:"connections_synced"`
	ConnectionsFailed  int    `json:"connections_failed"`
	ConnectionsPending int    `json:"connections_pending"`
	AggregatesCreated  int    `json:"aggregates_created"`
	InsightsGenerated  int    `json:"insights_generated"`
}

type syncServiceBody struct {
	Success   bool   `json:"success"`
	Message   string `json:"message"`
	SyncRunID string `json:"sync_run_id,omitempty"`
}

func (s *Server) syncEngine(c *gin.Context) (SyncEngine, bool) {
	if s.cfg.Sync == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "syncs are not enabled on this server"})
		return nil, false
	}
	return s.cfg.Sync, true
}

// listSyncRuns serves GET /api/sync-runs?service_id=&limit=.
func (s *Server) listSyncRuns(c *gin.Context) {
	eng, ok := s.syncEngine(c)
	if !ok {
		return
	}
	limit := defaultSyncRunsLimit
	if v, set := c.GetQuery("limit"); set {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSyncRunsLimit {
			s.writeError(c, invalid(fmt.Sprintf("limit must be an integer from 1 to %d, got %q", maxSyncRunsLimit, v)))
			return
		}
		limit = n
	}
	runs, err := eng.ListRuns(c.Request.Context(), c.Query("service_id"), limit)
	if err != nil {
		s.writeError(c, unavailable("the sync runs could not be read from ClickHouse", err))
		return
	}
	body := syncRunsBody{SyncRuns: make([]syncRunBody, 0, len(runs))}
	for _, r := range runs {
		b := syncRunBody{
			ID: r.ID, ServiceID: r.ServiceID, ServiceType: r.ServiceType, Trigger: string(r.Trigger),
			StartedAt: r.StartedAt, Status: string(r.Status),
			RecordsRead: r.RecordsRead, EventsEmitted: r.EventsEmitted, RecordsSkipped: r.RecordsSkipped,
		}
		if !r.FinishedAt.IsZero() {
			f := r.FinishedAt
			b.FinishedAt = &f
		}
		if r.Error != "" {
			e := r.Error // redacted by the engine before it was stored
			b.Error = &e
		}
		body.SyncRuns = append(body.SyncRuns, b)
	}
	c.JSON(http.StatusOK, body)
}

// syncAll serves POST /api/sync: a sync of every active service now,
// answered once the runs finished (200) or when SyncWait ran out (202, status
// "timeout": the runs go on).
func (s *Server) syncAll(c *gin.Context) {
	eng, ok := s.syncEngine(c)
	if !ok {
		return
	}
	wait := s.cfg.SyncWait
	// This answer may come SyncWait after the request, later than the
	// server's WriteTimeout allows: extend this response's deadline alone.
	// (An httptest recorder cannot: the error only says so.)
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(wait + s.cfg.WriteTimeout))
	ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
	defer cancel()
	sum, err := eng.SyncAll(ctx, syncer.TriggerAPI)
	if err != nil {
		s.writeError(c, syncError(err, "the syncs could not be requested"))
		return
	}
	status := http.StatusOK
	if sum.Status == syncer.SummaryTimeout {
		status = http.StatusAccepted
	}
	c.JSON(status, syncAllBody{
		Status: sum.Status, ConnectionsSynced: sum.Succeeded, ConnectionsFailed: sum.Failed, ConnectionsPending: sum.Pending,
	})
}

// syncService serves POST /api/services/:id/sync, the "Sync now" button: 202
// once the request is durable in Kafka; the run follows.
func (s *Server) syncService(c *gin.Context) {
	eng, ok := s.syncEngine(c)
	if !ok {
		return
	}
	id := c.Param("id")
	runID, err := eng.RequestSync(c.Request.Context(), id, syncer.TriggerManual)
	if err != nil {
		s.writeError(c, syncError(err, "the sync could not be requested"))
		return
	}
	c.JSON(http.StatusAccepted, syncServiceBody{
		Success: true, Message: fmt.Sprintf("sync of service %s requested", id), SyncRunID: runID,
	})
}

// syncError maps the engine's errors: an unknown service is 404; an error of
// the registry keeps its own kind (errors.go); anything else means Kafka or
// the registry is unreachable.
func syncError(err error, detail string) error {
	var apiErr *Error
	switch {
	case errors.Is(err, syncer.ErrServiceNotFound):
		return &Error{Kind: KindNotFound, Detail: "service not found", Err: err}
	case errors.As(err, &apiErr), services.KindOf(err) != "":
		return err
	}
	return unavailable(detail, err)
}

var _ SyncEngine = (*syncer.Engine)(nil)
