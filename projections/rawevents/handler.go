package rawevents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
	"github.com/uvrhq/uvr/projections/chstore"
)

// RowAdder stores rows. Add returns nil only once every row is durably
// stored (or was already); any error means "not stored yet, try again". The
// Batcher implements it.
type RowAdder interface {
	Add(ctx context.Context, rows []Row) error
}

var _ RowAdder = (*Batcher)(nil)

// HandlerConfig configures NewHandler.
type HandlerConfig struct {
	// Rows receives each message's rows. Required.
	Rows RowAdder
	// Now stamps ingested_at. Default time.Now.
	Now func() time.Time
}

// NewHandler returns the Watermill handler of the projection: it parses the
// message's event, turns it into its row and returns once the row is stored,
// so the router acks (and the offset is committed) only after ClickHouse
// acknowledged the insert.
//
// A message that can never be stored (not a valid event, or a value outside
// what the columns hold, found here or by the Batcher when its insert fails)
// returns a permanent error: the router sends it to the poison (dead-letter)
// topic instead of retrying. Any other error (ClickHouse down)
// is plain, so the message is retried and, failing that, nacked and
// redelivered; it is never lost.
func NewHandler(cfg HandlerConfig) (message.NoPublishHandlerFunc, error) {
	if cfg.Rows == nil {
		return nil, errors.New("projector handler: rows is required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return func(msg *message.Message) error {
		ev, err := event.FromMessage(msg)
		if err != nil {
			return router.Permanent(fmt.Errorf("message %s: %w", msg.UUID, err))
		}
		row, err := NewRow(ev, now(), int32(metadataInt(msg, kafka.PartitionMetadata, 32)), metadataInt(msg, kafka.OffsetMetadata, 64))
		if err != nil {
			return router.PermanentClass(chstore.ClassValue, fmt.Errorf("message %s: %w", msg.UUID, err))
		}
		if err := cfg.Rows.Add(msg.Context(), []Row{row}); err != nil {
			return fmt.Errorf("message %s: project event %s/%s: %w", msg.UUID, ev.Source, ev.ID, err)
		}
		return nil
	}, nil
}

// metadataInt reads an integer of bitSize bits from the metadata; -1 when
// absent or malformed: the subscriber sets the position, but a message from
// elsewhere may lack it, and a debugging column is not worth failing it.
func metadataInt(msg *message.Message, key string, bitSize int) int64 {
	n, err := strconv.ParseInt(msg.Metadata.Get(key), 10, bitSize)
	if err != nil {
		return -1
	}
	return n
}
