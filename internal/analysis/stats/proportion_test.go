package stats_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
)

// stream simulates the traffic of a canary analysis: batches of
// batchRequests requests, each sent to the candidate with probability
// share, failing with the arm's error rate. Binomial draws come from
// precomputed distribution functions, one uniform number per draw, so that
// thousands of streams stay cheap.
type stream struct {
	rng          *rand.Rand
	split        []float64   // P(candidate requests ≤ k) in one batch
	baseErr      [][]float64 // [n] P(baseline errors ≤ k | n requests)
	candErr      [][]float64 // [n] P(candidate errors ≤ k | n requests)
	be, bn       int64
	ce, cn       int64
	batchRequest int
}

const batchRequests = 20

func newStream(seed uint64, baseRate, candRate, share float64) *stream {
	return &stream{
		rng:          rand.New(rand.NewPCG(seed, 0x666c696768746465)),
		split:        binomialCDF(batchRequests, share),
		baseErr:      binomialCDFs(batchRequests, baseRate),
		candErr:      binomialCDFs(batchRequests, candRate),
		batchRequest: batchRequests,
	}
}

// next adds one batch to the cumulative counts.
func (s *stream) next() {
	nc := draw(s.rng, s.split)
	nb := s.batchRequest - nc
	s.cn += int64(nc)
	s.bn += int64(nb)
	s.ce += int64(draw(s.rng, s.candErr[nc]))
	s.be += int64(draw(s.rng, s.baseErr[nb]))
}

func draw(rng *rand.Rand, cdf []float64) int {
	u := rng.Float64()
	for k, c := range cdf {
		if u < c {
			return k
		}
	}
	return len(cdf) - 1
}

func binomialCDF(n int, p float64) []float64 {
	cdf := make([]float64, n+1)
	var acc float64
	for k := 0; k <= n; k++ {
		lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
		logPMF := lg(n) - lg(k) - lg(n-k)
		if k > 0 {
			logPMF += float64(k) * math.Log(p)
		}
		if k < n {
			logPMF += float64(n-k) * math.Log1p(-p)
		}
		acc += math.Exp(logPMF)
		cdf[k] = acc
	}
	cdf[n] = 1
	return cdf
}

func binomialCDFs(maxN int, p float64) [][]float64 {
	out := make([][]float64, maxN+1)
	for n := range out {
		out[n] = binomialCDF(n, p)
	}
	return out
}

const (
	streamsPerCheck = 20
	batchesPerRun   = 2000
)

// TestProportionTestAlwaysValid is what "always valid" means for the
// rollback decision: a healthy candidate, checked after every batch of 20
// requests for 2,000 batches, is declared worse in at most Alpha of runs.
// Each rapid check draws a scenario (error rate, canary share, mixing
// spread, confidence, and whether the candidate sits exactly at the margin
// of the stricter rule) and runs streamsPerCheck seeded streams of it; with
// rapid's default 100 checks that is 2,000 streams. The false-rollback
// count over all streams must stay within Σα plus three binomial standard
// deviations.
func TestProportionTestAlwaysValid(t *testing.T) {
	var (
		streams, rejections int
		expected, variance  float64
		// Streams and false rollbacks per Alpha, for the log.
		byAlpha = map[float64][2]int{}
	)
	rapid.Check(t, func(rt *rapid.T) {
		baseRate := rapid.Float64Range(0.001, 0.3).Draw(rt, "error_rate")
		share := rapid.Float64Range(0.05, 0.5).Draw(rt, "candidate_share")
		test := stats.ProportionTest{
			Alpha: rapid.SampledFrom([]float64{0.01, 0.05}).Draw(rt, "alpha"),
			Tau:   rapid.Float64Range(0.005, 0.1).Draw(rt, "tau"),
		}
		if rapid.Bool().Draw(rt, "at_margin") {
			test.Margin = 0.02
		}
		seed := rapid.Uint64().Draw(rt, "seed")

		for i := range uint64(streamsPerCheck) {
			s := newStream(seed+i, baseRate, baseRate+test.Margin, share)
			running := 1.0
			rejected := false
			for range batchesPerRun {
				s.next()
				r := test.Evaluate(s.be, s.bn, s.ce, s.cn)
				// Plain comparisons on every look, and a formatted
				// failure only when one fails: 40,000 looks per check.
				if !(r.PValue >= 0 && r.PValue <= 1) || !(r.LowerBound <= r.Difference && r.Difference <= r.UpperBound) {
					rt.Fatalf("out of range: %+v", r)
				}
				// The test and the confidence sequence agree: the
				// candidate is significantly worse exactly when the
				// sequence lies above the margin.
				if r.Significant && r.LowerBound < test.Margin-1e-12 ||
					!r.Significant && r.Difference > test.Margin && r.LowerBound > test.Margin+1e-12 {
					rt.Fatalf("test and confidence sequence disagree: %+v", r)
				}
				next := stats.RunningPValue(running, r.PValue)
				if next > running {
					rt.Fatalf("running p-value rose from %v to %v", running, next)
				}
				running = next
				if r.Significant {
					rejected = true
					break
				}
			}
			streams++
			expected += test.Alpha
			variance += test.Alpha * (1 - test.Alpha)
			tally := byAlpha[test.Alpha]
			tally[0]++
			if rejected {
				rejections++
				tally[1]++
			}
			byAlpha[test.Alpha] = tally
		}
	})
	require.Positive(t, streams)
	for alpha, tally := range byAlpha {
		t.Logf("Alpha %v: false rollbacks in %d of %d streams (%.4f)", alpha, tally[1], tally[0], float64(tally[1])/float64(tally[0]))
	}
	t.Logf("false rollbacks: %d of %d streams (%.4f), expected at most %.1f (Σα)",
		rejections, streams, float64(rejections)/float64(streams), expected)
	require.LessOrEqual(t, float64(rejections), expected+3*math.Sqrt(variance))
}

