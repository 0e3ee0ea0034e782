-- sync_runs: the history of connector sync runs (connectors/syncer).
--
-- Unlike the *_events tables this is not a projection of the Kafka log: the
-- sync engine writes it directly, as an operational record of what it did
-- (GET /api/sync-runs). It cannot be rebuilt from the log; losing it loses
-- that history only (cursors live in the compacted topic uvr.sync-state.v1).
--
-- A run is written when it starts (status running), possibly again with its
-- progress, and when it ends. ReplacingMergeTree(rev) keeps, per run id, the
-- version with the highest rev (a nanosecond clock, strictly increasing per
-- run), so readers use FINAL. Partitioning by the start month is safe: every
-- version of a run carries the same started_at, so they stay in one
-- partition, and old months can be dropped whole.
--
-- started_at/finished_at are whole seconds for people and dashboards;
-- started_at_ns/finished_at_ns are the exact Unix nanoseconds (ordering of
-- runs started within one second, durations). finished_at is NULL and
-- finished_at_ns 0 while running. log holds the run's last log lines;
-- error is redacted before it is written.
CREATE TABLE IF NOT EXISTS sync_runs
(
    id String,
    service_id String,
    service_type String,
    trigger String,
    status String,
    started_at DateTime,
    started_at_ns Int64,
    finished_at Nullable(DateTime),
    finished_at_ns Int64,
    records_read UInt64,
    events_emitted UInt64,
    records_skipped UInt64,
    error String,
    log Array(String),
    instance String,
    rev UInt64
)
ENGINE = ReplacingMergeTree(rev)
PARTITION BY toYYYYMM(started_at)
ORDER BY (service_id, id)
