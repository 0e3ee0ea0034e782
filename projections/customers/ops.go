package customers

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Kind classifies an Error; api/errors.go maps kinds to HTTP statuses.
type Kind string

// Error kinds.
const (
	KindInvalid     Kind = "invalid"
	KindNotFound    Kind = "not_found"
	KindUnavailable Kind = "unavailable"
)

// Error is a failure of the directory with a message safe to show a client.
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

func newError(kind Kind, msg string, err error) error {
	return &Error{Kind: kind, Message: msg, Err: err}
}

// IsKind reports whether err is an *Error of kind.
func IsKind(err error, kind Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}

// Change is what a manual operation writes: pins, aliases and records, all
// keyed so that writing them again is harmless.
type Change struct {
	Pins     map[Ref]Pin
	Mappings map[Ref]Mapping
	Aliases  map[string]Alias
	Records  map[string]Record
}

// Apply returns s with the change written over it.
func (c Change) Apply(s State) State {
	s = s.Clone()
	if s.Pins == nil {
		s.Pins = map[Ref]Pin{}
	}
	if s.Aliases == nil {
		s.Aliases = map[string]Alias{}
	}
	if s.Records == nil {
		s.Records = map[string]Record{}
	}
	if s.Mappings == nil {
		s.Mappings = map[Ref]Mapping{}
	}
	maps.Copy(s.Mappings, c.Mappings)
	maps.Copy(s.Pins, c.Pins)
	maps.Copy(s.Aliases, c.Aliases)
	maps.Copy(s.Records, c.Records)
	return s
}

// ValidateRef checks a reference given by a client; field names the JSON
// path it came from.
func ValidateRef(r Ref, field string) error {
	var errs []string
	if strings.TrimSpace(r.Source) == "" {
		errs = append(errs, field+"source is required")
	}
	if strings.TrimSpace(r.ExternalID) == "" {
		errs = append(errs, field+"external_id is required")
	}
	if len(r.Source) > 256 || len(r.ExternalID) > 512 {
		errs = append(errs, field+"source must be at most 256 bytes and "+field+"external_id at most 512")
	}
	if len(errs) > 0 {
		return newError(KindInvalid, strings.Join(errs, "; "), nil)
	}
	if r.IsUnmapped() {
		return newError(KindInvalid, fmt.Sprintf("%sexternal_id %q is the unmapped bucket of %s, not a customer reference: it cannot be linked, unlinked or split", field, r.ExternalID, r.Source), nil)
	}
	return nil
}

// PlanLink pins ref to the customer id names (an alias is followed). The
// customer must exist; the reference need not have been seen yet (that is
// how a usage key is mapped ahead of its first event).
func PlanLink(s State, ref Ref, customerID string, now time.Time) (Change, error) {
	if err := ValidateRef(ref, ""); err != nil {
		return Change{}, err
	}
	if strings.TrimSpace(customerID) == "" {
		return Change{}, newError(KindInvalid, "customer_id is required", nil)
	}
	before := Resolve(s)
	target, ok := before.Lookup(customerID)
	if !ok {
		return Change{}, newError(KindNotFound, fmt.Sprintf("customer %s not found", customerID), nil)
	}
	if target.ID == UnmappedID {
		return Change{}, newError(KindInvalid, "customer_id: references cannot be linked to the unmapped customer", nil)
	}
	ch := Change{Pins: map[Ref]Pin{ref: {CustomerID: target.ID, At: now}}}
	return keepOthers(s, before, ch, []Ref{ref}, now), nil
}

// PlanUnlink makes ref its own customer again, for good: the pin is a manual
// decision that no later email or metadata match overrides. The customer it
// leaves keeps its id and its other references; ref gets its own id back,
// or a new one when that id is the customer it leaves or was merged away.
func PlanUnlink(s State, ref Ref, now time.Time, newID func() string) (Change, error) {
	if err := ValidateRef(ref, ""); err != nil {
		return Change{}, err
	}
	before := Resolve(s)
	cur, ok := before.Links[ref]
	if !ok {
		return Change{}, newError(KindNotFound, fmt.Sprintf("reference %s not found", ref), nil)
	}
	if cur.Rule == RuleUnlinked && len(before.Customers[cur.CustomerID].References) == 1 {
		// Already its own customer: write the same decision again.
		return Change{Pins: map[Ref]Pin{ref: s.Pins[ref]}}, nil
	}
	id := SelfID(ref)
	if _, merged := s.Aliases[id]; merged || usedByOthers(before, id, ref) {
		id = newID()
	}
	ch := Change{Pins: map[Ref]Pin{ref: {CustomerID: id, Unlinked: true, At: now}}}
	if id != SelfID(ref) {
		ch.Records = map[string]Record{id: {ID: id, CreatedAt: now}}
	}
	return keepOthers(s, before, ch, []Ref{ref}, now), nil
}

