-- Usage cost from rate cards (projections/aggregates, projections/pricing;
-- docs/analytics/costs.md).
--
-- usage_by_day.price is 1 when the row's quantity is priced from the rate
-- card: the event carried no cost (has_cost = 0) and no attribute
-- cost_reported_by (token events whose money arrives as separate cost events;
-- pricing them would count it twice). The aggregator sums the quantity of
-- such rows per day x customer x feature and multiplies it by the card's
-- price of that day.
ALTER TABLE usage_by_day ADD COLUMN price UInt8 DEFAULT 0;

-- daily_usage: cost stays the total (reported + priced); priced_cost is the
-- part priced from the rate card and unpriced_quantity the quantity that
-- should have been priced but no card knows its feature (its cost is 0), so
-- a re-costing is auditable and an unpriced feature is never silently free.
ALTER TABLE daily_usage ADD COLUMN priced_cost Decimal(38, 9) DEFAULT toDecimal128(0, 9);

ALTER TABLE daily_usage ADD COLUMN unpriced_quantity Decimal(38, 9) DEFAULT toDecimal128(0, 9);

-- Backfill: the rows already in usage_by_day have price = 0. The current
-- version of each identity is written again under its day with the same rev
-- and its price flag (of rows with equal versions ReplacingMergeTree keeps
-- the last inserted), as 0005 wrote it; tombstones and superseded rows are
-- void and need no flag. Running this again writes the same rows.
INSERT INTO usage_by_day (day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost, price)
SELECT day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost,
       toUInt8(has_cost = 0 AND NOT has(attr_keys, 'cost_reported_by'))
FROM usage_events FINAL;

-- Every usage day is recomputed once with the rate card. The mark's
-- changed_ns is now, above the done marks already written (a mark at 1, as in
-- 0005, would lose to them).
INSERT INTO dirty_days (kind, day, changed_ns, done, ver)
SELECT 'usage', day, toUInt64(toUnixTimestamp(now())) * 1000000000, toUInt8(0), toUInt64(toUnixTimestamp(now())) * 2000000000
FROM usage_by_day
GROUP BY day
