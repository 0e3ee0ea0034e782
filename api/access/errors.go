package access

import "errors"

// Kind classifies an access error, so that the API maps kinds to statuses in
// one place (api/errors.go).
type Kind string

// Error kinds.
const (
	KindInvalid      Kind = "invalid"      // bad input: Field names it
	KindConflict     Kind = "conflict"     // the email is taken
	KindNotFound     Kind = "not_found"    // no such user or key
	KindUnauthorized Kind = "unauthorized" // no, bad, expired or revoked credentials
	KindForbidden    Kind = "forbidden"    // authenticated, but the role does not allow it
	KindUnavailable  Kind = "unavailable"  // Kafka is unreachable
)

// Error is an access error. Message is safe to show to clients: it never
// holds a password, hash, token or key, and for unauthorized it never says
// whether an email exists. Err is the cause, for logs only.
type Error struct {
	Kind    Kind
	Field   string // for KindInvalid: the request field at fault
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err, or "" when err is not an access error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

func invalid(field, message string) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: message}
}

func unauthorized(message string) *Error {
	return &Error{Kind: KindUnauthorized, Message: message}
}

func unavailable(err error) *Error {
	return &Error{Kind: KindUnavailable, Message: "the user store is unavailable (Kafka)", Err: err}
}
