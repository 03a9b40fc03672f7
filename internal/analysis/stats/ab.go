package stats

import "math"

// Defaults of ABTest and SampleSizePerArm, the conventional fixed-horizon
// A/B settings.
const (
	DefaultABSignificance = 0.05
	DefaultABPower        = 0.8
)

// ABResult compares the conversion of arm A (control) and arm B (variant).
type ABResult struct {
	// RateA and RateB are the observed conversion rates, 0 for an arm
	// without users.
	RateA float64 `json:"rate_a"`
	RateB float64 `json:"rate_b"`
	// Lift is RateB - RateA; RelativeLift is Lift/RateA (see ABTest for an
	// arm without conversions).
	Lift         float64 `json:"lift"`
	RelativeLift float64 `json:"relative_lift"`
	// Z and PValue are the pooled two-proportion z-test of RateA = RateB,
	// two-sided.
	Z      float64 `json:"z"`
	PValue float64 `json:"p_value"`
	// LiftLow and LiftHigh are the Agresti-Caffo interval of the lift at
	// confidence 1-significance, clipped to [-1, 1].
	LiftLow  float64 `json:"lift_low"`
	LiftHigh float64 `json:"lift_high"`
	// RelativeLiftLow and RelativeLiftHigh are the Katz log interval of the
	// relative lift, at least -1; an unbounded end is math.MaxFloat64.
	RelativeLiftLow  float64 `json:"relative_lift_low"`
	RelativeLiftHigh float64 `json:"relative_lift_high"`
	// RequiredPerArm is SampleSizePerArm for RateA and the configured
	// minimum detectable effect; NeededPerArm is how many more users the
	// smaller arm still needs to reach it, 0 once it has.
	RequiredPerArm int64 `json:"required_per_arm"`
	NeededPerArm   int64 `json:"needed_per_arm"`
	// Significant is PValue ≤ significance.
	Significant bool `json:"significant"`
}

// ABTest compares conversions convA of nA users with convB of nB users, the
// way an A/B experiment in Flightdeck is read: conversion per arm, the
// pooled two-proportion z-test, intervals of the absolute and relative lift,
// and the sample size still needed for the minimum detectable effect mde
// (an absolute difference of rates, 0.01 for one percentage point).
//
// This is a fixed-horizon test: its p-value is valid when read once, after
// NeededPerArm has reached 0. An experiment that is checked every window
// and stopped as soon as it looks significant should use ProportionTest,
// whose p-value stays valid under continuous monitoring.
//
// significance is the two-sided false-positive rate (0 or a value outside
// (0, 1) means DefaultABSignificance) and power the chance of detecting an
// effect of size mde (likewise DefaultABPower). Counts are clamped into
// range. Without users in an arm, or when the pooled rate is 0 or 1, Z is 0
// and PValue 1. The absolute interval is the Agresti-Caffo interval (one
// conversion and one non-conversion added to each arm; Agresti and Caffo,
// The American Statistician 54, 2000), which keeps a sensible width when an
// arm has no conversions, where the plain Wald interval collapses to a
// point. The relative interval is Katz's log interval,
// exp(log(RateB/RateA) ± z·√(1/convB - 1/nB + 1/convA - 1/nA)) - 1 (Katz et
// al., Biometrics 34, 1978); when either arm has no conversions, 0.5 is
// added to each arm's conversions and non-conversions (Haldane's
// correction) for both RelativeLift and its interval, so they stay finite.
// Without users in an arm, RelativeLift is 0 and its interval [-1,
// math.MaxFloat64].
func ABTest(convA, nA, convB, nB int64, significance, mde, power float64) ABResult {
	if !validProbability(significance) {
		significance = DefaultABSignificance
	}
	convA, nA = clampCounts(convA, nA)
	convB, nB = clampCounts(convB, nB)
	r := ABResult{
		RateA:            rate(convA, nA),
		RateB:            rate(convB, nB),
		PValue:           1,
		LiftLow:          -1,
		LiftHigh:         1,
		RelativeLiftLow:  -1,
		RelativeLiftHigh: math.MaxFloat64,
	}
	r.Lift = r.RateB - r.RateA
	r.RequiredPerArm = SampleSizePerArm(r.RateA, mde, significance, power)
	r.NeededPerArm = max(0, r.RequiredPerArm-min(nA, nB))
	if nA == 0 || nB == 0 {
		return r
	}

	fa, fb := float64(nA), float64(nB)
	pooled := (float64(convA) + float64(convB)) / (fa + fb)
	if se := math.Sqrt(pooled * (1 - pooled) * (1/fa + 1/fb)); se > 0 {
		r.Z = r.Lift / se
		r.PValue = min(1, 2*NormalCDF(-math.Abs(r.Z)))
	}
	r.Significant = r.PValue <= significance

	z := twoSidedCritical(significance)
	ta, tb := fa+2, fb+2
	pa, pb := (float64(convA)+1)/ta, (float64(convB)+1)/tb
	half := z * math.Sqrt(pa*(1-pa)/ta+pb*(1-pb)/tb)
	r.LiftLow = max(-1, pb-pa-half)
	r.LiftHigh = min(1, pb-pa+half)

	xa, xb, ka, kb := float64(convA), float64(convB), fa, fb
	if convA == 0 || convB == 0 {
		xa, xb, ka, kb = xa+0.5, xb+0.5, ka+1, kb+1
	}
	logRatio := math.Log((xb / kb) / (xa / ka))
	r.RelativeLift = math.Expm1(logRatio)
	if convA > 0 && convB > 0 {
		// Equal to Lift/RateA, but without the rounding of the ratio.
		r.RelativeLift = r.Lift / r.RateA
	}
	spread := z * math.Sqrt(1/xb-1/kb+1/xa-1/ka)
	r.RelativeLiftLow = math.Expm1(logRatio - spread)
	r.RelativeLiftHigh = min(math.Expm1(logRatio+spread), math.MaxFloat64)
	return r
}

