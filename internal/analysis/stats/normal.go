package stats

import "math"

// NormalCDF is Φ(z), the standard normal distribution function. It is
// computed through math.Erfc so that tail probabilities such as Φ(-30) keep
// their relative precision, which the p-values of large samples rely on.
// NormalCDF(-Inf) is 0, NormalCDF(+Inf) is 1 and NaN gives NaN.
func NormalCDF(z float64) float64 {
	return 0.5 * math.Erfc(-z/math.Sqrt2)
}

// normalLogPDF is the logarithm of the standard normal density.
func normalLogPDF(z float64) float64 {
	return -0.5*z*z - 0.5*math.Log(2*math.Pi)
}

// Coefficients of Acklam's rational approximation of the normal quantile
// (P. J. Acklam, "An algorithm for computing the inverse normal cumulative
// distribution function", 2003), relative error below 1.15e-9 before the
// refinement in NormalQuantile.
var (
	acklamA = [6]float64{-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}
	acklamB = [5]float64{-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01}
	acklamC = [6]float64{-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00}
	acklamD = [4]float64{7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00}
)

// NormalQuantile is Φ⁻¹(p), the standard normal quantile, used for the
// critical values of every interval in this package. It starts from
// Acklam's rational approximation and refines it with Newton steps on
// NormalCDF, which brings it to within a few units in the last place of
// scipy.stats.norm.ppf for 1e-300 ≤ p ≤ 1-1e-16.
//
// NormalQuantile(p) is -Inf for p ≤ 0, +Inf for p ≥ 1 and NaN for NaN. For
// p below 1e-300 the refinement would divide by a density that underflows,
// so the unrefined approximation is returned there.
func NormalQuantile(p float64) float64 {
	switch {
	case math.IsNaN(p):
		return math.NaN()
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return math.Inf(1)
	case p == 0.5:
		return 0
	case p > 0.5:
		// 1-p is exact for p in [0.5, 1], and the lower tail is where
		// NormalCDF keeps its relative precision.
		return -NormalQuantile(1 - p)
	}
	x := acklam(p)
	if p < 1e-300 {
		return x
	}
	// Newton's step is (Φ(x)-p)/φ(x). Near the centre Φ(x)-p is formed as
	// ½erf(x/√2) - (p-½), with p-½ exact, so that the small x there keeps
	// its relative precision.
	central := p > 0.25
	for range 4 {
		var miss float64
		if central {
			miss = 0.5*math.Erf(x/math.Sqrt2) - (p - 0.5)
		} else {
			miss = NormalCDF(x) - p
		}
		step := miss / math.Exp(normalLogPDF(x))
		x -= step
		if math.Abs(step) <= 1e-16*math.Abs(x) {
			break
		}
	}
	return x
}

// acklam is the rational approximation of Φ⁻¹(p) for 0 < p < 0.5.
func acklam(p float64) float64 {
	const pLow = 0.02425
	a, b, c, d := acklamA, acklamB, acklamC, acklamD
	if p < pLow {
		q := math.Sqrt(-2 * math.Log(p))
		return (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) /
			((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	}
	q := p - 0.5
	r := q * q
	return (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r + a[5]) * q /
		(((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r + 1)
}

// twoSidedCritical is the normal critical value z with P(|Z| > z) = alpha.
// Callers pass alpha, not 1-alpha, because 1-confidence is exact for
// confidence in [0.5, 1] while ½+confidence/2 would round digits away.
func twoSidedCritical(alpha float64) float64 {
	return -NormalQuantile(alpha / 2)
}

// validProbability reports whether p lies strictly between 0 and 1.
func validProbability(p float64) bool {
	return p > 0 && p < 1
}
