package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/api/access"
)

// User administration (admin only: a read of /api/users is in adminReads,
// the writes need admin like every write). The changes apply to the user's
// next request: a deactivated or deleted user's tokens and session get 401
// at once (access.Store.Authenticate reads the user at every call).
func (s *Server) registerUsers(api *gin.RouterGroup) {
	api.GET("/users", s.listUsers)
	api.PATCH("/users/:id", s.updateUser)
	api.DELETE("/users/:id", s.deleteUser)
}

func (s *Server) listUsers(c *gin.Context) {
	users, err := s.cfg.Auth.ListUsers(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]userBody, 0, len(users))
	for _, u := range users {
		out = append(out, userOf(u))
	}
	c.JSON(http.StatusOK, gin.H{"users": out})
}

// updateUser serves PATCH /api/users/:id {"role": …, "is_active": …}: either
// or both, applied as one change.
func (s *Server) updateUser(c *gin.Context) {
	var req struct {
		Role     *string `json:"role"`
		IsActive *bool   `json:"is_active"`
	}
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	var change access.UserChange
	if req.Role != nil {
		role := access.Role(*req.Role)
		change.Role = &role
	}
	change.Active = req.IsActive
	if change.Role == nil && change.Active == nil {
		s.writeError(c, fieldError("role", "give role or is_active (or both)"))
		return
	}
	u, err := s.cfg.Auth.UpdateUser(c, c.Param("id"), change)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, userOf(u))
}

func (s *Server) deleteUser(c *gin.Context) {
	if err := s.cfg.Auth.DeleteUser(c, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
