package stats_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

func TestMannWhitneyUErrors(t *testing.T) {
	t.Parallel()
	_, err := stats.MannWhitneyU(nil, []float64{1}, stats.TwoSided)
	require.ErrorIs(t, err, stats.ErrNoSamples)
	_, err = stats.MannWhitneyU([]float64{1}, []float64{}, stats.Greater)
	require.ErrorIs(t, err, stats.ErrNoSamples)
	_, err = stats.MannWhitneyU([]float64{1, math.NaN()}, []float64{2}, stats.Less)
	require.Error(t, err)
	_, err = stats.MannWhitneyU([]float64{1}, []float64{2}, "bigger")
	require.Error(t, err)
}

func TestMannWhitneyUTies(t *testing.T) {
	t.Parallel()
	for _, alt := range []string{stats.TwoSided, stats.Greater, stats.Less} {
		r, err := stats.MannWhitneyU([]float64{7, 7, 7}, []float64{7, 7}, alt)
		require.NoError(t, err)
		require.Equal(t, stats.MannWhitneyResult{U: 3, Z: 0, PValue: 1, N1: 3, N2: 2}, r)
	}
}

func TestMannWhitneyUInfinities(t *testing.T) {
	t.Parallel()
	// Infinities rank like the largest and smallest values.
	withInf, err := stats.MannWhitneyU([]float64{1, 2, math.Inf(1)}, []float64{0.5, 3, math.Inf(-1)}, stats.TwoSided)
	require.NoError(t, err)
	withMax, err := stats.MannWhitneyU([]float64{1, 2, math.MaxFloat64}, []float64{0.5, 3, -math.MaxFloat64}, stats.TwoSided)
	require.NoError(t, err)
	require.Equal(t, withMax, withInf)
}

func TestMannWhitneyUProperties(t *testing.T) {
	t.Parallel()
	// Small integers make ties common; wide floats make them rare.
	tied := rapid.Map(rapid.IntRange(0, 5), func(i int) float64 { return float64(i) })
	sample := rapid.SliceOfN(rapid.OneOf(rapid.Float64Range(-1e6, 1e6), tied), 1, 40)
	rapid.Check(t, func(rt *rapid.T) {
		x := sample.Draw(rt, "x")
		y := sample.Draw(rt, "y")
		greater, err := stats.MannWhitneyU(x, y, stats.Greater)
		require.NoError(rt, err)
		less, err := stats.MannWhitneyU(y, x, stats.Less)
		require.NoError(rt, err)
		two, err := stats.MannWhitneyU(x, y, stats.TwoSided)
		require.NoError(rt, err)
		// "x greater than y" is "y less than x".
		require.Equal(rt, greater.PValue, less.PValue)
		require.Equal(rt, float64(len(x)*len(y)), greater.U+less.U)
		// The two-sided p-value doubles the smaller one-sided one.
		lessXY, err := stats.MannWhitneyU(x, y, stats.Less)
		require.NoError(rt, err)
		require.InDelta(rt, min(1, 2*min(greater.PValue, lessXY.PValue)), two.PValue, 1e-15)
		for _, r := range []stats.MannWhitneyResult{greater, less, two} {
			require.True(rt, r.PValue >= 0 && r.PValue <= 1, "%+v", r)
			require.False(rt, math.IsNaN(r.Z), "%+v", r)
		}
	})
}

func TestQuantileEdgeCases(t *testing.T) {
	t.Parallel()
	_, err := stats.Quantile(nil, 0.5)
	require.ErrorIs(t, err, stats.ErrNoSamples)
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		_, err = stats.Quantile([]float64{1, 2}, q)
		require.Error(t, err, "q=%v", q)
	}
	_, err = stats.Quantile([]float64{1, math.Inf(1)}, 0.5)
	require.Error(t, err)
	_, err = stats.Quantile([]float64{1, math.NaN()}, 0.5)
	require.Error(t, err)

	values := []float64{30, 10, 20}
	got, err := stats.Quantile(values, 0.5)
	require.NoError(t, err)
	require.Equal(t, 20.0, got)
	require.Equal(t, []float64{30, 10, 20}, values, "the caller's slice is left as it was")
}

func TestQuantileProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		values := rapid.SliceOfN(rapid.Float64Range(-1e9, 1e9), 1, 60).Draw(rt, "values")
		q1 := rapid.Float64Range(0, 1).Draw(rt, "q1")
		q2 := rapid.Float64Range(q1, 1).Draw(rt, "q2")
		a, err := stats.Quantile(values, q1)
		require.NoError(rt, err)
		b, err := stats.Quantile(values, q2)
		require.NoError(rt, err)
		require.LessOrEqual(rt, a, b, "quantiles grow with q")
		lo, _ := stats.Quantile(values, 0)
		hi, _ := stats.Quantile(values, 1)
		require.Equal(rt, min(values[0], lo), lo)
		require.GreaterOrEqual(rt, a, lo)
		require.LessOrEqual(rt, b, hi)
	})
}

func TestCompareLatency(t *testing.T) {
	t.Parallel()
	baseline := []float64{100, 110, 120, 130, 140, 150, 160, 170, 180, 200}
	candidate := []float64{180, 200, 220, 240, 260, 280, 300, 320, 340, 400}
	c, err := stats.CompareLatency(baseline, candidate, 0.99)
	require.NoError(t, err)
	wantBase, _ := stats.Quantile(baseline, 0.99)
	wantCand, _ := stats.Quantile(candidate, 0.99)
	require.Equal(t, wantBase, c.BaselineQuantile)
	require.Equal(t, wantCand, c.CandidateQuantile)
	require.InDelta(t, wantCand/wantBase, c.Ratio, 1e-15)
	require.Greater(t, c.Ratio, 1.5)
	test, err := stats.MannWhitneyU(candidate, baseline, stats.Greater)
	require.NoError(t, err)
	require.Equal(t, test, c.Test)
	require.Less(t, c.Test.PValue, 0.01)

	zero, err := stats.CompareLatency([]float64{0, 0}, []float64{0}, 0.99)
	require.NoError(t, err)
	require.Equal(t, 1.0, zero.Ratio)
	worse, err := stats.CompareLatency([]float64{0, 0}, []float64{5}, 0.99)
	require.NoError(t, err)
	require.Equal(t, math.MaxFloat64, worse.Ratio)

	_, err = stats.CompareLatency(nil, candidate, 0.99)
	require.ErrorIs(t, err, stats.ErrNoSamples)
	_, err = stats.CompareLatency(baseline, nil, 0.99)
	require.ErrorIs(t, err, stats.ErrNoSamples)
	_, err = stats.CompareLatency(baseline, candidate, 2)
	require.Error(t, err)
}
