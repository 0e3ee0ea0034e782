package pricing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fxTable = `# ECB-style reference rates, quoted against USD unless noted
date,base,quote,rate
2025-06-02,EUR,USD,1.1418
2025-06-03,EUR,USD,1.1370
2025-06-06,EUR,USD,1.1400
2025-06-02,GBP,USD,1.3530
2025-06-02,USD,JPY,143.50
2025-06-05,JPY,USD,0.0069
2025-06-02,EUR,CHF,0.9400
2025-06-04,CHF,EUR,1.0700
`

func testFX(t *testing.T) *FX {
	t.Helper()
	f, err := ParseFX("fx.csv", []byte(fxTable), "USD")
	require.NoError(t, err)
	return f
}

func TestFXRate(t *testing.T) {
	f := testFX(t)
	tests := []struct {
		name     string
		from, to string
		day      string
		want     string
		err      string
	}{
		{"same currency", "EUR", "EUR", "2020-01-01", "1", ""},
		{"direct on its day", "EUR", "USD", "2025-06-02", "1.1418", ""},
		{"direct, next day's quote", "EUR", "USD", "2025-06-03", "1.137", ""},
		{"latest on or before (no quote on the 4th and 5th)", "EUR", "USD", "2025-06-05", "1.137", ""},
		{"inverse", "USD", "EUR", "2025-06-02", "0.875810124", ""}, // 1/1.1418 = 0.87581012436…
		{"USD/JPY direct", "USD", "JPY", "2025-06-04", "143.5", ""},
		{"newer inverse quote wins", "USD", "JPY", "2025-06-05", "144.927536232", ""},      // 1/0.0069 = 144.9275362318…
		{"cross through USD", "GBP", "EUR", "2025-06-02", "1.184971098", ""},               // 1.3530/1.1418 = 1.1849710982658…
		{"cross, legs of different days", "GBP", "JPY", "2025-06-06", "196.086956522", ""}, // 1.3530/0.0069 = 196.0869565217…
		{"pair quoted directly beats the cross", "EUR", "CHF", "2025-06-02", "0.94", ""},
		{"pair quoted inversely later", "EUR", "CHF", "2025-06-04", "0.934579439", ""}, // 1/1.07 = 0.93457943925…
		{"before the first quote", "EUR", "USD", "2025-06-01", "", "EUR/USD on or before 2025-06-01: no FX rate"},
		{"unknown currency to USD", "SEK", "USD", "2025-06-06", "", "SEK/USD on or before 2025-06-06: no FX rate"},
		{"cross missing its first leg", "SEK", "EUR", "2025-06-06", "", "SEK/EUR on or before 2025-06-06: neither the pair nor SEK/USD is quoted"},
		{"cross missing its second leg", "GBP", "SEK", "2025-06-06", "", "GBP/SEK on or before 2025-06-06: neither the pair nor USD/SEK is quoted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.Rate(tt.from, tt.to, date(tt.day).Add(15*time.Hour))
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, errors.Is(err, ErrNoRate))
				return
			}
			require.NoError(t, err)
			assert.Truef(t, got.Equal(d(tt.want)), "rate %s, want %s", got, tt.want)
		})
	}
	assert.Equal(t, "USD", f.Reporting())
}

