-- by_day_trails: the days of every event version the writer wrote by-day
-- rows for (projections/aggregates/trail.go; docs/design/daily-aggregates.md).
-- kind is the by-day table's dirty kind ('usage', 'revenue',
-- 'revenue_lines'); days are kept as runs (from_day..to_day: a yearly
-- revenue line is one row, not 366); rev is the version's rev. The writer
-- inserts a flush's trail rows before its by-day rows, and a later flush
-- tombstones every day the trails of its identities name (those at or above
-- the raw current rev), besides the raw tables' current days: so a by-day
-- row whose raw insert never happened (a crash between the two) is still
-- known after a restart, whatever order the redelivered versions come in.
-- Ordered by identity first for the writer's point lookups; not
-- partitioned, so one insert never spans many partitions. Duplicates are
-- harmless (the writer takes the union; of two versions with the same days
-- the higher rev is kept); the writer reads it with FINAL all the same, so
-- its answer does not depend on how far merges went. A database projected before this
-- migration starts with no trails; the raw tables' current day covers its
-- by-day rows as before.
CREATE TABLE IF NOT EXISTS by_day_trails
(
    source String,
    id String,
    kind String,
    from_day Date,
    to_day Date,
    rev UInt64
)
ENGINE = ReplacingMergeTree(rev)
ORDER BY (source, id, kind, from_day, to_day)
