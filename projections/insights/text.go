package insights

import (
	"strings"

	"github.com/shopspring/decimal"
)

var hundred = decimal.NewFromInt(100)

// currencySymbols are written before the amount; other currencies get their
// code after it ("1,204.50 CHF").
var currencySymbols = map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}

// money writes an amount for people: rounded to cents, thousands separated,
// "$1,204.50", "-$3.10", "1,204.50 CHF".
func money(x decimal.Decimal, currency string) string {
	sign := ""
	if x.IsNegative() {
		sign, x = "-", x.Neg()
	}
	s := group(x.StringFixed(2))
	if sym, ok := currencySymbols[currency]; ok {
		return sign + sym + s
	}
	return sign + s + " " + currency
}

// number writes a quantity: at most 2 decimals, thousands separated.
func number(x decimal.Decimal) string {
	sign := ""
	if x.IsNegative() {
		sign, x = "-", x.Neg()
	}
	return sign + group(x.Round(2).String())
}

// pct writes a percentage with at most one decimal: "243.6", "50".
func pct(x decimal.Decimal) string { return group(x.Round(1).String()) }

// group puts commas between thousands of the integer part of a plain decimal
// string.
func group(s string) string {
	var b strings.Builder
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		b.WriteByte('-')
		s = rest
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// percentOf is a/b×100 rounded to 4 decimals, for evidence and thresholds
// (b must not be zero).
func percentOf(a, b decimal.Decimal) decimal.Decimal {
	return a.Mul(hundred).DivRound(b, 4)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
