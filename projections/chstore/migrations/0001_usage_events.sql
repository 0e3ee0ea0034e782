-- usage_events: one row per version of each uvr.usage.v1 event (projection rawevents).
--
-- Identity is (source, id). ReplacingMergeTree(rev) keeps, per sorting key, the
-- row with the highest rev = version*2 + void, so a later version replaces an
-- earlier one and a void beats the same version. Merges happen whenever
-- ClickHouse likes, so readers must use FINAL (and WHERE void = 0, never as
-- PREWHERE: a PREWHERE is applied before FINAL collapses the versions).
--
-- There is deliberately no PARTITION BY on the event time: ReplacingMergeTree
-- and FINAL only collapse rows inside one partition, and a correction may move
-- an event to another day or month; its old version, left in the old
-- partition, would then be counted too. One partition keyed by identity keeps
-- every version of an event together.
--
-- attr_keys/attr_values hold data.attributes (sorted by key); window_end is
-- NULL when absent; has_cost says whether cost was given (cost is 0 otherwise).
-- ingested_at, kafka_partition and kafka_offset (-1 when unknown) are for
-- debugging only.
CREATE TABLE IF NOT EXISTS usage_events
(
    source String,
    id String,
    version UInt32,
    void UInt8,
    rev UInt64,
    time DateTime,
    day Date,
    customer_source String,
    customer_external_id String,
    customer_email String,
    customer_name String,
    subject String,
    feature String,
    quantity Decimal(38, 9),
    unit String,
    cost Decimal(18, 9),
    has_cost UInt8,
    currency String,
    window_end Nullable(DateTime),
    attr_keys Array(String),
    attr_values Array(String),
    ingested_at DateTime,
    kafka_partition Int32,
    kafka_offset Int64
)
ENGINE = ReplacingMergeTree(rev)
ORDER BY (source, id)
