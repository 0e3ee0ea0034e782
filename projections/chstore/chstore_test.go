package chstore

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{name: "defaults", cfg: Config{}.WithDefaults()},
		{
			name: "everything wrong at once",
			cfg:  Config{Addr: []string{""}, Database: "uvr; DROP", DialTimeout: -1, ReadTimeout: -1},
			want: []string{"empty address", "database", "username is required", "dial timeout", "read timeout"},
		},
		{name: "no addr", cfg: Config{Database: "x", Username: "u", DialTimeout: 1, ReadTimeout: 1}, want: []string{"addr is required"}},
		{name: "database starting with a digit", cfg: Config{Database: "1x"}.WithDefaults(), want: []string{"database"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigWithDefaults(t *testing.T) {
	got := Config{Password: "p"}.WithDefaults()
	assert.Equal(t, Config{
		Addr:        []string{"127.0.0.1:9000"},
		Database:    "uvr",
		Username:    "default",
		Password:    "p",
		DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second,
	}, got)
}

func TestSplitStatements(t *testing.T) {
	sql := "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\n  -- another\nCREATE TABLE b (x UInt8) ENGINE = Memory\n"
	assert.Equal(t, []string{
		"CREATE TABLE a (x UInt8) ENGINE = Memory",
		"CREATE TABLE b (x UInt8) ENGINE = Memory",
	}, splitStatements(sql))
	assert.Empty(t, splitStatements("-- only a comment\n\n"))
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles, "migrations")
	require.NoError(t, err)
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
		if m.name == "daily_aggregates" {
			assert.Len(t, m.statements, 9, m.name) // 5 tables, then the backfill of what was projected before
			continue
		}
		if m.name == "insight_flags" {
			assert.Len(t, m.statements, 2, m.name) // the flags and their alert deliveries
			continue
		}
		if m.name == "revenue_lines" {
			assert.Len(t, m.statements, 3, m.name) // 2 tables, the backfill request
			continue
		}
		if m.name == "revisions" {
			assert.Len(t, m.statements, 2, m.name) // the table, by_day_trails dropped
			continue
		}
		if m.name == "usage_pricing" {
			assert.Len(t, m.statements, 5, m.name) // 3 columns, the price flag's backfill, the dirty days
			continue
		}
		assert.Len(t, m.statements, 1, m.name)
	}
	assert.Equal(t, []string{"usage_events", "revenue_events", "customer_events", "sync_runs", "daily_aggregates", "insight_flags", "usage_pricing", "revenue_lines", "by_day_trails", "revisions"}, names)

	// Statements: what Migrate runs on an empty database, in its order.
	stmts, err := Statements()
	require.NoError(t, err)
	want := []string{schemaMigrationsDDL}
	for _, m := range ms {
		want = append(want, m.statements...)
	}
	assert.Equal(t, want, stmts)

	stmt := "CREATE TABLE x (a UInt8) ENGINE = Memory"
	bad := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"gap", fstest.MapFS{"m/0001_a.sql": {Data: []byte(stmt)}, "m/0003_c.sql": {Data: []byte(stmt)}}, "without gaps"},
		{"repeat", fstest.MapFS{"m/0001_a.sql": {Data: []byte(stmt)}, "m/0001_b.sql": {Data: []byte(stmt)}}, "without gaps"},
		{"bad name", fstest.MapFS{"m/1_a.sql": {Data: []byte(stmt)}}, "NNNN_name.sql"},
		{"empty", fstest.MapFS{"m/0001_a.sql": {Data: []byte("-- nothing\n")}}, "no statement"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadMigrations(tt.fs, "m")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestOpenAndMigrate opens a database that does not exist yet (Open must
// create it), migrates it twice and checks the second run applies nothing.
func TestOpenAndMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	addr := servicetest.ClickHouseAddr(t)
	database := "test_" + servicetest.Suffix()

	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		assert.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database))
		_ = conn.Close()
	})

	ms, err := loadMigrations(migrationFiles, "migrations")
	require.NoError(t, err)
	applied, err := migrate(ctx, conn, database, nil, ms)
	require.NoError(t, err)
	assert.Equal(t, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, applied)

	// The exported entry point, as every start calls it: nothing new.
	require.NoError(t, Migrate(ctx, conn, database, nil))
	applied, err = migrate(ctx, conn, database, nil, ms)
	require.NoError(t, err)
	assert.Empty(t, applied)

	// Each version recorded once (without FINAL: physically one row each).
	rows, err := conn.Query(ctx, "SELECT version, name, count() FROM schema_migrations GROUP BY version, name ORDER BY version")
	require.NoError(t, err)
	type rec struct {
		version uint32
		name    string
		count   uint64
	}
	var got []rec
	for rows.Next() {
		var r rec
		require.NoError(t, rows.Scan(&r.version, &r.name, &r.count))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []rec{{1, "usage_events", 1}, {2, "revenue_events", 1}, {3, "customer_events", 1}, {4, "sync_runs", 1}, {5, "daily_aggregates", 1}, {6, "insight_flags", 1}, {7, "usage_pricing", 1}, {8, "revenue_lines", 1}, {9, "by_day_trails", 1}, {10, "revisions", 1}}, got)

	for _, table := range []string{"usage_events", "revenue_events", "customer_events", "sync_runs",
		"usage_by_day", "revenue_by_day", "dirty_days", "daily_usage", "daily_revenue", "insight_flags", "insight_deliveries", "revenue_lines_by_day", "daily_revenue_lines", "revisions"} {
		var engine string
		require.NoError(t, conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, table).Scan(&engine))
		assert.Equal(t, "ReplacingMergeTree", engine, table)
	}

	// A new migration is applied alone, after the others.
	more := append(ms, migration{version: uint32(len(ms) + 1), name: "extra", statements: []string{"CREATE TABLE IF NOT EXISTS extra (a UInt8) ENGINE = Memory"}})
	applied, err = migrate(ctx, conn, database, nil, more)
	require.NoError(t, err)
	assert.Equal(t, []uint32{uint32(len(ms) + 1)}, applied)

	// A recorded migration renamed in the binary is refused.
	renamed := append([]migration(nil), ms...)
	renamed[1].name = "renamed"
	_, err = migrate(ctx, conn, database, nil, renamed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `recorded as "revenue_events" but embedded as "renamed"`)
}

func TestMigrateRefusesAnotherDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	defer conn.Close()

	err = Migrate(ctx, conn, "somewhere_else", nil)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "open on database "+database), err)
}
