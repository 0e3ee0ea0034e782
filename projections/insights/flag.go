package insights

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// Finding is what a rule found in one evaluation: a condition that holds now.
type Finding struct {
	Kind     Kind
	Severity Severity
	// CustomerID (and its display name) and/or Feature name the subject.
	CustomerID   string
	CustomerName string
	Feature      string
	// Window is the data the finding describes (the last 30 days, an
	// anomalous day).
	Window Window
	// Period is the part of the flag's identity that says which window:
	// the rule's rolling window for rolling rules ("30d"), so the finding
	// keeps its identity as the window moves day by day; the day itself for
	// a usage anomaly ("2026-11-03").
	Period string
	// Evidence holds the numbers behind the finding as decimal strings, by
	// snake_case name ("cost", "revenue", "loss").
	Evidence    map[string]string
	Title       string
	Description string
}

// Key identifies the condition: kind, customer, feature and period. The same
// condition found by two runs has the same key, and so the same flag. A usage
// anomaly is a customer's day: its Feature (the one that moved most) is left
// out of the key, since late data may change which feature that is.
func (f Finding) Key() string {
	feature := f.Feature
	if f.Kind == KindUsageAnomaly {
		feature = ""
	}
	return string(f.Kind) + "|" + f.CustomerID + "|" + feature + "|" + f.Period
}

// FlagID is the deterministic id of the flag of a key: "flg_" and the first
// 32 hex digits of its SHA-256.
func FlagID(key string) string {
	h := sha256.Sum256([]byte(key))
	return "flg_" + hex.EncodeToString(h[:16])
}

// ID is FlagID(f.Key()).
func (f Finding) ID() string { return FlagID(f.Key()) }

// Flag is a finding tracked across runs (a row of insight_flags).
type Flag struct {
	ID           string            `json:"id"`
	Key          string            `json:"key"`
	Kind         Kind              `json:"kind"`
	Severity     Severity          `json:"severity"`
	CustomerID   string            `json:"customer_id,omitempty"`
	CustomerName string            `json:"customer_name,omitempty"`
	Feature      string            `json:"feature,omitempty"`
	Window       Window            `json:"window"`
	Evidence     map[string]string `json:"evidence"`
	Title        string            `json:"title"`
	Description  string            `json:"description"`
	Status       Status            `json:"status"`
	// FirstSeen is the run that first found the condition; LastSeen the
	// latest run that found it. A reopened flag keeps its FirstSeen.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// ResolvedAt is set while the flag is resolved; AcknowledgedAt while it
	// is acknowledged.
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	// Reopened counts how many times the condition came back after the
	// flag was resolved.
	Reopened int `json:"reopened"`
	// Version grows by one with every change (a run, an acknowledgement);
	// a store keeps the highest version of an id (ClickHouse:
	// ReplacingMergeTree(version)).
	Version uint64 `json:"version"`
}

// ErrResolved is returned when acknowledging a resolved flag.
var ErrResolved = errors.New("flag is resolved")

// Acknowledge marks an open flag as seen: it stays acknowledged while its
// condition holds and resolves when it clears. Acknowledging an acknowledged
// flag changes nothing; a resolved one gives ErrResolved.
func (f *Flag) Acknowledge(now time.Time) error {
	switch f.Status {
	case StatusAcknowledged:
		return nil
	case StatusResolved:
		return ErrResolved
	}
	f.Status, f.AcknowledgedAt = StatusAcknowledged, now.UTC()
	f.Version++
	return nil
}

// Resolve closes a flag by hand. If its condition still holds, the next run
// reopens it: resolving says "fixed", acknowledging says "known". Resolving a
// resolved flag changes nothing.
func (f *Flag) Resolve(now time.Time) {
	if f.Status == StatusResolved {
		return
	}
	f.Status, f.ResolvedAt, f.AcknowledgedAt = StatusResolved, now.UTC(), time.Time{}
	f.Version++
}

// Changes says what Reconcile did, by flag id.
type Changes struct {
	Created  []string // new conditions: a flag opened
	Reopened []string // resolved flags whose condition came back
	Updated  []string // active flags found again (last_seen, evidence)
	Resolved []string // active flags whose condition cleared
	// Escalated are the updated or reopened flags whose severity rose.
	Escalated []string
}

