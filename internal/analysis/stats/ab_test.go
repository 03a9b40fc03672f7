package stats_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

func TestABTestEdgeCases(t *testing.T) {
	t.Parallel()
	t.Run("an arm without users", func(t *testing.T) {
		r := stats.ABTest(0, 0, 5, 10, 0.05, 0.01, 0.8)
		require.Equal(t, 1.0, r.PValue)
		require.Zero(t, r.Z)
		require.Equal(t, -1.0, r.LiftLow)
		require.Equal(t, 1.0, r.LiftHigh)
		require.Zero(t, r.RelativeLift)
		require.Equal(t, -1.0, r.RelativeLiftLow)
		require.Equal(t, math.MaxFloat64, r.RelativeLiftHigh)
		require.False(t, r.Significant)
		require.Equal(t, r.RequiredPerArm, r.NeededPerArm)
	})
	t.Run("no conversions anywhere", func(t *testing.T) {
		r := stats.ABTest(0, 500, 0, 500, 0.05, 0.01, 0.8)
		require.Equal(t, 1.0, r.PValue)
		require.Zero(t, r.Lift)
		require.Less(t, r.LiftLow, 0.0)
		require.Greater(t, r.LiftHigh, 0.0)
		require.Zero(t, r.RelativeLift)
	})
	t.Run("defaults", func(t *testing.T) {
		want := stats.ABTest(100, 1000, 130, 1000, stats.DefaultABSignificance, 0.02, stats.DefaultABPower)
		require.Equal(t, want, stats.ABTest(100, 1000, 130, 1000, 0, 0.02, 0))
		require.Equal(t, want, stats.ABTest(100, 1000, 130, 1000, 1.5, 0.02, -2))
	})
	t.Run("enough users", func(t *testing.T) {
		r := stats.ABTest(1000, 100000, 1300, 100000, 0.05, 0.01, 0.8)
		require.True(t, r.Significant)
		require.Zero(t, r.NeededPerArm)
		require.Less(t, r.RequiredPerArm, int64(100000))
	})
	t.Run("huge counts", func(t *testing.T) {
		r := stats.ABTest(math.MaxInt64/2, math.MaxInt64, math.MaxInt64/2, math.MaxInt64, 0.05, 0.01, 0.8)
		require.InDelta(t, 0.5, r.RateA, 1e-15)
		require.False(t, r.Significant)
	})
}

func TestABTestNeverNaN(t *testing.T) {
	t.Parallel()
	counts := rapid.OneOf(rapid.Int64Range(-5, 50), rapid.Int64Range(0, 1e7), rapid.Int64())
	rapid.Check(t, func(rt *rapid.T) {
		r := stats.ABTest(counts.Draw(rt, "conv_a"), counts.Draw(rt, "n_a"), counts.Draw(rt, "conv_b"), counts.Draw(rt, "n_b"),
			rapid.Float64().Draw(rt, "significance"), rapid.Float64().Draw(rt, "mde"), rapid.Float64().Draw(rt, "power"))
		_, err := json.Marshal(r)
		require.NoError(rt, err, "%+v", r)
		require.True(rt, r.PValue >= 0 && r.PValue <= 1, "%+v", r)
		require.True(rt, -1 <= r.LiftLow && r.LiftLow <= r.LiftHigh && r.LiftHigh <= 1, "%+v", r)
		require.True(rt, -1 <= r.RelativeLiftLow && r.RelativeLiftLow <= r.RelativeLiftHigh, "%+v", r)
		require.GreaterOrEqual(rt, r.NeededPerArm, int64(0))
		require.LessOrEqual(rt, r.NeededPerArm, r.RequiredPerArm)
	})
}

func TestSampleSizePerArm(t *testing.T) {
	t.Parallel()
	require.Zero(t, stats.SampleSizePerArm(0.1, 0, 0.05, 0.8))
	require.Zero(t, stats.SampleSizePerArm(0.1, -0.01, 0.05, 0.8))
	require.Zero(t, stats.SampleSizePerArm(0.1, math.NaN(), 0.05, 0.8))
	require.Zero(t, stats.SampleSizePerArm(math.NaN(), 0.01, 0.05, 0.8))
	require.Zero(t, stats.SampleSizePerArm(0.5, 0.6, 0.05, 0.8), "an effect of 60 points from 50% is impossible")
	require.Equal(t, stats.SampleSizePerArm(0.1, 0.01, 0.05, 0.8), stats.SampleSizePerArm(0.1, 0.01, 0, 0))
	require.Equal(t, int64(math.MaxInt64), stats.SampleSizePerArm(0.5, 1e-12, 0.05, 0.8))

	rapid.Check(t, func(rt *rapid.T) {
		base := rapid.Float64Range(0, 0.9).Draw(rt, "base_rate")
		mde := rapid.Float64Range(0.001, 0.1).Draw(rt, "mde")
		n := stats.SampleSizePerArm(base, mde, 0.05, 0.8)
		require.Positive(rt, n)
		// Smaller effects, stricter significance and more power all need
		// more users.
		require.GreaterOrEqual(rt, stats.SampleSizePerArm(base, mde/2, 0.05, 0.8), n)
		require.GreaterOrEqual(rt, stats.SampleSizePerArm(base, mde, 0.01, 0.8), n)
		require.GreaterOrEqual(rt, stats.SampleSizePerArm(base, mde, 0.05, 0.95), n)
	})
}
