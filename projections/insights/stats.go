package insights

import (
	"math"
	"slices"

	"github.com/shopspring/decimal"
)

// The usage-anomaly statistics run on float64 quantities (usage counts,
// never money): a float64 holds any realistic daily quantity to 15
// significant digits, and the result only decides whether a day is far from
// its median. Evidence keeps the day's exact decimal quantity.

// madScale is 0.6745, the 0.75 quantile of the standard normal: for normal
// data MAD/0.6745 estimates the standard deviation, so the robust z-score
// 0.6745·(x − median)/MAD reads like an ordinary z-score (Iglewicz and
// Hoaglin, 1993).
const madScale = 0.6745

// meanADScale replaces it when MAD is 0 (more than half the baseline equals
// the median): (x − median)/(1.253314·MeanAD), since for normal data the mean
// absolute deviation times √(π/2) ≈ 1.253314 estimates the standard deviation.
const meanADScale = 1.253314

// median of xs (not modified); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// robustZ scores x against the baseline values: the robust z-score on median
// and MAD, or on the mean absolute deviation when MAD is 0. When every value
// equals the median (no spread at all), any other x is infinitely far:
// ±Inf, and 0 for x equal to it. It also returns the median and the MAD.
func robustZ(x float64, baseline []float64) (z, med, mad float64) {
	med = median(baseline)
	dev := make([]float64, len(baseline))
	var sumAD float64
	for i, b := range baseline {
		dev[i] = math.Abs(b - med)
		sumAD += dev[i]
	}
	mad = median(dev)
	switch {
	case x == med:
		return 0, med, mad
	case mad > 0:
		return madScale * (x - med) / mad, med, mad
	case sumAD > 0:
		return (x - med) / (meanADScale * sumAD / float64(len(baseline))), med, mad
	case x > med:
		return math.Inf(1), med, mad
	default:
		return math.Inf(-1), med, mad
	}
}

// floatDecimal writes a statistic as a decimal for evidence, rounded to
// 4 decimals ("inf" never reaches it: callers omit infinite scores).
func floatDecimal(x float64) decimal.Decimal {
	return decimal.NewFromFloat(x).Round(4)
}
