package event

import (
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys set on every event message. KeyMetadata is the Kafka key the
// transport partitions by (pipeline/kafka reads the same name).
const (
	KeyMetadata    = "partition_key"
	TypeMetadata   = "ce_type"
	IDMetadata     = "ce_id"
	SourceMetadata = "ce_source"
	// ValidatedMetadata marks a message whose event the publisher validated
	// (Parse, ParseBatch or Validate) under the rules of RulesVersion; its
	// value is that version. See FromMessage.
	ValidatedMetadata = "uvr_validated"
)

// RulesVersion names the validation rules of Parse. Bump it whenever a rule
// in parse.go tightens: records validated at the edge under older rules are
// then parsed again in full by FromMessage (on replay, say), so a record the
// new rules refuse still goes to the poison topic instead of failing a
// ClickHouse insert.
const RulesVersion = "1"

// MarkValidated marks msgs (made from events that passed Parse, ParseBatch
// or Validate) as validated under RulesVersion.
func MarkValidated(msgs []*message.Message) {
	for _, m := range msgs {
		m.Metadata.Set(ValidatedMetadata, RulesVersion)
	}
}

// FromMessage returns the event of a message. The event is validated once,
// at the edge: a message marked validated under the current RulesVersion is
// only decoded (a fraction of Parse's cost); any other, unmarked or marked
// under other rules, is decoded and validated in full (Decode). Errors: a
// *ValidationError, which no retry can cure.
func FromMessage(msg *message.Message) (Event, error) {
	if msg.Metadata.Get(ValidatedMetadata) != RulesVersion {
		// Decode, not Parse: the event was accepted already, so the window's
		// clock-relative upper end (now + 1 year) must not refuse it later.
		return Decode(msg.Payload)
	}
	var ev Event
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return Event{}, &ValidationError{Problems: []Problem{{Index: -1, Field: "(message)", Reason: "marked validated but not an event: " + jsonReason(err)}}}
	}
	return ev, nil
}

// Message wraps the event's canonical JSON in a Watermill message keyed by its
// customer, so one customer's events stay ordered in one partition.
func (e Event) Message() (*message.Message, error) {
	payload, err := e.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal event %s/%s: %w", e.Source, e.ID, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(KeyMetadata, e.PartitionKey())
	msg.Metadata.Set(TypeMetadata, e.Type)
	msg.Metadata.Set(IDMetadata, e.ID)
	msg.Metadata.Set(SourceMetadata, e.Source)
	return msg, nil
}

// Messages converts a batch; it fails on the first event that cannot be encoded.
func Messages(events []Event) ([]*message.Message, error) {
	msgs := make([]*message.Message, len(events))
	for i, e := range events {
		m, err := e.Message()
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}
