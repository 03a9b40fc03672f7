package stats

import "math"

// StudentTCDF is the distribution function of Student's t with df degrees of
// freedom (df may be fractional, as Welch's approximation produces). It is
// computed from the regularized incomplete beta function,
// P(T ≤ t) = ½·I_{df/(df+t²)}(df/2, ½) for t ≤ 0, so the lower tail keeps its
// relative precision. From df = 3e4 on it inverts the Cornish-Fisher
// expansion instead, where that is the more accurate (see largeDF). df = +Inf gives NormalCDF; df ≤ 0 or a
// NaN argument gives NaN.
func StudentTCDF(t, df float64) float64 {
	switch {
	case math.IsNaN(t) || math.IsNaN(df) || df <= 0:
		return math.NaN()
	case math.IsInf(df, 1):
		return NormalCDF(t)
	case math.IsInf(t, 0):
		return NormalCDF(t)
	case t == 0:
		return 0.5
	case df >= largeDF && t*t < cornishFisherReach*df:
		return NormalCDF(invertCornishFisher(t, df))
	case t > 0:
		return 1 - math.Exp(studentTLogLowerTail(-t, df))
	}
	return math.Exp(studentTLogLowerTail(t, df))
}

// studentTLogLowerTail is log P(T ≤ t) for t < 0 and finite df > 0.
func studentTLogLowerTail(t, df float64) float64 {
	if math.IsInf(t, -1) {
		return math.Inf(-1)
	}
	logX, logY := studentTBetaArgs(t, df)
	return math.Log(0.5) + logRegIncBeta(df/2, 0.5, logX, logY)
}

// studentTLogCentral is log P(-|t| < T < 0), the mass between the centre and
// t. Near the centre it keeps the relative precision that 0.5 - P(T ≤ t)
// would lose to cancellation.
func studentTLogCentral(t, df float64) float64 {
	if t == 0 {
		return math.Inf(-1)
	}
	logX, logY := studentTBetaArgs(t, df)
	return math.Log(0.5) + logRegIncBeta(0.5, df/2, logY, logX)
}

// studentTBetaArgs returns log x and log(1-x) for x = df/(df+t²), the
// argument of the incomplete beta function behind the t distribution. Both
// are formed in logarithms so that neither overflows for huge |t| and each
// keeps its precision when it is the small one.
func studentTBetaArgs(t, df float64) (logX, logY float64) {
	// With r = t²/df, x = 1/(1+r) and 1-x = r/(1+r); log(1+r) is formed
	// without rounding r's small value away, which matters once df is large
	// and a·log x multiplies any error by df/2.
	logR := 2*math.Log(math.Abs(t)) - math.Log(df)
	log1pR := logAddExp(0, logR)
	return -log1pR, logR - log1pR
}

// studentTLogPDF is the logarithm of Student's t density.
func studentTLogPDF(t, df float64) float64 {
	logC := lgammaHalfStep(df/2) - 0.5*math.Log(df*math.Pi)
	logX, _ := studentTBetaArgs(t, df)
	return logC + (df+1)/2*logX
}

// lgammaHalfStep is log Γ(a+½) - log Γ(a). For large a the difference of two
// math.Lgamma values would cancel most of their digits (Lgamma(5e8) is about
// 1e10), so there it is taken from the difference of Stirling's series,
// log Γ(z) = (z-½)log z - z + ½log 2π + 1/12z - 1/360z³ + 1/1260z⁵ - 1/1680z⁷,
// whose first omitted term is below 1e-16 for a ≥ 30.
func lgammaHalfStep(a float64) float64 {
	if a < 30 {
		hi, _ := math.Lgamma(a + 0.5)
		lo, _ := math.Lgamma(a)
		return hi - lo
	}
	series := func(z float64) float64 {
		z2 := z * z
		return (1.0/12 - (1.0/360-(1.0/1260-1.0/(1680*z2))/z2)/z2) / z
	}
	return a*math.Log1p(0.5/a) + 0.5*math.Log(a) - 0.5 + series(a+0.5) - series(a)
}

