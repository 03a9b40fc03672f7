package stats_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

// fixtures are the reference values written by testdata/generate.py with
// SciPy. Each test below states the tolerance it compares with.
type fixtures struct {
	Normal struct {
		CDF []struct {
			Z   float64 `json:"z"`
			CDF float64 `json:"cdf"`
		} `json:"cdf"`
		Quantile []struct {
			P        float64 `json:"p"`
			Quantile float64 `json:"quantile"`
		} `json:"quantile"`
	} `json:"normal"`
	StudentT struct {
		CDF []struct {
			T   float64 `json:"t"`
			DF  float64 `json:"df"`
			CDF float64 `json:"cdf"`
		} `json:"cdf"`
		Quantile []struct {
			P        float64 `json:"p"`
			DF       float64 `json:"df"`
			Quantile float64 `json:"quantile"`
		} `json:"quantile"`
	} `json:"student_t"`
	ProportionTest []struct {
		BaseErrors    int64   `json:"base_errors"`
		BaseN         int64   `json:"base_n"`
		CandErrors    int64   `json:"cand_errors"`
		CandN         int64   `json:"cand_n"`
		Alpha         float64 `json:"alpha"`
		Tau           float64 `json:"tau"`
		Margin        float64 `json:"margin"`
		BaselineRate  float64 `json:"baseline_rate"`
		CandidateRate float64 `json:"candidate_rate"`
		Difference    float64 `json:"difference"`
		LogEValue     float64 `json:"log_e_value"`
		EValue        float64 `json:"e_value"`
		PValue        float64 `json:"p_value"`
		Lower         float64 `json:"lower"`
		Upper         float64 `json:"upper"`
		Significant   bool    `json:"significant"`
	} `json:"proportion_test"`
	SPRT []struct {
		P0         float64  `json:"p0"`
		P1         float64  `json:"p1"`
		Alpha      float64  `json:"alpha"`
		Beta       float64  `json:"beta"`
		Lower      float64  `json:"lower"`
		Upper      float64  `json:"upper"`
		ASNH0      float64  `json:"asn_h0"`
		ASNH1      float64  `json:"asn_h1"`
		ExactASNH0 *float64 `json:"exact_asn_h0"`
		ExactASNH1 *float64 `json:"exact_asn_h1"`
		LLR        []struct {
			Errors   int64   `json:"errors"`
			N        int64   `json:"n"`
			LLR      float64 `json:"llr"`
			Decision int     `json:"decision"`
		} `json:"llr"`
	} `json:"sprt"`
	MannWhitney []struct {
		Name        string    `json:"name"`
		X           []float64 `json:"x"`
		Y           []float64 `json:"y"`
		Alternative string    `json:"alternative"`
		U           float64   `json:"u"`
		Z           float64   `json:"z"`
		PValue      float64   `json:"p_value"`
	} `json:"mann_whitney"`
	Quantile []struct {
		Values   []float64 `json:"values"`
		Q        float64   `json:"q"`
		Quantile float64   `json:"quantile"`
	} `json:"quantile"`
	ABTest []struct {
		ConvA            int64   `json:"conv_a"`
		NA               int64   `json:"n_a"`
		ConvB            int64   `json:"conv_b"`
		NB               int64   `json:"n_b"`
		Significance     float64 `json:"significance"`
		MDE              float64 `json:"mde"`
		Power            float64 `json:"power"`
		RateA            float64 `json:"rate_a"`
		RateB            float64 `json:"rate_b"`
		Lift             float64 `json:"lift"`
		RelativeLift     float64 `json:"relative_lift"`
		Z                float64 `json:"z"`
		PValue           float64 `json:"p_value"`
		LiftLow          float64 `json:"lift_low"`
		LiftHigh         float64 `json:"lift_high"`
		RelativeLiftLow  float64 `json:"relative_lift_low"`
		RelativeLiftHigh float64 `json:"relative_lift_high"`
		RequiredPerArm   int64   `json:"required_per_arm"`
		NeededPerArm     int64   `json:"needed_per_arm"`
		Significant      bool    `json:"significant"`
	} `json:"ab_test"`
	SampleSize []struct {
		BaseRate     float64 `json:"base_rate"`
		MDE          float64 `json:"mde"`
		Significance float64 `json:"significance"`
		Power        float64 `json:"power"`
		N            int64   `json:"n"`
	} `json:"sample_size"`
	Wilson []struct {
		Successes  int64   `json:"successes"`
		N          int64   `json:"n"`
		Confidence float64 `json:"confidence"`
		Low        float64 `json:"low"`
		High       float64 `json:"high"`
	} `json:"wilson"`
	Welch []struct {
		MeanA      float64 `json:"mean_a"`
		VarA       float64 `json:"var_a"`
		NA         int64   `json:"n_a"`
		MeanB      float64 `json:"mean_b"`
		VarB       float64 `json:"var_b"`
		NB         int64   `json:"n_b"`
		Confidence float64 `json:"confidence"`
		Diff       float64 `json:"diff"`
		Low        float64 `json:"low"`
		High       float64 `json:"high"`
	} `json:"welch"`
}

