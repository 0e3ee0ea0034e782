package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/revsettings"
)

type revenueMappingBody struct {
	Source   string                    `json:"source"`
	Mappings []revsettings.PlanFeature `json:"mappings"`
}

// getRevenueMapping serves GET /api/revenue-mapping: the plan → feature
// mapping in force.
func (s *Server) getRevenueMapping(c *gin.Context) {
	m, source, err := s.cfg.RevenueSettings.Mapping()
	if err != nil {
		s.writeError(c, err)
		return
	}
	if m == nil {
		m = []revsettings.PlanFeature{}
	}
	c.JSON(http.StatusOK, revenueMappingBody{Source: source, Mappings: m})
}

// putRevenueMapping serves PUT /api/revenue-mapping {"mappings": [{plan,
// feature}]}: replaces the whole mapping (stored on uvr.revenue-mapping.v1).
// It is applied at query time: all history is re-attributed at once, and a
// plan left out moves back to (unattributed).
func (s *Server) putRevenueMapping(c *gin.Context) {
	var req struct {
		Mappings []revsettings.PlanFeature `json:"mappings"`
	}
	if err := s.decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Mappings == nil {
		s.writeError(c, invalidParam("mappings", "is required (an empty list attributes nothing)"))
		return
	}
	err := s.cfg.RevenueSettings.PutMapping(c.Request.Context(), req.Mappings)
	var merr *revsettings.MappingError
	if errors.As(err, &merr) {
		problems := make([]event.Problem, len(merr.Problems))
		for i, p := range merr.Problems {
			problems[i] = event.Problem{Index: p.Index, Field: fmt.Sprintf("mappings[%d].%s", p.Index, p.Field), Reason: p.Reason}
		}
		s.writeError(c, &Error{Kind: KindInvalid, Detail: "invalid revenue mapping: " + merr.Error(), Problems: problems})
		return
	}
	if err != nil {
		s.writeError(c, unavailable("the revenue mapping could not be stored", err))
		return
	}
	s.getRevenueMapping(c)
}