// StudentTQuantile is the quantile of Student's t with df degrees of
// freedom, used for Welch's interval. It solves StudentTCDF(t, df) = p with
// safeguarded Newton steps on the log of the tail (or, near the centre, of
// the mass between t and 0) against log |t|, which converge quickly both
// near the centre and in the polynomial tails, and falls back to bisection
// inside a bracket whenever a step would leave it. df = 1 and df = 2 use
// their closed forms, large df the Cornish-Fisher expansion around the
// normal quantile (Abramowitz and Stegun 26.7.5) where it holds (see
// largeDF), and df = +Inf the normal quantile. For df ≥ 1 results agree with
// the root of scipy.stats.t.cdf to about 1e-13 relative.
//
// StudentTQuantile(p, df) is -Inf for p ≤ 0, +Inf for p ≥ 1 and NaN when df
// ≤ 0 or an argument is NaN. For df < 1 quantiles beyond the range of
// float64 are reported as ±math.MaxFloat64 or ±Inf.
func StudentTQuantile(p, df float64) float64 {
	switch {
	case math.IsNaN(p) || math.IsNaN(df) || df <= 0:
		return math.NaN()
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return math.Inf(1)
	case p == 0.5:
		return 0
	case p > 0.5:
		return -StudentTQuantile(1-p, df)
	case math.IsInf(df, 1):
		return NormalQuantile(p)
	case df == 1 && p < 0.25:
		// Cauchy: tan(π(p-½)) written as -1/tan(πp) to keep small p exact.
		return -1 / math.Tan(math.Pi*p)
	case df == 1:
		// p-½ is exact here, and tan is well conditioned near 0.
		return math.Tan(math.Pi * (p - 0.5))
	case df == 2:
		return (2*p - 1) / math.Sqrt(2*p*(1-p))
	}
	if df >= largeDF {
		if z := NormalQuantile(p); z*z < cornishFisherReach*df {
			return cornishFisher(z, df)
		}
	}
	return studentTLowerQuantile(p, df)
}

// largeDF is where the t distribution switches from the incomplete beta
// function to the Cornish-Fisher expansion. Beyond it the continued fraction
// needs hundreds of terms and its rounding errors pass 1e-13, while the
// expansion, a series in z²/df, is accurate to about 1e-13 as long as z²/df
// stays below cornishFisherReach; further out the incomplete beta function
// is used still.
const (
	largeDF            = 3e4
	cornishFisherReach = 0.015
)

// invertCornishFisher finds the z whose Cornish-Fisher t quantile is t, so
// that P(T ≤ t) = Φ(z). The expansion is increasing in z and within 1% of
// the identity where it is used, so Newton's method converges in a few
// steps.
func invertCornishFisher(t, df float64) float64 {
	z := t
	for range 20 {
		const h = 1e-6
		slope := (cornishFisher(z+h, df) - cornishFisher(z-h, df)) / (2 * h)
		step := (cornishFisher(z, df) - t) / slope
		z -= step
		if math.Abs(step) <= 1e-16*math.Max(1, math.Abs(z)) {
			break
		}
	}
	return z
}

// cornishFisher expands the t quantile around the normal quantile z in powers
// of 1/df (Abramowitz and Stegun 26.7.5).
func cornishFisher(z, df float64) float64 {
	z2 := z * z
	g1 := (z2 + 1) * z / 4
	g2 := ((5*z2+16)*z2 + 3) * z / 96
	g3 := (((3*z2+19)*z2+17)*z2 - 15) * z / 384
	g4 := ((((79*z2+776)*z2+1482)*z2-1920)*z2 - 945) * z / 92160
	return z + (g1+(g2+(g3+g4/df)/df)/df)/df
}

