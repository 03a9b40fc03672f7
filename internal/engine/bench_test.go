package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// The engine benchmarks are fixed workloads of under a minute each: they
// set up benchCanaries active canary runs, let one engine step them on the
// real clock and measure a fixed window. They ignore b.N, and `make bench`
// runs each of them exactly once.

// benchCanaries is how many canary runs are active at once; the goal for
// the engine is stated for 1,000.
const benchCanaries = 1000

// These are the engine settings the benchmarks use on the 2-core reference
// machine: the engine's own defaults, written out so that the figures say
// what they were measured with. From 4 to 16 workers, with batches of 32 to
// 128 runs, the saturated throughput stayed within the machine's noise:
// the time goes to the ten Postgres statements of each step, which share
// the two cores with the engine, not to the engine's own work, so the
// defaults stand. Eight workers use 8 of dbtest's 30 connections, leaving room for
// the claim query, the listener and the benchmark's own reads.
// PollInterval keeps its default of 1s, as a server would run it.
const (
	benchWorkers   = 8
	benchBatchSize = 64
)

// benchSetupConns is how many connections create environments and runs
// side by side during the setup.
const benchSetupConns = 8

// benchFleet is what an engine benchmark runs against: a store on a new
// database that keeps real time, the simulator driver, the scripted
// analyzer (which answers "continue" at once) and one app with
// benchCanaries environments that each have v1 as their stable version.
type benchFleet struct {
	store    *store.Store
	drivers  *driver.Registry
	analyzer *scripted
	app      store.App
	envs     []store.Environment
}

// setupBench is the benchmarks' counterpart of setup: the same driver and
// analyzer, but on the real clock and with the environments already made.
func setupBench(b *testing.B) *benchFleet {
	b.Helper()
	ctx := context.Background()
	st := store.New(dbtest.New(b), store.Options{Now: time.Now})
	reg := driver.NewRegistry()
	reg.Register("simulator", simulator.New(simulator.Options{Seed: 1}))
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "shop", Name: "Shop"})
	require.NoError(b, err)
	f := &benchFleet{store: st, drivers: reg, analyzer: &scripted{}, app: app, envs: make([]store.Environment, benchCanaries)}
	err = inParallel(benchCanaries, func(i int) error {
		env, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: fmt.Sprintf("env-%04d", i),
			Tier: "production", Driver: json.RawMessage(`{"type": "simulator"}`)})
		if err != nil {
			return fmt.Errorf("creating environment %d: %w", i, err)
		}
		env.StableVersion = "v1"
		if f.envs[i], err = st.UpdateEnvironment(ctx, env); err != nil {
			return fmt.Errorf("setting the stable version of environment %d: %w", i, err)
		}
		return nil
	})
	require.NoError(b, err)
	return f
}

// inParallel calls fn for 0 to n-1 on benchSetupConns goroutines and
// returns the first error.
func inParallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	errs := make(chan error, benchSetupConns)
	var wg sync.WaitGroup
	for range benchSetupConns {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// newEngine returns an engine on the real clock that reports every
// committed step to rec. Only warnings and errors are logged, so that a
// benchmark that goes wrong says why.
func (f *benchFleet) newEngine(b *testing.B, analysisInterval time.Duration, rec *stepRecorder) *Engine {
	b.Helper()
	e, err := New(Config{
		Store: f.store, Drivers: f.drivers, Analyzer: f.analyzer, ID: "engine-bench",
		Logger:           slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Workers:          benchWorkers,
		BatchSize:        benchBatchSize,
		AnalysisInterval: analysisInterval,
		OnStep:           rec.observe,
	})
	require.NoError(b, err)
	return e
}

// startRun asks e to deploy v2 to the i-th environment as a canary with
// the default steps and the given parameters.
func (f *benchFleet) startRun(ctx context.Context, e *Engine, i int, params string) error {
	_, _, err := e.CreateRun(ctx, NewRun{
		App: f.app, Environment: f.envs[i], Version: "v2", Strategy: "canary",
		Params: json.RawMessage(params), CreatedBy: "user:bench",
	})
	if err != nil {
		return fmt.Errorf("creating run %d: %w", i, err)
	}
	return nil
}

// waitStarted returns once every run has applied its first canary step, so
// that what follows measures only the steady state of analysis steps.
func (f *benchFleet) waitStarted(b *testing.B, ctx context.Context) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		runs, err := f.store.ListRuns(ctx, store.RunFilter{AppID: f.app.ID, States: []store.RunState{store.RunRunning}, Limit: benchCanaries})
		require.NoError(b, err)
		started := 0
		for _, r := range runs {
			if r.Generation > 0 && r.AppliedGeneration == r.Generation {
				started++
			}
		}
		if started == benchCanaries {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d runs applied their first step within two minutes", started, benchCanaries)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stepRecorder keeps the lag of every step committed while it measures.
type stepRecorder struct {
	measuring atomic.Bool
	mu        sync.Mutex
	lags      []time.Duration
}

func (r *stepRecorder) observe(lag time.Duration) {
	if !r.measuring.Load() {
		return
	}
	r.mu.Lock()
	r.lags = append(r.lags, lag)
	r.mu.Unlock()
}

// measure records the steps committed during window and returns their lags,
// sorted, and the time actually measured. The benchmark timer runs only
// during the window.
func (r *stepRecorder) measure(b *testing.B, window time.Duration) ([]time.Duration, time.Duration) {
	b.Helper()
	b.ResetTimer()
	start := time.Now()
	r.measuring.Store(true)
	time.Sleep(window)
	r.measuring.Store(false)
	elapsed := time.Since(start)
	b.StopTimer()
	r.mu.Lock()
	defer r.mu.Unlock()
	lags := slices.Clone(r.lags)
	slices.Sort(lags)
	return lags, elapsed
}

// percentile returns the nearest-rank percentile p (0 to 1) of sorted lags.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// resetPeakRSS makes the kernel count the process's peak resident set
// (VmHWM) again from its current size, so that each benchmark reports its
// own peak rather than that of an earlier one. Where the kernel does not
// allow it, the peak of the whole process is reported.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB returns the peak resident set of this process in MB, as VmHWM
// in /proc/self/status says. It covers the engine, the store's connection
// pool and the simulator, which all run in this process; Postgres runs in
// processes of its own and is not counted.
func peakRSSMB() (float64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 64)
		if err != nil {
			return 0, false
		}
		return kb / 1024, true
	}
	return 0, false
}

