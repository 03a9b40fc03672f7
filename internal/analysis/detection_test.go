package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The detection benchmark is only as trustworthy as its rules, so each
// rule is checked here on small hand-made streams whose answer is known.

// steady is a stream of n windows with the same counts in every window.
func steady(n int, canaryRequests, canaryErrors, stableRequests, stableErrors int64) detectionStream {
	fill := func(v int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	return detectionStream{
		canaryRequests: fill(canaryRequests), canaryErrors: fill(canaryErrors),
		stableRequests: fill(stableRequests), stableErrors: fill(stableErrors),
	}
}

// withCanaryErrors returns s with the canary failing errors requests in the
// given windows (counted from 1, as evaluations are).
func withCanaryErrors(s detectionStream, errors int64, windows ...int) detectionStream {
	s.canaryErrors = append([]int64(nil), s.canaryErrors...)
	for _, w := range windows {
		s.canaryErrors[w-1] = errors
	}
	return s
}

func TestFlaggerRule(t *testing.T) {
	t.Parallel()
	flagger := flaggerRule{metricWindows: 6, limit: 0.03, threshold: 10}

	t.Run("rolls back at the tenth failed check", func(t *testing.T) {
		t.Parallel()
		got := flagger.judge(steady(20, 100, 10, 300, 3))
		require.Equal(t, ruleOutcome{rolledBack: true, at: 100 * time.Second}, got)
	})
	t.Run("passing checks do not reset the failures", func(t *testing.T) {
		t.Parallel()
		// With a one-window metric interval every other check fails, so
		// the tenth failure is the nineteenth check.
		every := flaggerRule{metricWindows: 1, limit: 0.03, threshold: 10}
		s := withCanaryErrors(steady(30, 100, 1, 300, 3), 10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21)
		require.Equal(t, ruleOutcome{rolledBack: true, at: 190 * time.Second}, every.judge(s))
	})
	t.Run("one bad window fails every check while it is in the metric interval", func(t *testing.T) {
		t.Parallel()
		s := withCanaryErrors(steady(30, 100, 0, 300, 3), 60, 1)
		require.Equal(t, ruleOutcome{}, flagger.judge(s), "six failed checks are fewer than ten")
		six := flaggerRule{metricWindows: 6, limit: 0.03, threshold: 6}
		require.Equal(t, ruleOutcome{rolledBack: true, at: 60 * time.Second}, six.judge(s))
	})
	t.Run("a rate at the threshold passes", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, ruleOutcome{}, flagger.judge(steady(30, 100, 3, 300, 3)))
	})
}

func TestArgoRule(t *testing.T) {
	t.Parallel()
	argo := argoRule{limit: 0.03, failureLimit: 3}

	t.Run("three failed measurements are tolerated", func(t *testing.T) {
		t.Parallel()
		s := withCanaryErrors(steady(20, 100, 1, 300, 3), 4, 2, 5, 9)
		require.Equal(t, ruleOutcome{}, argo.judge(s))
	})
	t.Run("the fourth failed measurement aborts, consecutive or not", func(t *testing.T) {
		t.Parallel()
		s := withCanaryErrors(steady(20, 100, 1, 300, 3), 4, 2, 5, 9, 12)
		require.Equal(t, ruleOutcome{rolledBack: true, at: 120 * time.Second}, argo.judge(s))
	})
	t.Run("a measurement at the limit passes", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, ruleOutcome{}, argo.judge(steady(20, 100, 3, 300, 3)))
	})
}

func TestKayentaRule(t *testing.T) {
	t.Parallel()
	kayenta := kayentaRule{everyWindows: 6, alpha: 0.01}

	t.Run("judges only at the end of each interval", func(t *testing.T) {
		t.Parallel()
		// Six canary windows at 10% against six stable windows at 1% are
		// told apart at p ≈ 0.0006; the judge still waits for the minute.
		got := kayenta.judge(steady(12, 100, 10, 300, 3))
		require.Equal(t, ruleOutcome{rolledBack: true, at: 60 * time.Second}, got)
	})
	t.Run("equal samples never fail", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, ruleOutcome{}, kayenta.judge(steady(60, 100, 1, 300, 3)))
	})
	t.Run("a minority of bad windows does not move the median", func(t *testing.T) {
		t.Parallel()
		s := withCanaryErrors(steady(12, 100, 1, 300, 3), 10, 10, 11, 12)
		require.Equal(t, ruleOutcome{}, kayenta.judge(s))
	})
}

func TestFlightdeckRule(t *testing.T) {
	t.Parallel()

	t.Run("rolls back a degraded canary over the exposure limit", func(t *testing.T) {
		t.Parallel()
		got := newFlightdeckRule(0.25).judge(steady(10, 1000, 50, 3000, 30))
		require.Equal(t, ruleOutcome{rolledBack: true, at: 10 * time.Second}, got)
	})
	t.Run("continues with a healthy canary", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, ruleOutcome{}, newFlightdeckRule(0.25).judge(steady(10, 1000, 10, 3000, 30)))
	})
	t.Run("monitoring longer is not a rollback", func(t *testing.T) {
		t.Parallel()
		// At 5% exposure a steadily degraded canary is watched, not rolled
		// back, at every evaluation.
		got := newFlightdeckRule(0.05).judge(steady(10, 1000, 50, 3000, 30))
		require.Equal(t, ruleOutcome{monitorLonger: 10}, got)
	})
}

func TestSimulatedStreams(t *testing.T) {
	t.Parallel()
	draw := func(seed, stream uint64) detectionStream {
		return simulateStream(rand.New(rand.NewPCG(seed, stream)), detectionOnset+detectionCap, detectionOnset, detectionFaultRate)
	}
	s := draw(7, faultStreamID)
	require.Equal(t, s, draw(7, faultStreamID), "a seed always gives the same stream")
	require.NotEqual(t, s, draw(7, healthyStreamID))
	require.Equal(t, int((detectionOnset+detectionCap)/detectionStep), s.windows())

	onset := int(detectionOnset / detectionStep)
	seconds := float64(s.windows()) * detectionStep.Seconds()
	sum := func(v []int64) (n int64) {
		for _, x := range v {
			n += x
		}
		return n
	}
	require.InDelta(t, detectionCanaryRPS, float64(sum(s.canaryRequests))/seconds, 0.5)
	require.InDelta(t, detectionStableRPS, float64(sum(s.stableRequests))/seconds, 1)
	require.InDelta(t, detectionBaseRate, errorRateOf(s.stableRequests, s.stableErrors), 0.002)
	require.InDelta(t, detectionFaultRate, errorRateOf(s.canaryRequests[onset:], s.canaryErrors[onset:]), 0.005)
}

func TestBinomialAndPoissonMeans(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const draws = 100000
	var requests, errors int64
	for range draws {
		n := poisson(rng, 20)
		requests += n
		errors += binomial(rng, n, 0.05)
	}
	require.InDelta(t, 20, float64(requests)/draws, 0.1)
	require.InDelta(t, 0.05, float64(errors)/float64(requests), 0.002)
	require.Zero(t, binomial(rng, 0, 0.5))
	require.Equal(t, int64(7), binomial(rng, 7, 1))
}

func TestNearestRank(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	v := []float64{30, 10, inf, 20}
	require.Equal(t, 20.0, nearestRank(v, 0.5))
	require.Equal(t, inf, nearestRank(v, 0.95), "a p95 among undetected faults is never")
	require.Equal(t, 10.0, nearestRank(v, 0))
}
