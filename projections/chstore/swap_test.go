package chstore

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

var createStatement = regexp.MustCompile(`(?is)^CREATE\s+(?:MATERIALIZED\s+VIEW|VIEW|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)`)

// TestEveryMigratedTableIsClassified fails when a migration creates a table
// that tableRoles does not classify, so that `uvr replay` never has to guess
// whether a new table is a projection to rebuild or state to keep, and when
// tableRoles names a table no migration creates (dead entries).
func TestEveryMigratedTableIsClassified(t *testing.T) {
	ms, err := loadMigrations(migrationFiles, "migrations")
	require.NoError(t, err)
	created := map[string]bool{"schema_migrations": true} // created by Migrate itself
	for _, m := range ms {
		for _, stmt := range m.statements {
			if sub := createStatement.FindStringSubmatch(stmt); sub != nil {
				created[sub[1]] = true
				assert.NotZero(t, RoleOf(sub[1]), "migration %04d_%s creates table %s: classify it in tableRoles (swap.go) as Projection or Kept", m.version, m.name, sub[1])
			}
		}
	}
	for name := range tableRoles {
		assert.True(t, created[name], "tableRoles classifies %s, which no migration creates", name)
	}
}

func TestSwapSQL(t *testing.T) {
	assert.Equal(t,
		"RENAME TABLE uvr.a TO uvr_backup_1.a, uvr_replay_1.a TO uvr.a, uvr.b TO uvr_backup_1.b, uvr_replay_1.b TO uvr.b",
		SwapSQL("uvr", "uvr_replay_1", "uvr_backup_1", []string{"a", "b"}))
}

// TestSwapOnClickHouse migrates two databases, marks the rebuilt one, swaps
// the projection tables and checks that live now serves the rebuilt rows,
// the backup holds the old ones and kept tables did not move.
func TestSwapOnClickHouse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, live := servicetest.ClickHouseDatabase(t)
	_, rebuilt := servicetest.ClickHouseDatabase(t)
	_, backup := servicetest.ClickHouseDatabase(t) // dropped when the test ends; Swap reuses it
	for _, db := range []string{live, rebuilt} {
		conn, err := Open(ctx, Config{Addr: []string{addr}, Database: db})
		require.NoError(t, err)
		require.NoError(t, Migrate(ctx, conn, db, nil))
		require.NoError(t, conn.Close())
	}
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: live})
	require.NoError(t, err)
	defer conn.Close()

	tables, err := ProjectionTables(ctx, conn, rebuilt)
	require.NoError(t, err)
	for _, want := range []string{"usage_events", "daily_usage", "dirty_days"} {
		assert.Contains(t, tables, want)
	}
	for _, kept := range []string{"insight_flags", "sync_runs", "schema_migrations"} {
		assert.NotContains(t, tables, kept)
	}

	mark := func(db string, ver uint64) {
		require.NoError(t, InsertColumns(ctx, conn, db+".dirty_days", []string{"kind", "day", "changed_ns", "done", "ver"},
			[]any{[]string{"usage"}, []time.Time{time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}, []uint64{ver}, []uint8{1}, []uint64{ver}}))
	}
	vers := func(db string) []uint64 {
		var out []uint64
		require.NoError(t, QueryRows(ctx, conn, "SELECT ver FROM "+db+".dirty_days WHERE kind = 'usage' ORDER BY ver", nil, func(scan func(...any) error) error {
			var v uint64
			if err := scan(&v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		}))
		return out
	}
	mark(live, 1)
	mark(rebuilt, 2)
	require.NoError(t, Swap(ctx, conn, live, rebuilt, backup, tables))

	assert.Equal(t, []uint64{2}, vers(live), "live serves the rebuilt table")
	assert.Equal(t, []uint64{1}, vers(backup), "the backup holds the old table")
	left, err := ListTables(ctx, conn, rebuilt)
	require.NoError(t, err)
	for _, tb := range tables {
		assert.NotContains(t, left, tb, "moved out of the rebuilt database")
	}
	liveTables, err := ListTables(ctx, conn, live)
	require.NoError(t, err)
	assert.True(t, slices.Contains(liveTables, "insight_flags") && slices.Contains(liveTables, "schema_migrations"))

	// A second swap with the same backup would overwrite nothing: it fails.
	require.Error(t, Swap(ctx, conn, live, rebuilt, backup, tables))
	require.ErrorContains(t, Swap(ctx, conn, live, rebuilt, "x; DROP", tables), "not an identifier")

	// A table nobody classified stops a replay before it swaps anything.
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+live+".mystery (x UInt8) ENGINE = Memory"))
	_, err = ProjectionTables(ctx, conn, live)
	require.ErrorContains(t, err, "mystery")
}
