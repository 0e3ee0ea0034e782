package chstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// A database holding usage before 0007_usage_pricing gets the price flag of
// each event's current version in usage_by_day (priced: no cost and no
// cost_reported_by attribute) and every usage day marked dirty again, above
// the done marks of its earlier recomputes.
func TestUsagePricingMigrationBackfills(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	defer conn.Close()
	ms, err := loadMigrations(migrationFiles, "migrations")
	require.NoError(t, err)
	require.Equal(t, "insight_flags", ms[5].name)
	require.Equal(t, "usage_pricing", ms[6].name)
	_, err = migrate(ctx, conn, database, nil, ms[:6])
	require.NoError(t, err)

	// As projected before 0007: raw rows, their by-day copy, and the days
	// recomputed (done at a recent changed_ns). "priced" has no cost,
	// "given" a cost, "reported" its cost in other events; "moved" was
	// corrected from 03-01 to 03-02 (a tombstone under 03-01).
	require.NoError(t, conn.Exec(ctx, `INSERT INTO usage_events (source, id, version, void, rev, day, customer_source, customer_external_id, feature, currency, quantity, cost, has_cost, attr_keys, attr_values)
SELECT 'test', id, toUInt32(1), toUInt8(0), toUInt64(r.2), toDate(r.3), 'test', 'cus_1', 'gpt-4o.input_tokens', '', toDecimal128(1000, 9), toDecimal64(r.4, 9), toUInt8(r.5), r.6, r.7
FROM (SELECT arrayJoin([
    ('priced', 2, '2026-03-01', 0, 0, emptyArrayString(), emptyArrayString()),
    ('given', 2, '2026-03-01', 2, 1, emptyArrayString(), emptyArrayString()),
    ('reported', 2, '2026-03-01', 0, 0, ['cost_reported_by'], ['openai_costs']),
    ('moved', 4, '2026-03-02', 0, 0, emptyArrayString(), emptyArrayString())]) AS r, r.1 AS id)`))
	require.NoError(t, conn.Exec(ctx, `INSERT INTO usage_by_day (day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost)
SELECT toDate(r.3), 'test', r.1, toUInt64(r.2), toUInt8(r.4), 'test', 'cus_1', 'gpt-4o.input_tokens', '', toDecimal128(1000, 9), toDecimal64(0, 9)
FROM (SELECT arrayJoin([('priced', 2, '2026-03-01', 0), ('given', 2, '2026-03-01', 0), ('reported', 2, '2026-03-01', 0),
    ('moved', 2, '2026-03-01', 0), ('moved', 4, '2026-03-01', 1), ('moved', 4, '2026-03-02', 0)]) AS r)`))
	require.NoError(t, conn.Exec(ctx, `INSERT INTO dirty_days (kind, day, changed_ns, done, ver)
SELECT 'usage', toDate(d), toUInt64(toUnixTimestamp(now()) - 60) * 1000000000, toUInt8(1), toUInt64(toUnixTimestamp(now()) - 60) * 2000000000 + 1
FROM (SELECT arrayJoin(['2026-03-01', '2026-03-02']) AS d)`))

	_, err = migrate(ctx, conn, database, nil, ms[:7])
	require.NoError(t, err)

	type byDay struct {
		day   string
		id    string
		void  uint8
		price uint8
	}
	var got []byDay
	require.NoError(t, QueryRows(ctx, conn, "SELECT toString(day), id, void, price FROM usage_by_day FINAL ORDER BY day, id", nil,
		func(scan func(...any) error) error {
			var r byDay
			if err := scan(&r.day, &r.id, &r.void, &r.price); err != nil {
				return err
			}
			got = append(got, r)
			return nil
		}))
	assert.Equal(t, []byDay{
		{"2026-03-01", "given", 0, 0},
		{"2026-03-01", "moved", 1, 0}, // the tombstone stays
		{"2026-03-01", "priced", 0, 1},
		{"2026-03-01", "reported", 0, 0},
		{"2026-03-02", "moved", 0, 1},
	}, got)

	var dirty []string
	require.NoError(t, QueryRows(ctx, conn, "SELECT concat(kind, ' ', toString(day)) FROM dirty_days FINAL WHERE done = 0 ORDER BY kind, day", nil,
		func(scan func(...any) error) error {
			var s string
			if err := scan(&s); err != nil {
				return err
			}
			dirty = append(dirty, s)
			return nil
		}))
	assert.Equal(t, []string{"usage 2026-03-01", "usage 2026-03-02"}, dirty)

	// The new aggregate columns exist, zero on rows written before.
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM daily_usage WHERE priced_cost = 0 AND unpriced_quantity = 0").Scan(&n))
	assert.Zero(t, n)
}
