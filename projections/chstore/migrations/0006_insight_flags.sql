-- Insight flags (projections/insights/chinsights).
--
-- insight_flags: one row per flag version. The flag itself is kept whole as
-- JSON in flag (insights.Flag: evidence, texts, window, timestamps); the
-- columns beside it are copies for filtering. ReplacingMergeTree(version)
-- keyed by id keeps the highest version of each flag; readers use FINAL.
CREATE TABLE IF NOT EXISTS insight_flags
(
    id String,
    version UInt64,
    kind String,
    severity String,
    status String,
    customer_id String,
    feature String,
    last_seen DateTime,
    flag String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- insight_deliveries: which flag each alert channel was sent, at which
-- severity (rank: info 1, warning 2, critical 3). The version is the rank, so
-- FINAL keeps the highest severity delivered per channel and flag.
CREATE TABLE IF NOT EXISTS insight_deliveries
(
    channel String,
    flag_id String,
    severity String,
    rank UInt8,
    delivered_at DateTime
)
ENGINE = ReplacingMergeTree(rank)
ORDER BY (channel, flag_id)
