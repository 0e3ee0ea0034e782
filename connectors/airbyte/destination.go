package airbyte

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/router"
)

// DestinationKafkaRecord is the value Airbyte's destination-kafka writes for
// each record (KafkaRecordConsumer.acceptTracked in
// airbyte-integrations/connectors/destination-kafka): the key is the same
// random UUID as _airbyte_ab_id.
type DestinationKafkaRecord struct {
	ABID      string          `json:"_airbyte_ab_id"`
	Stream    string          `json:"_airbyte_stream"`
	EmittedAt Millis          `json:"_airbyte_emitted_at"`
	Data      json.RawMessage `json:"_airbyte_data"`
}

// DestinationKafkaHandler consumes the topics an Airbyte platform's
// destination-kafka writes and maps each record with mapper (the vendor's
// Mapper or a mapping file), then publishes the events (to uvr's events
// topic). Register it with pipeline/router:
//
//	r.AddConsumerHandler("airbyte-stripe", "airbyte.stripe.invoices", sub, airbyte.DestinationKafkaHandler(mapper, publish))
//
// A value that is not such a record, or a record the mapper rejects, can
// never be processed: the error is router.Permanent and the message is
// parked on the poison topic. A publish failure is transient: retried, then
// nacked and redelivered. Redelivery is harmless: event ids are
// deterministic in the record, so a record mapped twice counts once.
func DestinationKafkaHandler(mapper source.Mapper, publish func(ctx context.Context, events []event.Event) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var rec DestinationKafkaRecord
		if err := json.Unmarshal(msg.Payload, &rec); err != nil {
			return router.Permanent(fmt.Errorf("airbyte destination-kafka record: %s", jsonReason(err)))
		}
		if rec.Stream == "" || !isObject(rec.Data) {
			return router.Permanent(errors.New("airbyte destination-kafka record: _airbyte_stream and an object _airbyte_data are required"))
		}
		events, err := MapRecord(mapper, &RecordMessage{Stream: rec.Stream, Data: rec.Data, EmittedAt: rec.EmittedAt})
		if err != nil {
			return router.Permanent(fmt.Errorf("map %s record %s: %w", rec.Stream, rec.ABID, err))
		}
		if len(events) == 0 {
			return nil
		}
		if err := publish(msg.Context(), events); err != nil {
			return fmt.Errorf("publish %d events of %s record %s: %w", len(events), rec.Stream, rec.ABID, err)
		}
		return nil
	}
}
