package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// checkGenerations asserts that the simulator applied every generation of
// every run exactly once and in order.
func checkGenerations(t *testing.T, h *harness, runs []store.Run) {
	t.Helper()
	byRun := map[int64][]int64{}
	for _, a := range h.fleet.Applied() {
		byRun[a.RunID] = append(byRun[a.RunID], a.Generation)
	}
	for _, r := range runs {
		got := h.run(r.ID)
		want := make([]int64, got.Generation)
		for i := range want {
			want[i] = int64(i + 1)
		}
		require.Equal(t, want, byRun[r.ID], "run %d (%s, %s): every generation applied exactly once, in order", r.ID, got.Strategy, got.State)
	}
}

func TestTwoEnginesShareTheWorkExactlyOnce(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	const n = 200
	runs := make([]store.Run, 0, n)
	for i := range n {
		env := h.env(fmt.Sprintf("env-%03d", i), nil)
		runs = append(runs, h.start(env, "canary", `{"steps": [10, 50, 100], "step_bake": "5m"}`))
	}

	var steps [2]atomic.Int64
	engines := [2]*Engine{}
	for i := range engines {
		e, err := New(Config{
			Store: h.store, Drivers: h.drivers, Analyzer: h.analyzer, Now: h.clock.Now, ID: fmt.Sprintf("engine-%c", 'a'+i),
			Logger: h.engine.logger, AnalysisInterval: 5 * time.Minute, Lease: time.Hour, Workers: 4, BatchSize: 16,
			OnStep: func(time.Duration) { steps[i].Add(1) },
		})
		require.NoError(t, err)
		engines[i] = e
	}

	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idle := 0
			for ctx.Err() == nil {
				claimed, err := e.RunOnce(ctx)
				if err != nil {
					errs <- err
					return
				}
				if claimed > 0 {
					idle = 0
					continue
				}
				next, err := h.store.NextDue(ctx)
				if err != nil {
					errs <- err
					return
				}
				if next == nil {
					if idle++; idle > 3 {
						return
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				h.clock.Set(*next)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "no engine may fail, e.g. on a deadlock")
	}
	require.NoError(t, ctx.Err(), "the runs must finish in time")

	for _, r := range runs {
		require.Equal(t, store.RunSucceeded, h.run(r.ID).State)
	}
	checkGenerations(t, h, runs)
	require.Positive(t, steps[0].Load())
	require.Positive(t, steps[1].Load())
	t.Logf("steps: engine-a %d, engine-b %d; duplicate deliveries %d", steps[0].Load(), steps[1].Load(), h.fleet.Duplicates())
}

// crashingHarness replaces its engine whenever the crash hook fires, as if
// the process had died between a driver call and the commit recording it.
type crashingHarness struct {
	*harness
	mu      sync.Mutex
	rng     *rand.Rand
	crashes int
	crashed bool
}

func (c *crashingHarness) hook(_ int64, _ string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rng.Float64() < 0.3 {
		c.crashed = true
		panic("simulated crash")
	}
}

func (c *crashingHarness) stepOnce(t *testing.T) bool {
	t.Helper()
	ctx := context.Background()
	n, err := c.engine.RunOnce(ctx)
	require.NoError(t, err)
	if c.crashed {
		// The engine is gone: a new process takes over after the lease.
		c.crashed = false
		c.crashes++
		c.engine = c.newEngine(fmt.Sprintf("engine-%d", c.crashes+1), c.hook)
		c.clock.Advance(2 * time.Minute)
		return true
	}
	if n > 0 {
		return true
	}
	next, err := c.store.NextDue(ctx)
	require.NoError(t, err)
	if next == nil {
		return false
	}
	c.clock.Set(*next)
	return true
}

func TestCrashesBetweenSideEffectAndCommitNeverDuplicateOrLoseSteps(t *testing.T) {
	t.Parallel()
	var totalCrashes, totalDuplicates atomic.Int64
	t.Run("seeds", func(t *testing.T) {
		for seed := range uint64(12) {
			t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
				t.Parallel()
				h := setup(t)
				// Judge hourly: long bakes then take few steps, and every step
				// still has its crash points.
				h.analysisInterval = time.Hour
				c := &crashingHarness{harness: h, rng: rand.New(rand.NewPCG(seed, 7))}
				c.engine = c.newEngine("engine-1", c.hook)

				strategies := []string{"canary", "rolling", "blue_green", "recreate", "ring", "shadow", "ab_test"}
				var runs []store.Run
				fails := map[int64]bool{}
				for i, s := range strategies {
					env := h.env(fmt.Sprintf("env-%d", i), nil)
					if c.rng.IntN(3) == 0 {
						h.analyzer.set(env.ID, VerdictRollback)
						fails[env.ID] = true
					}
					runs = append(runs, h.start(env, s, ""))
				}
				for steps := 0; ; steps++ {
					require.Less(t, steps, 20_000)
					// People answer whatever waits for them.
					for _, r := range runs {
						if cur := h.run(r.ID); cur.State == store.RunAwaitingApproval {
							_, err := c.engine.Act(context.Background(), r.ID, ActionRequest{Action: ActionApprove, Actor: "user:alice"})
							if err != nil {
								_, err = c.engine.Act(context.Background(), r.ID, ActionRequest{Action: ActionPromote, Actor: "user:alice"})
							}
							require.NoError(t, err)
						}
					}
					if !c.stepOnce(t) {
						break
					}
				}
				for _, r := range runs {
					got := h.run(r.ID)
					env, err := h.store.EnvironmentByID(context.Background(), r.EnvironmentID)
					require.NoError(t, err)
					if fails[r.EnvironmentID] {
						require.Equal(t, store.RunRolledBack, got.State, "run %d (%s)", r.ID, r.Strategy)
						require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
						continue
					}
					require.Equal(t, store.RunSucceeded, got.State, "run %d (%s): %s", r.ID, r.Strategy, got.Reason)
				}
				checkGenerations(t, h, runs)
				totalCrashes.Add(int64(c.crashes))
				totalDuplicates.Add(int64(h.fleet.Duplicates()))
			})
		}
	})
	require.Positive(t, totalCrashes.Load(), "the test must crash the engine")
	require.Positive(t, totalDuplicates.Load(), "crashes must lead to repeated deliveries that the driver ignored")
	t.Logf("%d crashes, %d repeated deliveries ignored", totalCrashes.Load(), totalDuplicates.Load())
}
