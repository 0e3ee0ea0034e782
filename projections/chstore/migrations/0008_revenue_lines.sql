-- Revenue per day × customer × currency × plan, cash and accrual
-- (projections/aggregates; docs/analytics/revenue.md).
--
-- revenue_lines_by_day: like revenue_by_day (0005), but an event version has
-- one row under every day it counts on in either view: its cash day (cash =
-- the amount) and each day of its service period (accrual = that day's share
-- from projections/revenue.Spread; an event without a period accrues on its
-- cash day). So a correction that changes the period writes the new days and
-- a tombstone (void, same rev) under every day the previous versions covered
-- and the new one does not. Same ReplacingMergeTree(rev) per (day, source,
-- id), same readers' rules: FINAL, filters in WHERE, void = 0. plan is the
-- event's data.plan (Stripe's and Chargebee's mappers put the price / item
-- price id there), the key of revenue attribution to features.
CREATE TABLE IF NOT EXISTS revenue_lines_by_day
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
    plan String,
    cash Decimal(18, 9),
    accrual Decimal(18, 9)
)
ENGINE = ReplacingMergeTree(rev)
PARTITION BY toYYYYMM(day)
ORDER BY (day, source, id);

-- daily_revenue_lines: per day × customer × currency × plan, recomputed for
-- a whole day from revenue_lines_by_day (dirty kind 'revenue_lines'), with
-- daily_usage's versioning and zero rows. cash and refunds are as in
-- daily_revenue; accrual is the accrual view. Currencies stay separate: the
-- API converts at query time with the FX table, so a rate correction applies
-- to all history without re-projection.
CREATE TABLE IF NOT EXISTS daily_revenue_lines
(
    day Date,
    customer_source String,
    customer_external_id String,
    currency String,
    plan String,
    cash Decimal(38, 9),
    accrual Decimal(38, 9),
    refunds Decimal(38, 9),
    events UInt64,
    computed_at UInt64
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_source, customer_external_id, currency, plan);

-- Backfill: spreading needs Go (exact apportioning), so the migration only
-- asks for it: one dirty mark of kind 'revenue_lines_backfill' (changed_ns 1,
-- below any real change). The aggregator, seeing it, copies the current
-- version of every revenue event (revenue_events FINAL) into
-- revenue_lines_by_day, marks its days dirty, then marks the backfill done.
-- It is idempotent (same keys and revs), and a version projected meanwhile
-- wins by its higher rev or tombstones what the backfill wrote (the writer
-- looks the current version up in revenue_events and tombstones its days).
INSERT INTO dirty_days (kind, day, changed_ns, done, ver)
SELECT 'revenue_lines_backfill', toDate('1970-01-02'), toUInt64(1), toUInt8(0), toUInt64(2)
