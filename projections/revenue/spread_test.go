package revenue

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func day(s string) time.Time { return ts(s + "T00:00:00Z") }

// days renders a spread as "YYYY-MM-DD amount" lines.
func days(das []DayAmount) []string {
	out := make([]string, len(das))
	for i, da := range das {
		out[i] = da.Day.Format("2006-01-02") + " " + da.Amount.String()
	}
	return out
}

func repeat(from string, n int, amount string) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = day(from).AddDate(0, 0, i).Format("2006-01-02") + " " + amount
	}
	return out
}

func TestSpread(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	tests := []struct {
		name       string
		amount     string
		start, end time.Time
		want       []string
	}{
		{"a 31-day month", "31.00", day("2025-03-01"), day("2025-04-01"), repeat("2025-03-01", 31, "1")},
		{"a leap February", "29.00", day("2024-02-01"), day("2024-03-01"), repeat("2024-02-01", 29, "1")},
		{"remainder on the first day", "100.00", day("2025-03-01"), day("2025-03-04"), []string{
			"2025-03-01 33.333333334", "2025-03-02 33.333333333", "2025-03-03 33.333333333",
		}},
		// 10/7 = 1.428571428|57…: 7 × 1.428571428 = 9.999999996, so the
		// first four days carry one more unit of 10^-9.
		{"across a month end", "10.00", day("2025-02-26"), day("2025-03-05"), []string{
			"2025-02-26 1.428571429", "2025-02-27 1.428571429", "2025-02-28 1.428571429", "2025-03-01 1.428571429",
			"2025-03-02 1.428571428", "2025-03-03 1.428571428", "2025-03-04 1.428571428",
		}},
		{"one day", "5.55", day("2025-03-01"), day("2025-03-02"), []string{"2025-03-01 5.55"}},
		{"within one day", "2.00", ts("2025-03-01T10:00:00Z"), ts("2025-03-01T14:00:00Z"), []string{"2025-03-01 2"}},
		{"half days at both ends", "3.00", ts("2025-03-01T12:00:00Z"), ts("2025-03-03T12:00:00Z"), []string{
			"2025-03-01 0.75", "2025-03-02 1.5", "2025-03-03 0.75",
		}},
		// A proration from 18:00 on the 30th: 54 hours, 6 + 24 + 24. Each
		// share is 2.666…/10.666… with equal discarded fractions, so the two
		// units left over go to the two earliest days.
		{"proration line with a partial first day", "24.00", ts("2025-03-30T18:00:00Z"), day("2025-04-02"), []string{
			"2025-03-30 2.666666667", "2025-03-31 10.666666667", "2025-04-01 10.666666666",
		}},
		// A day in New York across the spring-forward change is 23 hours:
		// 05:00Z on the 9th to 04:00Z on the 10th, 19 + 4 hours of UTC days.
		{"a local day across DST", "23.00", time.Date(2025, 3, 9, 0, 0, 0, 0, ny), time.Date(2025, 3, 10, 0, 0, 0, 0, ny), []string{
			"2025-03-09 19", "2025-03-10 4",
		}},
		{"a credit note mirrors the invoice", "-100.00", day("2025-03-01"), day("2025-03-04"), []string{
			"2025-03-01 -33.333333334", "2025-03-02 -33.333333333", "2025-03-03 -33.333333333",
		}},
		{"zero", "0", day("2025-03-01"), day("2025-03-03"), []string{"2025-03-01 0", "2025-03-02 0"}},
		{"fewer units than days", "0.000000002", day("2025-03-01"), day("2025-03-04"), []string{
			"2025-03-01 0.000000001", "2025-03-02 0.000000001", "2025-03-03 0",
		}},
		// The largest discarded fraction gets the unit, not the first day:
		// 1e-9 over 6h + 24h + 18h (=48h) is 0.125, 0.5, 0.375 units.
		{"largest remainder first", "0.000000001", ts("2025-03-01T18:00:00Z"), ts("2025-03-03T18:00:00Z"), []string{
			"2025-03-01 0", "2025-03-02 0.000000001", "2025-03-03 0",
		}},
		{"a yearly plan", "1200.00", day("2025-01-01"), day("2026-01-01"), append(
			repeat("2025-01-01", 320, "3.287671233"), repeat("2025-11-17", 45, "3.287671232")...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Spread(d(tt.amount), tt.start, tt.end)
			require.NoError(t, err)
			assert.Equal(t, tt.want, days(got))
			sum := decimal.Zero
			for _, da := range got {
				sum = sum.Add(da.Amount)
				assert.Equal(t, time.UTC, da.Day.Location())
			}
			assert.Truef(t, sum.Equal(d(tt.amount)), "sum %s, want %s", sum, tt.amount)
		})
	}
}

