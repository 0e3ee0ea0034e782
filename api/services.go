package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/services"
)

// ServiceRegistry configures the services uvr syncs (connectors/services).
// Errors are *services.Error values, mapped to statuses in errors.go; their
// messages never hold a credential. Safe for concurrent use.
type ServiceRegistry interface {
	ServiceTypes // GET /api/service-types (servicetypes.go)
	List(ctx context.Context) ([]services.Service, error)
	// Create validates and stores a service and its credentials.
	Create(ctx context.Context, req services.NewService) (services.Service, error)
	// Delete removes a service and its credentials.
	Delete(ctx context.Context, id string) error
	// Test makes one real call to the service with creds; nil means they work.
	Test(ctx context.Context, serviceType string, creds map[string]string) error
}

// maxServiceBody bounds a service request: a few credentials, never megabytes.
const maxServiceBody = 64 << 10

type serviceBody struct {
	ID                  string     `json:"id"`
	ServiceType         string     `json:"service_type"`
	ServiceCategory     string     `json:"service_category"`
	ServiceName         string     `json:"service_name"`
	Status              string     `json:"status"`
	AirbyteSourceID     *string    `json:"airbyte_source_id"`
	AirbyteConnectionID *string    `json:"airbyte_connection_id"`
	LastSync            *time.Time `json:"last_sync"`
	SyncIntervalSeconds int64      `json:"sync_interval_seconds"`
	CreatedAt           time.Time  `json:"created_at"`
}

type servicesBody struct {
	Services []serviceBody `json:"services"`
}

type createServiceRequest struct {
	ServiceType     string          `json:"service_type"`
	ServiceName     string          `json:"service_name"`
	ServiceCategory string          `json:"service_category"`
	Credentials     json.RawMessage `json:"credentials"`
}

type createServiceResponse struct {
	Success             bool   `json:"success"`
	Message             string `json:"message"`
	ServiceID           string `json:"service_id"`
	AirbyteConnectionID string `json:"airbyte_connection_id,omitempty"`
}

type testServiceRequest struct {
	ServiceType string          `json:"service_type"`
	Credentials json.RawMessage `json:"credentials"`
}

type resultBody struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

func (s *Server) registry(c *gin.Context) (ServiceRegistry, bool) {
	if s.cfg.Services == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "service configuration is not enabled on this server"})
		return nil, false
	}
	return s.cfg.Services, true
}

// listServices serves GET /api/services. Credentials are never part of it.
func (s *Server) listServices(c *gin.Context) {
	reg, ok := s.registry(c)
	if !ok {
		return
	}
	list, err := reg.List(c.Request.Context())
	if err != nil {
		s.writeError(c, err)
		return
	}
	body := servicesBody{Services: make([]serviceBody, 0, len(list))}
	for _, svc := range list {
		body.Services = append(body.Services, serviceBody{
			ID:                  svc.ID,
			ServiceType:         svc.Type,
			ServiceCategory:     string(svc.Category),
			ServiceName:         svc.Name,
			Status:              string(svc.Status),
			AirbyteSourceID:     nonEmpty(svc.AirbyteSourceID),
			AirbyteConnectionID: nonEmpty(svc.AirbyteConnectionID),
			LastSync:            svc.LastSync,
			SyncIntervalSeconds: int64(svc.SyncInterval / time.Second),
			CreatedAt:           svc.CreatedAt,
		})
	}
	c.JSON(http.StatusOK, body)
}

// createService serves POST /api/services.
func (s *Server) createService(c *gin.Context) {
	reg, ok := s.registry(c)
	if !ok {
		return
	}
	var req createServiceRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	creds, err := credentialsOf(req.Credentials)
	if err != nil {
		s.writeError(c, err)
		return
	}
	svc, err := reg.Create(c.Request.Context(), services.NewService{
		Type:        req.ServiceType,
		Name:        req.ServiceName,
		Category:    catalog.Category(req.ServiceCategory),
		Credentials: creds,
	})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, createServiceResponse{
		Success:             true,
		Message:             fmt.Sprintf("%s service %q created", svc.Type, svc.Name),
		ServiceID:           svc.ID,
		AirbyteConnectionID: svc.AirbyteConnectionID,
	})
}

// deleteService serves DELETE /api/services/:id.
func (s *Server) deleteService(c *gin.Context) {
	reg, ok := s.registry(c)
	if !ok {
		return
	}
	id := c.Param("id")
	if err := reg.Delete(c.Request.Context(), id); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, resultBody{Success: true, Message: fmt.Sprintf("service %s deleted", id)})
}

