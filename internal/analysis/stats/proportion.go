package stats

import "math"

// Defaults of ProportionTest, chosen for error rates: 99% confidence so that
// a healthy candidate is rolled back in at most 1% of runs however often the
// verdict is re-evaluated, and a mixing spread of 2 percentage points, the
// size of regression the default threshold looks for.
const (
	DefaultProportionAlpha = 0.01
	DefaultProportionTau   = 0.02
)

// ProportionTest is the always-valid two-sample test Flightdeck uses for
// error rates. It is a mixture sequential probability ratio test (mSPRT,
// Johari, Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017, and
// Johari, Pekelis and Walsh, "Always valid inference", 2015): the likelihood
// ratio of the observed difference of error rates, averaged over a normal
// mixing distribution of alternatives centred on the null. In the normal
// model of the difference the ratio is a nonnegative martingale under the
// null, so by Ville's inequality it ever exceeds 1/Alpha with probability at
// most Alpha. The analysis loop can therefore re-evaluate the verdict after
// every window without inflating false rollbacks, which a fixed-sample
// z-test checked every window would. With binomial counts and estimated
// variances the bound holds approximately; TestProportionTestAlwaysValid
// measures it by simulation.
//
// Inputs are cumulative counts since the candidate started receiving
// traffic. The difference of proportions is treated with its normal
// approximation, θ̂ = p̂c - p̂b with variance V estimated per arm as
// p̃(1-p̃)/(n+2) where p̃ = (x+1)/(n+2) (the Agresti-Caffo adjustment). The
// adjustment keeps V positive when an arm has seen no errors, and keeps a
// handful of requests from looking like overwhelming evidence: one failed
// request out of one is not a reason to roll back. With the plain estimate
// p̂(1-p̂)/n, simulated healthy canaries taking 5% of traffic at a 5% error
// rate were rolled back in 2.2% of runs at Alpha 1%, most on their first
// failed request; with the adjustment, in 0.05%.
//
// With θ₀ = Margin and mixing variance τ², the mixture likelihood ratio is
//
//	Λ = √(V/(V+τ²)) · exp(τ²(θ̂-θ₀)² / (2V(V+τ²)))
//
// and the always-valid p-value is min(1, 1/Λ). Inverting Λ < 1/Alpha in θ₀
// gives the confidence sequence θ̂ ± √((2V(V+τ²)/τ²)·log(√((V+τ²)/V)/Alpha)).
//
// The mixture is symmetric, so the test is two-sided; a metric is reported
// significant only when the candidate is the worse one, which keeps the
// one-sided error at most Alpha as well. Flightdeck's default rule for a
// degraded error rate is Margin 0 (the candidate is worse with the
// configured confidence) together with Difference above the threshold; the
// stricter rule, "worse by more than the threshold with confidence", sets
// Margin to the threshold.
type ProportionTest struct {
	// Alpha is 1 - confidence, the chance of ever declaring a healthy
	// candidate worse. Zero or a value outside (0, 1) means
	// DefaultProportionAlpha.
	Alpha float64
	// Tau is the standard deviation of the normal mixing distribution of
	// the difference: the size of regression the test is most sensitive
	// to. Zero, a negative value or infinity means DefaultProportionTau;
	// values above 1 count as 1.
	Tau float64
	// Margin shifts the null hypothesis: 0 tests "the candidate's error rate
	// is higher than the baseline's", 0.02 tests "higher by more than two
	// percentage points". It is clamped to [-1, 1]; NaN counts as 0.
	Margin float64
}

// ProportionResult is one evaluation of a ProportionTest, with every number
// the decision record shows.
type ProportionResult struct {
	// BaselineRate and CandidateRate are the observed error rates, 0 for an
	// arm without requests.
	BaselineRate  float64 `json:"baseline_rate"`
	CandidateRate float64 `json:"candidate_rate"`
	// Difference is CandidateRate - BaselineRate.
	Difference float64 `json:"difference"`
	// BaselineN and CandidateN are the request counts the result rests on.
	BaselineN  int64 `json:"baseline_n"`
	CandidateN int64 `json:"candidate_n"`
	// EValue is Λ, the mixture likelihood ratio against the null θ = Margin.
	// It is capped at math.MaxFloat64 so that it always encodes as JSON;
	// LogEValue carries the uncapped evidence.
	EValue    float64 `json:"e_value"`
	LogEValue float64 `json:"log_e_value"`
	// PValue is the always-valid p-value min(1, 1/Λ) of this look. Carry
	// the smallest value seen so far with RunningPValue.
	PValue float64 `json:"p_value"`
	// LowerBound and UpperBound are the always-valid confidence sequence
	// for the difference at level 1-Alpha, clipped to [-1, 1].
	LowerBound float64 `json:"lower_bound"`
	UpperBound float64 `json:"upper_bound"`
	// Significant is PValue ≤ Alpha and Difference > Margin: the candidate
	// is worse than the null allows, with the configured confidence.
	Significant bool `json:"significant"`
}

