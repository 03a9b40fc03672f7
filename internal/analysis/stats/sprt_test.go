package stats_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

// TestSPRTAverageSampleNumbers reproduces the figures of the rollback
// design: with 1% error probabilities a sequential test needs about 110
// requests (5.5 s at 20 requests/s) to tell a 5% error rate from 1%, and
// about 780 (39 s) to tell it from 3%.
func TestSPRTAverageSampleNumbers(t *testing.T) {
	t.Parallel()
	const requestsPerSecond = 20

	_, fast := stats.SPRT{P0: 0.01, P1: 0.05, Alpha: 0.01, Beta: 0.01}.ASN()
	require.InDelta(t, 110, fast, 1.5) // 109.06
	require.InDelta(t, 5.5, fast/requestsPerSecond, 0.1)

	_, slow := stats.SPRT{P0: 0.03, P1: 0.05, Alpha: 0.01, Beta: 0.01}.ASN()
	require.InDelta(t, 780, slow, 5) // 783.32
	require.InDelta(t, 39, slow/requestsPerSecond, 0.5)
}

// TestSPRTSimulation runs the test request by request and compares the
// realised stopping times with the exact expectation from generate.py's
// dynamic programme (which, unlike Wald's approximation, includes the
// overshoot) and the realised error rates with Alpha and Beta.
func TestSPRTSimulation(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)
	const runs = 2000
	for _, c := range f.SPRT {
		if c.ExactASNH0 == nil || c.ExactASNH1 == nil {
			continue
		}
		s := stats.SPRT{P0: c.P0, P1: c.P1, Alpha: c.Alpha, Beta: c.Beta}
		for _, h := range []struct {
			rate     float64
			exact    float64
			wald     float64
			wrong    int
			errorMax float64
		}{
			{c.P0, *c.ExactASNH0, c.ASNH0, 1, c.Alpha},
			{c.P1, *c.ExactASNH1, c.ASNH1, -1, c.Beta},
		} {
			rng := rand.New(rand.NewPCG(uint64(h.rate*1e6), 7))
			var sum, sumSq float64
			wrong := 0
			for range runs {
				var errors, n int64
				decision := 0
				for decision == 0 {
					n++
					if rng.Float64() < h.rate {
						errors++
					}
					decision = s.Decide(errors, n)
				}
				if decision == h.wrong {
					wrong++
				}
				sum += float64(n)
				sumSq += float64(n) * float64(n)
			}
			mean := sum / runs
			se := math.Sqrt((sumSq/runs - mean*mean) / runs)
			t.Logf("%+v at rate %v: mean %.1f requests (exact %.1f, Wald %.1f), wrong decisions %d/%d",
				s, h.rate, mean, h.exact, h.wald, wrong, runs)
			require.InDelta(t, h.exact, mean, 4*se)
			// Wald's boundaries keep each error within about its
			// nominal rate; three binomial standard deviations of slack.
			require.LessOrEqual(t, float64(wrong)/runs, h.errorMax+3*math.Sqrt(h.errorMax*(1-h.errorMax)/runs))
		}
	}
}

func TestSPRTInvalidParameters(t *testing.T) {
	t.Parallel()
	for _, s := range []stats.SPRT{
		{},
		{P0: 0.05, P1: 0.05, Alpha: 0.01, Beta: 0.01},
		{P0: 0, P1: 0.05, Alpha: 0.01, Beta: 0.01},
		{P0: 0.01, P1: 1, Alpha: 0.01, Beta: 0.01},
		{P0: 0.01, P1: 0.05, Alpha: 0, Beta: 0.01},
		{P0: 0.01, P1: 0.05, Alpha: 0.01, Beta: math.NaN()},
	} {
		h0, h1 := s.ASN()
		require.Equal(t, math.MaxFloat64, h0, "%+v", s)
		require.Equal(t, math.MaxFloat64, h1, "%+v", s)
		require.Zero(t, s.LogLikelihoodRatio(10, 100), "%+v", s)
		require.Zero(t, s.Decide(100, 100), "%+v", s)
		lower, upper := s.Bounds()
		require.Zero(t, lower)
		require.Zero(t, upper)
	}
}

func TestSPRTDecisions(t *testing.T) {
	t.Parallel()
	s := stats.SPRT{P0: 0.01, P1: 0.05, Alpha: 0.01, Beta: 0.01}
	require.Zero(t, s.Decide(0, 0))
	require.Equal(t, 1, s.Decide(8, 60), "8 failures in 60 requests is a 5% rate, not 1%")
	require.Equal(t, -1, s.Decide(0, 120), "no failure in 120 requests is a 1% rate")
	require.Equal(t, s.Decide(60, 60), s.Decide(100, 60), "errors are clamped to the requests")
	// A test of a falling rate works the same way, mirrored.
	down := stats.SPRT{P0: 0.2, P1: 0.1, Alpha: 0.01, Beta: 0.05}
	require.Equal(t, 1, down.Decide(0, 60))
	require.Equal(t, -1, down.Decide(30, 100))
}