func TestSpreadErrors(t *testing.T) {
	tests := []struct {
		name       string
		amount     string
		start, end time.Time
		want       string
	}{
		{"empty period", "1", day("2025-03-01"), day("2025-03-01"), "end must be after start"},
		{"reversed period", "1", day("2025-03-02"), day("2025-03-01"), "end must be after start"},
		{"over 100 years", "1", day("1990-01-01"), day("2100-01-01"), "longer than 100 years"},
		{"more than 9 decimals", "0.0000000001", day("2025-03-01"), day("2025-03-02"), "more than 9 decimal places"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Spread(d(tt.amount), tt.start, tt.end)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, errors.Is(err, ErrPeriod))
		})
	}
}

// Properties over random amounts and periods (deterministic seed): the days
// are contiguous, cover the period, sum to the amount exactly, each is within
// one unit of 10^-9 of its exact proportional share, and a negative amount
// is the mirror image of the positive one.
func TestSpreadProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(20251127, 4))
	origin := day("2000-01-01")
	for i := range 1500 {
		// Amounts up to ±10^9 with 0–9 decimals; periods from one second to
		// ~3 years, at any second (or nanosecond) of the day.
		amount := decimal.New(r.Int64N(2e18)-1e18, -int32(r.IntN(10))).Truncate(9)
		if amount.Abs().GreaterThan(d("999999999.999999999")) {
			amount = amount.Shift(-1).Truncate(9)
		}
		start := origin.Add(time.Duration(r.Int64N(40*365*24*3600)) * time.Second)
		if i%3 == 0 {
			start = start.Add(time.Duration(r.Int64N(1e9)))
		}
		var length time.Duration
		switch i % 4 {
		case 0:
			length = time.Duration(1+r.Int64N(48*3600)) * time.Second
		case 1:
			length = time.Duration(1+r.IntN(60)) * 24 * time.Hour
		default:
			length = time.Duration(1+r.Int64N(3*365*24*3600)) * time.Second
		}
		end := start.Add(length)

		got, err := Spread(amount, start, end)
		require.NoError(t, err)
		require.Equal(t, Day(start), got[0].Day)
		require.Equal(t, Day(end.Add(-1)), got[len(got)-1].Day)
		sum := decimal.Zero
		total := big.NewInt(int64(end.Sub(start)))
		units := amount.Shift(9).BigInt()
		for j, da := range got {
			if j > 0 {
				require.Equal(t, got[j-1].Day.AddDate(0, 0, 1), da.Day)
			}
			sum = sum.Add(da.Amount)
			if !da.Amount.IsZero() {
				require.Equal(t, amount.Sign(), da.Amount.Sign())
			}
			// |share − amount × w / total| < 10^-9, in units of 10^-9:
			// |share × total − units × w| < total.
			lo, hi := da.Day, da.Day.AddDate(0, 0, 1)
			if start.After(lo) {
				lo = start
			}
			if end.Before(hi) {
				hi = end
			}
			diff := new(big.Int).Mul(da.Amount.Shift(9).BigInt(), total)
			diff.Sub(diff, new(big.Int).Mul(units, big.NewInt(int64(hi.Sub(lo)))))
			require.Truef(t, diff.Abs(diff).Cmp(total) < 0, "case %d: %s over [%s, %s): day %s got %s", i, amount, start, end, da.Day, da.Amount)
		}
		require.Truef(t, sum.Equal(amount), "case %d: %s over [%s, %s) sums to %s", i, amount, start, end, sum)

		neg, err := Spread(amount.Neg(), start, end)
		require.NoError(t, err)
		for j := range neg {
			require.True(t, neg[j].Amount.Equal(got[j].Amount.Neg()))
		}
	}
}

// Amounts beyond the fast path's 2^62 units spread the same way.
func TestSpreadLargeAmounts(t *testing.T) {
	got, err := Spread(d("100000000000.000000001"), day("2025-03-01"), day("2025-03-04"))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"2025-03-01 33333333333.333333334", "2025-03-02 33333333333.333333334", "2025-03-03 33333333333.333333333",
	}, days(got))

	// The two arithmetic paths agree wherever both apply.
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		n := 1 + r.IntN(40)
		weights := make([]int64, n)
		var total int64
		for i := range weights {
			weights[i] = 1 + r.Int64N(int64(24*time.Hour))
			total += weights[i]
		}
		units := big.NewInt(r.Int64N(1 << 62))
		neg := r.IntN(2) == 0
		fast, slow := apportion(units, weights, total, neg), apportionBig(units, weights, total, neg)
		for i := range fast {
			require.Truef(t, fast[i].Equal(slow[i]), "units %s weights %v: share %d fast %s big %s", units, weights, i, fast[i], slow[i])
		}
	}
}

func BenchmarkSpread(b *testing.B) {
	for _, bc := range []struct {
		name       string
		start, end time.Time
	}{
		{"month", day("2025-03-01"), day("2025-04-01")},
		{"proration", ts("2025-03-20T13:22:05Z"), ts("2025-04-15T13:22:05Z")},
		{"year", day("2025-01-01"), day("2026-01-01")},
	} {
		amount := d("4999.99")
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Spread(amount, bc.start, bc.end); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
