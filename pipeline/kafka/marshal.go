package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
)

// KeyMetadata is the message metadata whose value becomes the Kafka record key. Records with
// the same key land in the same partition and are therefore delivered in order; without it
// the key is nil and records are spread round-robin with no order between them.
const KeyMetadata = "partition_key"

// UUIDHeader carries the Watermill message UUID. It is the header watermill-kafka uses, so
// Watermill tools on either driver read our records.
const UUIDHeader = "_watermill_message_uuid"

// Marshaler maps Watermill messages to Kafka records and back: payload ⇄ value, UUID and
// every metadata entry ⇄ headers, KeyMetadata ⇄ key. The zero value is ready to use.
type Marshaler struct{}

// Marshal builds the record for topic. It fails only on metadata that would collide with
// the UUID header, because the UUID is what downstream deduplication keys on.
func (Marshaler) Marshal(topic string, msg *message.Message) (kafkago.Message, error) {
	headers := make([]kafkago.Header, 0, len(msg.Metadata)+1)
	headers = append(headers, kafkago.Header{Key: UUIDHeader, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		if k == UUIDHeader {
			return kafkago.Message{}, fmt.Errorf("message %s: metadata key %q is reserved", msg.UUID, k)
		}
		headers = append(headers, kafkago.Header{Key: k, Value: []byte(v)})
	}

	var key []byte
	if k, ok := msg.Metadata[KeyMetadata]; ok {
		key = []byte(k)
	}

	return kafkago.Message{
		Topic:   topic,
		Key:     key,
		Value:   msg.Payload,
		Headers: headers,
	}, nil
}

// Metadata set on every consumed message: the record's partition and offset
// (decimal strings). They are read positions, never written as headers.
const (
	PartitionMetadata = "kafka_partition"
	OffsetMetadata    = "kafka_offset"
)

// Unmarshal rebuilds the Watermill message of a record. A record produced by something else
// than this package has no UUID header: its UUID is then derived from its position
// ("topic/partition/offset"), which is stable across redeliveries so deduplication still works.
func (Marshaler) Unmarshal(rec kafkago.Message) *message.Message {
	uuid := ""
	metadata := make(message.Metadata, len(rec.Headers))
	for _, h := range rec.Headers {
		if h.Key == UUIDHeader {
			uuid = string(h.Value)
			continue
		}
		metadata[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	msg := message.NewMessage(uuid, rec.Value)
	// The position travels as metadata too, so handlers can record where a row
	// came from without depending on this package's context key.
	metadata[PartitionMetadata] = strconv.Itoa(rec.Partition)
	metadata[OffsetMetadata] = strconv.FormatInt(rec.Offset, 10)
	msg.Metadata = metadata
	return msg
}

// RecordInfo is where a consumed message came from. Handlers log it (never the payload) and
// may use it as an idempotency key.
type RecordInfo struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Time      time.Time // the record's timestamp (producer time unless the topic says otherwise)
}

type recordInfoKey struct{}

// RecordInfoFromContext returns the RecordInfo of a message received from a Subscriber:
// RecordInfoFromContext(msg.Context()).
func RecordInfoFromContext(ctx context.Context) (RecordInfo, bool) {
	info, ok := ctx.Value(recordInfoKey{}).(RecordInfo)
	return info, ok
}

func withRecordInfo(ctx context.Context, rec kafkago.Message) context.Context {
	return context.WithValue(ctx, recordInfoKey{}, RecordInfo{
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Key:       rec.Key,
		Time:      rec.Time,
	})
}
