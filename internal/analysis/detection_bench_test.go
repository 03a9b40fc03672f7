package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// The detection benchmark puts Flightdeck's rollback decision side by side
// with the rules of Flagger, Argo Rollouts and a Kayenta-style judge on the
// same seeded, simulated request streams, so that the claim "Flightdeck rolls
// a bad canary back sooner without rolling back more healthy ones" rests on
// figures anyone can reproduce with `make bench`.
//
// The canary serves 20 requests/s and the stable 60 requests/s: the canary
// step holds 25% of traffic, so Flightdeck's decision sees an exposed share
// of 0.25. That is above the default exposure limit of 10%, so a degraded
// candidate is rolled back at once rather than watched longer, and the
// comparison is about how fast each rule finds the degradation.
const (
	detectionCanaryRPS = 20
	detectionStableRPS = 60
	// detectionExposedShare is the canary's share of traffic, 20/(20+60).
	detectionExposedShare = 0.25
	// detectionBaseRate is the error rate of a healthy version and
	// detectionFaultRate that of the canary after the fault starts.
	detectionBaseRate  = 0.01
	detectionFaultRate = 0.05
	// detectionOnset is when the canary starts failing in the fault
	// scenario: a minute of healthy traffic comes first, as when a bad code
	// path is only reached after caches warm or a flag flips.
	detectionOnset = 60 * time.Second
	// detectionCap is how long after onset a rule may take before it counts
	// as never detecting the fault; it is also the length of a healthy run.
	detectionCap = 30 * time.Minute
	// detectionStep is the length of one metric window and the evaluation
	// interval of every rule: 10 s, the Flagger interval being compared.
	detectionStep = 10 * time.Second
	// detectionRuns is how many seeded streams each scenario simulates.
	detectionRuns = 1000
	// detectionLimit is the absolute error-rate limit the threshold-based
	// rules compare against: the known stable rate plus the 2 percentage
	// points Flightdeck tolerates, so that every rule looks for the same
	// regression.
	detectionLimit = detectionBaseRate + 0.02
)

// PCG stream selectors keep the fault and healthy scenarios independent
// while both are numbered by the same seeds.
const (
	faultStreamID   = 0xFA17
	healthyStreamID = 0xA1A1
)

// detectionStream is one simulated run, already summed into windows of
// detectionStep: requests and failed requests of the canary and the stable.
// Every rule reads the same stream, so differences between rules come from
// the rules, not from the luck of the draw.
type detectionStream struct {
	canaryRequests, canaryErrors []int64
	stableRequests, stableErrors []int64
}

// windows is how many complete windows the stream holds.
func (s detectionStream) windows() int { return len(s.canaryRequests) }

// simulateStream draws a stream second by second: requests ~ Poisson(rate),
// failed requests ~ Binomial(requests, error rate). The canary's error rate
// switches to faultRate at onset; onset < 0 means it never does.
func simulateStream(rng *rand.Rand, length, onset time.Duration, faultRate float64) detectionStream {
	seconds := int(length / time.Second)
	perWindow := int(detectionStep / time.Second)
	n := seconds / perWindow
	s := detectionStream{
		canaryRequests: make([]int64, n), canaryErrors: make([]int64, n),
		stableRequests: make([]int64, n), stableErrors: make([]int64, n),
	}
	for sec := range n * perWindow {
		w := sec / perWindow
		canaryRate := detectionBaseRate
		if onset >= 0 && time.Duration(sec)*time.Second >= onset {
			canaryRate = faultRate
		}
		cr := poisson(rng, detectionCanaryRPS)
		s.canaryRequests[w] += cr
		s.canaryErrors[w] += binomial(rng, cr, canaryRate)
		sr := poisson(rng, detectionStableRPS)
		s.stableRequests[w] += sr
		s.stableErrors[w] += binomial(rng, sr, detectionBaseRate)
	}
	return s
}

// poisson draws by multiplying uniforms (Knuth): exact, and cheap for the
// small means of one second of traffic.
func poisson(rng *rand.Rand, mean float64) int64 {
	limit := math.Exp(-mean)
	var k int64
	for p := rng.Float64(); p > limit; p *= rng.Float64() {
		k++
	}
	return k
}

