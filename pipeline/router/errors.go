package router

import "errors"

// permanentError marks an error that no retry can fix: a malformed payload, an unknown event
// type, a violated invariant. The message goes to the poison topic instead of blocking its
// partition.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent. Wrapping the result again (fmt.Errorf("…: %w", err))
// keeps it permanent. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with Permanent.
// Everything else is transient: retried, then nacked and redelivered.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
