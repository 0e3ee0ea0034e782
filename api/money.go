package api

import (
	"github.com/shopspring/decimal"
)

// Number is an exact decimal written as a JSON number: the digits come from
// the decimal's text, never through float64, so 0.1 + 0.2 stays 0.3.
type Number decimal.Decimal

// MarshalJSON prints the decimal's canonical text as a JSON number.
func (n Number) MarshalJSON() ([]byte, error) {
	return []byte(decimal.Decimal(n).String()), nil
}

// num and optNum convert query results for the response.
func num(d decimal.Decimal) Number { return Number(d) }

func optNum(d *decimal.Decimal) *Number {
	if d == nil {
		return nil
	}
	n := Number(*d)
	return &n
}

// orZero puts an optional ratio (a margin without revenue, revenue per unit
// without usage) on the wire as REST clients of the original product read
// it: always a number, since they do arithmetic on it (null crashed them),
// so an absent ratio is 0 with defined false, and every such field has a
// *_defined flag beside it so that nobody takes that 0 for a real 0 %.
func orZero(d *decimal.Decimal) (n Number, defined bool) {
	if d == nil {
		return Number{}, false
	}
	return Number(*d), true
}
