package syncer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// RunStore keeps the sync run records.
type RunStore interface {
	// Save writes run; a later Save of the same run id replaces it (the one
	// with the highest internal revision wins).
	Save(ctx context.Context, run Run) error
	// Find returns the runs matching q, newest first.
	Find(ctx context.Context, q RunQuery) ([]Run, error)
}

// RunQuery selects runs; zero fields select everything.
type RunQuery struct {
	ServiceID string
	IDs       []string
	Statuses  []Status
	Limit     int // 0: no limit
}

// ClickHouseRuns is the RunStore on ClickHouse's sync_runs table (migration
// 0004). The table is an operational history of what the engine did, written
// by the engine itself: it is not a projection of the Kafka log and cannot be
// rebuilt from it. Losing it loses the history shown by GET /api/sync-runs
// and resets the "last run" of the scheduled-duplicate check, nothing else:
// cursors live in Kafka (TableState). Safe for concurrent use.
type ClickHouseRuns struct {
	conn driver.Conn
}

var _ RunStore = (*ClickHouseRuns)(nil)

// NewClickHouseRuns returns the store on conn (from chstore.Open, migrated by
// chstore.Migrate).
func NewClickHouseRuns(conn driver.Conn) *ClickHouseRuns { return &ClickHouseRuns{conn: conn} }

const runColumns = "id, service_id, service_type, trigger, status, started_at, started_at_ns, finished_at, finished_at_ns, " +
	"records_read, events_emitted, records_skipped, error, log, instance, rev"

// Save inserts a version of run with PrepareBatch/Send (an
// `INSERT … VALUES` Exec hangs on the native protocol).
func (s *ClickHouseRuns) Save(ctx context.Context, run Run) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO sync_runs ("+runColumns+")")
	if err != nil {
		return fmt.Errorf("save sync run %s: prepare: %w", run.ID, err)
	}
	var finished *time.Time
	var finishedNS int64
	if !run.FinishedAt.IsZero() {
		f := run.FinishedAt.UTC().Truncate(time.Second)
		finished, finishedNS = &f, run.FinishedAt.UnixNano()
	}
	logLines := run.Log
	if logLines == nil {
		logLines = []string{}
	}
	err = batch.Append(
		run.ID, run.ServiceID, run.ServiceType, string(run.Trigger), string(run.Status),
		run.StartedAt.UTC().Truncate(time.Second), run.StartedAt.UnixNano(), finished, finishedNS,
		run.RecordsRead, run.EventsEmitted, run.RecordsSkipped, run.Error, logLines, run.Instance,
		uint64(run.rev),
	)
	if err != nil {
		_ = batch.Abort()
		return fmt.Errorf("save sync run %s: %w", run.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save sync run %s: %w", run.ID, err)
	}
	return nil
}

// List returns the service's runs (every service's when serviceID is
// empty), newest first, at most limit (0: all).
func (s *ClickHouseRuns) List(ctx context.Context, serviceID string, limit int) ([]Run, error) {
	return s.Find(ctx, RunQuery{ServiceID: serviceID, Limit: limit})
}

// Find reads the latest version of each matching run (FINAL), newest first.
func (s *ClickHouseRuns) Find(ctx context.Context, q RunQuery) ([]Run, error) {
	query, args := findSQL(q)
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read sync runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		var (
			r                     Run
			trigger, status       string
			startedAt             time.Time
			startedNS, finishedNS int64
			finishedAt            *time.Time
			rev                   uint64
		)
		if err := rows.Scan(&r.ID, &r.ServiceID, &r.ServiceType, &trigger, &status, &startedAt, &startedNS, &finishedAt, &finishedNS,
			&r.RecordsRead, &r.EventsEmitted, &r.RecordsSkipped, &r.Error, &r.Log, &r.Instance, &rev); err != nil {
			return nil, fmt.Errorf("read sync runs: %w", err)
		}
		r.Trigger, r.Status, r.rev = Trigger(trigger), Status(status), int64(rev)
		r.StartedAt = time.Unix(0, startedNS).UTC()
		if finishedAt != nil {
			r.FinishedAt = time.Unix(0, finishedNS).UTC()
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sync runs: %w", err)
	}
	return runs, nil
}

// findSQL builds the query of q. Values are bound client-side (`?`), sets
// with clickhouse.GroupSet: ClickHouse 18.16 has no server-side parameters.
// FINAL collapses a run's versions to the latest; the WHERE on status applies
// after FINAL (WHERE, not PREWHERE), so an old "running" version never
// matches a finished run.
func findSQL(q RunQuery) (string, []any) {
	var where []string
	var args []any
	if q.ServiceID != "" {
		where = append(where, "service_id = ?")
		args = append(args, q.ServiceID)
	}
	if len(q.IDs) > 0 {
		where = append(where, "id IN ?")
		args = append(args, groupSet(q.IDs))
	}
	if len(q.Statuses) > 0 {
		statuses := make([]string, len(q.Statuses))
		for i, st := range q.Statuses {
			statuses[i] = string(st)
		}
		where = append(where, "status IN ?")
		args = append(args, groupSet(statuses))
	}
	sql := "SELECT " + runColumns + " FROM sync_runs FINAL"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY started_at_ns DESC, id DESC"
	if q.Limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return sql, args
}

func groupSet(values []string) clickhouse.GroupSet {
	set := clickhouse.GroupSet{Value: make([]any, len(values))}
	for i, v := range values {
		set.Value[i] = v
	}
	return set
}
