package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// samples is a source with fixed samples per version.
type samples map[string]analysis.Sample

func (s samples) Sample(_ context.Context, _, _, version string, _, _ time.Time) (analysis.Sample, error) {
	if v, ok := s[version]; ok {
		return v, nil
	}
	return analysis.Sample{}, errors.New("no such series")
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func request(now time.Time, baseline string, exposed float64) engine.AnalysisRequest {
	return engine.AnalysisRequest{
		Run: store.Run{FromVersion: "v1", ToVersion: "v2"},
		App: store.App{Slug: "shop"}, Environment: store.Environment{Name: "prod"},
		Phase: plan.Phase{Baseline: baseline, ExposedShare: exposed, Analysis: true}, PhaseStartedAt: t0, Now: now,
	}
}

func TestThresholdVerdicts(t *testing.T) {
	t.Parallel()
	healthy := analysis.Sample{Requests: 2000, Errors: 20, LatencyP99: 200}
	for name, tc := range map[string]struct {
		src     samples
		now     time.Time
		base    string
		want    engine.Verdict
		explain string
	}{
		"warming up":      {samples{"v1": healthy, "v2": healthy}, t0.Add(30 * time.Second), "stable", engine.VerdictWarmingUp, "Warming up"},
		"healthy":         {samples{"v1": healthy, "v2": healthy}, t0.Add(3 * time.Minute), "stable", engine.VerdictContinue, "within every threshold"},
		"error rate":      {samples{"v1": healthy, "v2": {Requests: 2000, Errors: 100, LatencyP99: 200}}, t0.Add(3 * time.Minute), "stable", engine.VerdictRollback, "candidate error rate 5.0% vs 1.0% baseline (limit 3.0%)"},
		"latency":         {samples{"v1": healthy, "v2": {Requests: 2000, Errors: 20, LatencyP99: 320}}, t0.Add(3 * time.Minute), "stable", engine.VerdictRollback, "candidate p99 320 ms vs 200 ms baseline (limit 300 ms)"},
		"health checks":   {samples{"v2": {HealthCheckFailures: 2}}, t0.Add(3 * time.Minute), "", engine.VerdictRollback, "2 failed health checks (limit 0)"},
		"too few samples": {samples{"v1": healthy, "v2": {Requests: 12, Errors: 3}}, t0.Add(3 * time.Minute), "stable", engine.VerdictInconclusive, "fewer than the 100"},
		"just under":      {samples{"v1": healthy, "v2": {Requests: 2000, Errors: 59, LatencyP99: 299}}, t0.Add(3 * time.Minute), "stable", engine.VerdictContinue, "within every threshold"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := &analysis.ThresholdAnalyzer{Source: tc.src}
			got, err := a.Analyze(context.Background(), request(tc.now, tc.base, 0.25))
			require.NoError(t, err)
			require.Equal(t, tc.want, got.Verdict, got.Explanation)
			require.Contains(t, got.Explanation, tc.explain)
			var rec map[string]any
			require.NoError(t, json.Unmarshal(got.Record, &rec))
			require.Equal(t, string(tc.want), rec["verdict"])
		})
	}
}

func TestSourceFailureIsAnError(t *testing.T) {
	t.Parallel()
	a := &analysis.ThresholdAnalyzer{Source: samples{}}
	_, err := a.Analyze(context.Background(), request(t0.Add(3*time.Minute), "stable", 0.05))
	require.ErrorContains(t, err, "no such series")
}

// TestFaultyCanaryIsRolledBack runs a canary on the simulator with a
// version that fails 8% of its requests, through the engine and the store.
func TestFaultyCanaryIsRolledBack(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		faults string
		want   store.RunState
	}{
		"faulty":  {`{"v2": {"error_rate": 0.08}}`, store.RunRolledBack},
		"healthy": {`{}`, store.RunSucceeded},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			now := t0
			clock := func() time.Time { return now }
			st := store.New(dbtest.New(t), store.Options{Now: clock})
			fleet := simulator.New(simulator.Options{Seed: 3})
			reg := driver.NewRegistry()
			reg.Register("simulator", fleet)
			eng, err := engine.New(engine.Config{Store: st, Drivers: reg, Now: clock, AnalysisInterval: time.Minute,
				Analyzer: &analysis.ThresholdAnalyzer{Source: analysis.SimulatorSource{Fleet: fleet}},
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, err)

			app, err := st.CreateApp(ctx, store.NewApp{Slug: "shop", Name: "Shop"})
			require.NoError(t, err)
			env, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "prod",
				Driver: json.RawMessage(`{"type": "simulator", "requests_per_second": 50, "faults": ` + tc.faults + `}`)})
			require.NoError(t, err)
			env.StableVersion = "v1"
			env, err = st.UpdateEnvironment(ctx, env)
			require.NoError(t, err)
			run, _, err := eng.CreateRun(ctx, engine.NewRun{App: app, Environment: env, Version: "v2", Strategy: "canary", CreatedBy: "token:ci"})
			require.NoError(t, err)

			for i := 0; i < 2000; i++ {
				n, err := eng.RunOnce(ctx)
				require.NoError(t, err)
				if n > 0 {
					continue
				}
				next, err := st.NextDue(ctx)
				require.NoError(t, err)
				if next == nil {
					break
				}
				now = *next
			}
			got, err := st.Run(ctx, run.ID)
			require.NoError(t, err)
			require.Equal(t, tc.want, got.State, got.Reason)
			decisions, err := st.ListDecisions(ctx, run.ID, 0, 0)
			require.NoError(t, err)
			require.NotEmpty(t, decisions)
			last := decisions[len(decisions)-1]
			if tc.want == store.RunRolledBack {
				require.Equal(t, "rollback", last.Verdict)
				require.Contains(t, last.Explanation, "Rolled back: candidate error rate")
				require.Contains(t, got.Reason, "baseline (limit")
				require.Equal(t, 0, got.PhaseIndex, "caught at the first 5% step")
			}
		})
	}
}