// studentTLowerQuantile solves P(T ≤ t) = p for 0 < p < 0.5, t < 0, working in
// s = log(-t). Below p = 0.25 it matches the lower tail, above it the mass
// between t and the centre (0.5-p is exact there), each in logarithms so that
// neither loses relative precision.
func studentTLowerQuantile(p, df float64) float64 {
	var (
		logTarget  float64
		logMass    func(t float64) float64
		increasing bool
	)
	if p < 0.25 {
		logTarget = math.Log(p)
		logMass = func(t float64) float64 { return studentTLogLowerTail(t, df) }
	} else {
		logTarget = math.Log(0.5 - p)
		logMass = func(t float64) float64 { return studentTLogCentral(t, df) }
		increasing = true
	}
	// h(s) is the log mass at t = -e^s minus the log target, and dh/ds is the
	// density times |t| over the mass, with the sign of the direction.
	h := func(s float64) (value, slope float64) {
		t := -math.Exp(s)
		m := logMass(t)
		slope = math.Exp(studentTLogPDF(t, df) + s - m)
		if !increasing {
			slope = -slope
		}
		return m - logTarget, slope
	}
	above := func(v float64) bool { return (v > 0) == increasing }

	guess := math.Log(-cornishFisher(NormalQuantile(p), df))
	if math.IsNaN(guess) || math.IsInf(guess, 0) {
		guess = 0
	}
	// Bracket the root: lo has the target above its mass, hi below.
	lo, hi := guess, guess
	for step := 0.5; ; step *= 2 {
		v, _ := h(lo)
		if !above(v) || step > 4096 {
			break
		}
		lo -= step
	}
	for step := 0.5; ; step *= 2 {
		v, _ := h(hi)
		if above(v) || step > 4096 {
			break
		}
		hi += step
	}

	s := guess
	for range 200 {
		v, slope := h(s)
		if v == 0 {
			break
		}
		if above(v) {
			hi = s
		} else {
			lo = s
		}
		next := s - v/slope
		if !(next > lo && next < hi) {
			next = lo + (hi-lo)/2
		}
		if math.Abs(next-s) <= 1e-15*math.Max(1, math.Abs(s)) {
			s = next
			break
		}
		s = next
	}
	return -math.Exp(s)
}

// logAddExp is log(eᵃ + eᵇ) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// logRegIncBeta is log I_x(a, b), the logarithm of the regularized incomplete
// beta function, for x given as log x and log(1-x) so that callers keep the
// precision of whichever of x and 1-x is small. It evaluates the continued
// fraction of Numerical Recipes (3rd ed., §6.4) with the modified Lentz
// method, on the side of the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) where it
// converges quickly.
func logRegIncBeta(a, b, logX, logY float64) float64 {
	if math.IsInf(logX, -1) {
		return math.Inf(-1)
	}
	if math.IsInf(logY, -1) {
		return 0
	}
	logFront := -logBeta(a, b) + a*logX + b*logY
	x := math.Exp(logX)
	if x < (a+1)/(a+b+2) {
		return logFront + math.Log(betaContinuedFraction(a, b, x)/a)
	}
	y := math.Exp(logY)
	return math.Log1p(-math.Exp(logFront) * betaContinuedFraction(b, a, y) / b)
}

// logBeta is log B(a, b), exact to rounding when one argument is ½ (the
// t distribution's case) however large the other is.
func logBeta(a, b float64) float64 {
	switch {
	case b == 0.5:
		return 0.5*math.Log(math.Pi) - lgammaHalfStep(a)
	case a == 0.5:
		return 0.5*math.Log(math.Pi) - lgammaHalfStep(b)
	}
	lgA, _ := math.Lgamma(a)
	lgB, _ := math.Lgamma(b)
	lgAB, _ := math.Lgamma(a + b)
	return lgA + lgB - lgAB
}

// betaContinuedFraction evaluates the continued fraction for I_x(a, b).
func betaContinuedFraction(a, b, x float64) float64 {
	const (
		eps   = 1e-16
		tiny  = 1e-300
		steps = 100000
	)
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := 1 - qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= steps; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}
