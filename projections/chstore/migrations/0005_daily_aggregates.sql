-- Daily aggregates (projections/aggregates; design: docs/design/daily-aggregates.md).
--
-- usage_by_day / revenue_by_day: a copy of the raw tables' rows (only the
-- columns the aggregates read) ordered by day first. ReplacingMergeTree(rev)
-- collapses the versions of one identity *within one day*: when a correction
-- moves an event from day A to day B, the projector writes the new row under B
-- and a void row with the same rev under A, so FINAL over either day is right.
-- Partitioning by month is safe here (unlike the raw tables): every row of one
-- (day, source, id) key lives in its day's partition, and the tombstone is
-- written into the old day's partition explicitly. rev is the raw row's rev
-- (version*2 + void), except that a tombstone carries the rev of the version
-- that moved the event away. Readers use FINAL and WHERE void = 0 (never
-- PREWHERE, which would apply before FINAL collapses versions).
CREATE TABLE IF NOT EXISTS usage_by_day
(
    day Date,
    source String,
    id String,
    rev UInt64,
    void UInt8,
    customer_source String,
    customer_external_id String,
    feature String,
    currency String,
    quantity Decimal(38, 9),
    cost Decimal(18, 9)
)
ENGINE = ReplacingMergeTree(rev)
PARTITION BY toYYYYMM(day)
ORDER BY (day, source, id);

-- period_start/period_end are kept for accrual (spreading an invoice line over
-- its service period when the day is recomputed).
CREATE TABLE IF NOT EXISTS revenue_by_day
(
    day Date,
    source String,
    id String,
    rev UInt64,
    void UInt8,
    customer_source String,
    customer_external_id String,
    kind String,
    currency String,
    amount Decimal(18, 9),
    period_start Nullable(DateTime),
    period_end Nullable(DateTime)
)
ENGINE = ReplacingMergeTree(rev)
PARTITION BY toYYYYMM(day)
ORDER BY (day, source, id);

-- dirty_days: the days whose by-day rows changed and whose aggregate must be
-- recomputed. kind is 'usage' or 'revenue'. Each flush writes (kind, day,
-- changed_ns = its clock, done = 0) after its by-day rows; the aggregator,
-- having recomputed a day it saw at changed_ns, writes done = 1 at the same
-- changed_ns. ver = changed_ns*2 + done, so the done mark beats the change it
-- saw, and any later change (a higher changed_ns) beats the done mark: a day
-- changed during its recompute stays pending. Read with FINAL.
CREATE TABLE IF NOT EXISTS dirty_days
(
    kind String,
    day Date,
    changed_ns UInt64,
    done UInt8,
    ver UInt64
)
ENGINE = ReplacingMergeTree(ver)
ORDER BY (kind, day);

-- daily_usage: per day x customer x feature x currency, recomputed for a
-- whole day at a time from usage_by_day FINAL (void = 0). computed_at (Unix
-- nanoseconds, increasing per day) is the version: a recompute replaces every
-- key of the day, and a key that disappeared from the day is written with
-- zeros (events = 0), so readers use FINAL and may skip events = 0.
-- Sums of Decimal(18, 9) costs are Decimal(38, 9), as ClickHouse's sum gives.
CREATE TABLE IF NOT EXISTS daily_usage
(
    day Date,
    customer_source String,
    customer_external_id String,
    feature String,
    currency String,
    quantity Decimal(38, 9),
    events UInt64,
    cost Decimal(38, 9),
    computed_at UInt64
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_source, customer_external_id, feature, currency);

-- daily_revenue: per day x customer x currency, cash basis, over the kinds
-- that move money (charge, invoice_paid, refund, credit_note, dispute).
-- cash sums them all (refunds and credit notes are negative), refunds sums
-- refund and credit_note only; events counts the events summed. Same
-- versioning and zero rows as daily_usage.
CREATE TABLE IF NOT EXISTS daily_revenue
(
    day Date,
    customer_source String,
    customer_external_id String,
    currency String,
    cash Decimal(38, 9),
    refunds Decimal(38, 9),
    events UInt64,
    computed_at UInt64
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_source, customer_external_id, currency);

-- Backfill: a database projected before this migration has raw rows but no
-- by-day copy, and the dashboard now reads the aggregates only. The current
-- version of each identity (raw FINAL, voids included: they are filtered on
-- read) is copied under its day; no tombstone is needed, as no earlier
-- by-day row exists. Every day copied is marked dirty at changed_ns 1, below
-- any real change, so the aggregator computes it once. Running these again
-- (a crash before the migration was recorded) writes the same keys and revs.
INSERT INTO usage_by_day (day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost)
SELECT day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost
FROM usage_events FINAL;

INSERT INTO revenue_by_day (day, source, id, rev, void, customer_source, customer_external_id, kind, currency, amount, period_start, period_end)
SELECT day, source, id, rev, void, customer_source, customer_external_id, kind, currency, amount, period_start, period_end
FROM revenue_events FINAL;

INSERT INTO dirty_days (kind, day, changed_ns, done, ver)
SELECT 'usage', day, toUInt64(1), toUInt8(0), toUInt64(2)
FROM usage_by_day
GROUP BY day;

INSERT INTO dirty_days (kind, day, changed_ns, done, ver)
SELECT 'revenue', day, toUInt64(1), toUInt8(0), toUInt64(2)
FROM revenue_by_day
GROUP BY day
