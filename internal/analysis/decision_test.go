package analysis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// series builds per-window error-rate and latency windows from rates.
type series struct {
	requests int64
	rates    []float64 // error rate per window
	p99      []float64 // p99 per window (ms); nil leaves latency out
}

func (s series) cohort(from time.Time, step time.Duration) Cohort {
	c := Cohort{Windows: map[string][]Window{}}
	for i, r := range s.rates {
		ws := from.Add(time.Duration(i) * step)
		c.Windows[MetricErrorRate] = append(c.Windows[MetricErrorRate], Window{Start: ws, End: ws.Add(step), Count: s.requests, Sum: float64(int64(r * float64(s.requests)))})
		if s.p99 != nil {
			v := s.p99[i]
			c.Windows[MetricLatency] = append(c.Windows[MetricLatency], Window{Start: ws, End: ws.Add(step), Count: s.requests, Sum: float64(s.requests) * v / 2, P99: &v})
		}
	}
	return c
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func observe(now time.Duration, exposed float64, cand, base series) Observations {
	t := DefaultThresholds()
	step := time.Duration(t.Window)
	return Observations{
		Now: start.Add(now), PhaseStartedAt: start, CandidateVersion: "v2", BaselineVersion: "v1", ExposedShare: exposed,
		Candidate: cand.cohort(start, step), Baseline: base.cohort(start, step), Thresholds: t,
	}
}

func TestDecisionTree(t *testing.T) {
	t.Parallel()
	healthy := series{requests: 600, rates: repeat(0.01, 20), p99: repeat(200, 20)}
	bad := series{requests: 600, rates: repeat(0.05, 20), p99: repeat(200, 20)}
	worsening := series{requests: 600, rates: append(repeat(0.01, 17), 0.05, 0.09, 0.13), p99: repeat(200, 20)}
	slow := series{requests: 600, rates: repeat(0.01, 20), p99: repeat(400, 20)}
	for name, tc := range map[string]struct {
		obs     Observations
		verdict engine.Verdict
		path    Path
		explain string
	}{
		"warming up": {observe(2*time.Minute, 0.05, healthy, healthy), engine.VerdictWarmingUp,
			Path{WarmingUp: true}, "Warming up: judging starts 5m0s after the traffic change (3m0s left)."},
		"fast fail during warm-up": {observe(2*time.Minute, 0.05, series{requests: 600, rates: repeat(0.3, 20)}, healthy), engine.VerdictRollback,
			Path{WarmingUp: true, FastFail: true, Degraded: true}, "Rolled back during warm-up: v2 error rate 30% vs 1.0% on v1 (30× the baseline, 2,400 requests) is overwhelming evidence."},
		"healthy continues": {observe(10*time.Minute, 0.25, healthy, healthy), engine.VerdictContinue,
			Path{}, "Continue: v2 is within every threshold (error rate 1.0% vs 1.0% on v1, 6,000 requests)."},
		"degraded and widely exposed rolls back": {observe(10*time.Minute, 0.25, bad, healthy), engine.VerdictRollback,
			Path{Degraded: true, ExposureOverLimit: true}, "Rolled back: v2 error rate 5.0% vs 1.0% on v1 (+4.0 pp > 2.0 pp, 99% confidence, 6,000 requests); 25% of users exposed (over the 10% limit)."},
		"degraded, few exposed, stable: monitor longer": {observe(10*time.Minute, 0.05, bad, healthy), engine.VerdictMonitorLonger,
			Path{Degraded: true}, "Monitoring longer: v2 error rate 5.0% vs 1.0% on v1 (+4.0 pp > 2.0 pp, 99% confidence, 6,000 requests); only 5.0% of users exposed and stable over the last 3 windows."},
		"degraded, few exposed, worsening: rollback": {observe(10*time.Minute, 0.05, worsening, healthy), engine.VerdictRollback,
			Path{Degraded: true, Worsening: true}, "worsening over the last 3 windows"},
		"slow p99": {observe(10*time.Minute, 0.5, slow, healthy), engine.VerdictRollback,
			Path{Degraded: true, ExposureOverLimit: true}, "v2 p99 latency 400 ms vs 200 ms (2.0× > 1.5×)"},
		"no candidate traffic is inconclusive": {observe(10*time.Minute, 0.05, series{}, healthy), engine.VerdictInconclusive,
			Path{Inconclusive: true}, "Inconclusive: no requests of v2"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.obs)
			require.Equal(t, tc.verdict, d.Verdict, d.Explanation)
			require.Equal(t, tc.path, d.Path)
			require.Contains(t, d.Explanation, tc.explain)
			b, err := json.Marshal(d)
			require.NoError(t, err)
			require.Contains(t, string(b), `"thresholds"`)
		})
	}
}