// binomial draws by inverting the distribution function, which takes a few
// steps when n·p is small, as it is for the errors of one second.
func binomial(rng *rand.Rand, n int64, p float64) int64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	ratio := p / (1 - p)
	f := math.Pow(1-p, float64(n))
	u := rng.Float64()
	var k int64
	for u > f && k < n {
		u -= f
		k++
		f *= ratio * float64(n-k+1) / float64(k)
	}
	return k
}

// ruleOutcome is what a rule did with one stream.
type ruleOutcome struct {
	// rolledBack reports a rollback, at the evaluation that made it (time
	// since the stream started).
	rolledBack bool
	at         time.Duration
	// monitorLonger counts evaluations of Flightdeck's decision that asked
	// to watch longer; they are not rollbacks.
	monitorLonger int
}

// detectionRule judges a stream the way one tool would, on its own schedule.
type detectionRule interface {
	judge(s detectionStream) ruleOutcome
}

// flightdeckRule is Flightdeck's Decide evaluated after every window on the
// windows since the phase started, exactly as the analyzer hands them over.
type flightdeckRule struct {
	exposedShare float64
	thresholds   Thresholds
}

// newFlightdeckRule is the decision with the default thresholds, warm-up off
// so that every rule may act from the first window, and windows of
// detectionStep.
func newFlightdeckRule(exposedShare float64) flightdeckRule {
	t := DefaultThresholds()
	t.Warmup = 0
	t.Window = plan.Duration(detectionStep)
	return flightdeckRule{exposedShare: exposedShare, thresholds: t}
}

var detectionStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (r flightdeckRule) judge(s detectionStream) ruleOutcome {
	candidate := make([]Window, s.windows())
	baseline := make([]Window, s.windows())
	for i := range candidate {
		from := detectionStart.Add(time.Duration(i) * detectionStep)
		candidate[i] = Window{Start: from, End: from.Add(detectionStep), Count: s.canaryRequests[i], Sum: float64(s.canaryErrors[i])}
		baseline[i] = Window{Start: from, End: from.Add(detectionStep), Count: s.stableRequests[i], Sum: float64(s.stableErrors[i])}
	}
	var out ruleOutcome
	for k := 1; k <= s.windows(); k++ {
		now := detectionStart.Add(time.Duration(k) * detectionStep)
		d := Decide(Observations{
			Now: now, PhaseStartedAt: detectionStart,
			CandidateVersion: "canary", BaselineVersion: "stable", ExposedShare: r.exposedShare,
			Candidate:  Cohort{Windows: map[string][]Window{MetricErrorRate: candidate[:k]}},
			Baseline:   Cohort{Windows: map[string][]Window{MetricErrorRate: baseline[:k]}},
			Thresholds: r.thresholds,
		})
		switch d.Verdict {
		case engine.VerdictRollback:
			out.rolledBack, out.at = true, now.Sub(detectionStart)
			return out
		case engine.VerdictMonitorLonger:
			out.monitorLonger++
		}
	}
	return out
}

// flaggerRule is Flagger's canary analysis: every interval it checks the
// canary's error rate over the metric interval against an absolute
// threshold, counts failed checks for the whole analysis (a passing check
// does not reset the count) and rolls back when the count reaches
// threshold. Flagger rolls back at the scheduler tick after the failing
// check; acting at the failing check itself, as here, flatters it by one
// interval.
type flaggerRule struct {
	// metricWindows is the metric interval in windows (1m = 6).
	metricWindows int
	limit         float64
	threshold     int
}

func (r flaggerRule) judge(s detectionStream) ruleOutcome {
	failed := 0
	for k := 1; k <= s.windows(); k++ {
		from := max(0, k-r.metricWindows)
		if errorRateOf(s.canaryRequests[from:k], s.canaryErrors[from:k]) > r.limit {
			failed++
		}
		if failed >= r.threshold {
			return ruleOutcome{rolledBack: true, at: time.Duration(k) * detectionStep}
		}
	}
	return ruleOutcome{}
}

// argoRule is an Argo Rollouts background AnalysisRun: a measurement every
// interval of the canary's error rate over the last window, failed when it
// exceeds the limit, and the run failed (the rollout aborted) when failed
// measurements exceed failureLimit. Failures count over the whole run, not
// consecutively, as Argo counts them.
type argoRule struct {
	limit        float64
	failureLimit int
}