func TestFXConvert(t *testing.T) {
	f := testFX(t)
	tests := []struct {
		name     string
		amount   string
		from, to string
		day      string
		want     string
	}{
		{"direct", "100.00", "EUR", "USD", "2025-06-02", "114.18"},
		{"negative (a refund)", "-100.00", "EUR", "USD", "2025-06-02", "-114.18"},
		{"inverse, exact", "114.18", "USD", "EUR", "2025-06-02", "100"},
		// 100 × 1.3530 / 1.1418 = 118.49710982658…: from the exact quotient,
		// not 100 × the rounded rate 1.184971098 (= 118.4971098).
		{"cross", "100", "GBP", "EUR", "2025-06-02", "118.497109827"},
		// 1e9 JPY at 1/143.50: 6968641.1149825783… (the rounded rate would give 6968641.115).
		{"large amount, inverse", "1000000000", "JPY", "USD", "2025-06-02", "6968641.114982578"},
		// Ties at the 10th place round half to even: 0.000000001 / 2 and 0.000000003 / 2.
		{"tie to even, down", "0.000000001", "AAA", "USD", "2025-01-01", "0"},
		{"tie to even, up", "0.000000003", "AAA", "USD", "2025-01-01", "0.000000002"},
	}
	half, err := NewFX("USD", []FXRate{{Day: date("2025-01-01"), Base: "USD", Quote: "AAA", Rate: d("2")}})
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := f
			if tt.from == "AAA" {
				table = half
			}
			got, err := table.Convert(d(tt.amount), tt.from, tt.to, date(tt.day))
			require.NoError(t, err)
			assert.Truef(t, got.Equal(d(tt.want)), "converted %s, want %s", got, tt.want)
		})
	}
	_, err = f.Convert(d("1"), "SEK", "USD", date("2025-06-02"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNoRate))
	assert.Contains(t, err.Error(), "convert SEK to USD: SEK/USD on or before 2025-06-02")
}

func TestParseFXProblems(t *testing.T) {
	tests := []struct {
		name      string
		csv       string
		reporting string
		want      []string
	}{
		{"empty", "", "USD", []string{"fx.csv: header: want the header date,base,quote,rate"}},
		{"missing columns", "date,base,rate\n", "USD", []string{"fx.csv: header: quote: missing column"}},
		{"bad lines", `date,base,quote,rate
2025-06-31,EUR,USD,1.1
2025-06-02,eur,USD,1.1
2025-06-02,EUR,EUR,1
2025-06-02,GBP,USD,0
2025-06-02,CHF,USD,-1
2025-06-02,JPY,USD,0.0000000001
2025-06-02,SEK,USD,ten
2025-06-02,NOK,USD
2025-06-03,EUR,USD,1.1
2025-06-03,EUR,USD,1.2
2025-06-03,USD,EUR,0.9
`, "usd", []string{
			"fx.csv: line 2: date: must be YYYY-MM-DD, got \"2025-06-31\"",
			"fx.csv: line 7: rate: has more than 9 decimal places",
			"fx.csv: line 8: rate: must be a decimal number such as \"12.50\", got \"ten\"",
			"fx.csv: line 9: wrong number of fields",
			"fx.csv: reporting currency: must be an ISO 4217 code such as USD, got \"usd\"",
			"fx.csv: line 3: base: must be an ISO 4217 code such as USD, got \"eur\"",
			"fx.csv: line 4: quote: equals base (EUR)",
			"fx.csv: line 5: rate: must be positive, got 0",
			"fx.csv: line 6: rate: must be positive, got -1",
			"fx.csv: line 11: rate: EUR/USD is already quoted on 2025-06-03 (line 10)",
			"fx.csv: line 12: rate: USD/EUR is already quoted the other way on 2025-06-03 (line 10); give one direction per day",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFX("fx.csv", []byte(tt.csv), tt.reporting)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "error %v", err)
			assert.True(t, errors.Is(err, ErrInvalid))
			got := problemStrings(ve)
			require.Lenf(t, got, len(tt.want), "problems: %s", strings.Join(got, "\n"))
			for i, w := range tt.want {
				assert.Contains(t, got[i], w)
			}
		})
	}
}

func TestNewFXAndLoadFX(t *testing.T) {
	_, err := NewFX("USD", []FXRate{{Base: "EUR", Quote: "USD", Rate: d("1.1")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rates[0]: date: is required")

	f, err := LoadFX("testdata/fx.csv", "USD")
	require.NoError(t, err)
	got, err := f.Convert(d("10"), "EUR", "USD", date("2025-06-30"))
	require.NoError(t, err)
	assert.True(t, got.Equal(d("11.418")))

	_, err = LoadFX("testdata/missing.csv", "USD")
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrInvalid))
}