// SampleSizePerArm is how many users each arm of an A/B experiment needs to
// detect an absolute difference of mde from baseRate with a two-sided test
// at the given significance and power:
//
//	n = ⌈(z₁₋α/₂·√(2p̄(1-p̄)) + z_power·√(p₁(1-p₁) + p₂(1-p₂)))² / mde²⌉
//
// with p₁ = baseRate, p₂ = p₁ + mde (or p₁ - mde when that would exceed 1)
// and p̄ their mean, the normal-approximation formula for comparing two
// proportions (Fleiss, Levin and Paik, "Statistical Methods for Rates and
// Proportions", 3rd ed., 2003, chapter 4, without the continuity
// correction).
//
// baseRate is clamped to [0, 1]; significance and power outside (0, 1) mean
// DefaultABSignificance and DefaultABPower. It returns 0 when mde is not a
// possible effect (not positive, NaN, or larger than the room on either
// side of baseRate), meaning there is no sample size to wait for, and
// math.MaxInt64 when the size does not fit in an int64.
func SampleSizePerArm(baseRate, mde, significance, power float64) int64 {
	if !validProbability(significance) {
		significance = DefaultABSignificance
	}
	if !validProbability(power) {
		power = DefaultABPower
	}
	if !(mde > 0) || math.IsNaN(baseRate) {
		return 0
	}
	p1 := min(1, max(0, baseRate))
	p2 := p1 + mde
	if p2 > 1 {
		p2 = p1 - mde
	}
	if p2 < 0 {
		return 0
	}
	mean := (p1 + p2) / 2
	zAlpha := twoSidedCritical(significance)
	zPower := NormalQuantile(power)
	// A power below one half makes z_power negative; the root is then kept
	// at 0 or above, since no sample is needed for a coin flip's chance.
	root := max(0, zAlpha*math.Sqrt(2*mean*(1-mean))+zPower*math.Sqrt(p1*(1-p1)+p2*(1-p2)))
	n := math.Ceil(root * root / (mde * mde))
	if !(n < math.MaxInt64) {
		return math.MaxInt64
	}
	return max(int64(n), 0)
}