func TestFewRequestsNeverRollBack(t *testing.T) {
	t.Parallel()
	// 3 requests with 2 errors is 67% errors, but proves nothing.
	o := observe(10*time.Minute, 0.5, series{}, series{})
	at := start.Add(6 * time.Minute)
	o.Candidate.Windows = map[string][]Window{MetricErrorRate: {{Start: at, Count: 3, Sum: 2}}}
	o.Baseline.Windows = map[string][]Window{MetricErrorRate: {{Start: at, Count: 3000, Sum: 30}}}
	d := Decide(o)
	require.Equal(t, engine.VerdictContinue, d.Verdict, d.Explanation)
	require.Equal(t, OutcomeOK, d.Metrics[0].Outcome)
	require.Greater(t, d.Metrics[0].PValue, 0.01)
}

func TestSourceErrorsAreInconclusive(t *testing.T) {
	t.Parallel()
	o := observe(10*time.Minute, 0.5, series{requests: 600, rates: repeat(0.01, 20)}, series{requests: 600, rates: repeat(0.01, 20)})
	o.SourceErrors = []string{"prometheus at 127.0.0.1:9090: connection refused"}
	d := Decide(o)
	require.Equal(t, engine.VerdictInconclusive, d.Verdict)
	require.Contains(t, d.Explanation, "connection refused")
	require.Equal(t, []string{"prometheus at 127.0.0.1:9090: connection refused"}, d.Errors)
}

func TestHealthAndSignaturesWithoutBaseline(t *testing.T) {
	t.Parallel()
	o := observe(10*time.Minute, 1, series{requests: 600, rates: repeat(0.01, 20)}, series{})
	o.BaselineVersion = ""
	o.Candidate.Windows[MetricHealthChecks] = []Window{{Start: start.Add(6 * time.Minute), Count: 10, Sum: 2}}
	d := Decide(o)
	require.Equal(t, engine.VerdictRollback, d.Verdict)
	require.Contains(t, d.Explanation, "2 failed health checks (more than 0)")

	o = observe(10*time.Minute, 0.5, series{requests: 600, rates: repeat(0.01, 20)}, series{requests: 600, rates: repeat(0.01, 20)})
	o.Candidate.Signatures = map[string]int64{"NullPointerException in Checkout.pay": 12, "timeout": 40}
	o.Baseline.Signatures = map[string]int64{"timeout": 35}
	d = Decide(o)
	require.Equal(t, engine.VerdictRollback, d.Verdict)
	require.Equal(t, []string{"NullPointerException in Checkout.pay"}, d.NewSignatures)
	require.Contains(t, d.Explanation, "new errors: NullPointerException in Checkout.pay")
}

func TestStrictModeNeedsTheThresholdExceededWithConfidence(t *testing.T) {
	t.Parallel()
	// 3.2% vs 1%: clearly worse than the baseline, but not clearly more
	// than 2 points worse.
	o := observe(10*time.Minute, 0.5, series{requests: 600, rates: repeat(0.032, 20)}, series{requests: 600, rates: repeat(0.01, 20)})
	require.Equal(t, engine.VerdictRollback, Decide(o).Verdict)
	o.Thresholds.Strict = true
	require.Equal(t, engine.VerdictContinue, Decide(o).Verdict)
}

