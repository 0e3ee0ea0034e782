-- revenue_events: one row per version of each uvr.revenue.v1 event (projection
-- rawevents). Same identity, versioning and partitioning rules as usage_events
-- (see 0001): ReplacingMergeTree(rev) on (source, id), rev = version*2 + void,
-- no PARTITION BY because a correction may move an event to another day and
-- FINAL only collapses versions inside one partition.
--
-- amount is 0 for subscription_* kinds that carry none; period_start and
-- period_end are NULL when absent.
CREATE TABLE IF NOT EXISTS revenue_events
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
    kind String,
    amount Decimal(18, 9),
    currency String,
    period_start Nullable(DateTime),
    period_end Nullable(DateTime),
    plan String,
    invoice_id String,
    attr_keys Array(String),
    attr_values Array(String),
    ingested_at DateTime,
    kafka_partition Int32,
    kafka_offset Int64
)
ENGINE = ReplacingMergeTree(rev)
ORDER BY (source, id)
