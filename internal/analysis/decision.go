package analysis

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/flightdeckhq/flightdeck/internal/analysis/stats"
	"github.com/flightdeckhq/flightdeck/internal/engine"
)

// Cohort is what the sources reported for one side of the comparison.
type Cohort struct {
	// Windows holds each metric's windows since the phase started.
	Windows map[string][]Window
	// Signatures counts error messages, when the source sees them.
	Signatures map[string]int64
}

// Observations are everything one decision rests on.
type Observations struct {
	Now            time.Time
	PhaseStartedAt time.Time
	// Candidate and Baseline name the versions compared; Baseline is empty
	// when nothing else serves users (the candidate is judged on its own).
	CandidateVersion string
	BaselineVersion  string
	// ExposedShare is the share of users the candidate serves now.
	ExposedShare float64
	Candidate    Cohort
	Baseline     Cohort
	// SourceErrors are failures of the metric sources in this evaluation.
	SourceErrors []string
	Thresholds   Thresholds
	// Experiment, for an A/B split, asks for the conversion comparison.
	Experiment *Experiment
	// Shadow, for a mirrored phase, asks for the shadow report.
	Shadow bool
}

// Experiment is the A/B stopping rule of a split phase.
type Experiment struct {
	MinDuration         time.Duration `json:"min_duration"`
	Significance        float64       `json:"significance"`
	MinDetectableEffect float64       `json:"min_detectable_effect"`
}

// Outcomes of one metric's check.
const (
	OutcomeOK           = "ok"
	OutcomeDegraded     = "degraded"
	OutcomeInsufficient = "insufficient_data"
	OutcomeNoData       = "no_data"
)

// MetricResult is one metric's comparison with every number behind it.
type MetricResult struct {
	Metric    string  `json:"metric"`
	Candidate float64 `json:"candidate"`
	Baseline  float64 `json:"baseline"`
	Delta     float64 `json:"delta"`
	// RecentDelta is the difference over the last trend windows, for the
	// error rate: a regression that began mid-phase shows here first.
	RecentDelta *float64 `json:"recent_delta,omitempty"`
	Threshold   float64  `json:"threshold"`
	Unit        string   `json:"unit"`
	CandidateN  int64    `json:"candidate_n"`
	BaselineN   int64    `json:"baseline_n"`
	Test        string   `json:"test"`
	PValue      float64  `json:"p_value"`
	Confidence  float64  `json:"confidence"`
	Outcome     string   `json:"outcome"`
	Detail      string   `json:"detail,omitempty"`
}

// Path records which way the decision tree went, for the run page to light.
type Path struct {
	WarmingUp         bool `json:"warming_up"`
	FastFail          bool `json:"fast_fail"`
	Inconclusive      bool `json:"inconclusive"`
	Degraded          bool `json:"degraded"`
	ExposureOverLimit bool `json:"exposure_over_limit"`
	Worsening         bool `json:"worsening"`
}

// Trend is the candidate's excess error rate over the last windows.
type Trend struct {
	Windows     int       `json:"windows"`
	Differences []float64 `json:"differences"`
	Worsening   bool      `json:"worsening"`
}

// Decision is the record of one verdict: every input, the branch taken
// and a sentence for people. It is stored and shown as is.
type Decision struct {
	Verdict          engine.Verdict `json:"verdict"`
	Explanation      string         `json:"explanation"`
	Path             Path           `json:"path"`
	CandidateVersion string         `json:"candidate_version"`
	BaselineVersion  string         `json:"baseline_version,omitempty"`
	WindowFrom       time.Time      `json:"window_from"`
	WindowTo         time.Time      `json:"window_to"`
	ExposedShare     float64        `json:"exposed_share"`
	Metrics          []MetricResult `json:"metrics"`
	NewSignatures    []string       `json:"new_signatures,omitempty"`
	Trend            Trend          `json:"trend"`
	Errors           []string       `json:"errors,omitempty"`
	Thresholds       Thresholds     `json:"thresholds"`
	Experiment       *ABReport      `json:"experiment,omitempty"`
	Shadow           *ShadowReport  `json:"shadow,omitempty"`
	// EndPhase says the phase has its answer early (an A/B test reached
	// significance after its minimum duration).
	EndPhase bool `json:"end_phase"`
}

