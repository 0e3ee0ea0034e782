package chstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// A database projected before 0005_daily_aggregates gets its by-day copy
// (the current version of each identity, under its day) and every such day
// marked dirty, so the aggregator computes its aggregates.
func TestDailyAggregatesMigrationBackfills(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	defer conn.Close()
	ms, err := loadMigrations(migrationFiles, "migrations")
	require.NoError(t, err)
	before := ms[:4]
	require.Equal(t, "sync_runs", before[3].name)
	_, err = migrate(ctx, conn, database, nil, before)
	require.NoError(t, err)

	// u1 at version 1 on 03-01, corrected to 03-02 at version 2; u2 voided.
	require.NoError(t, conn.Exec(ctx, `INSERT INTO usage_events (source, id, version, void, rev, day, customer_source, customer_external_id, feature, currency, quantity, cost)
SELECT 'test', id, version, void, rev, toDate(d), 'test', 'cus_1', 'a', 'USD', toDecimal128(1, 9), toDecimal64(2, 9)
FROM (SELECT arrayJoin([('u1', 1, 0, 2, '2026-03-01'), ('u1', 2, 0, 4, '2026-03-02'), ('u2', 1, 1, 3, '2026-03-03')]) AS r,
      r.1 AS id, toUInt32(r.2) AS version, toUInt8(r.3) AS void, toUInt64(r.4) AS rev, r.5 AS d)`))

	_, err = migrate(ctx, conn, database, nil, ms)
	require.NoError(t, err)

	type byDay struct {
		day  string
		id   string
		rev  uint64
		void uint8
	}
	var got []byDay
	rows, err := conn.Query(ctx, "SELECT toString(day), id, rev, void FROM usage_by_day FINAL ORDER BY day, id")
	require.NoError(t, err)
	for rows.Next() {
		var r byDay
		require.NoError(t, rows.Scan(&r.day, &r.id, &r.rev, &r.void))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []byDay{{"2026-03-02", "u1", 4, 0}, {"2026-03-03", "u2", 3, 1}}, got)

	var dirty []string
	rows, err = conn.Query(ctx, "SELECT concat(kind, ' ', toString(day)) FROM dirty_days FINAL WHERE done = 0 ORDER BY kind, day")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		dirty = append(dirty, s)
	}
	require.NoError(t, rows.Err())
	// 0008 asks the aggregator to spread the revenue lines (day 1970-01-02: the same on every ClickHouse).
	assert.Equal(t, []string{"revenue_lines_backfill 1970-01-02", "usage 2026-03-02", "usage 2026-03-03"}, dirty)
}