// TestProportionTestDetectsRegression checks the other side: a candidate
// failing 5% of requests against a baseline at 1%, half the traffic each,
// is declared worse quickly, and every verdict is final under
// RunningPValue.
func TestProportionTestDetectsRegression(t *testing.T) {
	t.Parallel()
	const runs = 500
	var detected []int64
	for seed := range uint64(runs) {
		s := newStream(seed, 0.01, 0.05, 0.5)
		for range batchesPerRun {
			s.next()
			if (stats.ProportionTest{}).Evaluate(s.be, s.bn, s.ce, s.cn).Significant {
				detected = append(detected, s.bn+s.cn)
				break
			}
		}
	}
	require.Len(t, detected, runs, "every run detects the regression within 40,000 requests")
	slices.Sort(detected)
	median, p95 := detected[runs/2], detected[runs*95/100]
	t.Logf("requests until a 1%% → 5%% regression is significant: median %d, 95th percentile %d", median, p95)
	// A fixed-sample test would need about 700 requests for this effect at
	// 99% confidence and 95% power; the always-valid test pays for its
	// freedom to look at every window with some more.
	require.Less(t, median, int64(1500))
	require.Less(t, p95, int64(3000))
}

func TestProportionTestEdgeCases(t *testing.T) {
	t.Parallel()
	noEvidence := func(t *testing.T, r stats.ProportionResult) {
		t.Helper()
		require.Equal(t, 1.0, r.EValue)
		require.Equal(t, 1.0, r.PValue)
		require.Equal(t, -1.0, r.LowerBound)
		require.Equal(t, 1.0, r.UpperBound)
		require.False(t, r.Significant)
	}
	t.Run("no requests", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(0, 0, 0, 0)
		noEvidence(t, r)
		require.Zero(t, r.Difference)
	})
	t.Run("no candidate requests", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(5, 100, 0, 0)
		noEvidence(t, r)
		require.Equal(t, 0.05, r.BaselineRate)
		require.Equal(t, -0.05, r.Difference)
	})
	t.Run("one failed request is not a rollback", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(0, 1, 1, 1)
		require.Equal(t, 1.0, r.Difference)
		require.False(t, r.Significant)
		require.Greater(t, r.PValue, 0.5)
	})
	t.Run("three failed requests are not a rollback", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(0, 1000, 3, 3)
		require.False(t, r.Significant)
	})
	t.Run("no errors anywhere", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(0, 100000, 0, 100000)
		require.Zero(t, r.Difference)
		require.Equal(t, 1.0, r.PValue)
		require.False(t, r.Significant)
		require.Less(t, r.LowerBound, 0.0)
		require.Greater(t, r.UpperBound, 0.0)
	})
	t.Run("every request fails in both", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(500, 500, 500, 500)
		require.Zero(t, r.Difference)
		require.False(t, r.Significant)
	})
	t.Run("counts are clamped", func(t *testing.T) {
		got := stats.ProportionTest{}.Evaluate(-3, 100, 120, 100)
		want := stats.ProportionTest{}.Evaluate(0, 100, 100, 100)
		require.Equal(t, want, got)
		require.Equal(t, stats.ProportionTest{}.Evaluate(0, 0, 0, 0), stats.ProportionTest{}.Evaluate(5, -10, 0, 0))
	})
	t.Run("zero values mean the defaults", func(t *testing.T) {
		explicit := stats.ProportionTest{Alpha: stats.DefaultProportionAlpha, Tau: stats.DefaultProportionTau}
		require.Equal(t, explicit.Evaluate(10, 1000, 40, 1000), stats.ProportionTest{}.Evaluate(10, 1000, 40, 1000))
		require.Equal(t, explicit.Evaluate(10, 1000, 40, 1000), stats.ProportionTest{Alpha: 2, Tau: -1}.Evaluate(10, 1000, 40, 1000))
	})
	t.Run("a better candidate is never significant", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(500, 10000, 0, 10000)
		require.Less(t, r.PValue, 1e-10)
		require.False(t, r.Significant)
	})
	t.Run("stricter margin needs more evidence", func(t *testing.T) {
		loose := stats.ProportionTest{}.Evaluate(100, 10000, 35, 1000)
		strict := stats.ProportionTest{Margin: 0.02}.Evaluate(100, 10000, 35, 1000)
		require.True(t, loose.Significant)
		require.False(t, strict.Significant)
		require.Equal(t, loose.LowerBound, strict.LowerBound)
	})
	t.Run("overwhelming evidence stays finite", func(t *testing.T) {
		r := stats.ProportionTest{}.Evaluate(0, 10_000_000, 5_000_000, 10_000_000)
		require.True(t, r.Significant)
		require.Equal(t, math.MaxFloat64, r.EValue)
		require.Zero(t, r.PValue)
		require.Greater(t, r.LogEValue, 1e5)
		_, err := json.Marshal(r)
		require.NoError(t, err)
	})
}

