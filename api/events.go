package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Content types of POST /api/events (CloudEvents JSON format, structured and
// batched mode). Plain application/json is accepted too: an object is one
// event, an array a batch.
const (
	contentTypeEvent = "application/cloudevents+json"
	contentTypeBatch = "application/cloudevents-batch+json"
	contentTypeJSON  = "application/json"
)

type acceptedBody struct {
	Accepted int `json:"accepted"`
}

// postEvents validates one event or a batch, publishes them to Kafka and
// answers 202 only after Kafka acknowledged every event. A batch is all or
// nothing: one invalid event rejects it with every problem listed and nothing
// is published.
func (s *Server) postEvents(c *gin.Context) {
	events, err := s.readEvents(c)
	if err != nil {
		s.rejectEvents(c, err)
		return
	}
	msgs, err := event.Messages(events)
	if err != nil {
		s.rejectEvents(c, err)
		return
	}
	// Kafka refuses a record over its size limit for good: answering 503
	// ("retry") would make the client retry forever.
	for i, m := range msgs {
		if len(m.Payload) > s.cfg.MaxEventBytes {
			s.rejectEvents(c, &Error{Kind: KindTooLarge, Detail: fmt.Sprintf(
				"event %d (%s) is %d bytes encoded, more than the limit of %d bytes per event", i, events[i].ID, len(m.Payload), s.cfg.MaxEventBytes)})
			return
		}
	}
	// Validated here, once: the projections only decode them.
	event.MarkValidated(msgs)
	for _, m := range msgs {
		m.SetContext(c.Request.Context())
	}
	start := time.Now()
	if err := s.cfg.Publisher.Publish(s.cfg.EventsTopic, msgs...); err != nil {
		s.metrics.publishErrors.Inc()
		detail := "events were not accepted: kafka did not acknowledge them; retry the request"
		if s.cfg.Capacity != nil {
			if full := s.cfg.Capacity(); full != nil {
				detail = "events were not accepted: " + full.Error()
			}
		}
		s.rejectEvents(c, unavailable(detail, err))
		return
	}
	s.metrics.publishDuration.Observe(time.Since(start).Seconds())
	for _, ev := range events {
		s.metrics.eventsAccepted.WithLabelValues(ev.Type).Inc()
	}
	c.JSON(http.StatusAccepted, acceptedBody{Accepted: len(events)})
}

func (s *Server) readEvents(c *gin.Context) ([]event.Event, error) {
	mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	switch mediaType {
	case contentTypeEvent, contentTypeBatch, contentTypeJSON:
	default:
		return nil, &Error{Kind: KindUnsupported, Detail: fmt.Sprintf(
			"Content-Type must be %s (one event) or %s (a batch), got %q", contentTypeEvent, contentTypeBatch, c.GetHeader("Content-Type"))}
	}

	body, err := s.readBody(c, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}

	batch := mediaType == contentTypeBatch
	if mediaType == contentTypeJSON {
		batch = firstNonSpace(body) == '['
	}
	var events []event.Event
	if batch {
		events, err = event.ParseBatch(body, s.cfg.MaxBatchEvents)
	} else {
		var ev event.Event
		ev, err = event.Parse(body)
		events = []event.Event{ev}
	}
	var verr *event.ValidationError
	var tooLarge *event.TooLargeError
	switch {
	case errors.As(err, &verr):
		return nil, &Error{Kind: KindInvalid, Detail: verr.Error(), Problems: verr.Problems}
	case errors.As(err, &tooLarge):
		return nil, &Error{Kind: KindTooLarge, Detail: tooLarge.Error()}
	case err != nil:
		return nil, err
	}
	return events, nil
}

// rejectEvents counts a refused ingest request by a bounded reason and
// renders the error.
func (s *Server) rejectEvents(c *gin.Context, err error) {
	reason := KindInternal
	var apiErr *Error
	if errors.As(err, &apiErr) {
		reason = apiErr.Kind
	}
	if reason == KindUnavailable {
		reason = "publish_failed"
	}
	s.metrics.eventsRejected.WithLabelValues(reason).Inc()
	s.writeError(c, err)
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}
