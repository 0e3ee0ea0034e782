// Package source is the contract between uvr's connectors and the sync
// engine: a Source reads one service incrementally and hands events to an
// Emitter, which publishes them and saves the cursor only after Kafka
// acknowledged them. It also holds the HTTP client every native connector
// uses (retries, Retry-After, rate limit, auth errors with no secret in them).
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Cursor is a source's opaque incremental state, JSON of the source's own
// shape. nil means "from the beginning" (or the source's configured start).
type Cursor = json.RawMessage

// Source reads one configured service (one set of credentials).
type Source interface {
	// Check verifies the credentials with one real, cheap call to the
	// service. A rejected credential is an *AuthError.
	Check(ctx context.Context) error
	// Read emits, through out, the events of everything since cursor, page by
	// page, each Emit with the cursor that resumes after that page. It
	// returns nil once caught up. An *AuthError stops the sync; a record that
	// cannot be mapped is reported with out.Skip and the sync goes on.
	Read(ctx context.Context, cursor Cursor, out Emitter) error
}

// Emitter receives what a Source reads.
type Emitter interface {
	// Emit publishes events (valid v1 events with ids deterministic in the
	// source's records, so a repeated page is absorbed by deduplication).
	// When it returns nil, Kafka has every event and next, when non-nil, is
	// the saved cursor: a crash afterwards resumes from next, a crash before
	// repeats the page, and nothing is ever skipped. An error must stop Read.
	Emit(ctx context.Context, events []event.Event, next Cursor) error
	// Skip reports a source record that could not be turned into events:
	// record names it (e.g. "invoice in_123", "page 3 item 7"), reason says
	// why. The sync goes on; the sync run lists what was skipped.
	Skip(record string, reason error)
}

// AuthError is a credential the service rejected (HTTP 401/403). It never
// holds the credential itself.
type AuthError struct {
	Service string
	Status  int
	Detail  string // the service's message, redacted
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s rejected the credentials (HTTP %d): %s", e.Service, e.Status, e.Detail)
}

// IsAuth reports whether err is or wraps an *AuthError.
func IsAuth(err error) bool {
	var a *AuthError
	return errors.As(err, &a)
}
