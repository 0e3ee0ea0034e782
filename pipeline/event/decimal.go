package event

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// maxDecimalText bounds the text of a decimal from outside: Decimal(38,9)
// written out in full with a sign and a point is 40 characters, so 100
// leaves room for zeros and an exponent while keeping every later step small.
const maxDecimalText = 100

// maxExponentDigits bounds the exponent's digits: with at most 100 digits of
// mantissa, an exponent of four digits already reaches any bound a field can
// have, and a longer one is only a way to make a huge number.
const maxExponentDigits = 4

// ParseDecimal reads a decimal from outside uvr (an event, a request, a
// card or FX file) and checks, on the text and before any big number is
// built, that it fits a field of intDigits digits before the point and at
// most scale after it. It accepts what shopspring's NewFromString accepts
// (sign, fraction, exponent), trimmed of spaces.
//
// Why on the text: shopspring keeps the exponent aside, so "1e-30000000"
// or "9e99999999" parse at once into a tiny value, and the first
// comparison, rounding or addition then builds a number of millions of
// digits (seconds of CPU and hundreds of MB per request). Counting digits
// here keeps every accepted value as small as the column that stores it.
//
// The error is the reason alone, for the caller to put after the field name.
func ParseDecimal(text string, intDigits, scale int) (decimal.Decimal, error) {
	text = strings.TrimSpace(text)
	if len(text) > maxDecimalText {
		return decimal.Decimal{}, fmt.Errorf("is longer than %d characters", maxDecimalText)
	}
	mantissa, exp, ok := splitDecimal(text)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("must be a decimal number such as \"12.50\", got %q", text)
	}
	if len(strings.TrimLeft(mantissa, "0")) == 0 {
		return decimal.Zero, nil // 0e99999 is zero, whatever its exponent
	}
	if len(exp) > maxExponentDigits+1 { // +1: the sign
		return decimal.Decimal{}, fmt.Errorf("has an exponent beyond what the field holds (at most %d digits before the decimal point and %d after), got %q", intDigits, scale, text)
	}
	e, _ := strconv.Atoi(exp) // four digits and a sign: always fits

	// The value is digits × 10^e, the point placed after intPart.
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	digits := strings.TrimLeft(intPart+fracPart, "0")
	e -= len(fracPart)
	trimmed := strings.TrimRight(digits, "0")
	e += len(digits) - len(trimmed)
	if places := -e; places > scale {
		return decimal.Decimal{}, fmt.Errorf("has more than %d decimal places", scale)
	}
	if whole := len(trimmed) + e; whole > intDigits {
		return decimal.Decimal{}, fmt.Errorf("is too large (at most %d digits before the decimal point)", intDigits)
	}
	d, err := decimal.NewFromString(text)
	if err != nil { // splitDecimal accepted it, so this does not happen
		return decimal.Decimal{}, fmt.Errorf("must be a decimal number such as \"12.50\", got %q", text)
	}
	return d, nil
}

// splitDecimal splits [+-]digits[.digits][(e|E)[+-]digits] into its
// mantissa (without the sign) and its signed exponent text ("" when none).
func splitDecimal(s string) (mantissa, exp string, ok bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa, exp = s[:i], s[i+1:]
		digits := strings.TrimPrefix(strings.TrimPrefix(exp, "-"), "+")
		if digits == "" || !allDigits(digits) {
			return "", "", false
		}
	} else {
		mantissa = s
	}
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	if intPart+fracPart == "" || !allDigits(intPart) || !allDigits(fracPart) {
		return "", "", false
	}
	return mantissa, exp, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
