package services

import (
	"errors"
	"strings"
)

// Kind classifies a registry error, so that the API maps kinds to statuses in
// one place.
type Kind string

// Error kinds.
const (
	KindInvalid     Kind = "invalid"     // the request is wrong: unknown type, missing fields
	KindNotFound    Kind = "not_found"   // no service with that id
	KindConflict    Kind = "conflict"    // a service of that type and name exists
	KindUnavailable Kind = "unavailable" // Kafka, the credential store or the service is unreachable
	KindAuth        Kind = "auth"        // the service rejected the credentials
)

// Error is a registry error. Message is safe to show to API clients: it never
// holds a credential value. Err is the cause, for logs (no credential either).
type Error struct {
	Kind    Kind
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

// KindOf returns the kind of err, or "" when err is not a registry error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

func newError(kind Kind, message string, err error) *Error {
	return &Error{Kind: kind, Message: message, Err: err}
}

// redact replaces every credential value of 4 characters or more in s: the
// errors of a connector or a service's answer may quote what was sent.
func redact(s string, creds map[string]string) string {
	for _, v := range creds {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// redactedError keeps a cause's message with the credentials removed. The
// chain below it is dropped on purpose: an unwrapped cause could still print
// the value.
type redactedError struct{ msg string }

func (e redactedError) Error() string { return e.msg }

func redactErr(err error, creds map[string]string) error {
	if err == nil {
		return nil
	}
	return redactedError{msg: redact(err.Error(), creds)}
}