// ABReport is the A/B comparison of conversion between the arms.
type ABReport struct {
	ConversionA  float64 `json:"conversion_a"`
	ConversionB  float64 `json:"conversion_b"`
	UsersA       int64   `json:"users_a"`
	UsersB       int64   `json:"users_b"`
	Lift         float64 `json:"lift"`
	RelativeLift float64 `json:"relative_lift"`
	LiftLow      float64 `json:"lift_low"`
	LiftHigh     float64 `json:"lift_high"`
	PValue       float64 `json:"p_value"`
	Significant  bool    `json:"significant"`
	NeededPerArm int64   `json:"needed_per_arm"`
	Winner       string  `json:"winner,omitempty"`
}

// Decide applies the 5-minute framework: warm-up (with a fast-fail guard),
// per-metric checks with statistical support, then rollback when degraded
// and more than the exposure limit of users see it or it is getting worse,
// monitor longer when degraded but stable, continue otherwise. Missing data
// and failing sources are inconclusive, never a pass. It is pure.
func Decide(o Observations) Decision {
	t := o.Thresholds
	d := Decision{
		CandidateVersion: o.CandidateVersion, BaselineVersion: o.BaselineVersion,
		WindowFrom: o.PhaseStartedAt, WindowTo: o.Now, ExposedShare: o.ExposedShare,
		Thresholds: t, Errors: o.SourceErrors,
	}
	warmEnd := o.PhaseStartedAt.Add(time.Duration(t.Warmup))
	alpha := 1 - t.Confidence

	if len(o.SourceErrors) > 0 {
		d.Path.Inconclusive = true
		return finish(d, engine.VerdictInconclusive, "Inconclusive: the metric source failed ("+strings.Join(o.SourceErrors, "; ")+"); nothing is promoted on missing evidence.")
	}

	// Until the first window after the warm-up has passed there is nothing
	// to judge yet, which is not the same as missing data.
	if o.Now.Before(warmEnd.Add(time.Duration(t.Window))) {
		d.Path.WarmingUp = true
		d.WindowTo = o.Now
		er := errorRate(o, o.PhaseStartedAt, alpha, t, 0)
		d.Metrics = []MetricResult{er}
		ratio := er.Candidate / math.Max(er.Baseline, 0.001)
		// The guard compares with a baseline that serves users; one kept
		// warm without traffic gives no rate to be a multiple of.
		if o.BaselineVersion != "" && er.BaselineN > 0 && er.CandidateN >= t.FastFailMinRequests && ratio >= t.FastFailRatio && er.PValue <= alpha {
			d.Path.FastFail = true
			d.Path.Degraded = true
			return finish(d, engine.VerdictRollback, fmt.Sprintf(
				"Rolled back during warm-up: %s error rate %s vs %s on %s (%.0f× the baseline, %s requests) is overwhelming evidence.",
				o.CandidateVersion, pct(er.Candidate), pct(er.Baseline), o.BaselineVersion, ratio, count(er.CandidateN)))
		}
		if o.Now.Before(warmEnd) {
			return finish(d, engine.VerdictWarmingUp, fmt.Sprintf("Warming up: judging starts %s after the traffic change (%s left).",
				time.Duration(t.Warmup), warmEnd.Sub(o.Now).Round(time.Second)))
		}
		return finish(d, engine.VerdictWarmingUp, fmt.Sprintf("Warming up: collecting the first %s window after the warm-up.", time.Duration(t.Window)))
	}
	d.WindowFrom = warmEnd

	var results []MetricResult
	results = append(results, errorRate(o, warmEnd, alpha, t, t.ErrorRatePP/100))
	if o.BaselineVersion != "" {
		for _, q := range []string{"p99", "p95", "p50"} {
			results = append(results, latency(o, q, warmEnd, alpha, t))
		}
		results = append(results, utilisation(o, MetricCPU, warmEnd, alpha, t.CPUIncrease))
		results = append(results, utilisation(o, MetricMemory, warmEnd, alpha, t.MemoryIncrease))
	}
	results = append(results, healthChecks(o, warmEnd, t))
	d.NewSignatures = newSignatures(o, t)
	if len(d.NewSignatures) > 0 {
		results = append(results, MetricResult{Metric: "error_signatures", Candidate: float64(len(d.NewSignatures)), Threshold: 0,
			Unit: "count", Test: "seen only in the candidate", Outcome: OutcomeDegraded,
			Detail: "new errors: " + strings.Join(d.NewSignatures, ", ")})
	}
	d.Metrics = slices.DeleteFunc(results, func(m MetricResult) bool { return m.Metric == "" })
	if o.Experiment != nil {
		d.Experiment, d.EndPhase = abReport(o, *o.Experiment, warmEnd)
	}
	if o.Shadow {
		d.Shadow = shadowReport(o, warmEnd, t)
	}

	var degraded []MetricResult
	for _, m := range d.Metrics {
		if m.Outcome == OutcomeDegraded {
			degraded = append(degraded, m)
		}
	}
	d.Trend = trend(o, t)

	if len(degraded) == 0 {
		// A candidate that serves users but shows no traffic is not a pass.
		if o.ExposedShare > 0 && d.Metrics[0].Outcome == OutcomeNoData {
			// Sources that align windows to a grid (Prometheus) may not
			// have a whole window after the warm-up until up to two
			// windows past it: that is still warming up, not missing data.
			if o.Now.Before(warmEnd.Add(2 * time.Duration(t.Window))) {
				d.Path.WarmingUp = true
				return finish(d, engine.VerdictWarmingUp, fmt.Sprintf("Warming up: collecting the first whole %s window after the warm-up.", time.Duration(t.Window)))
			}
			d.Path.Inconclusive = true
			return finish(d, engine.VerdictInconclusive, fmt.Sprintf(
				"Inconclusive: no requests of %s were reported since the warm-up ended; nothing is promoted without evidence.", o.CandidateVersion))
		}
		return finish(d, engine.VerdictContinue, continueSentence(o, d))
	}
	d.Path.Degraded = true
	d.Path.ExposureOverLimit = o.ExposedShare > t.ExposureLimit
	d.Path.Worsening = d.Trend.Worsening
	what := describeAll(degraded, o)
	exposed := fmt.Sprintf("%s of users exposed", pct(o.ExposedShare))
	switch {
	case d.Path.ExposureOverLimit:
		return finish(d, engine.VerdictRollback, fmt.Sprintf("Rolled back: %s; %s (over the %s limit).", what, exposed, pct(t.ExposureLimit)))
	case d.Path.Worsening:
		return finish(d, engine.VerdictRollback, fmt.Sprintf("Rolled back: %s; %s; worsening over the last %d windows.", what, exposed, d.Trend.Windows))
	default:
		return finish(d, engine.VerdictMonitorLonger, fmt.Sprintf("Monitoring longer: %s; only %s and stable over the last %d windows.", what, exposed, d.Trend.Windows))
	}
}