func TestABExperimentEndsAtSignificance(t *testing.T) {
	t.Parallel()
	o := observe(3*time.Hour, 0.5, series{requests: 600, rates: repeat(0.01, 20)}, series{requests: 600, rates: repeat(0.01, 20)})
	o.Experiment = &Experiment{MinDuration: time.Hour, Significance: 0.95, MinDetectableEffect: 0.01}
	o.Candidate.Windows[MetricConversion] = []Window{{Start: start, Count: 20000, Sum: 2400}}
	o.Baseline.Windows[MetricConversion] = []Window{{Start: start, Count: 20000, Sum: 2000}}
	d := Decide(o)
	require.Equal(t, engine.VerdictContinue, d.Verdict)
	require.True(t, d.EndPhase)
	require.Equal(t, "v2", d.Experiment.Winner)
	require.InDelta(t, 0.02, d.Experiment.Lift, 1e-9)
	require.Less(t, d.Experiment.LiftLow, 0.02)
	require.Greater(t, d.Experiment.LiftHigh, 0.02)

	o.Now = start.Add(30 * time.Minute)
	require.False(t, Decide(o).EndPhase, "not before the minimum duration")
}

func TestThresholdsParseAndValidate(t *testing.T) {
	t.Parallel()
	th, err := ParseThresholds("thresholds", json.RawMessage(`{"error_rate_pp": 1, "warmup": "2m"}`), json.RawMessage(`{"confidence": 0.95}`))
	require.NoError(t, err)
	require.Equal(t, 1.0, th.ErrorRatePP)
	require.Equal(t, plan.Duration(2*time.Minute), th.Warmup)
	require.Equal(t, 0.95, th.Confidence)
	require.Equal(t, 1.5, th.LatencyRatio)

	_, err = ParseThresholds("thresholds", json.RawMessage(`{"confidence": 1.5, "p99_ratio": 0.5}`))
	var ve *plan.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Errors, 2)
	require.Equal(t, "thresholds.p99_ratio", ve.Errors[0].Field)
	require.Equal(t, "thresholds.confidence", ve.Errors[1].Field)

	_, err = ParseThresholds("thresholds", json.RawMessage(`{"error_rate": 2}`))
	require.ErrorContains(t, err, `unknown field "error_rate"`)
}

func TestARegressionMidPhaseIsJudgedOnRecentEvidence(t *testing.T) {
	t.Parallel()
	// Twenty healthy minutes, then the candidate starts failing 6% of its
	// requests: the whole-phase average is still low, but the restarted
	// test sees the change.
	rates := append(repeat(0.01, 40), repeat(0.06, 4)...)
	o := observe(22*time.Minute, 0.5, series{requests: 600, rates: rates}, series{requests: 600, rates: repeat(0.01, 44)})
	o.Thresholds.Warmup = 0
	d := Decide(o)
	require.Equal(t, engine.VerdictRollback, d.Verdict, d.Explanation)
	require.Contains(t, d.Metrics[0].Detail, "evidence since")
	require.Greater(t, d.Metrics[0].Candidate, 0.04, "the rate reported is the one since the change")
}

func TestShadowReport(t *testing.T) {
	t.Parallel()
	o := observe(20*time.Minute, 0, series{requests: 600, rates: repeat(0.01, 40), p99: repeat(260, 40)}, series{requests: 600, rates: repeat(0.01, 40), p99: repeat(200, 40)})
	o.Shadow = true
	o.Candidate.Windows[MetricResponseDiff] = []Window{{Start: start.Add(6 * time.Minute), Count: 1000, Sum: 25}}
	d := Decide(o)
	require.NotNil(t, d.Shadow)
	require.Equal(t, int64(1000), d.Shadow.Compared)
	require.InDelta(t, 0.025, d.Shadow.DifferentShare, 1e-12)
	require.Less(t, d.Shadow.DifferentLow, 0.025)
	require.Greater(t, d.Shadow.DifferentHigh, 0.025)
	require.InDelta(t, 30, d.Shadow.LatencyDiff, 1e-9, "latency windows' means are p99/2 in this series")
}

