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
