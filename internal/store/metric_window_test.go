package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func ptr(v float64) *float64 { return &v }

// windowsFor builds n consecutive 10-second windows of one cohort's metric.
func windowsFor(runID int64, cohort, metric string, start time.Time, n int) []store.MetricWindow {
	out := make([]store.MetricWindow, n)
	for i := range out {
		s := start.Add(time.Duration(i) * 10 * time.Second)
		out[i] = store.MetricWindow{
			RunID: runID, Cohort: cohort, Metric: metric, Start: s, End: s.Add(10 * time.Second),
			Count: int64(100 + i), Sum: float64(i),
		}
	}
	return out
}

func TestMetricWindowsRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	latency := windowsFor(run.ID, "candidate", "latency", fixedNow, 5)
	latency[1].P50, latency[1].P95, latency[1].P99 = ptr(12.5), ptr(40), ptr(95.25)
	var all []store.MetricWindow
	all = append(all, latency...)
	all = append(all, windowsFor(run.ID, "baseline", "latency", fixedNow, 5)...)
	all = append(all, windowsFor(run.ID, "candidate", "error_rate", fixedNow, 5)...)
	n, err := f.store.InsertMetricWindows(ctx, all)
	require.NoError(t, err)
	require.Equal(t, int64(15), n)

	got, err := f.store.ListMetricWindows(ctx, run.ID, "candidate", "latency", fixedNow.Add(10*time.Second), fixedNow.Add(40*time.Second))
	require.NoError(t, err)
	require.Len(t, got, 3, "only windows starting in [from, to) of the cohort and metric")
	for i, w := range got {
		want := latency[i+1]
		require.True(t, want.Start.Equal(w.Start), "window %d starts at %v, want %v", i, w.Start, want.Start)
		require.True(t, want.End.Equal(w.End))
		require.Equal(t, want.Count, w.Count)
		require.Equal(t, want.Sum, w.Sum)
		require.Equal(t, run.ID, w.RunID)
		require.Equal(t, "candidate", w.Cohort)
		require.Equal(t, "latency", w.Metric)
	}
	require.Equal(t, ptr(12.5), got[0].P50)
	require.Equal(t, ptr(40.0), got[0].P95)
	require.Equal(t, ptr(95.25), got[0].P99)
	require.Nil(t, got[1].P50, "a window without quantiles reads back without them")

	none, err := f.store.ListMetricWindows(ctx, run.ID, "baseline", "error_rate", fixedNow, fixedNow.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestAnInvalidWindowWritesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	bad := windowsFor(run.ID, "candidate", "latency", fixedNow, 2)
	bad[1].End = bad[1].Start
	_, err := f.store.InsertMetricWindows(ctx, bad)
	require.ErrorIs(t, err, store.ErrInvalid, "a window must end after it starts")

	got, err := f.store.ListMetricWindows(ctx, run.ID, "candidate", "latency", fixedNow.Add(-time.Hour), fixedNow.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, got, "COPY is all or nothing")
}

func TestMultiRowInsertWritesTheSameRows(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	windows := windowsFor(run.ID, "candidate", "latency", fixedNow, 4)
	windows[2].P50, windows[2].P95, windows[2].P99 = ptr(1), ptr(2), ptr(3)
	n, err := store.InsertMetricWindowsRows(f.store, ctx, windows)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	got, err := f.store.ListMetricWindows(ctx, run.ID, "candidate", "latency", fixedNow, fixedNow.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, got, 4)
	require.Nil(t, got[1].P99, "a missing quantile stays NULL")
	require.Equal(t, ptr(3.0), got[2].P99)
	require.Equal(t, windows[3].Count, got[3].Count)
}

func TestRetentionDeletesOldWindowsInBatches(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	_, err := f.store.InsertMetricWindows(ctx, windowsFor(run.ID, "candidate", "latency", fixedNow, 25))
	require.NoError(t, err)
	cutoff := fixedNow.Add(230 * time.Second) // windows 0..22 started before it

	deleted, err := f.store.DeleteMetricWindowsBefore(ctx, cutoff, 10)
	require.NoError(t, err)
	require.Equal(t, int64(23), deleted)
	left, err := f.store.ListMetricWindows(ctx, run.ID, "candidate", "latency", fixedNow, fixedNow.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, left, 2)
	require.True(t, left[0].Start.Equal(cutoff))

	deleted, err = f.store.DeleteMetricWindowsBefore(ctx, cutoff, 10)
	require.NoError(t, err)
	require.Zero(t, deleted, "running retention again finds nothing")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.store.DeleteMetricWindowsBefore(cancelled, fixedNow.Add(time.Hour), 1)
	require.ErrorIs(t, err, context.Canceled)
}

// benchWindows is how many windows one benchmark operation writes: about
// 14 minutes of 10-second windows of 2 cohorts and 6 metrics.
const benchWindows = 10_000

func benchmarkIngest(b *testing.B, insert func(*store.Store, context.Context, []store.MetricWindow) (int64, error)) {
	ctx := context.Background()
	pool := dbtest.New(b)
	s := store.New(pool, store.Options{})
	app, err := s.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(b, err)
	env, err := s.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production"})
	require.NoError(b, err)
	run, _, err := s.CreateRun(ctx, store.NewRun{
		AppID: app.ID, EnvironmentID: env.ID, FromVersion: "v1", ToVersion: "v2", Strategy: "canary", CreatedBy: "token:ci",
	})
	require.NoError(b, err)
	windows := make([]store.MetricWindow, 0, benchWindows)
	metrics := []string{"error_rate", "latency", "health_checks", "cpu", "memory", "conversion"}
	for i := 0; len(windows) < benchWindows; i++ {
		start := fixedNow.Add(time.Duration(i) * 10 * time.Second)
		for _, cohort := range []string{"candidate", "baseline"} {
			for _, metric := range metrics {
				w := store.MetricWindow{
					RunID: run.ID, Cohort: cohort, Metric: metric, Start: start, End: start.Add(10 * time.Second),
					Count: 1200, Sum: 18_000.5,
				}
				if metric == "latency" {
					w.P50, w.P95, w.P99 = ptr(12), ptr(48), ptr(120)
				}
				if len(windows) < benchWindows {
					windows = append(windows, w)
				}
			}
		}
	}
	for b.Loop() {
		n, err := insert(s, ctx, windows)
		if err != nil || n != benchWindows {
			b.Fatalf("wrote %d windows: %v", n, err)
		}
		// Every operation starts from an empty table so both paths pay
		// the same index maintenance.
		b.StopTimer()
		if _, err := pool.Exec(ctx, "TRUNCATE metric_windows"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)*benchWindows/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkIngestCopyFrom measures how fast metric windows are written the
// way Flightdeck writes them, with COPY.
func BenchmarkIngestCopyFrom(b *testing.B) {
	benchmarkIngest(b, (*store.Store).InsertMetricWindows)
}

// BenchmarkIngestMultiRowInsert writes the same windows with one multi-row
// INSERT, the yardstick COPY is measured against.
func BenchmarkIngestMultiRowInsert(b *testing.B) {
	benchmarkIngest(b, store.InsertMetricWindowsRows)
}

// BenchmarkIngestValuesInsert writes the same windows with INSERT … VALUES
// lists, the other common way to write many rows in one statement.
func BenchmarkIngestValuesInsert(b *testing.B) {
	benchmarkIngest(b, store.InsertMetricWindowsValues)
}
