package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// maxWindows bounds how many windows one evaluation reads; longer phases
// get longer windows.
const maxWindows = 720

// SourceFor returns the metric source an environment is configured with.
type SourceFor func(env store.Environment) (Source, error)

// Analyzer is the engine's analyzer: it reads the candidate's and the
// baseline's windows from the environment's metric source and applies
// Decide with the environment's thresholds and the run's overrides.
type Analyzer struct {
	Sources SourceFor
	// Recorder, when set, keeps the windows read from sources whose data
	// lives outside Flightdeck, so the run page can chart every run.
	Recorder WindowRecorder
}

// WindowRecorder stores observed windows; *store.Store implements it.
type WindowRecorder interface {
	RecordObservedWindows(ctx context.Context, runID int64, windows []store.MetricWindow, upTo time.Time) (int64, error)
}

// StoredSource is implemented by sources that read windows Flightdeck
// already stores (pushed metrics); their windows are not recorded again.
type StoredSource interface {
	ReadsStoredWindows()
}

// Analyze gathers the observations of one phase and decides.
func (a *Analyzer) Analyze(ctx context.Context, req engine.AnalysisRequest) (engine.Analysis, error) {
	overrides, err := RunThresholds(req.Run.Params)
	if err != nil {
		return engine.Analysis{}, err
	}
	th, err := ParseThresholds("thresholds", req.Environment.Thresholds, overrides)
	if err != nil {
		return engine.Analysis{}, err
	}
	obs := Observations{
		Now: req.Now, PhaseStartedAt: req.PhaseStartedAt,
		CandidateVersion: req.Run.ToVersion, ExposedShare: req.Phase.ExposedShare, Thresholds: th,
	}
	obs.Shadow = req.Phase.Kind == plan.KindMirror
	if req.Phase.Baseline != "" && req.Run.FromVersion != "" {
		obs.BaselineVersion = req.Run.FromVersion
	}
	if e := req.Phase.Experiment; e != nil {
		obs.Experiment = &Experiment{MinDuration: time.Duration(e.MinDuration), Significance: e.Significance, MinDetectableEffect: e.MinDetectableEffect}
	}

	src, err := a.Sources(req.Environment)
	if err != nil {
		obs.SourceErrors = append(obs.SourceErrors, err.Error())
		return analysis(Decide(obs))
	}
	step := time.Duration(th.Window)
	if span := req.Now.Sub(req.PhaseStartedAt); span > step*maxWindows {
		step = (span/maxWindows + time.Second).Truncate(time.Second)
	}
	q := Query{App: req.App.Slug, Environment: req.Environment.Name, RunID: req.Run.ID, From: req.PhaseStartedAt, To: req.Now, Step: step}
	read := func(cohort, version string) Cohort {
		q := q
		q.Cohort, q.Version = cohort, version
		ws, err := src.Windows(ctx, q, Metrics)
		if err != nil {
			obs.SourceErrors = append(obs.SourceErrors, fmt.Sprintf("%s metrics of %s: %v", cohort, version, err))
		}
		c := Cohort{Windows: ws}
		if err == nil {
			a.record(ctx, req, cohort, src, ws, step)
		}
		if ss, ok := src.(SignatureSource); ok && err == nil {
			if c.Signatures, err = ss.Signatures(ctx, q); err != nil {
				obs.SourceErrors = append(obs.SourceErrors, fmt.Sprintf("error messages of %s: %v", version, err))
			}
		}
		return c
	}
	obs.Candidate = read("candidate", req.Run.ToVersion)
	if obs.BaselineVersion != "" {
		obs.Baseline = read("baseline", obs.BaselineVersion)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return engine.Analysis{}, ctx.Err()
	}
	return analysis(Decide(obs))
}

// record keeps the complete windows of one cohort for the run page's
// charts. A failure to keep them costs the charts points, never the
// decision, so it is logged and nothing more.
func (a *Analyzer) record(ctx context.Context, req engine.AnalysisRequest, cohort string, src Source, ws map[string][]Window, step time.Duration) {
	if a.Recorder == nil {
		return
	}
	if _, stored := src.(StoredSource); stored {
		return
	}
	var rows []store.MetricWindow
	for metric, windows := range ws {
		for _, w := range windows {
			if w.End.Sub(w.Start) < step {
				// The newest window is cut short at the time of the
				// analysis; the next analysis reads it whole.
				continue
			}
			rows = append(rows, store.MetricWindow{
				RunID: req.Run.ID, Cohort: cohort, Metric: metric, Start: w.Start, End: w.End,
				Count: w.Count, Sum: w.Sum, P50: w.P50, P95: w.P95, P99: w.P99,
			})
		}
	}
	if _, err := a.Recorder.RecordObservedWindows(ctx, req.Run.ID, rows, req.Now); err != nil && ctx.Err() == nil {
		slog.WarnContext(ctx, "keeping metric windows for the run page's charts",
			slog.Int64("run_id", req.Run.ID), slog.String("cohort", cohort), slog.String("error", err.Error()))
	}
}

func analysis(d Decision) (engine.Analysis, error) {
	record, err := json.Marshal(d)
	if err != nil {
		return engine.Analysis{}, fmt.Errorf("encoding decision record: %w", err)
	}
	return engine.Analysis{Verdict: d.Verdict, Explanation: d.Explanation, Record: record, EndPhase: d.EndPhase}, nil
}

// RunThresholds returns the "thresholds" object of a run's parameters.
func RunThresholds(params json.RawMessage) (json.RawMessage, error) {
	if len(params) == 0 {
		return nil, nil
	}
	var p struct {
		Thresholds json.RawMessage `json:"thresholds"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("reading run parameters: %w", err)
	}
	return p.Thresholds, nil
}

// ValidateRun checks the thresholds a run overrides against the
// environment's, so a run with bad ones is refused before it is stored.
func (a *Analyzer) ValidateRun(env store.Environment, params json.RawMessage) error {
	overrides, err := RunThresholds(params)
	if err != nil {
		return err
	}
	_, err = ParseThresholds("params.thresholds", env.Thresholds, overrides)
	return err
}
