package chstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// TableRole says what `uvr replay` does with a table of uvr's database.
type TableRole int

const (
	// Projection tables hold nothing but what the projector derives from
	// the events topic: a replay rebuilds them from the log and swaps them in.
	Projection TableRole = iota + 1
	// Kept tables hold state that is not in the events topic (user
	// decisions, operational records, the schema's own history): a replay
	// leaves them in place.
	Kept
)

func (r TableRole) String() string {
	switch r {
	case Projection:
		return "projection"
	case Kept:
		return "kept"
	default:
		return "unclassified"
	}
}

// tableRoles classifies every table the migrations create, in one place.
// A migration that adds a table must add it here: TestEveryMigratedTableIsClassified
// fails otherwise, and ProjectionTables refuses to list a database holding an
// unclassified table (a replay must never guess whether a table is state).
var tableRoles = map[string]TableRole{
	// 0001–0003: the raw projection, one row per event version.
	"usage_events":    Projection,
	"revenue_events":  Projection,
	"customer_events": Projection,
	// 0004: what the sync engine did; written by it, not by the projector.
	"sync_runs": Kept,
	// 0005: the by-day copies, the recompute queue and the daily aggregates.
	"usage_by_day":   Projection,
	"revenue_by_day": Projection,
	"dirty_days":     Projection,
	"daily_usage":    Projection,
	"daily_revenue":  Projection,
	// 0006: a flag's acknowledged/resolved status is a user's decision and a
	// delivery record says an alert already went out: neither can be rebuilt.
	"insight_flags":      Kept,
	"insight_deliveries": Kept,
	// 0008: revenue per day × customer × currency × plan, cash and accrual.
	"revenue_lines_by_day": Projection,
	"daily_revenue_lines":  Projection,
	// 0009: the days each by-day write touched (dropped by 0010: a database
	// that has not migrated past 0009 still holds it).
	"by_day_trails": Projection,
	// 0010: the versions above the first, derived from the events like the
	// by-day rows they resolve.
	"revisions": Projection,
	// Migrate's record of applied migrations.
	"schema_migrations": Kept,
}

// RoleOf returns the role of table, or 0 when it is not classified.
func RoleOf(table string) TableRole { return tableRoles[table] }

// ListTables returns the names of database's tables, sorted.
func ListTables(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	var names []string
	err := QueryRows(ctx, conn, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", []any{database},
		func(scan func(...any) error) error {
			var n string
			if err := scan(&n); err != nil {
				return err
			}
			names = append(names, n)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", database, err)
	}
	return names, nil
}

// ProjectionTables lists database's Projection tables, sorted. It fails,
// naming them, when the database holds a table that is not classified.
func ProjectionTables(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	names, err := ListTables(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	var out, unknown []string
	for _, n := range names {
		switch tableRoles[n] {
		case Projection:
			out = append(out, n)
		case Kept:
		default:
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("database %s holds tables that are neither a projection nor kept state: %s (classify them in projections/chstore/swap.go)",
			database, strings.Join(unknown, ", "))
	}
	return out, nil
}

// Swap moves each of tables from live into backup and from rebuilt into
// live, in one RENAME TABLE statement: ClickHouse (18.16 included) renames
// the tables of one statement under one lock, so a query by name sees
// either every old table or every new one, never a mix, and nothing is
// copied. backup is created when missing and must not hold these tables.
// Every name must be an identifier; each table must exist in live and in
// rebuilt.
func Swap(ctx context.Context, conn driver.Conn, live, rebuilt, backup string, tables []string) error {
	if len(tables) == 0 {
		return errors.New("swap: no tables")
	}
	for _, name := range append([]string{live, rebuilt, backup}, tables...) {
		if !identifier.MatchString(name) {
			return fmt.Errorf("swap: %q is not an identifier", name)
		}
	}
	if live == rebuilt || live == backup || rebuilt == backup {
		return fmt.Errorf("swap: databases must differ (live %s, rebuilt %s, backup %s)", live, rebuilt, backup)
	}
	for _, db := range []string{live, rebuilt} {
		have, err := ListTables(ctx, conn, db)
		if err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		var missing []string
		for _, t := range tables {
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("swap: database %s has no table %s", db, strings.Join(missing, ", "))
		}
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+backup); err != nil {
		return fmt.Errorf("swap: create database %s: %w", backup, err)
	}
	if err := conn.Exec(ctx, SwapSQL(live, rebuilt, backup, tables)); err != nil {
		return fmt.Errorf("swap %d tables of %s with %s: %w", len(tables), live, rebuilt, err)
	}
	return nil
}

// SwapSQL is Swap's statement: for each table, live → backup, then
// rebuilt → live.
func SwapSQL(live, rebuilt, backup string, tables []string) string {
	parts := make([]string, 0, 2*len(tables))
	for _, t := range tables {
		parts = append(parts, live+"."+t+" TO "+backup+"."+t, rebuilt+"."+t+" TO "+live+"."+t)
	}
	return "RENAME TABLE " + strings.Join(parts, ", ")
}
