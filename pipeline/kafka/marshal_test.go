package kafka_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

func TestMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		metadata message.Metadata
		wantKey  []byte
	}{
		{name: "no metadata: nil key, records spread round-robin", wantKey: nil},
		{name: "partition key becomes the record key", metadata: message.Metadata{kafka.KeyMetadata: "customer-42", "source": "stripe"}, wantKey: []byte("customer-42")},
		{name: "empty partition key is still a key", metadata: message.Metadata{kafka.KeyMetadata: ""}, wantKey: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m kafka.Marshaler
			msg := message.NewMessage("0b6f0a6e-6f5e-4b7e-9d55-6a7c3b0f2f4a", []byte(`{"amount":1}`))
			for k, v := range tt.metadata {
				msg.Metadata.Set(k, v)
			}

			rec, err := m.Marshal("usage", msg)
			require.NoError(t, err)
			assert.Equal(t, "usage", rec.Topic)
			assert.Equal(t, tt.wantKey, rec.Key)
			assert.Equal(t, []byte(`{"amount":1}`), rec.Value)

			rec.Partition, rec.Offset = 3, 17 // as consumed
			got := m.Unmarshal(rec)
			assert.Equal(t, msg.UUID, got.UUID)
			assert.Equal(t, msg.Payload, got.Payload)
			assert.Equal(t, len(msg.Metadata)+2, len(got.Metadata), "the metadata plus the read position")
			for k, v := range msg.Metadata {
				assert.Equal(t, v, got.Metadata.Get(k), k)
			}
			assert.Equal(t, "3", got.Metadata.Get(kafka.PartitionMetadata))
			assert.Equal(t, "17", got.Metadata.Get(kafka.OffsetMetadata))
		})
	}
}

func TestMarshalRejectsReservedMetadata(t *testing.T) {
	msg := message.NewMessage("id", nil)
	msg.Metadata.Set(kafka.UUIDHeader, "spoofed")
	_, err := kafka.Marshaler{}.Marshal("usage", msg)
	require.ErrorContains(t, err, "reserved")
}

func TestUnmarshalForeignRecordGetsPositionalUUID(t *testing.T) {
	// A record produced without our headers (kafka-console-producer, another service).
	rec := kafkago.Message{Topic: "usage", Partition: 2, Offset: 99, Value: []byte("x"),
		Headers: []kafkago.Header{{Key: "content-type", Value: []byte("application/json")}}}
	msg := kafka.Marshaler{}.Unmarshal(rec)
	assert.Equal(t, "usage/2/99", msg.UUID, "stable across redeliveries, so deduplication works")
	assert.Equal(t, "application/json", msg.Metadata.Get("content-type"))
}
