package event

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		text, want, err string
	}{
		{text: "12.50", want: "12.5"},
		{text: " -0.000000001 ", want: "-0.000000001"},
		{text: "+1e3", want: "1000"},
		{text: "1.5E-3", want: "0.0015"},
		{text: "123456789", want: "123456789"},
		{text: "1234567890e-1", want: "123456789"},
		{text: "100000000000000000000e-20", want: "1"},
		{text: "0e99999999999", want: "0"},
		{text: ".5", want: "0.5"},
		{text: "0.1000000000", want: "0.1"}, // trailing zeros are no decimal places
		{text: "1234567890", err: "is too large (at most 9 digits before the decimal point)"},
		{text: "1e9", err: "is too large"},
		{text: "0.0000000001", err: "has more than 9 decimal places"},
		{text: "1e-10", err: "has more than 9 decimal places"},
		// The inputs that made the server build numbers of millions of digits.
		{text: "1e-30000000", err: "has an exponent beyond what the field holds"},
		{text: "9e99999999", err: "has an exponent beyond what the field holds"},
		{text: "1e999999999999", err: "has an exponent beyond what the field holds"},
		{text: "1" + strings.Repeat("0", 200), err: "is longer than 100 characters"},
		{text: "0." + strings.Repeat("0", 5_000_000) + "1", err: "is longer than 100 characters"},
		{text: "12,5", err: `must be a decimal number such as "12.50", got "12,5"`},
		{text: "", err: "must be a decimal number"},
		{text: "1e", err: "must be a decimal number"},
		{text: "e5", err: "must be a decimal number"},
		{text: "--1", err: "must be a decimal number"},
		{text: "NaN", err: "must be a decimal number"},
		{text: "0x10", err: "must be a decimal number"},
	} {
		t.Run(tc.text[:min(len(tc.text), 30)], func(t *testing.T) {
			d, err := ParseDecimal(tc.text, MoneyDigits, MaxScale)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, d.String())
		})
	}
}

// BenchmarkParseDecimalHostile prints what a hostile decimal costs: it is
// refused from its text, with no big number built.
func BenchmarkParseDecimalHostile(b *testing.B) {
	for b.Loop() {
		for _, s := range []string{"1e-30000000", "9e99999999", "1e999999999999"} {
			if _, err := ParseDecimal(s, QuantityDigits, MaxScale); err == nil {
				b.Fatal("accepted", s)
			}
		}
	}
}