// usedByOthers reports whether a reference other than ref resolves to id.
func usedByOthers(res Resolution, id string, ref Ref) bool {
	c, ok := res.Customers[id]
	if !ok {
		return false
	}
	for _, r := range c.References {
		if r != ref {
			return true
		}
	}
	return false
}

// PlanMerge merges customer id into customer into: id becomes an alias of
// into, so every reference of id, and id itself, resolves to into.
func PlanMerge(s State, id, into string, now time.Time) (Change, error) {
	var errs []string
	if strings.TrimSpace(id) == "" {
		errs = append(errs, "customer_id is required")
	}
	if strings.TrimSpace(into) == "" {
		errs = append(errs, "into is required")
	}
	if len(errs) > 0 {
		return Change{}, newError(KindInvalid, strings.Join(errs, "; "), nil)
	}
	res := Resolve(s)
	from, ok := res.Lookup(id)
	if !ok {
		return Change{}, newError(KindNotFound, fmt.Sprintf("customer %s not found", id), nil)
	}
	to, ok := res.Lookup(into)
	if !ok {
		return Change{}, newError(KindNotFound, fmt.Sprintf("customer %s not found", into), nil)
	}
	switch {
	case from.ID == to.ID:
		return Change{}, newError(KindInvalid, fmt.Sprintf("into: customer %s is already customer %s", id, to.ID), nil)
	case from.ID == UnmappedID || to.ID == UnmappedID:
		return Change{}, newError(KindInvalid, "the unmapped customer cannot be merged: link its references' sources instead", nil)
	}
	return Change{Aliases: map[string]Alias{from.ID: {Into: to.ID, At: now}}}, nil
}

// PlanSplit moves refs, each of which must belong to customer id, into a new
// customer (id newID()); the rest stay with id.
func PlanSplit(s State, id string, refs []Ref, now time.Time, newID func() string) (Change, string, error) {
	if strings.TrimSpace(id) == "" {
		return Change{}, "", newError(KindInvalid, "customer_id is required", nil)
	}
	if len(refs) == 0 {
		return Change{}, "", newError(KindInvalid, "references must list at least one reference to move", nil)
	}
	for i, r := range refs {
		if err := ValidateRef(r, fmt.Sprintf("references[%d].", i)); err != nil {
			return Change{}, "", err
		}
	}
	before := Resolve(s)
	c, ok := before.Lookup(id)
	if !ok {
		return Change{}, "", newError(KindNotFound, fmt.Sprintf("customer %s not found", id), nil)
	}
	moving := map[Ref]bool{}
	for i, r := range refs {
		if before.Links[r].CustomerID != c.ID {
			return Change{}, "", newError(KindInvalid, fmt.Sprintf("references[%d]: %s does not belong to customer %s", i, r, c.ID), nil)
		}
		moving[r] = true
	}
	if len(moving) >= len(c.References) {
		return Change{}, "", newError(KindInvalid, fmt.Sprintf("references: moving every reference of customer %s would leave it empty; leave at least one", c.ID), nil)
	}
	nid := newID()
	ch := Change{Pins: map[Ref]Pin{}, Records: map[string]Record{nid: {ID: nid, CreatedAt: now}}}
	for r := range moving {
		ch.Pins[r] = Pin{CustomerID: nid, At: now}
	}
	return keepOthers(s, before, ch, refs, now), nid, nil
}

// keepOthers pins every reference that the change would move off its
// customer without being named by the operation (a reference that followed
// a moved one by email): a manual operation on one reference must not
// regroup the others.
func keepOthers(s State, before Resolution, ch Change, named []Ref, now time.Time) Change {
	after := Resolve(ch.Apply(s))
	skip := map[Ref]bool{}
	for _, r := range named {
		skip[r] = true
	}
	for r, l := range before.Links {
		if skip[r] || after.Links[r].CustomerID == l.CustomerID {
			continue
		}
		if ch.Pins == nil {
			ch.Pins = map[Ref]Pin{}
		}
		ch.Pins[r] = Pin{CustomerID: l.CustomerID, At: now}
	}
	return ch
}
