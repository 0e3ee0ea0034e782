package revenue

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// MaxScale is the number of decimal places of uvr money (event.MaxScale);
// Spread apportions in units of 10^-MaxScale.
const MaxScale = event.MaxScale

// maxPeriod bounds a service period: longer is not a service period but a
// data error, and keeps every duration inside int64 nanoseconds.
const maxPeriod = 100 * 366 * 24 * time.Hour

// ErrPeriod is matched (errors.Is) by errors about a period that cannot be
// spread.
var ErrPeriod = errors.New("invalid service period")

// DayAmount is an amount on one UTC day (Day is 00:00 UTC).
type DayAmount struct {
	Day    time.Time
	Amount decimal.Decimal
}

// Day returns the UTC calendar day of t, as 00:00 UTC of that day.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Spread accrues amount over the service period [start, end): one entry per
// UTC day the period touches, in day order, each proportional to the time
// of the period that falls on that day. A whole day therefore gets
// amount / (period length in days), and a partial first or last day (a
// period starting at 13:22 UTC, or given in a zone with DST) its fraction.
//
// The entries sum to amount exactly. Each is amount × share truncated to 9
// decimal places; the units of 10^-9 that truncation leaves over (fewer than
// the number of days) go one each to the days with the largest discarded
// fractions, ties to the earliest day. With whole days all fractions are
// equal, so the extra units sit on the first days of the period. A negative
// amount (a credit note) is spread as the mirror image of its absolute
// value, so an invoice and the credit note that cancels it net to zero on
// every day.
//
// Errors (wrapping ErrPeriod): end not after start, a period over 100 years,
// or an amount with more than 9 decimal places.
func Spread(amount decimal.Decimal, start, end time.Time) ([]DayAmount, error) {
	start, end = start.UTC(), end.UTC()
	if !end.After(start) {
		return nil, fmt.Errorf("spread over [%s, %s): end must be after start: %w", start.Format(time.RFC3339), end.Format(time.RFC3339), ErrPeriod)
	}
	if end.Sub(start) > maxPeriod {
		return nil, fmt.Errorf("spread over [%s, %s): longer than 100 years: %w", start.Format(time.RFC3339), end.Format(time.RFC3339), ErrPeriod)
	}
	if !amount.Equal(amount.Truncate(MaxScale)) {
		return nil, fmt.Errorf("spread %s: more than %d decimal places: %w", amount, MaxScale, ErrPeriod)
	}

	// Weights: nanoseconds of the period on each UTC day.
	first := Day(start)
	n := int(Day(end.Add(-1)).Sub(first)/(24*time.Hour)) + 1
	days := make([]DayAmount, n)
	weights := make([]int64, n)
	for i := range n {
		d := first.AddDate(0, 0, i)
		lo, hi := d, d.AddDate(0, 0, 1)
		if start.After(lo) {
			lo = start
		}
		if end.Before(hi) {
			hi = end
		}
		days[i].Day = d
		weights[i] = int64(hi.Sub(lo))
	}
	units := amount.Abs().Shift(MaxScale).BigInt() // |amount| in 10^-9
	for i, share := range apportion(units, weights, int64(end.Sub(start)), amount.IsNegative()) {
		days[i].Amount = share
	}
	return days, nil
}

// apportion splits units among the weights (which sum to total) in
// proportion and exactly: each gets floor(units × w / total), and the units
// left over, fewer than len(weights), go one each to the largest discarded
// remainders, ties to the earliest. It returns the shares as decimals of
// 10^-9, negated when neg. Amounts of uvr money (< 10^9, so < 2^62 units)
// take a fast path in 128-bit integer arithmetic; larger ones use big.Int.
func apportion(units *big.Int, weights []int64, total int64, neg bool) []decimal.Decimal {
	if units.BitLen() > 62 {
		return apportionBig(units, weights, total, neg)
	}
	n := len(weights)
	out := make([]decimal.Decimal, n)
	u := units.Uint64()
	shares, rems := make([]int64, n), make([]uint64, n)
	left := int64(u)
	for i, w := range weights {
		hi, lo := bits.Mul64(u, uint64(w))
		q, r := bits.Div64(hi, lo, uint64(total)) // q <= u < 2^62: no overflow
		shares[i], rems[i] = int64(q), r
		left -= int64(q)
	}
	if left > 0 {
		for _, i := range byRemainder(n, func(a, b int) bool { return rems[a] > rems[b] })[:left] {
			shares[i]++
		}
	}
	for i, q := range shares {
		if neg {
			q = -q
		}
		out[i] = decimal.New(q, -MaxScale)
	}
	return out
}

// apportionBig is apportion in big.Int arithmetic, for any amount.
func apportionBig(units *big.Int, weights []int64, total int64, neg bool) []decimal.Decimal {
	n := len(weights)
	out := make([]decimal.Decimal, n)
	shares, rems := make([]*big.Int, n), make([]*big.Int, n)
	left := new(big.Int).Set(units)
	bigTotal := big.NewInt(total)
	for i, w := range weights {
		prod := new(big.Int).Mul(units, big.NewInt(w))
		shares[i], rems[i] = new(big.Int).QuoRem(prod, bigTotal, new(big.Int))
		left.Sub(left, shares[i])
	}
	if left.Sign() > 0 {
		for _, i := range byRemainder(n, func(a, b int) bool { return rems[a].Cmp(rems[b]) > 0 })[:left.Int64()] {
			shares[i].Add(shares[i], big.NewInt(1))
		}
	}
	for i, q := range shares {
		if neg {
			q.Neg(q)
		}
		out[i] = decimal.NewFromBigInt(q, -MaxScale)
	}
	return out
}

// byRemainder returns 0..n-1 ordered by larger, a stable sort keeping ties
// in day order, earliest first.
func byRemainder(n int, larger func(a, b int) bool) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return larger(order[a], order[b]) })
	return order
}
