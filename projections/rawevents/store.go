package rawevents

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/uvrhq/uvr/projections/chstore"
)

// ClickHouseStore reads and writes the projection's tables on a connection
// open on the database chstore.Migrate prepared. It is safe for concurrent use.
type ClickHouseStore struct {
	conn driver.Conn
}

var _ Inserter = (*ClickHouseStore)(nil)

// NewClickHouseStore returns a store on conn (from chstore.Open).
func NewClickHouseStore(conn driver.Conn) *ClickHouseStore {
	return &ClickHouseStore{conn: conn}
}

// Ping checks that ClickHouse answers.
func (s *ClickHouseStore) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping clickhouse: %w", err)
	}
	return nil
}

// InsertBatch writes rows, one columnar insert per table. Rows already stored
// may be written again: the tables keep one row per identity and rev. On error
// some tables may have been written and others not; inserting the same rows
// again is the remedy.
func (s *ClickHouseStore) InsertBatch(ctx context.Context, rows []Row) error {
	byTable := map[string][]Row{}
	for i := range rows {
		t := rows[i].Table()
		if t == "" {
			return fmt.Errorf("insert batch: row %s/%s has unknown event type %q", rows[i].Event.Source, rows[i].Event.ID, rows[i].Event.Type)
		}
		byTable[t] = append(byTable[t], rows[i])
	}
	for _, table := range slices.Sorted(maps.Keys(byTable)) {
		if err := s.insert(ctx, table, tableColumns[table], byTable[table]); err != nil {
			return err
		}
	}
	return nil
}

func (s *ClickHouseStore) insert(ctx context.Context, table string, cols []column, rows []Row) error {
	names := make([]string, len(cols))
	values := make([]any, len(cols))
	for i, c := range cols {
		names[i], values[i] = c.name, c.values(rows)
	}
	return chstore.InsertColumns(ctx, s.conn, table, names, values)
}

// column is one column of an insert: its name and how to build the whole
// column's values from the rows, as the slice type the driver expects for
// the column's ClickHouse type (columnar appends skip per-row reflection).
type column struct {
	name   string
	values func(rows []Row) any
}

func col[T any](name string, value func(r *Row) T) column {
	return column{name: name, values: func(rows []Row) any {
		out := make([]T, len(rows))
		for i := range rows {
			out[i] = value(&rows[i])
		}
		return out
	}}
}

// The DateTime columns hold whole seconds.
func seconds(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func optionalSeconds(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := seconds(*t)
	return &s
}

func decimalOrZero(d *decimal.Decimal) decimal.Decimal {
	if d == nil {
		return decimal.Zero
	}
	return *d
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// Maps are stored as parallel key and value arrays sorted by key, so the same
// map always gives the same row.
func sortedKeys(m map[string]string) []string {
	if len(m) == 0 {
		return []string{}
	}
	return slices.Sorted(maps.Keys(m))
}

func sortedValues(m map[string]string) []string {
	keys := sortedKeys(m)
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return values
}

var (
	identityColumns = []column{
		col("source", func(r *Row) string { return r.Event.Source }),
		col("id", func(r *Row) string { return r.Event.ID }),
		col("version", func(r *Row) uint32 { return r.Event.Data.Version }),
		col("void", func(r *Row) uint8 { return flag(r.Event.Data.Void) }),
		col("rev", func(r *Row) uint64 { return r.Rev() }),
		col("time", func(r *Row) time.Time { return seconds(r.Event.Time) }),
		col("day", func(r *Row) time.Time { return r.Day().midnight() }),
		col("customer_source", func(r *Row) string { return r.Event.Data.Customer.Source }),
		col("customer_external_id", func(r *Row) string { return r.Event.Data.Customer.ExternalID }),
		col("customer_email", func(r *Row) string { return r.Event.Data.Customer.Email }),
		col("customer_name", func(r *Row) string { return r.Event.Data.Customer.Name }),
		col("subject", func(r *Row) string { return r.Event.Subject }),
	}
	trailerColumns = []column{
		col("attr_keys", func(r *Row) []string { return sortedKeys(r.Event.Data.Attributes) }),
		col("attr_values", func(r *Row) []string { return sortedValues(r.Event.Data.Attributes) }),
		col("ingested_at", func(r *Row) time.Time { return seconds(r.IngestedAt) }),
		col("kafka_partition", func(r *Row) int32 { return r.KafkaPartition }),
		col("kafka_offset", func(r *Row) int64 { return r.KafkaOffset }),
	}

	tableColumns = map[string][]column{
		TableUsage: slices.Concat(identityColumns, []column{
			col("feature", func(r *Row) string { return r.Event.Data.Feature }),
			col("quantity", func(r *Row) decimal.Decimal { return decimalOrZero(r.Event.Data.Quantity) }),
			col("unit", func(r *Row) string { return r.Event.Data.Unit }),
			col("cost", func(r *Row) decimal.Decimal { return decimalOrZero(r.Event.Data.Cost) }),
			col("has_cost", func(r *Row) uint8 { return flag(r.Event.Data.Cost != nil) }),
			col("currency", func(r *Row) string { return r.Event.Data.Currency }),
			col("window_end", func(r *Row) *time.Time { return optionalSeconds(r.Event.Data.WindowEnd) }),
		}, trailerColumns),
		TableRevenue: slices.Concat(identityColumns, []column{
			col("kind", func(r *Row) string { return r.Event.Data.Kind }),
			col("amount", func(r *Row) decimal.Decimal { return decimalOrZero(r.Event.Data.Amount) }),
			col("currency", func(r *Row) string { return r.Event.Data.Currency }),
			col("period_start", func(r *Row) *time.Time { return optionalSeconds(r.Event.Data.PeriodStart) }),
			col("period_end", func(r *Row) *time.Time { return optionalSeconds(r.Event.Data.PeriodEnd) }),
			col("plan", func(r *Row) string { return r.Event.Data.Plan }),
			col("invoice_id", func(r *Row) string { return r.Event.Data.InvoiceID }),
		}, trailerColumns),
		TableCustomer: slices.Concat(identityColumns, []column{
			col("plan", func(r *Row) string { return r.Event.Data.Plan }),
			col("environment", func(r *Row) string { return r.Event.Data.Environment }),
			col("metadata_keys", func(r *Row) []string { return sortedKeys(r.Event.Data.Metadata) }),
			col("metadata_values", func(r *Row) []string { return sortedValues(r.Event.Data.Metadata) }),
		}, trailerColumns),
	}
)
