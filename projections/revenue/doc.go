// Package revenue holds the storage-independent core of uvr's revenue side:
// accrual (spreading an amount evenly over its service period, per UTC day),
// the cash and accrual views of a revenue event, and MRR with its monthly
// movements. Everything here is a pure function of its arguments, so the
// projections, the what-if simulator and the ledger tests compute revenue the
// same way.
//
// # Conventions
//
//   - Days are UTC calendar days, represented as a time.Time at 00:00 UTC.
//   - Periods are half-open, [start, end), as Stripe gives them: a monthly
//     period 2025-03-01T00:00Z → 2025-04-01T00:00Z covers the 31 days of
//     March and not April 1st.
//   - Money is shopspring decimal with at most 9 decimal places (uvr's
//     Decimal(18,9)). Spread never rounds: it apportions the amount's last
//     digits exactly. MonthlyAmount (MRR normalisation) rounds once per
//     line, half to even, to 9 decimal places.
//
// The definitions (accrual, MRR normalisation, the ChartMogul movement
// definitions) are written out in docs/analytics/pricing.md.
package revenue
