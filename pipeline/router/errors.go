package router

import "errors"

// permanentError marks an error that no retry can fix: a malformed payload, an unknown event
// type, a violated invariant, a value the table cannot hold. The message goes to the poison
// (dead-letter) topic instead of blocking its partition.
type permanentError struct {
	err   error
	class string
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ClassInvalid is the reason class of Permanent: a message that is not a valid event.
const ClassInvalid = "invalid"

// Permanent marks err as permanent, of class ClassInvalid. Wrapping the result again
// (fmt.Errorf("…: %w", err)) keeps it permanent. Permanent(nil) is nil.
func Permanent(err error) error { return PermanentClass(ClassInvalid, err) }

// PermanentClass marks err as permanent, of class: a short, fixed word saying why (it labels
// uvr_deadletters_total and travels with the dead letter, so never a value or an id).
func PermanentClass(class string, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err, class: class}
}

// IsPermanent reports whether err, or any error it wraps, was marked with Permanent.
// Everything else is transient: retried, then nacked and redelivered.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ReasonClass is the class err was marked permanent with; "" when it was not.
func ReasonClass(err error) string {
	var p *permanentError
	if errors.As(err, &p) {
		return p.class
	}
	return ""
}
