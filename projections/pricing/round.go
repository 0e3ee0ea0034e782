package pricing

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// MaxScale is the number of decimal places uvr keeps for money, prices and
// rates: event.MaxScale, the scale of its Decimal(18,9) columns.
const MaxScale = event.MaxScale

var (
	two = decimal.NewFromInt(2)
	one = decimal.NewFromInt(1)
)

// divRound returns a/b rounded half to even to places decimals. It rounds
// the exact quotient (from QuoRem), never a quotient already cut to
// decimal.DivisionPrecision digits, so the result is the correctly rounded
// value. b must not be zero.
func divRound(a, b decimal.Decimal, places int32) decimal.Decimal {
	q, r := a.QuoRem(b, places)
	if r.IsZero() {
		return q
	}
	ulp := decimal.New(1, -places)
	// The discarded part is |r| / (|b|·ulp) of one ulp; compare it with ½.
	c := r.Abs().Mul(two).Cmp(b.Abs().Mul(ulp))
	if c > 0 || (c == 0 && q.Shift(places).BigInt().Bit(0) == 1) {
		if a.Sign()*b.Sign() < 0 {
			return q.Sub(ulp)
		}
		return q.Add(ulp)
	}
	return q
}

// Day returns the UTC calendar day of t, as 00:00 UTC of that day.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

const dateLayout = "2006-01-02"

// parseDay parses YYYY-MM-DD as a UTC day.
func parseDay(s string) (time.Time, bool) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}