func (r argoRule) judge(s detectionStream) ruleOutcome {
	failed := 0
	for k := 1; k <= s.windows(); k++ {
		if errorRateOf(s.canaryRequests[k-1:k], s.canaryErrors[k-1:k]) > r.limit {
			failed++
		}
		if failed > r.failureLimit {
			return ruleOutcome{rolledBack: true, at: time.Duration(k) * detectionStep}
		}
	}
	return ruleOutcome{}
}

// kayentaRule is a Kayenta-style judge: at every judgement interval it
// compares the canary's per-window error rates with the stable's over the
// whole run so far with a one-sided Mann-Whitney U test, and fails the
// canary when the test is significant and the canary's median is higher.
type kayentaRule struct {
	// everyWindows is the judgement interval in windows (60 s = 6).
	everyWindows int
	alpha        float64
}

func (r kayentaRule) judge(s detectionStream) ruleOutcome {
	for k := r.everyWindows; k <= s.windows(); k += r.everyWindows {
		canary := windowRates(s.canaryRequests[:k], s.canaryErrors[:k])
		stable := windowRates(s.stableRequests[:k], s.stableErrors[:k])
		res, err := stats.MannWhitneyU(canary, stable, stats.Greater)
		if err != nil {
			continue
		}
		cm, _ := stats.Quantile(canary, 0.5)
		sm, _ := stats.Quantile(stable, 0.5)
		if res.PValue < r.alpha && cm > sm {
			return ruleOutcome{rolledBack: true, at: time.Duration(k) * detectionStep}
		}
	}
	return ruleOutcome{}
}

// errorRateOf is failed requests over requests across the windows, 0 when
// there were none (the simulated streams always carry traffic).
func errorRateOf(requests, errors []int64) float64 {
	var n, e int64
	for i := range requests {
		n += requests[i]
		e += errors[i]
	}
	if n == 0 {
		return 0
	}
	return float64(e) / float64(n)
}

// windowRates is each window's error rate, leaving out windows without
// requests, which have none.
func windowRates(requests, errors []int64) []float64 {
	out := make([]float64, 0, len(requests))
	for i := range requests {
		if requests[i] > 0 {
			out = append(out, float64(errors[i])/float64(requests[i]))
		}
	}
	return out
}

// namedRule is a rule with the label the report prints.
type namedRule struct {
	name string
	rule detectionRule
}

// detectionRules are the rules compared, Flightdeck's first.
func detectionRules() []namedRule {
	return []namedRule{
		{"Flightdeck Decide (10 s windows)", newFlightdeckRule(detectionExposedShare)},
		{"Flagger (10 s × 10, 1m metric)", flaggerRule{metricWindows: 6, limit: detectionLimit, threshold: 10}},
		{"Argo Rollouts (10 s, failureLimit 3)", argoRule{limit: detectionLimit, failureLimit: 3}},
		{"Kayenta-style MWU (60 s, p < 0.01)", kayentaRule{everyWindows: 6, alpha: 0.01}},
	}
}

// ruleReport gathers one rule's results over every seed.
type ruleReport struct {
	name string
	// detection is each fault run's time from onset to rollback, +Inf when
	// the rule did not roll back within detectionCap; runs rolled back
	// before the onset are left out and counted in preOnset.
	detection     []float64
	preOnset      int
	falseRollback int
	healthyRuns   int
	monitorLonger int
}

func (r ruleReport) median() float64 { return nearestRank(r.detection, 0.5) }
func (r ruleReport) p95() float64    { return nearestRank(r.detection, 0.95) }

func (r ruleReport) detectedPct() float64 {
	found := 0
	for _, d := range r.detection {
		if !math.IsInf(d, 1) {
			found++
		}
	}
	return 100 * float64(found) / float64(max(1, len(r.detection)))
}

func (r ruleReport) falsePct() float64 {
	return 100 * float64(r.falseRollback) / float64(max(1, r.healthyRuns))
}