// loadFixtures reads testdata/fixtures.json.
func loadFixtures(t *testing.T) fixtures {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixtures.json")
	require.NoError(t, err)
	var f fixtures
	require.NoError(t, json.Unmarshal(raw, &f))
	return f
}

// requireClose fails unless got is within rel of want relatively or within
// abs absolutely, whichever is looser.
func requireClose(t *testing.T, want, got, rel, abs float64, msgAndArgs ...any) {
	t.Helper()
	if want == got {
		return
	}
	tol := max(rel*math.Max(math.Abs(want), math.Abs(got)), abs)
	if math.Abs(want-got) <= tol {
		return
	}
	context := ""
	if len(msgAndArgs) > 0 {
		context = fmt.Sprintf(msgAndArgs[0].(string), msgAndArgs[1:]...)
	}
	require.Failf(t, "not close", "want %.17g, got %.17g (tolerance %.3g): %s", want, got, tol, context)
}

func TestNormalAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	// Φ through erfc: 1e-14 relative, widened to 3e-16·z² in the far tail,
	// where the rounding of z/√2 (in Go and in SciPy alike) is amplified by
	// erfc's slope, 2x² times the argument's relative error.
	for _, c := range f.Normal.CDF {
		requireClose(t, c.CDF, stats.NormalCDF(c.Z), max(1e-14, 3e-16*c.Z*c.Z), 0, "cdf z=%v", c.Z)
	}
	// Φ⁻¹ after Newton refinement: 1e-14 relative, 1e-16 absolute near 0.
	for _, c := range f.Normal.Quantile {
		requireClose(t, c.Quantile, stats.NormalQuantile(c.P), 1e-14, 1e-16, "quantile p=%v", c.P)
	}
}

func TestStudentTAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	// Incomplete beta function or Cornish-Fisher expansion: 1e-12 relative.
	for _, c := range f.StudentT.CDF {
		requireClose(t, c.CDF, stats.StudentTCDF(c.T, c.DF), 1e-12, 0, "cdf t=%v df=%v", c.T, c.DF)
	}
	// Against the root of SciPy's t.cdf (see generate.py): 1e-12 relative.
	for _, c := range f.StudentT.Quantile {
		requireClose(t, c.Quantile, stats.StudentTQuantile(c.P, c.DF), 1e-12, 0, "quantile p=%v df=%v", c.P, c.DF)
	}
}

func TestProportionTestAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	require.NotEmpty(t, f.ProportionTest)
	for _, c := range f.ProportionTest {
		r := stats.ProportionTest{Alpha: c.Alpha, Tau: c.Tau, Margin: c.Margin}.Evaluate(c.BaseErrors, c.BaseN, c.CandErrors, c.CandN)
		msg := []any{"%+v", c}
		require.Equal(t, c.BaseN, r.BaselineN, msg...)
		require.Equal(t, c.CandN, r.CandidateN, msg...)
		// Rates are a single division: 1e-15 relative.
		requireClose(t, c.BaselineRate, r.BaselineRate, 1e-15, 0, msg...)
		requireClose(t, c.CandidateRate, r.CandidateRate, 1e-15, 0, msg...)
		requireClose(t, c.Difference, r.Difference, 1e-15, 1e-17, msg...)
		// Closed form, checked in generate.py against numerical integration
		// of the mixture: 1e-9 relative, 1e-12 absolute near 0.
		requireClose(t, c.LogEValue, r.LogEValue, 1e-9, 1e-12, msg...)
		requireClose(t, c.EValue, r.EValue, 1e-9, 0, msg...)
		requireClose(t, c.PValue, r.PValue, 1e-9, 0, msg...)
		// The confidence sequence against SciPy's root of Λ(θ₀) = 1/α:
		// 1e-9 relative, 1e-12 absolute.
		requireClose(t, c.Lower, r.LowerBound, 1e-9, 1e-12, msg...)
		requireClose(t, c.Upper, r.UpperBound, 1e-9, 1e-12, msg...)
		require.Equal(t, c.Significant, r.Significant, msg...)
	}
}

func TestSPRTAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	for _, c := range f.SPRT {
		s := stats.SPRT{P0: c.P0, P1: c.P1, Alpha: c.Alpha, Beta: c.Beta}
		lower, upper := s.Bounds()
		requireClose(t, c.Lower, lower, 1e-14, 0)
		requireClose(t, c.Upper, upper, 1e-14, 0)
		// Wald's formula against KL divergences from scipy.stats.entropy:
		// 1e-12 relative.
		h0, h1 := s.ASN()
		requireClose(t, c.ASNH0, h0, 1e-12, 0, "%+v", s)
		requireClose(t, c.ASNH1, h1, 1e-12, 0, "%+v", s)
		for _, l := range c.LLR {
			// Against differences of scipy.stats.binom.logpmf: 1e-9
			// relative, 1e-12 absolute.
			requireClose(t, l.LLR, s.LogLikelihoodRatio(l.Errors, l.N), 1e-9, 1e-12, "%+v %d/%d", s, l.Errors, l.N)
			require.Equal(t, l.Decision, s.Decide(l.Errors, l.N), "%+v %d/%d", s, l.Errors, l.N)
		}
	}
}

func TestMannWhitneyAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	require.NotEmpty(t, f.MannWhitney)
	for _, c := range f.MannWhitney {
		r, err := stats.MannWhitneyU(c.X, c.Y, c.Alternative)
		require.NoError(t, err)
		require.Equal(t, len(c.X), r.N1)
		require.Equal(t, len(c.Y), r.N2)
		// U is a sum of half-integers: exact.
		require.Equal(t, c.U, r.U, "%s %s", c.Name, c.Alternative)
		// scipy.stats.mannwhitneyu(method="asymptotic"): 1e-12 relative.
		requireClose(t, c.Z, r.Z, 1e-12, 1e-15, "%s %s", c.Name, c.Alternative)
		requireClose(t, c.PValue, r.PValue, 1e-12, 0, "%s %s", c.Name, c.Alternative)
	}
}

func TestQuantileAgainstNumPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	for _, c := range f.Quantile {
		got, err := stats.Quantile(c.Values, c.Q)
		require.NoError(t, err)
		// numpy.quantile's linear method: 1e-14 relative.
		requireClose(t, c.Quantile, got, 1e-14, 0, "q=%v n=%d", c.Q, len(c.Values))
	}
}

func TestABTestAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	require.NotEmpty(t, f.ABTest)
	for _, c := range f.ABTest {
		r := stats.ABTest(c.ConvA, c.NA, c.ConvB, c.NB, c.Significance, c.MDE, c.Power)
		msg := []any{"%+v", c}
		requireClose(t, c.RateA, r.RateA, 1e-15, 0, msg...)
		requireClose(t, c.RateB, r.RateB, 1e-15, 0, msg...)
		requireClose(t, c.Lift, r.Lift, 1e-15, 1e-17, msg...)
		// Closed forms with normal quantiles: 1e-9 relative, 1e-12 absolute.
		requireClose(t, c.RelativeLift, r.RelativeLift, 1e-9, 1e-12, msg...)
		requireClose(t, c.Z, r.Z, 1e-9, 1e-12, msg...)
		// The z-test p-value, also checked against Pearson's chi-square in
		// generate.py: 1e-9 relative.
		requireClose(t, c.PValue, r.PValue, 1e-9, 0, msg...)
		requireClose(t, c.LiftLow, r.LiftLow, 1e-9, 1e-12, msg...)
		requireClose(t, c.LiftHigh, r.LiftHigh, 1e-9, 1e-12, msg...)
		requireClose(t, c.RelativeLiftLow, r.RelativeLiftLow, 1e-9, 1e-12, msg...)
		requireClose(t, c.RelativeLiftHigh, r.RelativeLiftHigh, 1e-9, 1e-12, msg...)
		// Sample sizes are whole users, checked in generate.py against a
		// search over the power function: exact.
		require.Equal(t, c.RequiredPerArm, r.RequiredPerArm, msg...)
		require.Equal(t, c.NeededPerArm, r.NeededPerArm, msg...)
		require.Equal(t, c.Significant, r.Significant, msg...)
	}
	for _, c := range f.SampleSize {
		require.Equal(t, c.N, stats.SampleSizePerArm(c.BaseRate, c.MDE, c.Significance, c.Power), "%+v", c)
	}
}

func TestWilsonAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	for _, c := range f.Wilson {
		low, high := stats.Wilson(c.Successes, c.N, c.Confidence)
		// scipy.stats.binomtest(...).proportion_ci(method="wilson"): 1e-12
		// relative, 1e-15 absolute.
		requireClose(t, c.Low, low, 1e-12, 1e-15, "%+v", c)
		requireClose(t, c.High, high, 1e-12, 1e-15, "%+v", c)
	}
}

func TestWelchIntervalAgainstSciPy(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	for _, c := range f.Welch {
		diff, low, high := stats.WelchInterval(c.MeanA, c.VarA, c.NA, c.MeanB, c.VarB, c.NB, c.Confidence)
		requireClose(t, c.Diff, diff, 1e-15, 1e-15, "%+v", c)
		// Bounds whose Welch t-test p-value is 1-confidence in SciPy:
		// 1e-10 relative to the bound, 1e-12 absolute.
		requireClose(t, c.Low, low, 1e-10, 1e-12, "%+v", c)
		requireClose(t, c.High, high, 1e-10, 1e-12, "%+v", c)
	}
}
