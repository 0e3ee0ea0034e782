// Package pricing holds the storage-independent core of uvr's cost side:
// rate cards (versioned, effective-dated prices per provider, model and unit)
// and a daily FX table. It has no I/O beyond reading the files it is given
// and no dependency on ClickHouse or Kafka, so the projections, the what-if
// simulator and the tests all price usage the same way.
//
// # Exactness
//
// Prices, quantities, rates and amounts are shopspring decimals read from
// their text; nothing passes through a float. A card quotes prices per
// Per units (a power of ten, e.g. per 1,000,000 tokens) and the per-unit
// price is that quote shifted by the power, which is exact; a card whose
// per-unit price would need more than 9 decimal places is rejected.
//
// Rounding happens in exactly two places, both half to even (banker's
// rounding, chosen so that rounding errors do not drift one way over
// millions of rows) and both to 9 decimal places, the scale of uvr's
// Decimal(18,9) money columns:
//   - [RateCard.Cost]: quantity × per-unit price, when the product has more
//     than 9 decimals;
//   - [FX.Convert]: amount × rate, computed from the exact quotient of the
//     quoted rates (inverse and cross rates included) and rounded once.
//
// [FX.Rate] returns the rate rounded the same way, for display and storage
// only; Convert never multiplies by a rounded rate.
//
// # Days
//
// Days are UTC calendar days, represented as a time.Time at 00:00 UTC (see
// [Day]); a card's effective_from/effective_to and an FX rate's date are such
// days. Ranges of days are half-open [From, To), like Stripe's periods.
package pricing
