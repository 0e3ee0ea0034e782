package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/customers"
)

// Error kinds. Handlers wrap failures in an *Error of one kind; statusOf is
// the one place that turns a kind into an HTTP status (wtf's error.go).
const (
	KindInvalid     = "invalid"
	KindTooLarge    = "too_large"
	KindUnsupported = "unsupported_media_type"
	KindNotFound    = "not_found"
	// KindMethodNotAllowed: the path exists, not with this method (405).
	KindMethodNotAllowed = "method_not_allowed"
	// KindTooManyRequests: a rate limit (429, with Retry-After).
	KindTooManyRequests = "too_many_requests"
	KindConflict        = "conflict"
	KindUnavailable     = "unavailable"
	// KindUnauthorized: no, bad or expired credentials (401 with
	// WWW-Authenticate); KindForbidden: the role may not do this (403).
	KindUnauthorized = "unauthorized"
	KindForbidden    = "forbidden"
	KindInternal     = "internal"
)

// Error is an API error: a kind, a message safe to show to the client, and
// for invalid input the list of problems with their field paths.
type Error struct {
	Kind     string
	Detail   string
	Problems []event.Problem
	Err      error // the cause, logged but never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf-free constructors keep call sites short.
func invalid(detail string) error { return &Error{Kind: KindInvalid, Detail: detail} }

func unavailable(detail string, err error) error {
	return &Error{Kind: KindUnavailable, Detail: detail, Err: err}
}

func statusOf(kind string) int {
	switch kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindUnsupported:
		return http.StatusUnsupportedMediaType
	case KindNotFound:
		return http.StatusNotFound
	case KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case KindTooManyRequests:
		return http.StatusTooManyRequests
	case KindConflict:
		return http.StatusConflict
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindForbidden:
		return http.StatusForbidden
	case KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// serviceKinds maps the service registry's error kinds (connectors/services).
// A credential the external service rejected is the client's input: 400.
var serviceKinds = map[services.Kind]string{
	services.KindInvalid:     KindInvalid,
	services.KindNotFound:    KindNotFound,
	services.KindConflict:    KindConflict,
	services.KindUnavailable: KindUnavailable,
	services.KindAuth:        KindInvalid,
}

// customerKinds maps the customer directory's error kinds (projections/customers).
var customerKinds = map[customers.Kind]string{
	customers.KindInvalid:     KindInvalid,
	customers.KindNotFound:    KindNotFound,
	customers.KindUnavailable: KindUnavailable,
}

// accessKinds maps the access store's error kinds (api/access).
var accessKinds = map[access.Kind]string{
	access.KindInvalid:      KindInvalid,
	access.KindConflict:     KindConflict,
	access.KindNotFound:     KindNotFound,
	access.KindUnauthorized: KindUnauthorized,
	access.KindForbidden:    KindForbidden,
	access.KindUnavailable:  KindUnavailable,
}

// errorBody is the JSON of every error response. "detail" is the shape REST
// clients of the original product parse; "errors" lists each problem.
type errorBody struct {
	Detail string          `json:"detail"`
	Errors []event.Problem `json:"errors,omitempty"`
}

// writeError renders err with the status of its kind. Errors that are not an
// *Error are internal: logged with their cause, shown as a generic message.
func (s *Server) writeError(c *gin.Context, err error) {
	apiErr := &Error{Kind: KindInternal, Detail: "internal error", Err: err}
	var svcErr *services.Error
	var custErr *customers.Error
	switch {
	case errors.As(err, &apiErr):
	case errors.As(err, &svcErr):
		apiErr = &Error{Kind: serviceKinds[svcErr.Kind], Detail: svcErr.Message, Err: err}
	case errors.As(err, &custErr):
		apiErr = &Error{Kind: customerKinds[custErr.Kind], Detail: custErr.Message, Err: err}
	case access.KindOf(err) != "":
		apiErr, _ = accessError(err)
	case errors.Is(err, context.DeadlineExceeded):
		apiErr = &Error{Kind: KindUnavailable, Detail: "request timed out", Err: err}
	}
	status := statusOf(apiErr.Kind)
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="uvr"`)
	}
	if status >= 500 {
		s.logger.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.String("route", c.FullPath()), slog.Int("status", status), slog.String("error", err.Error()))
	}
	c.AbortWithStatusJSON(status, errorBody{Detail: apiErr.Detail, Errors: apiErr.Problems})
}