func finish(d Decision, v engine.Verdict, explanation string) Decision {
	d.Verdict = v
	d.Explanation = explanation
	if d.Metrics == nil {
		d.Metrics = []MetricResult{}
	}
	return d
}

// since sums the windows of a metric that start at or after from and
// before to.
func since(ws []Window, from, to time.Time) (n int64, sum float64) {
	for _, w := range ws {
		if !w.Start.Before(from) && w.Start.Before(to) {
			n += w.Count
			sum += w.Sum
		}
	}
	return n, sum
}

func errorRate(o Observations, from time.Time, alpha float64, t Thresholds, threshold float64) MetricResult {
	cn, cs := since(o.Candidate.Windows[MetricErrorRate], from, o.Now)
	m := MetricResult{Metric: MetricErrorRate, Unit: "ratio", CandidateN: cn, Threshold: threshold, Confidence: t.Confidence}
	if cn == 0 {
		m.Outcome = OutcomeNoData
		m.Detail = "no candidate requests"
		return m
	}
	baselineN, _ := since(o.Baseline.Windows[MetricErrorRate], from, o.Now)
	if o.BaselineVersion == "" || baselineN == 0 {
		// Judged on its own: is the error rate above the threshold itself?
		// So is a candidate whose baseline serves nobody any more, as
		// after a blue-green switch while the old version is kept warm.
		if o.BaselineVersion != "" {
			m.Detail = "the baseline served no requests; judged on its own"
		}
		m.Candidate = cs / float64(cn)
		low, _ := stats.Wilson(int64(cs), cn, 2*t.Confidence-1)
		m.Test = "Wilson interval against the threshold"
		m.Delta = m.Candidate - threshold
		m.Outcome = OutcomeOK
		if low > threshold {
			m.Outcome = OutcomeDegraded
		}
		return m
	}
	margin := 0.0
	if t.Strict {
		margin = threshold
	}
	// The size of a difference is judged on the recent windows as well, so
	// a regression that starts mid-phase is not diluted by the healthy
	// minutes before it.
	recent := recentDifference(o, from, t.TrendWindows)
	m.RecentDelta = &recent
	m.Test = "mSPRT (always valid; whole phase and restarts with alpha spending)"
	m.Outcome = OutcomeOK

	// The evidence comes from a family of always-valid tests: one over the
	// whole phase, and one restarted every restart interval, the k-th with
	// its share alpha·6/(π²(k+1)²) of the error budget. The shares add up
	// to alpha, so the chance of any false rollback over the whole phase
	// stays within 1 - confidence however often it is checked, while a
	// regression that begins mid-phase is judged on evidence from after
	// it began.
	restart := time.Duration(t.TrendWindows) * time.Duration(t.Window)
	last := 0
	if restart > 0 {
		last = int(o.Now.Sub(from) / restart)
	}
	best := -1.0
	for k := 0; k <= last; k++ {
		if k > 0 && k < last-maxRecentRestarts {
			// Testing fewer members of the family only lowers the
			// chance of a false rollback; old restarts add little.
			continue
		}
		at := from.Add(time.Duration(k) * restart)
		cn, cs := since(o.Candidate.Windows[MetricErrorRate], at, o.Now)
		bn, bs := since(o.Baseline.Windows[MetricErrorRate], at, o.Now)
		share := alpha * 6 / (math.Pi * math.Pi * float64((k+1)*(k+1)))
		r := stats.ProportionTest{Alpha: share, Margin: margin, Tau: mixingScale}.Evaluate(int64(bs), bn, int64(cs), cn)
		degraded := bn > 0 && r.Significant && max(r.Difference, recent) > threshold
		if k == 0 {
			m.Candidate, m.Baseline, m.Delta, m.BaselineN, m.CandidateN = r.CandidateRate, r.BaselineRate, r.Difference, bn, cn
			m.Threshold = r.BaselineRate + threshold
			m.PValue = r.PValue
			if bn == 0 {
				m.Outcome = OutcomeNoData
				m.Detail = "no baseline requests"
				return m
			}
		}
		// Keep the strongest evidence relative to its share of the budget.
		if strength := share / math.Max(r.PValue, math.SmallestNonzeroFloat64); degraded && strength > best {
			best = strength
			m.Outcome = OutcomeDegraded
			m.Candidate, m.Baseline, m.Delta, m.BaselineN, m.CandidateN = r.CandidateRate, r.BaselineRate, r.Difference, bn, cn
			m.Threshold = r.BaselineRate + threshold
			m.PValue = r.PValue
			m.Confidence = 1 - share
			if k > 0 {
				m.Detail = fmt.Sprintf("evidence since %s (restart %d, alpha %.2g)", at.Format(time.RFC3339), k, share)
			}
		}
	}
	return m
}

