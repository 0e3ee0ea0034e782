package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// StateTopic is the compacted Kafka topic holding every service's cursor.
const StateTopic = "uvr.sync-state.v1"

// StateStore keeps each service's source cursor durably.
type StateStore interface {
	// Load returns the service's saved cursor, nil when it has none (a
	// first sync). It reflects every Save that returned before it was called,
	// on any instance.
	Load(ctx context.Context, serviceID string) (source.Cursor, error)
	// Save stores cursor as the service's cursor; it is durable on return.
	Save(ctx context.Context, serviceID string, cursor source.Cursor, at time.Time) error
}

// Table is the compacted-topic key/value table StateStore is kept in
// (pipeline/kafka's Table): a Put is acknowledged by every in-sync replica
// before it returns, and Sync reads the topic up to its current end, so a Get
// after Sync sees every Put that returned before, from any instance.
type Table interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(key string) ([]byte, bool)
	Sync(ctx context.Context) error
}

var _ Table = (*kafka.Table)(nil)

// TableState is the StateStore on a compacted Kafka topic (StateTopic).
//
// Cursors live in the Kafka log, next to the events they account for, not in
// ClickHouse: ClickHouse holds projections that are dropped and rebuilt from
// the log, and a cursor that disappeared with them would re-read every source
// from the start. The topic is compacted, so it keeps the last cursor of each
// service forever, and every instance reads it, so whichever instance owns a
// service's sync requests resumes where the previous owner stopped.
type TableState struct {
	table Table
}

var _ StateStore = (*TableState)(nil)

// NewTableState returns the state store on table (topic StateTopic, compacted).
func NewTableState(table Table) *TableState { return &TableState{table: table} }

// stateRecord is the value stored per service: the source's own cursor and
// when it was saved (for people reading the topic).
type stateRecord struct {
	Cursor  json.RawMessage `json:"cursor"`
	SavedAt time.Time       `json:"saved_at"`
}

// stateKey is the table key of a service's cursor. One cursor per service:
// the sources keep their streams' positions inside it.
func stateKey(serviceID string) string { return "service/" + serviceID }

// Load reads the table up to the topic's end, then the service's cursor.
func (s *TableState) Load(ctx context.Context, serviceID string) (source.Cursor, error) {
	if err := s.table.Sync(ctx); err != nil {
		return nil, fmt.Errorf("load cursor of service %s: read %s: %w", serviceID, StateTopic, err)
	}
	b, ok := s.table.Get(stateKey(serviceID))
	if !ok || len(b) == 0 {
		return nil, nil
	}
	var rec stateRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("load cursor of service %s: decode: %w", serviceID, err)
	}
	if len(rec.Cursor) == 0 || string(rec.Cursor) == "null" {
		return nil, nil
	}
	return source.Cursor(rec.Cursor), nil
}

// Save writes the service's cursor; it returns once Kafka acknowledged it.
func (s *TableState) Save(ctx context.Context, serviceID string, cursor source.Cursor, at time.Time) error {
	if !json.Valid(cursor) {
		return errors.New("save cursor of service " + serviceID + ": the cursor is not valid JSON")
	}
	b, err := json.Marshal(stateRecord{Cursor: json.RawMessage(cursor), SavedAt: at.UTC()})
	if err != nil {
		return fmt.Errorf("save cursor of service %s: %w", serviceID, err)
	}
	if err := s.table.Put(ctx, stateKey(serviceID), b); err != nil {
		return fmt.Errorf("save cursor of service %s: %w", serviceID, err)
	}
	return nil
}
