-- revisions: every event version above the first, and every void
-- (projections/aggregates; docs/design/daily-aggregates.md), keyed by the
-- raw table's type ('usage', 'revenue') and the event's identity. The
-- writer appends to it without reading anything; readers of the by-day
-- tables count a by-day row only when its identity has no revision or the
-- row's rev is the identity's highest (FINAL). So the by-day tables keep
-- every version under its own day, with no tombstone, and a correction, a
-- void or a first version arriving after its correction are all resolved by
-- rev when a day is read. Most events never get a second version: the table
-- stays a small part of the log.
CREATE TABLE IF NOT EXISTS revisions
(
    type String,
    source String,
    id String,
    rev UInt64
)
ENGINE = ReplacingMergeTree(rev)
ORDER BY (type, source, id);

-- by_day_trails (0009) served the tombstones, which the writer no longer
-- writes: a by-day row is now resolved against revisions when it is read.
DROP TABLE IF EXISTS by_day_trails
