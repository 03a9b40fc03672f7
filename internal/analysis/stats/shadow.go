package stats

import "math"

// DefaultConfidence is the confidence of Wilson and WelchInterval when the
// caller passes none.
const DefaultConfidence = 0.95

// Wilson is the Wilson score interval of a proportion (E. B. Wilson, JASA
// 22, 1927):
//
//	(p̂ + z²/2n ± z·√(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n)
//
// Flightdeck shows it for the share of shadow responses that differ from
// the primary's. Unlike the Wald interval it stays inside [0, 1] and keeps a
// positive width when no response, or every response, differed, which is
// the common case for shadow traffic.
//
// Counts are clamped into range; without observations the interval is
// [0, 1]. confidence outside (0, 1) means DefaultConfidence.
func Wilson(successes, n int64, confidence float64) (low, high float64) {
	successes, n = clampCounts(successes, n)
	if n == 0 {
		return 0, 1
	}
	if !validProbability(confidence) {
		confidence = DefaultConfidence
	}
	z := twoSidedCritical(1 - confidence)
	fn := float64(n)
	p := float64(successes) / fn
	z2n := z * z / fn
	center := (p + z2n/2) / (1 + z2n)
	half := z / (1 + z2n) * math.Sqrt(p*(1-p)/fn+z2n/(4*fn))
	low, high = max(0, center-half), min(1, center+half)
	// The bounds are exact at the edges: no success can make the share 0
	// only, and all successes 1 only.
	if successes == 0 {
		low = 0
	}
	if successes == n {
		high = 1
	}
	return low, high
}

// WelchInterval is the confidence interval of meanB - meanA from two
// samples' means, variances (unbiased, n-1 in the denominator) and sizes,
// without assuming equal variances (B. L. Welch, Biometrika 34, 1947):
//
//	diff ± t_{1-α/2, ν}·√(varA/nA + varB/nB)
//
// with the Welch-Satterthwaite degrees of freedom
// ν = (varA/nA + varB/nB)² / ((varA/nA)²/(nA-1) + (varB/nB)²/(nB-1)).
// Flightdeck shows it for the latency difference between shadow (B) and
// primary (A), whose variances differ as a rule.
//
// diff is meanB - meanA, or 0 when an arm has no observations. Without two
// observations in each arm a variance is unknown and the interval is
// unbounded, [-math.MaxFloat64, math.MaxFloat64]. When both variances are 0
// the interval is the single point diff. Negative variances count as 0;
// confidence outside (0, 1) means DefaultConfidence.
func WelchInterval(meanA, varA float64, nA int64, meanB, varB float64, nB int64, confidence float64) (diff, low, high float64) {
	if nA <= 0 || nB <= 0 {
		return 0, -math.MaxFloat64, math.MaxFloat64
	}
	diff = meanB - meanA
	if nA < 2 || nB < 2 {
		return diff, -math.MaxFloat64, math.MaxFloat64
	}
	if !validProbability(confidence) {
		confidence = DefaultConfidence
	}
	a := max(0, varA) / float64(nA)
	b := max(0, varB) / float64(nB)
	se2 := a + b
	if se2 == 0 {
		return diff, diff, diff
	}
	df := se2 * se2 / (a*a/float64(nA-1) + b*b/float64(nB-1))
	half := -StudentTQuantile((1-confidence)/2, df) * math.Sqrt(se2)
	return diff, diff - half, diff + half
}
