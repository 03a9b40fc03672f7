// Package analysis judges a run's phase from metrics: the candidate version
// against its baseline, with the thresholds of the environment.
package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine"
)

// Sample is what a metric source reports for one version over a window.
type Sample struct {
	Requests            int64   `json:"requests"`
	Errors              int64   `json:"errors"`
	LatencyP99          float64 `json:"latency_p99_ms"`
	HealthCheckFailures int     `json:"health_check_failures"`
}

// ErrorRate is the share of failed requests; 0 without requests.
func (s Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// SampleSource reports samples of one version of an app in an environment.
type SampleSource interface {
	Sample(ctx context.Context, app, env, version string, from, to time.Time) (Sample, error)
}

// Thresholds are the limits a candidate must stay within.
type Thresholds struct {
	// ErrorRateIncrease is how far the candidate's error rate may exceed the
	// baseline's, in percentage points. Default 2.
	ErrorRateIncrease float64 `json:"error_rate_pp"`
	// LatencyRatio is how many times the baseline's p99 the candidate's may
	// reach. Default 1.5.
	LatencyRatio float64 `json:"p99_ratio"`
	// HealthCheckFailures is how many failed health checks are tolerated. Default 0.
	HealthCheckFailures int `json:"health_check_failures"`
	// MinRequests is the fewest candidate requests a verdict rests on. Default 100.
	MinRequests int64 `json:"min_requests"`
	// Warmup is ignored after a traffic change. Default 1m.
	Warmup time.Duration `json:"-"`
	// Window is how far back each judgement looks. Default 5m.
	Window time.Duration `json:"-"`
}

// ThresholdAnalyzer compares the candidate with the baseline on error rate,
// p99 latency and health checks over the recent window and rolls back on
// any breach. Missing data is inconclusive, never a pass.
type ThresholdAnalyzer struct {
	Source     SampleSource
	Thresholds Thresholds
}

func (a *ThresholdAnalyzer) thresholds() Thresholds {
	t := a.Thresholds
	if t.ErrorRateIncrease == 0 {
		t.ErrorRateIncrease = 2
	}
	if t.LatencyRatio == 0 {
		t.LatencyRatio = 1.5
	}
	if t.MinRequests == 0 {
		t.MinRequests = 100
	}
	if t.Warmup == 0 {
		t.Warmup = time.Minute
	}
	if t.Window == 0 {
		t.Window = 5 * time.Minute
	}
	return t
}

// check is one metric's comparison, kept in the decision record.
type check struct {
	Metric    string  `json:"metric"`
	Candidate float64 `json:"candidate"`
	Baseline  float64 `json:"baseline"`
	Threshold float64 `json:"threshold"`
	Degraded  bool    `json:"degraded"`
}

// Analyze judges the phase described by req.
func (a *ThresholdAnalyzer) Analyze(ctx context.Context, req engine.AnalysisRequest) (engine.Analysis, error) {
	th := a.thresholds()
	from := req.PhaseStartedAt.Add(th.Warmup)
	if req.Now.Sub(from) > th.Window {
		from = req.Now.Add(-th.Window)
	}
	record := map[string]any{
		"window_start": from, "window_end": req.Now, "candidate_version": req.Run.ToVersion,
		"exposed_share": req.Phase.ExposedShare, "thresholds": th,
	}
	result := func(v engine.Verdict, explanation string) (engine.Analysis, error) {
		record["verdict"] = v
		b, err := json.Marshal(record)
		if err != nil {
			return engine.Analysis{}, err
		}
		return engine.Analysis{Verdict: v, Explanation: explanation, Record: b}, nil
	}
	if req.Now.Before(from) {
		return result(engine.VerdictWarmingUp, fmt.Sprintf("Warming up: judging starts %s after the traffic change.", th.Warmup))
	}
	cand, err := a.Source.Sample(ctx, req.App.Slug, req.Environment.Name, req.Run.ToVersion, from, req.Now)
	if err != nil {
		return engine.Analysis{}, fmt.Errorf("reading candidate metrics: %w", err)
	}
	record["candidate"] = cand
	var base Sample
	hasBaseline := req.Phase.Baseline != "" && req.Run.FromVersion != ""
	if hasBaseline {
		if base, err = a.Source.Sample(ctx, req.App.Slug, req.Environment.Name, req.Run.FromVersion, from, req.Now); err != nil {
			return engine.Analysis{}, fmt.Errorf("reading baseline metrics: %w", err)
		}
		record["baseline"] = base
		record["baseline_version"] = req.Run.FromVersion
	}

	var checks []check
	health := check{Metric: "health_check_failures", Candidate: float64(cand.HealthCheckFailures), Threshold: float64(th.HealthCheckFailures)}
	health.Degraded = cand.HealthCheckFailures > th.HealthCheckFailures
	checks = append(checks, health)
	if cand.Requests >= th.MinRequests && (!hasBaseline || base.Requests >= th.MinRequests) {
		er := check{Metric: "error_rate", Candidate: cand.ErrorRate(), Baseline: base.ErrorRate(), Threshold: base.ErrorRate() + th.ErrorRateIncrease/100}
		er.Degraded = er.Candidate > er.Threshold
		checks = append(checks, er)
		if hasBaseline && base.LatencyP99 > 0 {
			lat := check{Metric: "latency_p99_ms", Candidate: cand.LatencyP99, Baseline: base.LatencyP99, Threshold: base.LatencyP99 * th.LatencyRatio}
			lat.Degraded = lat.Candidate > lat.Threshold
			checks = append(checks, lat)
		}
	}
	record["checks"] = checks

	var degraded []string
	for _, c := range checks {
		if c.Degraded {
			degraded = append(degraded, describe(c))
		}
	}
	if len(degraded) > 0 {
		return result(engine.VerdictRollback, "Rolled back: "+strings.Join(degraded, "; ")+".")
	}
	if len(checks) == 1 && req.Phase.ExposedShare > 0 {
		return result(engine.VerdictInconclusive, fmt.Sprintf(
			"Inconclusive: %d candidate requests in the window, fewer than the %d a verdict needs.", cand.Requests, th.MinRequests))
	}
	return result(engine.VerdictContinue, fmt.Sprintf("Continue: %s is within every threshold (%d requests, %.2f%% errors).",
		req.Run.ToVersion, cand.Requests, 100*cand.ErrorRate()))
}

func describe(c check) string {
	switch c.Metric {
	case "error_rate":
		return fmt.Sprintf("candidate error rate %.1f%% vs %.1f%% baseline (limit %.1f%%)", 100*c.Candidate, 100*c.Baseline, 100*c.Threshold)
	case "latency_p99_ms":
		return fmt.Sprintf("candidate p99 %.0f ms vs %.0f ms baseline (limit %.0f ms)", c.Candidate, c.Baseline, c.Threshold)
	default:
		return fmt.Sprintf("%.0f failed health checks (limit %.0f)", c.Candidate, c.Threshold)
	}
}
