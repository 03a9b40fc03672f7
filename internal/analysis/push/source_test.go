package push

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// setup returns a store on a fresh database with one canary run of v2 over
// v1, created at created.
func setup(t *testing.T) (*store.Store, store.Run) {
	t.Helper()
	ctx := context.Background()
	s := store.New(dbtest.New(t), store.Options{Now: func() time.Time { return created }})
	app, err := s.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production"})
	require.NoError(t, err)
	run, _, err := s.CreateRun(ctx, store.NewRun{
		AppID: app.ID, EnvironmentID: env.ID, FromVersion: "v1", ToVersion: "v2", Strategy: "canary", CreatedBy: "token:ci",
	})
	require.NoError(t, err)
	return s, run
}

func TestIngestWritesWindowsTheSourceReadsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, run := setup(t)
	in := NewIngester(s, func() time.Time { return now })

	w0 := created.Add(10 * time.Minute)
	res, err := in.Ingest(ctx, run.ID, Batch{Samples: []Sample{
		{Version: "v2", Metric: "error_rate", Timestamp: ts(w0.Add(time.Second)), Count: Num(100), Sum: Num(2)},
		{Version: "v2", Metric: "error_rate", Timestamp: ts(w0.Add(12 * time.Second)), Count: Num(100), Sum: Num(4)},
		{Version: "v1", Metric: "error_rate", Timestamp: ts(w0.Add(time.Second)), Count: Num(100), Sum: Num(1)},
		{Cohort: "candidate", Metric: "latency", Timestamp: ts(w0.Add(2 * time.Second)), Buckets: map[string]Number{"10": Num(10), "20": Num(10)}},
		{Cohort: "candidate", Metric: "nonsense", Timestamp: ts(w0)},
	}})
	require.NoError(t, err)
	require.Equal(t, 4, res.Accepted)
	require.Len(t, res.Rejected, 1)
	require.Equal(t, 4, res.Rejected[0].Index)
	require.Equal(t, int64(4), res.WindowsWritten)

	// A second batch adds to the first window with a larger latency
	// sample, whose quantiles then win.
	res, err = in.Ingest(ctx, run.ID, Batch{Samples: []Sample{
		{Cohort: "candidate", Metric: "error_rate", Timestamp: ts(w0.Add(9 * time.Second)), Count: Num(50), Sum: Num(1)},
		{Cohort: "candidate", Metric: "latency", Timestamp: ts(w0.Add(3 * time.Second)), Buckets: map[string]Number{"100": Num(30)}},
	}})
	require.NoError(t, err)
	require.Equal(t, 2, res.Accepted)
	require.Equal(t, int64(2), res.WindowsWritten)

	src := NewSource(s)
	got, err := src.Windows(ctx, analysis.Query{RunID: run.ID, Cohort: "candidate", From: w0, To: w0.Add(time.Minute)},
		[]string{analysis.MetricErrorRate, analysis.MetricLatency, analysis.MetricCPU, "response_size"})
	require.NoError(t, err)
	require.NotContains(t, got, "response_size", "a metric push does not know is absent")
	require.Contains(t, got, analysis.MetricCPU)
	require.Empty(t, got[analysis.MetricCPU], "nobody pushed cpu: no windows, no data")

	errs := got[analysis.MetricErrorRate]
	require.Len(t, errs, 2)
	require.True(t, errs[0].Start.Equal(w0))
	require.True(t, errs[0].End.Equal(w0.Add(Window)))
	require.Equal(t, int64(150), errs[0].Count, "rows of the same window from two batches add up")
	require.Equal(t, 3.0, errs[0].Sum)
	require.True(t, errs[1].Start.Equal(w0.Add(Window)))
	require.Equal(t, int64(100), errs[1].Count)

	lat := got[analysis.MetricLatency]
	require.Len(t, lat, 1)
	require.Equal(t, int64(50), lat[0].Count)
	require.Equal(t, 200.0+30*50, lat[0].Sum)
	require.NotNil(t, lat[0].P50)
	require.InDelta(t, 50.0, *lat[0].P50, 1e-9, "the quantiles of the row with 30 observations, not the one with 20")

	base, err := src.Windows(ctx, analysis.Query{RunID: run.ID, Cohort: "baseline", From: w0, To: w0.Add(time.Minute)}, []string{analysis.MetricErrorRate})
	require.NoError(t, err)
	require.Len(t, base[analysis.MetricErrorRate], 1)
	require.Equal(t, 1.0, base[analysis.MetricErrorRate][0].Sum)
}

func TestSourceReturnsWindowsOverlappingTheRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, run := setup(t)
	w0 := created.Add(10 * time.Minute)
	var samples []Sample
	for i := range 6 {
		samples = append(samples, Sample{Cohort: "candidate", Metric: "cpu", Timestamp: ts(w0.Add(time.Duration(i) * Window)), Value: Num(0.5)})
	}
	_, err := NewIngester(s, func() time.Time { return now }).Ingest(ctx, run.ID, Batch{Samples: samples})
	require.NoError(t, err)

	// [w0+15s, w0+35s) overlaps the windows starting at 10s, 20s and 30s.
	got, err := NewSource(s).Windows(ctx, analysis.Query{
		RunID: run.ID, Cohort: "candidate", From: w0.Add(15 * time.Second), To: w0.Add(35 * time.Second),
	}, []string{analysis.MetricCPU})
	require.NoError(t, err)
	cpu := got[analysis.MetricCPU]
	require.Len(t, cpu, 3)
	for i, w := range cpu {
		require.True(t, w.Start.Equal(w0.Add(time.Duration(i+1)*Window)), "window %d starts at %v", i, w.Start)
	}

	_, err = NewSource(s).Windows(ctx, analysis.Query{RunID: run.ID, Version: "v2", From: w0, To: w0.Add(time.Minute)}, []string{analysis.MetricCPU})
	require.ErrorContains(t, err, "cohort", "push records cohorts, so a query must name one")
}

func TestIngestForAnUnknownRunWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := setup(t)
	_, err := NewIngester(s, nil).Ingest(ctx, 424242, Batch{Samples: []Sample{good()}})
	require.ErrorIs(t, err, ErrUnknownRun)
}

func TestAnEmptyRangeIsNoDataNotAFailure(t *testing.T) {
	t.Parallel()
	s, run := setup(t)
	at := created.Add(time.Minute)
	got, err := NewSource(s).Windows(context.Background(), analysis.Query{RunID: run.ID, Cohort: "baseline", From: at, To: at},
		[]string{analysis.MetricLatency})
	require.NoError(t, err)
	require.Equal(t, map[string][]analysis.Window{analysis.MetricLatency: {}}, got)
}