func TestLatencyQuantilesAreAllCompared(t *testing.T) {
	t.Parallel()
	d := Decide(observe(10*time.Minute, 0.5, series{requests: 600, rates: repeat(0.01, 20), p99: repeat(200, 20)}, series{requests: 600, rates: repeat(0.01, 20), p99: repeat(200, 20)}))
	var names []string
	for _, m := range d.Metrics {
		names = append(names, m.Metric)
	}
	require.Contains(t, names, "latency_p99")
	require.Equal(t, engine.VerdictContinue, d.Verdict)
}

func TestTheFirstWindowAfterWarmUpIsAwaited(t *testing.T) {
	t.Parallel()
	healthy := series{requests: 600, rates: repeat(0.01, 20)}
	d := Decide(observe(5*time.Minute, 0.25, healthy, healthy))
	require.Equal(t, engine.VerdictWarmingUp, d.Verdict, "nothing has been measured since the warm-up ended")
	require.Contains(t, d.Explanation, "collecting the first 30s window")
	require.Equal(t, engine.VerdictContinue, Decide(observe(5*time.Minute+30*time.Second, 0.25, healthy, healthy)).Verdict)
}

func TestACandidateWhoseBaselineServesNobodyIsJudgedOnItsOwn(t *testing.T) {
	t.Parallel()
	// After a blue-green switch the old version is kept warm with no
	// traffic: the candidate has requests, the baseline none.
	idle := series{requests: 0, rates: repeat(0, 20)}
	warming := Decide(observe(30*time.Second, 1, series{requests: 600, rates: repeat(0.012, 20)}, idle))
	require.Equal(t, engine.VerdictWarmingUp, warming.Verdict, "no fast fail against a baseline without requests: %s", warming.Explanation)
	require.False(t, warming.Path.FastFail)
	d := Decide(observe(10*time.Minute, 1, series{requests: 600, rates: repeat(0.01, 20), p99: repeat(240, 20)}, idle))
	require.Equal(t, engine.VerdictContinue, d.Verdict, d.Explanation)
	for _, m := range d.Metrics {
		if m.Metric == "latency_p99" {
			require.Equal(t, OutcomeInsufficient, m.Outcome)
			require.InDelta(t, 240, m.Candidate, 0.001, "the candidate's latency is shown even with nothing to compare it with")
			require.Contains(t, m.Detail, "baseline served no requests")
		}
	}
	require.Equal(t, OutcomeOK, d.Metrics[0].Outcome)
	require.Contains(t, d.Metrics[0].Detail, "baseline served no requests")
	require.Contains(t, d.Explanation, "v1 serves no traffic, so it is judged on its own")

	d = Decide(observe(10*time.Minute, 1, series{requests: 600, rates: repeat(0.09, 20)}, idle))
	require.Equal(t, engine.VerdictRollback, d.Verdict, "an error rate far above the threshold is caught without a baseline")
	require.Equal(t, OutcomeDegraded, d.Metrics[0].Outcome)
}

func TestAGridAlignedFirstWindowIsAwaitedNotInconclusive(t *testing.T) {
	t.Parallel()
	th := DefaultThresholds()
	warm, step := time.Duration(th.Warmup), time.Duration(th.Window)
	// Windows on a grid: none has started since the warm-up ended yet,
	// one and a half windows after it.
	o := observe(warm+step+step/2, 0.5, series{}, series{})
	o.Candidate.Windows = map[string][]Window{MetricErrorRate: {{Start: start.Add(warm - step/2), End: start.Add(warm + step/2), Count: 600, Sum: 6}}}
	o.Baseline.Windows = map[string][]Window{MetricErrorRate: {{Start: start.Add(warm - step/2), End: start.Add(warm + step/2), Count: 600, Sum: 6}}}
	d := Decide(o)
	require.Equal(t, engine.VerdictWarmingUp, d.Verdict, d.Explanation)

	// Two windows past the warm-up with still no requests is missing data.
	o.Now = start.Add(warm + 2*step + time.Second)
	d = Decide(o)
	require.Equal(t, engine.VerdictInconclusive, d.Verdict, d.Explanation)
}
