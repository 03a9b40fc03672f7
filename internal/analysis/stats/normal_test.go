package stats_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

func TestNormalEdgeCases(t *testing.T) {
	t.Parallel()
	require.Equal(t, math.Inf(-1), stats.NormalQuantile(0))
	require.Equal(t, math.Inf(-1), stats.NormalQuantile(-1))
	require.Equal(t, math.Inf(1), stats.NormalQuantile(1))
	require.Equal(t, math.Inf(1), stats.NormalQuantile(2))
	require.Zero(t, stats.NormalQuantile(0.5))
	require.True(t, math.IsNaN(stats.NormalQuantile(math.NaN())))
	require.Less(t, stats.NormalQuantile(1e-310), -37.0, "below 1e-300 the unrefined approximation")
	require.Zero(t, stats.NormalCDF(math.Inf(-1)))
	require.Equal(t, 1.0, stats.NormalCDF(math.Inf(1)))
	require.Equal(t, 0.5, stats.NormalCDF(0))
}

func TestStudentTEdgeCases(t *testing.T) {
	t.Parallel()
	for _, df := range []float64{0, -1, math.NaN()} {
		require.True(t, math.IsNaN(stats.StudentTQuantile(0.3, df)))
		require.True(t, math.IsNaN(stats.StudentTCDF(0.3, df)))
	}
	require.Equal(t, math.Inf(-1), stats.StudentTQuantile(0, 5))
	require.Equal(t, math.Inf(1), stats.StudentTQuantile(1, 5))
	require.Zero(t, stats.StudentTQuantile(0.5, 5))
	require.Equal(t, stats.NormalQuantile(0.01), stats.StudentTQuantile(0.01, math.Inf(1)))
	require.Equal(t, stats.NormalCDF(-2), stats.StudentTCDF(-2, math.Inf(1)))
	require.Zero(t, stats.StudentTCDF(math.Inf(-1), 3))
	require.Equal(t, 1.0, stats.StudentTCDF(math.Inf(1), 3e6))
	require.Equal(t, 0.5, stats.StudentTCDF(0, 3))
}

func TestDistributionRoundTrips(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		p := rapid.Float64Range(1e-12, 1-1e-12).Draw(rt, "p")
		z := stats.NormalQuantile(p)
		require.InDelta(rt, p, stats.NormalCDF(z), 1e-14*max(p, 1e-2))

		df := rapid.OneOf(rapid.Float64Range(1, 50), rapid.Float64Range(50, 1e7)).Draw(rt, "df")
		q := stats.StudentTQuantile(p, df)
		require.InDelta(rt, p, stats.StudentTCDF(q, df), 1e-12*max(p, 1e-2))
		// Symmetry: the upper half is the mirror of the lower, exactly, at
		// the lower-tail probability 1-(1-p) that p rounds to.
		if p < 0.5 {
			require.Equal(rt, -stats.StudentTQuantile(1-(1-p), df), stats.StudentTQuantile(1-p, df))
			require.Equal(rt, -stats.NormalQuantile(1-(1-p)), stats.NormalQuantile(1-p))
		}
	})
}
