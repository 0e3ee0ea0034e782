package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/connectors/source"
)

// AirbytePlatform is Airbyte's public API (platform mode): the connections
// Airbyte runs for the user, their syncs and job status. Errors wrap
// *source.AuthError when Airbyte refuses the token.
type AirbytePlatform interface {
	ListConnections(ctx context.Context) ([]airbyte.Connection, error)
	TriggerSync(ctx context.Context, connectionID string) (airbyte.Job, error)
	JobStatus(ctx context.Context, connectionID string) (airbyte.Job, error)
}

type airbyteConnection struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Status        string `json:"status"`
	SourceID      string `json:"source_id"`
	DestinationID string `json:"destination_id"`
}

type airbyteStatus struct {
	Status        string  `json:"status"`
	LastSync      *string `json:"last_sync"`
	SyncStatus    string  `json:"sync_status"`
	RecordsSynced int64   `json:"records_synced"`
}

// airbyteConfigured answers 503 on every platform route when no Airbyte URL and
// token are configured, and reports whether the route may go on.
func (s *Server) airbyteConfigured(c *gin.Context) bool {
	if s.cfg.Airbyte != nil {
		return true
	}
	s.writeError(c, &Error{Kind: KindUnavailable,
		Detail: "Airbyte platform mode is not configured: set UVR_AIRBYTE_URL and UVR_AIRBYTE_TOKEN"})
	return false
}

// airbyteFailed answers an error of Airbyte itself: a 502 that says what
// Airbyte answered (the token is redacted by the client), in the route's
// {success, message} shape.
func (s *Server) airbyteFailed(c *gin.Context, what string, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, airbyte.ErrNoJobs) {
		status = http.StatusNotFound
	}
	var st *source.StatusError
	if errors.As(err, &st) && st.Status == http.StatusNotFound {
		status = http.StatusNotFound
	}
	s.logger.Warn("airbyte request failed", "what", what, "error", err.Error())
	c.JSON(status, gin.H{"success": false, "message": what + ": " + err.Error()})
}

// GET /api/airbyte/connections
func (s *Server) listAirbyteConnections(c *gin.Context) {
	if !s.airbyteConfigured(c) {
		return
	}
	conns, err := s.cfg.Airbyte.ListConnections(c.Request.Context())
	if err != nil {
		s.airbyteFailed(c, "list Airbyte connections", err)
		return
	}
	out := make([]airbyteConnection, len(conns))
	for i, conn := range conns {
		out[i] = airbyteConnection{ID: conn.ID, Name: conn.Name, Status: conn.Status, SourceID: conn.SourceID, DestinationID: conn.DestinationID}
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "connections": out})
}

// POST /api/airbyte/sync/:id
func (s *Server) triggerAirbyteSync(c *gin.Context) {
	if !s.airbyteConfigured(c) {
		return
	}
	id := c.Param("id")
	job, err := s.cfg.Airbyte.TriggerSync(c.Request.Context(), id)
	if err != nil {
		s.airbyteFailed(c, "trigger the Airbyte sync of connection "+id, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "message": "sync job " + string(job.Status) + " for connection " + id, "job_id": job.ID})
}

// GET /api/airbyte/status/:id
func (s *Server) airbyteSyncStatus(c *gin.Context) {
	if !s.airbyteConfigured(c) {
		return
	}
	id := c.Param("id")
	job, err := s.cfg.Airbyte.JobStatus(c.Request.Context(), id)
	if err != nil {
		s.airbyteFailed(c, "status of Airbyte connection "+id, err)
		return
	}
	st := airbyteStatus{Status: "active", SyncStatus: string(job.Status), RecordsSynced: job.RowsSynced}
	if last := job.LastUpdatedAt; last != "" {
		st.LastSync = &last
	} else if job.StartTime != "" {
		st.LastSync = &job.StartTime
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "status": st})
}
