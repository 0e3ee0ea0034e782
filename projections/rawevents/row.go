// Package rawevents is the raw event projection: every version of every v1
// event lands, one row each, in usage_events, revenue_events or
// customer_events (tables created by chstore's migrations). The API reads
// the daily aggregates built from them (projections/aggregates), not the raw
// rows; ClickHouseStore.Dashboard over the raw rows remains the reference the
// aggregates are checked against.
//
// Writes are idempotent by event identity and version: the tables are
// ReplacingMergeTree(rev) ordered by (source, id), with rev = version*2 + void,
// and every read uses FINAL with void = 0, so a duplicate counts once, a higher
// version replaces and a void removes, even before ClickHouse merges parts.
//
// The pieces, in the order a Kafka message meets them: Handler (Watermill
// handler: payload → Row) → Batcher (groups rows, returns only once they are
// in ClickHouse) → its PreWriter (the aggregates' by-day copy) →
// ClickHouseStore.InsertBatch.
package rawevents

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Tables of the projection.
const (
	TableUsage    = "usage_events"
	TableRevenue  = "revenue_events"
	TableCustomer = "customer_events"
)

// Tables lists the projection's tables.
var Tables = []string{TableUsage, TableRevenue, TableCustomer}

// Row is one event version as the projection stores it. Build it with NewRow.
type Row struct {
	Event event.Event
	// IngestedAt is when the projector read the event.
	IngestedAt time.Time
	// KafkaPartition and KafkaOffset locate the message in the log, for
	// debugging; -1 when unknown.
	KafkaPartition int32
	KafkaOffset    int64
}

// The DateTime and Date columns hold 1970-01-01 … 2105-12-31 (the driver
// refuses anything outside, and one such row would fail its whole batch).
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// UnstorableError reports a valid event that the projection's columns cannot
// hold. Retrying cannot help: the handler sends it to the poison topic.
type UnstorableError struct {
	Source, ID string
	Reason     string
}

func (e *UnstorableError) Error() string {
	return fmt.Sprintf("event %s/%s cannot be stored: %s", e.Source, e.ID, e.Reason)
}

// NewRow makes the row of a validated event (event.Parse's output).
// Errors: *UnstorableError for an event of an unknown type or with a time
// outside the years 1970–2105.
func NewRow(ev event.Event, ingestedAt time.Time, kafkaPartition int32, kafkaOffset int64) (Row, error) {
	r := Row{Event: ev, IngestedAt: ingestedAt.UTC(), KafkaPartition: kafkaPartition, KafkaOffset: kafkaOffset}
	if r.Table() == "" {
		return Row{}, &UnstorableError{Source: ev.Source, ID: ev.ID, Reason: fmt.Sprintf("unknown type %q", ev.Type)}
	}
	times := map[string]*time.Time{
		"time":              &ev.Time,
		"ingested_at":       &r.IngestedAt,
		"data.window_end":   ev.Data.WindowEnd,
		"data.period_start": ev.Data.PeriodStart,
		"data.period_end":   ev.Data.PeriodEnd,
	}
	for _, field := range slices.Sorted(maps.Keys(times)) {
		if t := times[field]; t != nil && (t.Before(minTime) || !t.Before(maxTime)) {
			return Row{}, &UnstorableError{Source: ev.Source, ID: ev.ID, Reason: field + " must be in the years 1970 to 2105"}
		}
	}
	return r, nil
}

// Table is the table the row belongs in; "" for an unknown event type.
func (r *Row) Table() string {
	switch r.Event.Type {
	case event.TypeUsage:
		return TableUsage
	case event.TypeRevenue:
		return TableRevenue
	case event.TypeCustomer:
		return TableCustomer
	}
	return ""
}

// Rev orders the versions of one identity: version*2 + void, so a higher
// version wins and, at an equal version, the void wins.
func (r *Row) Rev() uint64 {
	rev := uint64(r.Event.Data.Version) * 2
	if r.Event.Data.Void {
		rev++
	}
	return rev
}

// Day is the UTC calendar day of the event's time, the day it counts on.
func (r *Row) Day() Date {
	return DateOf(r.Event.Time.UTC())
}

// rowKey is what makes two rows the same stored version: ClickHouse keeps one
// row per (source, id), the one with the highest rev.
type rowKey struct {
	source, id string
	rev        uint64
}

func (r *Row) key() rowKey {
	return rowKey{source: r.Event.Source, id: r.Event.ID, rev: r.Rev()}
}
