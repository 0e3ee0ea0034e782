package airbyte

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// States accumulates a source's STATE messages into the state to resume
// from: the latest state of each stream (per-stream states), the latest
// global state, or the latest legacy blob. Its JSON (Cursor) is exactly what
// `read --state FILE` takes: an array of state messages, or the legacy
// object. It is the airbyte.Source's source.Cursor.
type States struct {
	streams []StateMessage // latest per stream descriptor, in first-seen order
	global  *StateMessage
	legacy  json.RawMessage
}

// ParseStates reads a saved cursor (nil or empty: no state).
func ParseStates(cursor []byte) (*States, error) {
	s := &States{}
	cursor = bytes.TrimSpace(cursor)
	if len(cursor) == 0 || string(cursor) == "null" {
		return s, nil
	}
	switch cursor[0] {
	case '[':
		var msgs []StateMessage
		if err := json.Unmarshal(cursor, &msgs); err != nil {
			return nil, fmt.Errorf("saved airbyte state: %s", jsonReason(err))
		}
		for i, m := range msgs {
			if err := (Message{Type: TypeState, State: &m}).Validate(); err != nil {
				return nil, fmt.Errorf("saved airbyte state [%d]: %w", i, err)
			}
			s.Add(m)
		}
	case '{':
		// A legacy state file is the bare data object.
		s.legacy = append(json.RawMessage(nil), cursor...)
	default:
		return nil, fmt.Errorf("saved airbyte state must be a JSON array of state messages or a legacy state object")
	}
	return s, nil
}

// Add records a STATE message; a later state of the same stream replaces
// the earlier one.
func (s *States) Add(m StateMessage) {
	m.SourceStats, m.DestinationStats = nil, nil // per-run counts, not state
	switch m.Kind() {
	case StateStream:
		for i, old := range s.streams {
			if old.Stream.StreamDescriptor == m.Stream.StreamDescriptor {
				s.streams[i] = m
				return
			}
		}
		s.streams = append(s.streams, m)
	case StateGlobal:
		s.global = &m
	case StateLegacy:
		s.legacy = m.Data
	}
}

// Empty reports whether no state was recorded.
func (s *States) Empty() bool {
	return len(s.streams) == 0 && s.global == nil && s.legacy == nil
}

// Cursor is the JSON to save and to hand back with --state; nil when empty.
func (s *States) Cursor() (json.RawMessage, error) {
	if s.Empty() {
		return nil, nil
	}
	if s.legacy != nil && len(s.streams) == 0 && s.global == nil {
		return s.legacy, nil
	}
	msgs := make([]StateMessage, 0, len(s.streams)+1)
	if s.global != nil {
		msgs = append(msgs, *s.global)
	}
	msgs = append(msgs, s.streams...)
	b, err := json.Marshal(msgs)
	if err != nil {
		return nil, fmt.Errorf("encode airbyte state: %w", err)
	}
	return b, nil
}
