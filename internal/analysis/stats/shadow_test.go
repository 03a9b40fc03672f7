package stats_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

func TestWilsonEdgeCases(t *testing.T) {
	t.Parallel()
	low, high := stats.Wilson(0, 0, 0.95)
	require.Equal(t, [2]float64{0, 1}, [2]float64{low, high})
	low, high = stats.Wilson(5, -1, 0.95)
	require.Equal(t, [2]float64{0, 1}, [2]float64{low, high})
	low, high = stats.Wilson(0, 1000, 0.95)
	require.Zero(t, low)
	require.Greater(t, high, 0.0)
	low, high = stats.Wilson(1000, 1000, 0.95)
	require.Less(t, low, 1.0)
	require.Equal(t, 1.0, high)
	l1, h1 := stats.Wilson(30, 100, stats.DefaultConfidence)
	l2, h2 := stats.Wilson(30, 100, 7)
	require.Equal(t, [2]float64{l1, h1}, [2]float64{l2, h2})
	l3, h3 := stats.Wilson(150, 100, 0.95)
	l4, h4 := stats.Wilson(100, 100, 0.95)
	require.Equal(t, [2]float64{l4, h4}, [2]float64{l3, h3}, "successes are clamped to n")
}

func TestWilsonProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.Int64Range(1, 1e9).Draw(rt, "n")
		k := rapid.Int64Range(0, n).Draw(rt, "successes")
		confidence := rapid.Float64Range(0.5, 0.9999).Draw(rt, "confidence")
		low, high := stats.Wilson(k, n, confidence)
		share := float64(k) / float64(n)
		require.True(rt, 0 <= low && low <= share+1e-15 && share <= high+1e-15 && high <= 1, "[%v, %v] around %v", low, high, share)
		wideLow, wideHigh := stats.Wilson(k, n, min(0.99999, confidence+0.00001))
		require.LessOrEqual(rt, wideLow, low+1e-15)
		require.GreaterOrEqual(rt, wideHigh, high-1e-15)
	})
}

func TestWelchIntervalEdgeCases(t *testing.T) {
	t.Parallel()
	diff, low, high := stats.WelchInterval(10, 4, 0, 12, 4, 10, 0.95)
	require.Zero(t, diff)
	require.Equal(t, -math.MaxFloat64, low)
	require.Equal(t, math.MaxFloat64, high)

	diff, low, high = stats.WelchInterval(10, 4, 1, 12, 4, 10, 0.95)
	require.Equal(t, 2.0, diff)
	require.Equal(t, -math.MaxFloat64, low)
	require.Equal(t, math.MaxFloat64, high)

	diff, low, high = stats.WelchInterval(10, 0, 5, 12, 0, 5, 0.95)
	require.Equal(t, [3]float64{2, 2, 2}, [3]float64{diff, low, high})

	diff, low, high = stats.WelchInterval(10, -3, 5, 12, 0, 5, 0.95)
	require.Equal(t, [3]float64{2, 2, 2}, [3]float64{diff, low, high}, "negative variances count as 0")

	_, l1, h1 := stats.WelchInterval(10, 4, 20, 12, 9, 30, stats.DefaultConfidence)
	_, l2, h2 := stats.WelchInterval(10, 4, 20, 12, 9, 30, 0)
	require.Equal(t, [2]float64{l1, h1}, [2]float64{l2, h2})

	// One arm without variance: ν is the other arm's n-1, and the interval
	// is the one-sample t interval of that arm.
	_, low, high = stats.WelchInterval(10, 0, 50, 12, 9, 10, 0.95)
	half := stats.StudentTQuantile(0.975, 9) * math.Sqrt(9.0/10)
	require.InDelta(t, 2-half, low, 1e-12)
	require.InDelta(t, 2+half, high, 1e-12)
}

func TestWelchIntervalProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		meanA := rapid.Float64Range(-1e6, 1e6).Draw(rt, "mean_a")
		meanB := rapid.Float64Range(-1e6, 1e6).Draw(rt, "mean_b")
		varA := rapid.Float64Range(0, 1e6).Draw(rt, "var_a")
		varB := rapid.Float64Range(1e-6, 1e6).Draw(rt, "var_b")
		nA := rapid.Int64Range(2, 1e7).Draw(rt, "n_a")
		nB := rapid.Int64Range(2, 1e7).Draw(rt, "n_b")
		diff, low, high := stats.WelchInterval(meanA, varA, nA, meanB, varB, nB, 0.95)
		require.True(rt, low < diff && diff < high, "%v in [%v, %v]", diff, low, high)
		_, wideLow, wideHigh := stats.WelchInterval(meanA, varA, nA, meanB, varB, nB, 0.99)
		require.Less(rt, wideLow, low)
		require.Greater(rt, wideHigh, high)
	})
}
