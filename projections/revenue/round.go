package revenue

import "github.com/shopspring/decimal"

var two = decimal.NewFromInt(2)

// divRound returns a/b rounded half to even to places decimals, from the
// exact quotient (QuoRem), never from one already cut to
// decimal.DivisionPrecision digits. b must not be zero. (pricing has the
// same helper; each package keeps its own rather than share a util package.)
func divRound(a, b decimal.Decimal, places int32) decimal.Decimal {
	q, r := a.QuoRem(b, places)
	if r.IsZero() {
		return q
	}
	ulp := decimal.New(1, -places)
	c := r.Abs().Mul(two).Cmp(b.Abs().Mul(ulp))
	if c > 0 || (c == 0 && q.Shift(places).BigInt().Bit(0) == 1) {
		if a.Sign()*b.Sign() < 0 {
			return q.Sub(ulp)
		}
		return q.Add(ulp)
	}
	return q
}
