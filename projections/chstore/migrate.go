package chstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded migrations/NNNN_name.sql file.
type migration struct {
	version    uint32
	name       string
	statements []string
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads every NNNN_name.sql file of dir in fsys, checks that
// the versions run 1, 2, 3… without gap or repeat, and returns them in order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_name.sql (lowercase name)", e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		stmts := splitStatements(string(b))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s has no statement", e.Name())
		}
		ms = append(ms, migration{version: uint32(v), name: m[2], statements: stmts})
	}
	slices.SortFunc(ms, func(a, b migration) int { return int(a.version) - int(b.version) })
	for i, m := range ms {
		if m.version != uint32(i+1) {
			return nil, fmt.Errorf("migration versions must run 1, 2, 3… without gaps or repeats: position %d holds version %d (%s)", i+1, m.version, m.name)
		}
	}
	return ms, nil
}

// splitStatements drops whole-line `--` comments and splits the rest on ';'.
// The native protocol runs one statement per query. Migrations therefore must
// not put ';' inside a string literal; nothing in a DDL file needs to.
func splitStatements(sql string) []string {
	var kept []string
	for _, line := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			kept = append(kept, line)
		}
	}
	var stmts []string
	for _, s := range strings.Split(strings.Join(kept, "\n"), ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}

// schemaMigrationsDDL creates the record of applied migrations. Two instances
// starting together may both apply and record a version (ClickHouse has no
// transactions or locks), so the table is a ReplacingMergeTree on version and
// is read with FINAL; for the same reason every migration must be idempotent
// (IF NOT EXISTS), which also covers a crash between a migration and its record.
const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY version`

// Migrate applies, in version order, each embedded migration not yet recorded
// in database's schema_migrations table, and records it there. It is safe to
// call at every start: a recorded version is never applied again.
//
// conn must be open on database (as Open returns it): migrations create their
// tables unqualified, as the projections read them, so Migrate refuses to run
// on a connection whose current database differs rather than create the
// schema somewhere else. A recorded version whose name differs from the
// embedded file is an error (a renumbered or renamed migration); a recorded
// version newer than any embedded one (an older binary after an upgrade) is
// logged and left alone.
func Migrate(ctx context.Context, conn driver.Conn, database string, logger *slog.Logger) error {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	_, err = migrate(ctx, conn, database, logger, ms)
	return err
}

// Statements returns every statement Migrate may run on an empty database,
// in the order it runs them: schema_migrations' DDL, then each embedded
// migration's statements. The SQL compatibility check runs them on a current
// ClickHouse (docs/clickhouse.md).
func Statements() ([]string, error) {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	stmts := []string{schemaMigrationsDDL}
	for _, m := range ms {
		stmts = append(stmts, m.statements...)
	}
	return stmts, nil
}

// migrate does Migrate's work for the given migrations and returns the
// versions it applied.
func migrate(ctx context.Context, conn driver.Conn, database string, logger *slog.Logger, ms []migration) ([]uint32, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "migrate", "database", database)

	var current string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&current); err != nil {
		return nil, fmt.Errorf("read current database: %w", err)
	}
	if current != database {
		return nil, fmt.Errorf("migrate %s: the connection is open on database %s", database, current)
	}
	if err := conn.Exec(ctx, schemaMigrationsDDL); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}

	recorded, err := recordedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	for v, name := range recorded {
		switch {
		case v == 0 || int(v) > len(ms):
			logger.Warn("schema has a migration this binary does not know", "version", v, "name", name)
		case ms[v-1].name != name:
			return nil, fmt.Errorf("migration %d is recorded as %q but embedded as %q: never renumber or rename an applied migration", v, name, ms[v-1].name)
		}
	}

	var applied []uint32
	for _, m := range ms {
		if _, ok := recorded[m.version]; ok {
			continue
		}
		start := time.Now()
		for i, stmt := range m.statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return applied, fmt.Errorf("migration %04d_%s statement %d: %w", m.version, m.name, i+1, err)
			}
		}
		if err := recordMigration(ctx, conn, m, time.Now()); err != nil {
			return applied, err
		}
		applied = append(applied, m.version)
		logger.Info("applied migration", "version", m.version, "name", m.name, "duration", time.Since(start))
	}
	return applied, nil
}

func recordedMigrations(ctx context.Context, conn driver.Conn) (map[uint32]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, name FROM schema_migrations FINAL")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	recorded := map[uint32]string{}
	for rows.Next() {
		var (
			v    uint32
			name string
		)
		if err := rows.Scan(&v, &name); err != nil {
			return nil, fmt.Errorf("scan schema_migrations: %w", err)
		}
		recorded[v] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return recorded, nil
}

func recordMigration(ctx context.Context, conn driver.Conn, m migration, at time.Time) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err != nil {
		return fmt.Errorf("record migration %d: %w", m.version, err)
	}
	if err := batch.Append(m.version, m.name, at.UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record migration %d: %w", m.version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record migration %d: %w", m.version, err)
	}
	return nil
}
