package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/connectors/catalog"
)

// ServiceTypes lists the service types a ServiceRegistry accepts: the very
// catalog it validates services against, so that the dashboard's form and the
// validation cannot drift apart. The result is the caller's to keep. Safe for
// concurrent use.
type ServiceTypes interface {
	Types() []catalog.Type
}

type serviceTypeBody struct {
	Name     string            `json:"name"`
	Category string            `json:"category"`
	Required []string          `json:"required"`
	Optional []string          `json:"optional"`
	Help     map[string]string `json:"help"`   // what uvr does with each field
	Native   bool              `json:"native"` // a native connector exists (catalog.Type.New)
}

type serviceTypesBody struct {
	ServiceTypes []serviceTypeBody `json:"service_types"`
}

// listServiceTypes serves GET /api/service-types: every type with its
// credential fields and what each does, sorted by name. Field names only,
// never a value.
func (s *Server) listServiceTypes(c *gin.Context) {
	reg, ok := s.registry(c)
	if !ok {
		return
	}
	types := reg.Types()
	body := serviceTypesBody{ServiceTypes: make([]serviceTypeBody, 0, len(types))}
	for _, t := range types {
		body.ServiceTypes = append(body.ServiceTypes, serviceTypeBody{
			Name:     t.Name,
			Category: string(t.Category),
			Required: orEmpty(t.Required),
			Optional: orEmpty(t.Optional),
			Help:     t.Help,
			Native:   t.New != nil,
		})
	}
	c.JSON(http.StatusOK, body)
}

// orEmpty keeps a field list a JSON array: a type without optional fields is
// [], not null.
func orEmpty(fields []string) []string {
	if fields == nil {
		return []string{}
	}
	return fields
}