// mixingScale is the spread of error-rate differences the sequential test
// is tuned to find fastest: regressions of a few percentage points, about
// twice the default 2 pp threshold. Any value keeps the test valid; it only
// moves where it is quickest.
const mixingScale = 0.04

// maxRecentRestarts is how many of the latest restarted tests are checked
// besides the whole-phase one.
const maxRecentRestarts = 10

// recentDifference is the candidate's excess error rate over the last n
// windows (those starting before now), both cohorts added up.
func recentDifference(o Observations, from time.Time, n int) float64 {
	last := func(ws []Window) (count int64, sum float64) {
		var kept []Window
		for _, w := range ws {
			if !w.Start.Before(from) && w.Start.Before(o.Now) {
				kept = append(kept, w)
			}
		}
		if len(kept) > n {
			kept = kept[len(kept)-n:]
		}
		for _, w := range kept {
			count += w.Count
			sum += w.Sum
		}
		return count, sum
	}
	cn, cs := last(o.Candidate.Windows[MetricErrorRate])
	bn, bs := last(o.Baseline.Windows[MetricErrorRate])
	if cn == 0 || bn == 0 {
		return 0
	}
	return cs/float64(cn) - bs/float64(bn)
}

// quantiles collects each window's value of a quantile since from.
func windowValues(ws []Window, from, to time.Time, pick func(Window) (float64, bool)) []float64 {
	var out []float64
	for _, w := range ws {
		if w.Start.Before(from) || !w.Start.Before(to) {
			continue
		}
		if v, ok := pick(w); ok && !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

func mean(w Window) (float64, bool) {
	if w.Count == 0 {
		return 0, false
	}
	return w.Sum / float64(w.Count), true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// minWindows is the fewest windows per side a distribution test rests on.
const minWindows = 3

// quantileOf picks one latency quantile of a window.
func quantileOf(name string) func(Window) (float64, bool) {
	return func(w Window) (float64, bool) {
		q := map[string]*float64{"p50": w.P50, "p95": w.P95, "p99": w.P99}[name]
		if q == nil || w.Count == 0 {
			return 0, false
		}
		return *q, true
	}
}

// latency compares one latency quantile (p50, p95 or p99) of the candidate
// with the baseline's: degraded when it exceeds the ratio threshold and the
// windows' values are significantly higher.
func latency(o Observations, quantile string, from time.Time, alpha float64, t Thresholds) MetricResult {
	pick := quantileOf(quantile)
	return compareWindows(
		windowValues(o.Candidate.Windows[MetricLatency], from, o.Now, pick),
		windowValues(o.Baseline.Windows[MetricLatency], from, o.Now, pick),
		MetricResult{Metric: "latency_" + quantile, Unit: "ms", Test: "Mann-Whitney U over window " + quantile + "s", Confidence: t.Confidence},
		alpha, func(base float64) float64 { return base * t.LatencyRatio })
}

// utilisation compares mean CPU or memory use: degraded when the candidate
// uses more than the allowed increase and significantly more.
func utilisation(o Observations, metric string, from time.Time, alpha, increase float64) MetricResult {
	return compareWindows(
		windowValues(o.Candidate.Windows[metric], from, o.Now, mean),
		windowValues(o.Baseline.Windows[metric], from, o.Now, mean),
		MetricResult{Metric: metric, Unit: "ratio", Test: "Mann-Whitney U over window means", Confidence: 1 - alpha},
		alpha, func(base float64) float64 { return base + increase })
}

// compareWindows judges per-window values of the candidate against the
// baseline's: the medians against the threshold derived from the baseline,
// and a one-sided Mann-Whitney U test for statistical support.
func compareWindows(c, b []float64, m MetricResult, alpha float64, threshold func(float64) float64) MetricResult {
	if len(c) == 0 && len(b) == 0 {
		return MetricResult{}
	}
	m.CandidateN, m.BaselineN, m.Outcome = int64(len(c)), int64(len(b)), OutcomeOK
	if len(c) < minWindows || len(b) < minWindows {
		// Show what there is, so that "too little data" never reads as 0.
		if len(c) > 0 {
			m.Candidate = median(c)
		}
		if len(b) > 0 {
			m.Baseline = median(b)
			m.Threshold = threshold(m.Baseline)
		}
		m.Outcome = OutcomeInsufficient
		m.Detail = fmt.Sprintf("needs %d windows on each side", minWindows)
		if len(b) == 0 {
			m.Detail = "the baseline served no requests to compare with"
		}
		return m
	}
	m.Candidate, m.Baseline = median(c), median(b)
	m.Delta = m.Candidate - m.Baseline
	m.Threshold = threshold(m.Baseline)
	r, err := stats.MannWhitneyU(c, b, "greater")
	if err != nil {
		m.Outcome = OutcomeInsufficient
		m.Detail = err.Error()
		return m
	}
	m.PValue = r.PValue
	if m.Candidate > m.Threshold && r.PValue <= alpha {
		m.Outcome = OutcomeDegraded
	}
	return m
}

func healthChecks(o Observations, from time.Time, t Thresholds) MetricResult {
	ws := o.Candidate.Windows[MetricHealthChecks]
	if len(ws) == 0 {
		return MetricResult{}
	}
	n, failed := since(ws, from, o.Now)
	m := MetricResult{Metric: MetricHealthChecks, Unit: "failures", Candidate: failed, CandidateN: n,
		Threshold: float64(t.HealthCheckFailures), Test: "count against the threshold", Outcome: OutcomeOK}
	if failed > float64(t.HealthCheckFailures) {
		m.Outcome = OutcomeDegraded
	}
	return m
}

func newSignatures(o Observations, t Thresholds) []string {
	var out []string
	for sig, n := range o.Candidate.Signatures {
		if n >= t.MinSignatureCount && o.Baseline.Signatures[sig] == 0 {
			out = append(out, sig)
		}
	}
	sort.Strings(out)
	return out
}

// trend is the candidate's excess error rate in each of the last windows;
// it is worsening when it grows window after window.
func trend(o Observations, t Thresholds) Trend {
	byStart := map[time.Time]Window{}
	for _, w := range o.Baseline.Windows[MetricErrorRate] {
		byStart[w.Start] = w
	}
	var diffs []float64
	for _, w := range o.Candidate.Windows[MetricErrorRate] {
		if w.Count == 0 || !w.Start.Before(o.Now) {
			continue
		}
		base := 0.0
		if b, ok := byStart[w.Start]; ok && b.Count > 0 {
			base = b.Sum / float64(b.Count)
		}
		diffs = append(diffs, w.Sum/float64(w.Count)-base)
	}
	if len(diffs) > t.TrendWindows {
		diffs = diffs[len(diffs)-t.TrendWindows:]
	}
	tr := Trend{Windows: t.TrendWindows, Differences: diffs}
	if len(diffs) == t.TrendWindows {
		tr.Worsening = diffs[len(diffs)-1] > 0
		for i := 1; i < len(diffs); i++ {
			tr.Worsening = tr.Worsening && diffs[i] > diffs[i-1]
		}
	}
	if tr.Differences == nil {
		tr.Differences = []float64{}
	}
	return tr
}

func abReport(o Observations, e Experiment, from time.Time) (*ABReport, bool) {
	bn, bs := since(o.Candidate.Windows[MetricConversion], o.PhaseStartedAt, o.Now)
	an, as := since(o.Baseline.Windows[MetricConversion], o.PhaseStartedAt, o.Now)
	if an == 0 || bn == 0 {
		return nil, false
	}
	r := stats.ABTest(int64(as), an, int64(bs), bn, e.Significance, e.MinDetectableEffect, 0.8)
	rep := &ABReport{
		ConversionA: r.RateA, ConversionB: r.RateB, UsersA: an, UsersB: bn, Lift: r.Lift, RelativeLift: r.RelativeLift,
		LiftLow: r.LiftLow, LiftHigh: r.LiftHigh, PValue: r.PValue, Significant: r.Significant, NeededPerArm: r.NeededPerArm,
	}
	if r.Significant {
		rep.Winner = o.BaselineVersion
		if r.Lift > 0 {
			rep.Winner = o.CandidateVersion
		}
	}
	return rep, r.Significant && o.Now.Sub(o.PhaseStartedAt) >= e.MinDuration
}

func describe(m MetricResult, o Observations) string {
	switch m.Metric {
	case MetricErrorRate:
		if o.BaselineVersion == "" {
			return fmt.Sprintf("%s error rate %s above the %s limit (%s requests)", o.CandidateVersion, pct(m.Candidate), pct(m.Threshold), count(m.CandidateN))
		}
		return fmt.Sprintf("%s error rate %s vs %s on %s (%+.1f pp > %.1f pp, %s confidence, %s requests)",
			o.CandidateVersion, pct(m.Candidate), pct(m.Baseline), o.BaselineVersion, 100*m.Delta,
			100*(m.Threshold-m.Baseline), pct(m.Confidence), count(m.CandidateN))
	case "latency_p99", "latency_p95", "latency_p50":
		return fmt.Sprintf("%s "+strings.TrimPrefix(m.Metric, "latency_")+" latency %.0f ms vs %.0f ms (%.1f× > %.1f×)", o.CandidateVersion, m.Candidate, m.Baseline,
			m.Candidate/math.Max(m.Baseline, 1e-9), m.Threshold/math.Max(m.Baseline, 1e-9))
	case MetricHealthChecks:
		return fmt.Sprintf("%.0f failed health checks (more than %.0f)", m.Candidate, m.Threshold)
	case MetricCPU, MetricMemory:
		return fmt.Sprintf("%s %s %s vs %s", o.CandidateVersion, m.Metric, pct(m.Candidate), pct(m.Baseline))
	default:
		return m.Detail
	}
}

func describeAll(ms []MetricResult, o Observations) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = describe(m, o)
	}
	return strings.Join(parts, "; ")
}

func continueSentence(o Observations, d Decision) string {
	er := d.Metrics[0]
	s := fmt.Sprintf("Continue: %s is within every threshold", o.CandidateVersion)
	if er.CandidateN > 0 {
		s += fmt.Sprintf(" (error rate %s", pct(er.Candidate))
		switch {
		case o.BaselineVersion != "" && er.BaselineN > 0:
			s += fmt.Sprintf(" vs %s on %s, %s requests)", pct(er.Baseline), o.BaselineVersion, count(er.CandidateN))
		case o.BaselineVersion != "":
			s += fmt.Sprintf(", %s requests; %s serves no traffic, so it is judged on its own)", count(er.CandidateN), o.BaselineVersion)
		default:
			s += fmt.Sprintf(", %s requests)", count(er.CandidateN))
		}
	}
	if d.Experiment != nil && d.Experiment.Significant {
		s += fmt.Sprintf("; the A/B test is significant: %s wins (p = %.3g)", d.Experiment.Winner, d.Experiment.PValue)
	}
	return s + "."
}

func pct(x float64) string {
	v := 100 * x
	if v != 0 && math.Abs(v) < 10 {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.0f%%", v)
}

// count prints a number with thousands separators, as people read them.
func count(n int64) string {
	return englishPrinter.Sprintf("%d", n)
}

var englishPrinter = message.NewPrinter(language.English)

// ShadowReport compares the shadow with the primary on mirrored traffic:
// how much slower (or faster) it answers and how often its answer differs.
type ShadowReport struct {
	// LatencyDiff is the shadow's mean latency minus the primary's, in ms,
	// with a Welch interval over the windows' means.
	LatencyDiff     float64 `json:"latency_diff_ms"`
	LatencyDiffLow  float64 `json:"latency_diff_low_ms"`
	LatencyDiffHigh float64 `json:"latency_diff_high_ms"`
	// Compared and Differed count the responses compared and those that
	// differed; the share has a Wilson interval.
	Compared       int64   `json:"compared"`
	Differed       int64   `json:"differed"`
	DifferentShare float64 `json:"different_share"`
	DifferentLow   float64 `json:"different_low"`
	DifferentHigh  float64 `json:"different_high"`
}

func shadowReport(o Observations, from time.Time, t Thresholds) *ShadowReport {
	r := &ShadowReport{}
	c := windowValues(o.Candidate.Windows[MetricLatency], from, o.Now, mean)
	b := windowValues(o.Baseline.Windows[MetricLatency], from, o.Now, mean)
	if len(c) >= 2 && len(b) >= 2 {
		mc, vc := meanVar(c)
		mb, vb := meanVar(b)
		r.LatencyDiff, r.LatencyDiffLow, r.LatencyDiffHigh = stats.WelchInterval(mb, vb, int64(len(b)), mc, vc, int64(len(c)), t.Confidence)
	}
	r.Compared, _ = since(o.Candidate.Windows[MetricResponseDiff], from, o.Now)
	_, differed := since(o.Candidate.Windows[MetricResponseDiff], from, o.Now)
	r.Differed = int64(differed)
	if r.Compared > 0 {
		r.DifferentShare = differed / float64(r.Compared)
		r.DifferentLow, r.DifferentHigh = stats.Wilson(r.Differed, r.Compared, t.Confidence)
	}
	return r
}

func meanVar(v []float64) (mean, variance float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(v)-1)
}
