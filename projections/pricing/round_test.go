package pricing

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestDivRound(t *testing.T) {
	tests := []struct {
		a, b   string
		places int32
		want   string
	}{
		{"1", "3", 9, "0.333333333"},
		{"2", "3", 9, "0.666666667"},
		{"-2", "3", 9, "-0.666666667"},
		{"2", "-3", 9, "-0.666666667"},
		{"6", "3", 9, "2"},
		{"0.0000000005", "1", 9, "0"},             // tie, 0 is even
		{"0.0000000015", "1", 9, "0.000000002"},   // tie, up to even
		{"0.0000000025", "1", 9, "0.000000002"},   // tie, down to even
		{"-0.0000000015", "1", 9, "-0.000000002"}, // ties are symmetric
		{"0.00000000051", "1", 9, "0.000000001"},  // above the tie
		{"1", "7", 2, "0.14"},
		{"100", "149.7", 9, "0.668002672"},
	}
	for _, tt := range tests {
		got := divRound(d(tt.a), d(tt.b), tt.places)
		assert.Truef(t, got.Equal(d(tt.want)), "%s/%s to %d places = %s, want %s", tt.a, tt.b, tt.places, got, tt.want)
	}
}

// The result is always within half a unit of the last place of the exact
// quotient: |a - q·b| <= |b|·ulp/2.
func TestDivRoundIsCorrectlyRounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	half := decimal.New(5, -10)
	for range 5000 {
		a := decimal.New(r.Int64N(2e12)-1e12, -int32(r.IntN(10)))
		b := decimal.New(r.Int64N(2e9)-1e9, -int32(r.IntN(10)))
		if b.IsZero() {
			continue
		}
		q := divRound(a, b, 9)
		assert.True(t, q.Equal(q.Truncate(9)))
		err := a.Sub(q.Mul(b)).Abs()
		assert.Truef(t, err.LessThanOrEqual(b.Abs().Mul(half)), "%s/%s rounded to %s", a, b, q)
	}
}

func TestDay(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		at   time.Time
		want string
	}{
		{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), "2025-03-01"},
		{time.Date(2025, 3, 1, 23, 59, 59, 999999999, time.UTC), "2025-03-01"},
		{time.Date(2025, 3, 1, 21, 0, 0, 0, ny), "2025-03-02"}, // 02:00 UTC next day
	}
	for _, tt := range tests {
		got := Day(tt.at)
		assert.Equal(t, tt.want, got.Format(dateLayout))
		assert.Equal(t, time.UTC, got.Location())
		assert.Zero(t, got.Hour())
	}
}