// nearestRank is the q-quantile by the nearest-rank method, which keeps
// "never" (+Inf) meaningful: a p95 of +Inf says more than 5% of faults went
// undetected.
func nearestRank(values []float64, q float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	s := slices.Clone(values)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// runDetection simulates runs fault streams and runs healthy streams per
// seed, feeds each stream to every rule and collects the reports. Seeds are
// spread over the CPUs; each result depends on its seed only.
func runDetection(rules []namedRule, runs int) []ruleReport {
	type seedResult struct{ fault, healthy []ruleOutcome }
	results := make([]seedResult, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				seed := int(next.Add(1)) - 1
				if seed >= runs {
					return
				}
				fault := simulateStream(rand.New(rand.NewPCG(uint64(seed), faultStreamID)), detectionOnset+detectionCap, detectionOnset, detectionFaultRate)
				healthy := simulateStream(rand.New(rand.NewPCG(uint64(seed), healthyStreamID)), detectionCap, -1, detectionBaseRate)
				res := seedResult{fault: make([]ruleOutcome, len(rules)), healthy: make([]ruleOutcome, len(rules))}
				for i, r := range rules {
					res.fault[i] = r.rule.judge(fault)
					res.healthy[i] = r.rule.judge(healthy)
				}
				results[seed] = res
			}
		})
	}
	wg.Wait()

	reports := make([]ruleReport, len(rules))
	for i, r := range rules {
		rep := ruleReport{name: r.name, healthyRuns: runs}
		for _, res := range results {
			f := res.fault[i]
			rep.monitorLonger += f.monitorLonger + res.healthy[i].monitorLonger
			switch {
			case !f.rolledBack:
				rep.detection = append(rep.detection, math.Inf(1))
			case f.at <= detectionOnset:
				// A rollback at or before the onset judged healthy traffic
				// only: a false rollback, not a detection.
				rep.preOnset++
			default:
				rep.detection = append(rep.detection, (f.at - detectionOnset).Seconds())
			}
			if res.healthy[i].rolledBack {
				rep.falseRollback++
			}
		}
		reports[i] = rep
	}
	return reports
}

// BenchmarkDetection prints how fast each rule rolls back a canary whose
// error rate goes from 1% to 5% (the stable stays at 1%), and how often it
// rolls back a healthy canary over a 30-minute A/A run, on the same seeded
// streams for every rule. It reports Flightdeck's median detection time,
// its false-rollback rate and its speed-up over Flagger's rule as metrics.
func BenchmarkDetection(b *testing.B) {
	rules := detectionRules()
	var reports []ruleReport
	for b.Loop() {
		reports = runDetection(rules, detectionRuns)
	}

	ours, flagger := reports[0], reports[1]
	speedup := flagger.median() / ours.median()
	b.ReportMetric(ours.median(), "median_s")
	b.ReportMetric(ours.falsePct(), "false_rollback_%")
	b.ReportMetric(speedup, "speedup_vs_flagger")
	// Benchmark logs are cut after ten lines, so the table is kept shorter.
	b.Log(strings.TrimSuffix(detectionTable(reports), "\n"))
}

// detectionTable renders the side-by-side comparison and Flightdeck's goals
// for detection: median ≤ 30 s, false rollbacks ≤ 1%, and at least 3× faster than
// Flagger's rule at an equal or lower false-rollback rate.
func detectionTable(reports []ruleReport) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "fault: stable %.0f%%, canary %.0f%% → %.0f%% at t=%s; canary %d req/s, stable %d req/s (exposed share %.2f); %d seeded runs per scenario; A/A runs of %s\n",
		100*detectionBaseRate, 100*detectionBaseRate, 100*detectionFaultRate, detectionOnset, detectionCanaryRPS, detectionStableRPS,
		detectionExposedShare, detectionRuns, detectionCap)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rule\tmedian detection s\tp95 detection s\tdetected %\tfalse rollback % (A/A)\tpre-onset rollback %\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t\n", r.name, seconds(r.median()), seconds(r.p95()),
			r.detectedPct(), r.falsePct(), 100*float64(r.preOnset)/float64(detectionRuns))
	}
	tw.Flush()

	ours, flagger := reports[0], reports[1]
	speedup := flagger.median() / ours.median()
	fmt.Fprintf(&sb, "Flightdeck vs Flagger: %.2f× faster (median %s s vs %s s); monitor_longer verdicts seen by Flightdeck: %d (counted as no rollback)\n",
		speedup, seconds(ours.median()), seconds(flagger.median()), ours.monitorLonger)
	fmt.Fprintf(&sb, "goal median ≤ 30 s: %s; goal false rollbacks ≤ 1%%: %s; goal ≥ 3× Flagger at ≤ its false-rollback rate: %s\n",
		met(ours.median() <= 30), met(ours.falsePct() <= 1), met(speedup >= 3 && ours.falsePct() <= flagger.falsePct()))
	return sb.String()
}

func seconds(s float64) string {
	if math.IsInf(s, 1) {
		return "never"
	}
	return fmt.Sprintf("%.0f", s)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