// testFailure is the answer to a test that ran and failed: clients of the
// original product judge by the status, so it is never a 2xx.
type testFailure struct {
	Success bool   `json:"success"` // always false
	Message string `json:"message"`
	Detail  string `json:"detail"` // the same message, where error bodies have it
}

// testService serves POST /api/test-service: one real call to the service.
// A request that cannot be tested (unknown type, missing fields) is a 400;
// credentials the service refused are a 422, a service that could not be
// reached a 502, both with success false and the service's own message,
// credentials removed; 200 with success true means they work.
func (s *Server) testService(c *gin.Context) {
	reg, ok := s.registry(c)
	if !ok {
		return
	}
	var req testServiceRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	creds, err := credentialsOf(req.Credentials)
	if err != nil {
		s.writeError(c, err)
		return
	}
	err = reg.Test(c.Request.Context(), req.ServiceType, creds)
	var svcErr *services.Error
	switch {
	case err == nil:
		c.JSON(http.StatusOK, resultBody{Success: true, Message: fmt.Sprintf("connected to %s: the credentials work", req.ServiceType)})
	case errors.As(err, &svcErr) && svcErr.Kind == services.KindAuth:
		c.JSON(http.StatusUnprocessableEntity, testFailure{Message: svcErr.Message, Detail: svcErr.Message})
	case errors.As(err, &svcErr) && svcErr.Kind == services.KindUnavailable:
		c.JSON(http.StatusBadGateway, testFailure{Message: svcErr.Message, Detail: svcErr.Message})
	default:
		s.writeError(c, err)
	}
}

type settingsBody struct {
	Success    bool   `json:"success"`
	Message    string `json:"message"`
	Deprecated bool   `json:"deprecated"`
}

// postSettings serves POST /api/settings, which the original product had
// already deprecated: it answered success with deprecated true and kept
// nothing, and so does this. The body (API keys, typically) is read to check
// it is a JSON object, then dropped: never stored, never logged.
func (s *Server) postSettings(c *gin.Context) {
	var body map[string]json.RawMessage
	if err := s.readJSON(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, settingsBody{Success: true, Deprecated: true,
		Message: "POST /api/settings is deprecated and stores nothing: add each integration with POST /api/services"})
}

// configuredTypes reports, for the health answer, which service types have a
// service configured (the original product's openai_configured and
// stripe_configured). Without a registry, or if it cannot be read, none.
func (s *Server) configuredTypes(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	if s.cfg.Services == nil {
		return out
	}
	list, err := s.cfg.Services.List(ctx)
	if err != nil {
		s.logger.Warn("health: the configured services could not be listed", "error", err.Error())
		return out
	}
	for _, svc := range list {
		out[svc.Type] = true
	}
	return out
}

// readJSON decodes a bounded JSON object body into v. Decoding errors are
// described without quoting the body: it carries credentials.
func (s *Server) readJSON(c *gin.Context, v any) error {
	body, err := s.readBody(c, maxServiceBody)
	if err != nil {
		return err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return invalid("request body is empty: a JSON object is expected")
	}
	if body[0] != '{' {
		return invalid("request body is not a JSON object")
	}
	if err := refuseNulls(body, v); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return invalid(fmt.Sprintf("field %s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
		}
		return invalid("request body is not a valid JSON object")
	}
	return nil
}

// refuseNulls refuses null for a field of the struct v points to: decoding
// would leave the field as if it were absent, where the document says the
// field is a string, an object… and null is none of them. A field tagged
// api:"nullable" takes null as absent (the document says so); fields v does
// not have, and every field of a map, take what the document allows.
func refuseNulls(body []byte, v any) error {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil // json.Unmarshal into v reports it
	}
	for i := range t.Elem().NumField() {
		field := t.Elem().Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if raw, ok := fields[name]; ok && string(raw) == "null" && field.Tag.Get("api") != "nullable" {
			return fieldError(name, name+" must not be null: leave it out instead")
		}
	}
	return nil
}

// credentialsOf reads the credentials object: string values, and numbers or
// booleans as written (a Paddle vendor_id is often sent as a number).
func credentialsOf(raw json.RawMessage) (map[string]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]string{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, invalid("credentials must be a JSON object of field names to strings")
	}
	creds := make(map[string]string, len(fields))
	for k, v := range fields {
		switch v := v.(type) {
		case string:
			creds[k] = v
		case json.Number:
			creds[k] = v.String()
		case bool:
			creds[k] = fmt.Sprint(v)
		case nil:
			// null: as if absent
		default:
			return nil, invalid(fmt.Sprintf("credentials.%s must be a string", k))
		}
	}
	return creds, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return goKind
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
