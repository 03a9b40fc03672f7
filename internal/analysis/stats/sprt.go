package stats

import "math"

// SPRT is Wald's sequential probability ratio test of a single Bernoulli
// rate, H0: p = P0 against H1: p = P1 (A. Wald, "Sequential Analysis",
// 1947). Flightdeck uses it to size bakes: its average sample numbers say how
// many requests a sequential verdict needs, e.g. about 110 to tell a 5% error
// rate from 1% and about 780 to tell it from 3%, at 1% error probabilities.
//
// The boundaries are Wald's approximations A = log((1-Beta)/Alpha) and
// B = log(Beta/(1-Alpha)); they ignore the overshoot of the last step, which
// makes the realised error probabilities slightly smaller than Alpha and
// Beta and the realised sample sizes slightly larger than ASN.
type SPRT struct {
	// P0 and P1 are the rates of the two hypotheses; they must differ and
	// lie strictly between 0 and 1.
	P0, P1 float64
	// Alpha is the probability of accepting H1 when H0 holds, Beta that of
	// accepting H0 when H1 holds; both strictly between 0 and 1.
	Alpha, Beta float64
}

// valid reports whether the parameters define a test.
func (s SPRT) valid() bool {
	return validProbability(s.P0) && validProbability(s.P1) && s.P0 != s.P1 &&
		validProbability(s.Alpha) && validProbability(s.Beta)
}

// Bounds are the log-likelihood-ratio boundaries: the test accepts H0 at or
// below lower and H1 at or above upper. Invalid parameters give 0, 0.
func (s SPRT) Bounds() (lower, upper float64) {
	if !s.valid() {
		return 0, 0
	}
	return math.Log(s.Beta / (1 - s.Alpha)), math.Log((1 - s.Beta) / s.Alpha)
}

// ASN returns Wald's average sample numbers under H0 and under H1:
// E₀[N] = ((1-α)B + αA) / E₀[z] and E₁[N] = (βB + (1-β)A) / E₁[z], where
// z = x·log(P1/P0) + (1-x)·log((1-P1)/(1-P0)) is one observation's log
// likelihood ratio and E₀[z] = -KL(P0‖P1), E₁[z] = KL(P1‖P0). Invalid
// parameters give math.MaxFloat64 for both: such a test never decides.
func (s SPRT) ASN() (underH0, underH1 float64) {
	if !s.valid() {
		return math.MaxFloat64, math.MaxFloat64
	}
	lower, upper := s.Bounds()
	logUp := math.Log(s.P1 / s.P0)
	logDown := math.Log1p(-s.P1) - math.Log1p(-s.P0)
	drift0 := s.P0*logUp + (1-s.P0)*logDown
	drift1 := s.P1*logUp + (1-s.P1)*logDown
	underH0 = ((1-s.Alpha)*lower + s.Alpha*upper) / drift0
	underH1 = (s.Beta*lower + (1-s.Beta)*upper) / drift1
	return underH0, underH1
}

// LogLikelihoodRatio is log(L(P1)/L(P0)) after errors failures in n
// observations: errors·log(P1/P0) + (n-errors)·log((1-P1)/(1-P0)). Counts
// are clamped into range; invalid parameters give 0.
func (s SPRT) LogLikelihoodRatio(errors, n int64) float64 {
	if !s.valid() {
		return 0
	}
	errors, n = clampCounts(errors, n)
	return float64(errors)*math.Log(s.P1/s.P0) +
		float64(n-errors)*(math.Log1p(-s.P1)-math.Log1p(-s.P0))
}

// Decide is the test's verdict after errors failures in n observations: -1
// accepts H0, +1 accepts H1 and 0 asks for more observations. Invalid
// parameters always give 0.
func (s SPRT) Decide(errors, n int64) int {
	if !s.valid() {
		return 0
	}
	llr := s.LogLikelihoodRatio(errors, n)
	lower, upper := s.Bounds()
	switch {
	case llr >= upper:
		return 1
	case llr <= lower:
		return -1
	}
	return 0
}
