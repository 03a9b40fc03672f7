package analysis_test

import (
	"context"
	"encoding/json"
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
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestCanaryOnTheSimulator runs canaries through the engine, the store and
// the analyzer on the simulated fleet: a version failing 8% of requests is
// rolled back with a record that explains why; a healthy one is released.
func TestCanaryOnTheSimulator(t *testing.T) {
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
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			st := store.New(dbtest.New(t), store.Options{Now: clock})
			fleet := simulator.New(simulator.Options{Seed: 3})
			reg := driver.NewRegistry()
			reg.Register("simulator", fleet)
			an := &analysis.Analyzer{Sources: func(store.Environment) (analysis.Source, error) {
				return analysis.SimulatorSource{Fleet: fleet}, nil
			}, Recorder: st}
			eng, err := engine.New(engine.Config{Store: st, Drivers: reg, Now: clock, Analyzer: an,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

			for i := 0; i < 5000; i++ {
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
			var rec analysis.Decision
			require.NoError(t, json.Unmarshal(last.Record, &rec))
			require.Equal(t, last.Verdict, string(rec.Verdict))
			require.NotEmpty(t, rec.Metrics)
			// The windows the analysis read are kept for the run page's
			// charts: whole windows only, each once, in order.
			for _, cohort := range []string{"candidate", "baseline"} {
				kept, err := st.ListMetricWindows(ctx, run.ID, cohort, analysis.MetricErrorRate, time.Time{}, now.Add(time.Hour))
				require.NoError(t, err)
				require.NotEmpty(t, kept, "%s error-rate windows are kept", cohort)
				for i, w := range kept {
					require.Equal(t, kept[0].End.Sub(kept[0].Start), w.End.Sub(w.Start), "window %d is whole", i)
					require.Positive(t, w.Count)
					if i > 0 {
						require.False(t, w.Start.Before(kept[i-1].End), "window %d overlaps the one before", i)
					}
				}
			}
			if tc.want == store.RunRolledBack {
				require.Equal(t, 0, got.PhaseIndex, "caught at the first 5% step")
				require.True(t, rec.Path.Degraded)
				require.Equal(t, "error_rate", rec.Metrics[0].Metric)
				require.Equal(t, "degraded", rec.Metrics[0].Outcome)
				require.Contains(t, got.Reason, "v2 error rate")
				t.Log(got.Reason)
			}
		})
	}
}

func TestBadThresholdOverridesAreRefused(t *testing.T) {
	t.Parallel()
	an := &analysis.Analyzer{}
	err := an.ValidateRun(store.Environment{}, json.RawMessage(`{"thresholds": {"p99_ratio": 0}}`))
	require.ErrorContains(t, err, "params.thresholds.p99_ratio: must be at least 1")
	require.NoError(t, an.ValidateRun(store.Environment{}, json.RawMessage(`{"steps": [50, 100], "thresholds": {"p99_ratio": 2}}`)))
}
