package event

import (
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
)

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
