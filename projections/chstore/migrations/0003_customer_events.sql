-- customer_events: one row per version of each uvr.customer.v1 event
-- (projection rawevents). Same identity, versioning and partitioning rules as
-- usage_events (see 0001): ReplacingMergeTree(rev) on (source, id),
-- rev = version*2 + void, no PARTITION BY.
--
-- metadata_keys/metadata_values hold data.metadata sorted by key.
CREATE TABLE IF NOT EXISTS customer_events
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
    plan String,
    environment String,
    metadata_keys Array(String),
    metadata_values Array(String),
    attr_keys Array(String),
    attr_values Array(String),
    ingested_at DateTime,
    kafka_partition Int32,
    kafka_offset Int64
)
ENGINE = ReplacingMergeTree(rev)
ORDER BY (source, id)