// Changed lists the ids of every flag Reconcile changed.
func (c Changes) Changed() []string {
	return slices.Concat(c.Created, c.Reopened, c.Updated, c.Resolved)
}

// Reconcile merges the findings of a run at now into the existing flags and
// returns every flag, sorted by id:
//
//   - a finding with no flag opens one (first_seen = last_seen = now);
//   - a finding with an open or acknowledged flag updates its last_seen,
//     severity, window, evidence and text; an acknowledged flag stays
//     acknowledged;
//   - a finding with a resolved flag reopens it: open again, same id and
//     first_seen, Reopened + 1;
//   - an open or acknowledged flag without a finding is resolved;
//   - resolved flags without a finding stay as they are.
//
// Ids are derived from keys, so there is never more than one flag per key:
// flags repeated in existing are merged (the highest version wins) and
// repeated findings count once (the most severe). Reconcile is pure: it does
// not modify its arguments.
func Reconcile(existing []Flag, findings []Finding, now time.Time) []Flag {
	flags, _ := reconcile(existing, findings, now)
	return flags
}

func reconcile(existing []Flag, findings []Finding, now time.Time) ([]Flag, Changes) {
	now = now.UTC()
	byID := make(map[string]Flag, len(existing)+len(findings))
	for _, f := range existing {
		if old, ok := byID[f.ID]; ok && old.Version >= f.Version {
			continue
		}
		f.Evidence = maps.Clone(f.Evidence)
		byID[f.ID] = f
	}

	found := make(map[string]Finding, len(findings))
	for _, fd := range findings {
		id := fd.ID()
		if old, ok := found[id]; ok && old.Severity.Rank() >= fd.Severity.Rank() {
			continue
		}
		found[id] = fd
	}

	var ch Changes
	for _, id := range slices.Sorted(maps.Keys(found)) {
		fd := found[id]
		f, ok := byID[id]
		switch {
		case !ok:
			f = Flag{ID: id, Key: fd.Key(), Status: StatusOpen, FirstSeen: now}
			ch.Created = append(ch.Created, id)
		case f.Status == StatusResolved:
			f.Status, f.ResolvedAt, f.AcknowledgedAt = StatusOpen, time.Time{}, time.Time{}
			f.Reopened++
			ch.Reopened = append(ch.Reopened, id)
			if fd.Severity.Rank() > f.Severity.Rank() {
				ch.Escalated = append(ch.Escalated, id)
			}
		default:
			ch.Updated = append(ch.Updated, id)
			if fd.Severity.Rank() > f.Severity.Rank() {
				ch.Escalated = append(ch.Escalated, id)
			}
		}
		f.Key, f.Kind, f.Severity = fd.Key(), fd.Kind, fd.Severity
		f.CustomerID, f.CustomerName, f.Feature = fd.CustomerID, fd.CustomerName, fd.Feature
		f.Window, f.Evidence = fd.Window, maps.Clone(fd.Evidence)
		f.Title, f.Description = fd.Title, fd.Description
		f.LastSeen = now
		f.Version++
		byID[id] = f
	}

	for _, id := range slices.Sorted(maps.Keys(byID)) {
		f := byID[id]
		if _, ok := found[id]; ok || !f.Status.Active() {
			continue
		}
		f.Status, f.ResolvedAt, f.AcknowledgedAt = StatusResolved, now, time.Time{}
		f.Version++
		byID[id] = f
		ch.Resolved = append(ch.Resolved, id)
	}

	flags := slices.Collect(maps.Values(byID))
	slices.SortFunc(flags, func(a, b Flag) int { return cmp.Compare(a.ID, b.ID) })
	return flags, ch
}

// sortFindings orders findings by kind (evaluation order), then key.
func sortFindings(fs []Finding) {
	rank := map[Kind]int{}
	for i, k := range Kinds {
		rank[k] = i
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := cmp.Compare(rank[a.Kind], rank[b.Kind]); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
}
