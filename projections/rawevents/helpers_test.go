package rawevents

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
)

// newStore returns a store on a fresh, migrated database of the real
// ClickHouse, and the raw connection for assertions.
func newStore(t testing.TB) (*ClickHouseStore, driver.Conn) {
	t.Helper()
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx := testCtx(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	return NewClickHouseStore(conn), conn
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func dec(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func date(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// ev is a fixture event; the options fill it in and the result is validated
// with the contract's own rules, so fixtures are always valid events.
func ev(t testing.TB, typ, id, when string, opts ...func(*event.Event)) event.Event {
	t.Helper()
	e := event.Event{
		SpecVersion: event.SpecVersion,
		ID:          id,
		Source:      "test",
		Type:        typ,
		Time:        at(when),
		Data: event.Data{
			Customer: event.Customer{Source: "test", ExternalID: "cus_1"},
			Version:  1,
		},
	}
	for _, o := range opts {
		o(&e)
	}
	b, err := e.Marshal()
	require.NoError(t, err)
	_, err = event.Decode(b) // an event of the log: the storage limits tested here lie past ingest's window
	require.NoError(t, err, "fixture %s", id)
	return e
}

func usage(feature, quantity, cost, currency string) func(*event.Event) {
	return func(e *event.Event) {
		e.Data.Feature = feature
		e.Data.Quantity = dec(quantity)
		if cost != "" {
			e.Data.Cost = dec(cost)
			e.Data.Currency = currency
		}
	}
}

func revenue(kind, amount, currency string) func(*event.Event) {
	return func(e *event.Event) {
		e.Data.Kind = kind
		if amount != "" {
			e.Data.Amount = dec(amount)
			e.Data.Currency = currency
		}
	}
}

func version(v uint32) func(*event.Event) { return func(e *event.Event) { e.Data.Version = v } }

func void() func(*event.Event) { return func(e *event.Event) { e.Data.Void = true } }

func rowsOf(t testing.TB, events ...event.Event) []Row {
	t.Helper()
	rows := make([]Row, len(events))
	for i, e := range events {
		r, err := NewRow(e, at("2026-01-01T00:00:00Z"), -1, -1)
		require.NoError(t, err)
		rows[i] = r
	}
	return rows
}

// count returns the number of physical rows of table (no FINAL: every copy).
func count(t testing.TB, conn driver.Conn, table string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, conn.QueryRow(testCtx(t), "SELECT count() FROM "+table).Scan(&n))
	return n
}

// recordingInserter wraps the real store, records the size of every batch
// and, when gate is set, holds each InsertBatch until the test releases it.
type recordingInserter struct {
	Inserter
	gate    chan struct{} // receive to let one InsertBatch proceed
	started chan int      // when set, receives each batch's size as it starts

	mu    sync.Mutex
	sizes []int
}

func (r *recordingInserter) InsertBatch(ctx context.Context, rows []Row) error {
	if r.started != nil {
		r.started <- len(rows)
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.sizes = append(r.sizes, len(rows))
	r.mu.Unlock()
	return r.Inserter.InsertBatch(ctx, rows)
}

func (r *recordingInserter) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.sizes...)
}

// manyUsageRows makes n distinct usage rows.
func manyUsageRows(n int, prefix string) []Row {
	rows := make([]Row, n)
	base := at("2026-03-01T00:00:00Z")
	for i := range rows {
		rows[i] = Row{
			Event: event.Event{
				SpecVersion: event.SpecVersion,
				ID:          fmt.Sprintf("%s-%d", prefix, i),
				Source:      "bench",
				Type:        event.TypeUsage,
				Time:        base.Add(time.Duration(i) * time.Second),
				Data: event.Data{
					Customer: event.Customer{Source: "bench", ExternalID: fmt.Sprintf("cus_%d", i%100)},
					Version:  1,
					Feature:  fmt.Sprintf("feature_%d", i%10),
					Quantity: dec("1234.5"),
					Unit:     "tokens",
					Cost:     dec("0.001234567"),
					Currency: "USD",
				},
			},
			IngestedAt:     base,
			KafkaPartition: int32(i % 4),
			KafkaOffset:    int64(i),
		}
	}
	return rows
}
