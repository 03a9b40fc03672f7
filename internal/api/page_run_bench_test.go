package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// BenchmarkRunPage measures the server's time to render a run page that a
// long canary has filled: 300 events, two hours of 30-second windows of
// every charted metric for both cohorts, and a decision. It reports the
// median and 99th percentile of the whole request, database reads
// included.
func BenchmarkRunPage(b *testing.B) {
	ctx := context.Background()
	f := newReleaseFixture(b)
	f.addUser("ada", true)
	app, env := f.environment("checkout", "production", nil)
	run := f.start(app, env, "canary", "", "ada")
	run = f.stepUntil(run.ID, store.RunRunning)
	for i := range 300 {
		_, err := f.Store.AppendRunEvent(ctx, run.ID, store.Event{Type: "analysis.continue", Actor: "engine",
			Payload: map[string]any{"explanation": fmt.Sprintf("Continue: v2 is within every threshold (check %d).", i)}})
		require.NoError(b, err)
	}
	start := time.Now().Add(-2 * time.Hour).Truncate(30 * time.Second)
	var windows []store.MetricWindow
	for _, cohort := range []string{"candidate", "baseline"} {
		for i := range 240 {
			ws := start.Add(time.Duration(i) * 30 * time.Second)
			p50, p95, p99 := 120.0, 190.0, 240.0
			for _, metric := range []string{analysis.MetricErrorRate, analysis.MetricLatency, analysis.MetricHealthChecks, analysis.MetricCPU, analysis.MetricMemory} {
				w := store.MetricWindow{RunID: run.ID, Cohort: cohort, Metric: metric, Start: ws, End: ws.Add(30 * time.Second), Count: 1500, Sum: 15}
				if metric == analysis.MetricLatency {
					w.P50, w.P95, w.P99 = &p50, &p95, &p99
				}
				windows = append(windows, w)
			}
		}
	}
	_, err := f.Store.InsertMetricWindows(ctx, windows)
	require.NoError(b, err)
	f.decide(f.run(run.ID), engine.VerdictContinue, "Continue: v2 is within every threshold (error rate 1.0% vs 1.0% on v1, 5,000 requests).", 0.01, 0.01, analysis.OutcomeOK)

	ada := f.signIn("ada")
	path := fmt.Sprintf("/runs/%d", run.ID)
	require.Equal(b, http.StatusOK, ada.get(path).Code)

	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res := ada.get(path)
		durations = append(durations, time.Since(t0))
		if res.Code != http.StatusOK {
			b.Fatalf("GET %s answered %d", path, res.Code)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	q := func(p float64) float64 {
		return float64(durations[int(p*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}