func TestProportionTestNeverNaN(t *testing.T) {
	t.Parallel()
	counts := rapid.OneOf(rapid.Int64Range(-5, 50), rapid.Int64Range(0, 1e6), rapid.Int64())
	rapid.Check(t, func(rt *rapid.T) {
		test := stats.ProportionTest{
			Alpha:  rapid.Float64().Draw(rt, "alpha"),
			Tau:    rapid.Float64().Draw(rt, "tau"),
			Margin: rapid.Float64Range(-1, 1).Draw(rt, "margin"),
		}
		r := test.Evaluate(counts.Draw(rt, "be"), counts.Draw(rt, "bn"), counts.Draw(rt, "ce"), counts.Draw(rt, "cn"))
		_, err := json.Marshal(r)
		require.NoError(rt, err, "%+v", r)
		require.True(rt, r.PValue >= 0 && r.PValue <= 1, "%+v", r)
		require.True(rt, r.LowerBound >= -1 && r.LowerBound <= r.UpperBound && r.UpperBound <= 1, "%+v", r)
		require.False(rt, math.IsNaN(r.LogEValue), "%+v", r)
	})
}

func TestRunningPValue(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0.2, stats.RunningPValue(1, 0.2))
	require.Equal(t, 0.2, stats.RunningPValue(0.2, 0.7))
	require.Equal(t, 0.0, stats.RunningPValue(0, 0.5))
	require.Equal(t, 0.3, stats.RunningPValue(math.NaN(), 0.3))
	require.Equal(t, 0.3, stats.RunningPValue(0.3, math.NaN()))
	require.Equal(t, 1.0, stats.RunningPValue(math.NaN(), math.NaN()))
	require.Equal(t, 1.0, stats.RunningPValue(5, 3))
	require.Equal(t, 0.0, stats.RunningPValue(1, -1))
}
