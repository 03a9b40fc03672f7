package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Alternatives of MannWhitneyU, named as SciPy names them.
const (
	TwoSided = "two-sided"
	Greater  = "greater"
	Less     = "less"
)

// ErrNoSamples is returned when a comparison is asked of an empty sample:
// without observations there is nothing to compare, and the caller's
// verdict must be "inconclusive", never a pass.
var ErrNoSamples = errors.New("stats: empty sample")

// MannWhitneyResult is the outcome of a Mann-Whitney U test.
type MannWhitneyResult struct {
	// U is U₁, the statistic of the first sample: the number of pairs in
	// which x exceeds y, ties counting half. It is reported for every
	// alternative, as scipy.stats.mannwhitneyu does.
	U float64 `json:"u"`
	// Z is the standardised statistic the p-value comes from, with tie and
	// continuity corrections: (U' - n₁n₂/2 - ½)/σ, where U' is U₁ for
	// "greater", U₂ = n₁n₂ - U₁ for "less" and max(U₁, U₂) for
	// "two-sided". It is 0 when every value is tied.
	Z float64 `json:"z"`
	// PValue is the asymptotic p-value, 1 when every value is tied.
	PValue float64 `json:"p_value"`
	// N1 and N2 are the sizes of x and y.
	N1 int `json:"n1"`
	N2 int `json:"n2"`
}

// MannWhitneyU tests whether x tends to be larger ("greater"), smaller
// ("less") or either ("two-sided") than y, without assuming a shape for
// either distribution. Flightdeck compares the candidate's latency windows
// with the baseline's this way, as Kayenta does, because latency is skewed
// and a mean or a t-test would be driven by a few slow requests.
//
// It uses the normal approximation with tie and continuity corrections,
// matching scipy.stats.mannwhitneyu(x, y, alternative=...,
// method="asymptotic"): σ² = n₁n₂/12 · ((n+1) - Σ(t³-t)/(n(n-1))) over the
// sizes t of groups of tied values (Mann and Whitney 1947; the tie
// correction as in Lehmann, "Nonparametrics", 1975). It returns ErrNoSamples
// when x or y is empty and an error for NaN values or an unknown
// alternative; infinities are ranked like any other value.
func MannWhitneyU(x, y []float64, alternative string) (MannWhitneyResult, error) {
	if len(x) == 0 || len(y) == 0 {
		return MannWhitneyResult{}, ErrNoSamples
	}
	switch alternative {
	case TwoSided, Greater, Less:
	default:
		return MannWhitneyResult{}, fmt.Errorf("stats: unknown alternative %q", alternative)
	}
	if slices.ContainsFunc(x, math.IsNaN) || slices.ContainsFunc(y, math.IsNaN) {
		return MannWhitneyResult{}, errors.New("stats: sample contains NaN")
	}

	n1, n2 := len(x), len(y)
	type value struct {
		v     float64
		first bool
	}
	all := make([]value, 0, n1+n2)
	for _, v := range x {
		all = append(all, value{v, true})
	}
	for _, v := range y {
		all = append(all, value{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })

	// Average ranks over groups of ties, and Σ(t³-t) for the variance.
	var rankSum1, tieTerm float64
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1 … j
		for _, a := range all[i:j] {
			if a.first {
				rankSum1 += rank
			}
		}
		t := float64(j - i)
		tieTerm += t*t*t - t
		i = j
	}

	fn1, fn2, n := float64(n1), float64(n2), float64(n1+n2)
	u1 := rankSum1 - fn1*(fn1+1)/2
	u2 := fn1*fn2 - u1
	r := MannWhitneyResult{U: u1, PValue: 1, N1: n1, N2: n2}

	u, factor := u1, 1.0
	switch alternative {
	case Less:
		u = u2
	case TwoSided:
		u, factor = max(u1, u2), 2
	}
	variance := fn1 * fn2 / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if !(variance > 0) {
		// Every value is tied (or a single observation each): the samples
		// cannot be told apart.
		return r, nil
	}
	r.Z = (u - fn1*fn2/2 - 0.5) / math.Sqrt(variance)
	r.PValue = min(1, factor*NormalCDF(-r.Z))
	return r, nil
}

// Quantile is the q-quantile of values with linear interpolation between
// order statistics (Hyndman and Fan's definition 7, numpy.quantile's
// default), so that a p99 computed here matches the one the metrics
// pipeline and its dashboards show. It returns ErrNoSamples for an empty
// slice and an error for q outside [0, 1] or for NaN or infinite values,
// between which no interpolation is meaningful. values is not modified.
func Quantile(values []float64, q float64) (float64, error) {
	if len(values) == 0 {
		return 0, ErrNoSamples
	}
	if !(q >= 0 && q <= 1) {
		return 0, fmt.Errorf("stats: quantile %v outside [0, 1]", q)
	}
	if slices.ContainsFunc(values, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }) {
		return 0, errors.New("stats: sample contains NaN or infinity")
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	h := float64(len(sorted)-1) * q
	lo := math.Floor(h)
	i := int(lo)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1], nil
	}
	a, b, frac := sorted[i], sorted[i+1], h-lo
	switch {
	case frac == 0 || a == b:
		return a, nil
	case frac >= 0.5:
		// Interpolating from the nearer end keeps the result exact at
		// both order statistics, as numpy does.
		return b - (b-a)*(1-frac), nil
	}
	return a + (b-a)*frac, nil
}

// LatencyComparison compares the candidate's latency with the baseline's
// the two ways Flightdeck's rollback rule looks at it: the ratio of a high
// quantile (p99 against the 1.5× threshold by default) and the Mann-Whitney
// test of whether the candidate's values tend to be larger.
type LatencyComparison struct {
	// Q is the quantile compared, e.g. 0.99.
	Q float64 `json:"q"`
	// BaselineQuantile and CandidateQuantile are the Q-quantiles of the
	// two samples.
	BaselineQuantile  float64 `json:"baseline_quantile"`
	CandidateQuantile float64 `json:"candidate_quantile"`
	// Ratio is CandidateQuantile / BaselineQuantile. It is 1 when both are
	// 0, and math.MaxFloat64 when only the baseline's is 0 or less.
	Ratio float64 `json:"ratio"`
	// Test is the one-sided Mann-Whitney test of candidate > baseline.
	Test MannWhitneyResult `json:"test"`
}

// CompareLatency compares candidate latencies with baseline latencies,
// individual request latencies or per-window values alike. It returns
// ErrNoSamples when either is empty, and the errors of Quantile for a bad q
// or NaN or infinite values.
func CompareLatency(baseline, candidate []float64, q float64) (LatencyComparison, error) {
	base, err := Quantile(baseline, q)
	if err != nil {
		return LatencyComparison{}, fmt.Errorf("baseline quantile: %w", err)
	}
	cand, err := Quantile(candidate, q)
	if err != nil {
		return LatencyComparison{}, fmt.Errorf("candidate quantile: %w", err)
	}
	test, err := MannWhitneyU(candidate, baseline, Greater)
	if err != nil {
		return LatencyComparison{}, fmt.Errorf("mann-whitney: %w", err)
	}
	c := LatencyComparison{Q: q, BaselineQuantile: base, CandidateQuantile: cand, Test: test}
	switch {
	case base > 0:
		c.Ratio = min(cand/base, math.MaxFloat64)
	case cand == base:
		c.Ratio = 1
	default:
		c.Ratio = math.MaxFloat64
	}
	return c, nil
}
