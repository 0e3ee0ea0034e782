package customers

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/router"
)

// NewHandler is the Watermill handler that keeps the directory current from
// the events topic: every customer event is an identity observation, every
// usage and revenue event a reference seen. An event that can never be parsed
// is permanent (poison topic); a failed directory write is retried.
func NewHandler(d *Directory) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ev, err := event.FromMessage(msg)
		if err != nil {
			return router.Permanent(fmt.Errorf("message %s: %w", msg.UUID, err))
		}
		if err := d.Observe(msg.Context(), ev); err != nil {
			return fmt.Errorf("observe the customer of event %s/%s: %w", ev.Source, ev.ID, err)
		}
		return nil
	}
}