// reportPeakRSS reports the process's peak resident set, when known.
func reportPeakRSS(b *testing.B) {
	if mb, ok := peakRSSMB(); ok {
		b.ReportMetric(mb, "peak_rss_MB")
	}
}

// BenchmarkEngineSaturated measures how many steps per second one engine
// commits when all of benchCanaries active canary runs are due all the
// time. Each run bakes its first step for a minute and is judged every
// 208ms: the engine stretches the analysis interval to a 288th of the
// bake, so a bake of an hour would be judged only every 12.5s and leave
// the engine idle most of the time. 1,000 runs judged every 208ms ask for
// 4,800 steps a second, more than one engine on two cores commits, so a
// backlog of due runs remains throughout the window, which ends well
// before the first bake does. The p50 lag shows how far behind the engine
// is; it is not a goal here.
func BenchmarkEngineSaturated(b *testing.B) {
	const window = 20 * time.Second
	ctx := context.Background()
	f := setupBench(b)
	resetPeakRSS()

	rec := &stepRecorder{}
	e := f.newEngine(b, time.Millisecond, rec)
	// The runs are created before the engine starts, so that all of them
	// are due at once from the first claim on.
	require.NoError(b, inParallel(benchCanaries, func(i int) error {
		return f.startRun(ctx, e, i, `{"step_bake": "1m"}`)
	}))
	require.NoError(b, e.Start(ctx))
	defer e.Stop()
	f.waitStarted(b, ctx)

	lags, elapsed := rec.measure(b, window)
	require.NotEmpty(b, lags, "the engine must commit steps during the window")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(len(lags))/elapsed.Seconds(), "steps/s")
	b.ReportMetric(millis(percentile(lags, 0.5)), "p50_lag_ms")
	reportPeakRSS(b)
}

// BenchmarkEngineLag1000Canaries measures the lag from a run becoming due
// to its step being committed, for benchCanaries active canary runs on a
// schedule the engine should keep up with: each run is judged every 5s, so
// about 200 steps a second are due. The runs are created evenly over one
// analysis interval, as a steady stream of deployments would be, so that
// their steps are due evenly rather than all in the same instant. The goal
// on the 2-core machine is a p99 lag under 1s and a peak RSS under 512 MB.
func BenchmarkEngineLag1000Canaries(b *testing.B) {
	const (
		interval = 5 * time.Second
		window   = 30 * time.Second
	)
	ctx := context.Background()
	f := setupBench(b)
	resetPeakRSS()

	rec := &stepRecorder{}
	e := f.newEngine(b, interval, rec)
	require.NoError(b, e.Start(ctx))
	defer e.Stop()
	// A 20-minute bake keeps every run in its first step for the whole
	// benchmark, and is short enough that the engine does not stretch the
	// 5s analysis interval (a 288th of it is 4.2s).
	tick := time.NewTicker(interval / benchCanaries)
	for i := range benchCanaries {
		<-tick.C
		require.NoError(b, f.startRun(ctx, e, i, `{"step_bake": "20m"}`))
	}
	tick.Stop()
	f.waitStarted(b, ctx)

	lags, elapsed := rec.measure(b, window)
	require.NotEmpty(b, lags, "the engine must commit steps during the window")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(len(lags))/elapsed.Seconds(), "steps/s")
	b.ReportMetric(millis(percentile(lags, 0.5)), "p50_lag_ms")
	b.ReportMetric(millis(percentile(lags, 0.99)), "p99_lag_ms")
	b.ReportMetric(millis(lags[len(lags)-1]), "max_lag_ms")
	reportPeakRSS(b)
}
