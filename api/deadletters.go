package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/pipeline/deadletter"
)

// DeadLetters lists the dead-letter topic (deadletter.Store). List reads
// the whole topic on each call and returns the entries in the order they
// were set aside; progress may be nil.
type DeadLetters interface {
	List(ctx context.Context, progress deadletter.Progress) ([]deadletter.Entry, error)
}

const (
	defaultDeadLettersLimit = 100
	maxDeadLettersLimit     = 1000
)

type deadLettersBody struct {
	DeadLetters []deadletter.Entry `json:"deadletters"`
	Total       int                `json:"total"` // entries of every page
}

func (s *Server) registerDeadLetters(api *gin.RouterGroup) {
	api.GET("/deadletters", s.listDeadLetters)
}

// listDeadLetters serves GET /api/deadletters: the messages set aside on
// the dead-letter topic, oldest first, a page at a time (limit, offset),
// admins only (adminReads). An entry never holds the payload.
func (s *Server) listDeadLetters(c *gin.Context) {
	if s.cfg.DeadLetters == nil {
		s.writeError(c, unavailable("the dead letters are not served by this process", nil))
		return
	}
	limit, offset, err := pageParams(c, defaultDeadLettersLimit, maxDeadLettersLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	entries, err := s.cfg.DeadLetters.List(c.Request.Context(), nil)
	if err != nil {
		s.writeError(c, unavailable("the dead-letter topic could not be read from Kafka", err))
		return
	}
	body := deadLettersBody{DeadLetters: []deadletter.Entry{}, Total: len(entries)}
	if offset < len(entries) {
		body.DeadLetters = entries[offset:min(len(entries), offset+limit)]
	}
	c.JSON(http.StatusOK, body)
}
