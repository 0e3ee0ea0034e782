package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/projections/customers"
)

// CustomerDirectory resolves customer references and applies the manual
// identity operations (projections/customers.Directory). Every change is
// durable (in Kafka) when the call returns and applies to all history.
// Errors are *customers.Error values, mapped to statuses in errors.go:
// invalid input names its field, an unknown customer or reference is not
// found. Safe for concurrent use.
type CustomerDirectory interface {
	Link(ctx context.Context, ref customers.Ref, customerID string) (customers.Customer, error)
	Unlink(ctx context.Context, ref customers.Ref) (customers.Customer, error)
	Merge(ctx context.Context, customerID, into string) (customers.Customer, error)
	Split(ctx context.Context, customerID string, refs []customers.Ref) (left, created customers.Customer, err error)
	// References lists every known reference and its customer; unmappedOnly
	// keeps those resolved only to themselves and the unmapped customer's.
	References(ctx context.Context, unmappedOnly bool) ([]customers.Reference, error)
}

var _ CustomerDirectory = (*customers.Directory)(nil)

// registerCustomers adds the identity routes. The list and detail routes
// (GET /api/customers, /api/customers/:id) belong to the daily aggregates,
// which carry their money columns.
func (s *Server) registerCustomers(api *gin.RouterGroup) {
	g := api.Group("", s.requireCustomers)
	g.POST("/customers/link", s.linkReference)
	g.POST("/customers/unlink", s.unlinkReference)
	g.POST("/customers/merge", s.mergeCustomers)
	g.POST("/customers/split", s.splitCustomer)
	g.GET("/customer-references", s.listReferences)
}

// requireCustomers answers 503 when this server has no customer directory.
func (s *Server) requireCustomers(c *gin.Context) {
	if s.cfg.Customers == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "the customer directory is not enabled on this server"})
		return
	}
	c.Next()
}

type referenceBody struct {
	Source     string `json:"source"`
	ExternalID string `json:"external_id"`
}

type customerBody struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Plan        string            `json:"plan"`
	Environment string            `json:"environment"`
	Metadata    map[string]string `json:"metadata"`
	References  []referenceBody   `json:"references"`
	Emails      []string          `json:"emails"`
	Aliases     []string          `json:"aliases"` // ids merged into this customer; they still resolve to it
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

type customerResponse struct {
	Customer customerBody `json:"customer"`
}

type splitResponse struct {
	Customer    customerBody `json:"customer"`     // the customer split, with the references left
	NewCustomer customerBody `json:"new_customer"` // the customer the references moved to
}

type linkRequest struct {
	Source     string `json:"source"`
	ExternalID string `json:"external_id"`
	CustomerID string `json:"customer_id"`
}

type mergeRequest struct {
	CustomerID string `json:"customer_id"`
	Into       string `json:"into"`
}

type splitRequest struct {
	CustomerID string          `json:"customer_id"`
	References []referenceBody `json:"references"`
}

type customerReferenceBody struct {
	Source       string `json:"source"`
	ExternalID   string `json:"external_id"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name"`
	Rule         string `json:"rule"` // why it resolves there: unmapped, manual, unlinked, mapping, metadata, email, self
	Email        string `json:"email,omitempty"`
}

type referencesBody struct {
	References []customerReferenceBody `json:"references"`
	Total      int                     `json:"total"` // references of every page
}

// linkReference serves POST /api/customers/link.
func (s *Server) linkReference(c *gin.Context) {
	var req linkRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	cust, err := s.cfg.Customers.Link(c.Request.Context(), customers.Ref{Source: req.Source, ExternalID: req.ExternalID}, req.CustomerID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, customerResponse{Customer: customerOf(cust)})
}

// unlinkReference serves POST /api/customers/unlink.
func (s *Server) unlinkReference(c *gin.Context) {
	var req referenceBody
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	cust, err := s.cfg.Customers.Unlink(c.Request.Context(), customers.Ref{Source: req.Source, ExternalID: req.ExternalID})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, customerResponse{Customer: customerOf(cust)})
}

// mergeCustomers serves POST /api/customers/merge.
func (s *Server) mergeCustomers(c *gin.Context) {
	var req mergeRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	cust, err := s.cfg.Customers.Merge(c.Request.Context(), req.CustomerID, req.Into)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, customerResponse{Customer: customerOf(cust)})
}

// splitCustomer serves POST /api/customers/split.
func (s *Server) splitCustomer(c *gin.Context) {
	var req splitRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	refs := make([]customers.Ref, len(req.References))
	for i, r := range req.References {
		refs[i] = customers.Ref{Source: r.Source, ExternalID: r.ExternalID}
	}
	left, created, err := s.cfg.Customers.Split(c.Request.Context(), req.CustomerID, refs)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, splitResponse{Customer: customerOf(left), NewCustomer: customerOf(created)})
}

// listReferences serves GET /api/customer-references?unmapped=true|false&limit=&offset=.
func (s *Server) listReferences(c *gin.Context) {
	unmapped := false
	if v, ok := c.GetQuery("unmapped"); ok {
		// Exactly the document's boolean: strconv.ParseBool would take 1, t, TRUE…
		if v != "true" && v != "false" {
			s.writeError(c, invalidParam("unmapped", "must be true or false, got "+quote(v)))
			return
		}
		unmapped = v == "true"
	}
	limit, offset, err := pageParams(c, maxPageRows, maxPageRows)
	if err != nil {
		s.writeError(c, err)
		return
	}
	refs, err := s.cfg.Customers.References(c.Request.Context(), unmapped)
	if err != nil {
		s.writeError(c, err)
		return
	}
	body := referencesBody{References: make([]customerReferenceBody, 0, min(limit, len(refs))), Total: len(refs)}
	for _, r := range page(refs, limit, offset) {
		body.References = append(body.References, customerReferenceBody{
			Source: r.Source, ExternalID: r.ExternalID, CustomerID: r.CustomerID,
			CustomerName: r.CustomerName, Rule: string(r.Rule), Email: r.Email,
		})
	}
	c.JSON(http.StatusOK, body)
}

func customerOf(c customers.Customer) customerBody {
	out := customerBody{
		ID: c.ID, Name: c.Name, Plan: c.Plan, Environment: c.Environment, Metadata: c.Metadata,
		References: make([]referenceBody, 0, len(c.References)),
		Emails:     append([]string{}, c.Emails...),
		Aliases:    append([]string{}, c.Aliases...),
		CreatedAt:  c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	for _, r := range c.References {
		out.References = append(out.References, referenceBody{Source: r.Source, ExternalID: r.ExternalID})
	}
	return out
}