// Evaluate tests the cumulative counts of both arms. Counts are clamped into
// range (negative counts to 0, errors to at most the requests) because
// metric sources scrape errors and requests at slightly different moments.
// With no requests in either arm there is no evidence: EValue is 1, PValue
// is 1 and the bounds are [-1, 1].
func (t ProportionTest) Evaluate(baseErrors, baseN, candErrors, candN int64) ProportionResult {
	alpha := t.Alpha
	if !validProbability(alpha) {
		alpha = DefaultProportionAlpha
	}
	tau := t.Tau
	if !(tau > 0) || math.IsInf(tau, 1) {
		tau = DefaultProportionTau
	}
	// A difference of rates lies in [-1, 1]; wider mixtures or margins mean
	// nothing more and would only overflow.
	tau = min(tau, 1)
	margin := t.Margin
	if math.IsNaN(margin) {
		margin = 0
	}
	margin = min(1, max(-1, margin))
	baseErrors, baseN = clampCounts(baseErrors, baseN)
	candErrors, candN = clampCounts(candErrors, candN)

	r := ProportionResult{
		BaselineRate:  rate(baseErrors, baseN),
		CandidateRate: rate(candErrors, candN),
		BaselineN:     baseN,
		CandidateN:    candN,
		EValue:        1,
		PValue:        1,
		LowerBound:    -1,
		UpperBound:    1,
	}
	r.Difference = r.CandidateRate - r.BaselineRate
	if baseN == 0 || candN == 0 {
		return r
	}

	v := adjustedVariance(baseErrors, baseN) + adjustedVariance(candErrors, candN)
	tau2 := tau * tau
	shift := r.Difference - margin
	r.LogEValue = 0.5*math.Log(v/(v+tau2)) + tau2*shift*shift/(2*v*(v+tau2))
	r.EValue = math.Min(math.Exp(r.LogEValue), math.MaxFloat64)
	r.PValue = math.Min(1, math.Exp(-r.LogEValue))

	half := math.Sqrt(2 * v * (v + tau2) / tau2 * (0.5*math.Log((v+tau2)/v) - math.Log(alpha)))
	r.LowerBound = max(-1, r.Difference-half)
	r.UpperBound = min(1, r.Difference+half)
	r.Significant = r.PValue <= alpha && r.Difference > margin
	return r
}

// RunningPValue is the smaller of the previous always-valid p-value and the
// current one. An always-valid p-value may be read at any time, so the
// smallest value seen so far is itself valid; carrying it keeps a verdict
// that was reached once from being undone by the next window's noise. Pass
// 1 as prev on the first look. A NaN argument counts as 1 (no evidence), and
// the result is clamped to [0, 1].
func RunningPValue(prev, current float64) float64 {
	if math.IsNaN(prev) {
		prev = 1
	}
	if math.IsNaN(current) {
		current = 1
	}
	return min(1, max(0, min(prev, current)))
}

// adjustedVariance is the Agresti-Caffo variance p̃(1-p̃)/(n+2) of an
// observed proportion, with p̃ = (x+1)/(n+2).
func adjustedVariance(x, n int64) float64 {
	nt := float64(n) + 2
	p := (float64(x) + 1) / nt
	return p * (1 - p) / nt
}

// clampCounts returns x and n clamped so that 0 ≤ x ≤ n.
func clampCounts(x, n int64) (int64, int64) {
	n = max(n, 0)
	return min(max(x, 0), n), n
}

// rate is x/n, or 0 without observations.
func rate(x, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(x) / float64(n)
}
