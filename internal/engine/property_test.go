package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TestRunInvariantsHoldUnderRandomActions drives runs with random sequences
// of actions, analysis verdicts, crashes and clock jumps, and checks after
// every operation that:
//   - a terminal run never changes again;
//   - phases are applied in order, none skipped;
//   - at most one run per environment is active;
//   - a run that ends by rolling back leaves stable serving 100%.
func TestRunInvariantsHoldUnderRandomActions(t *testing.T) {
	t.Parallel()
	h := setup(t)
	h.analysisInterval = 4 * time.Hour
	var crashMu sync.Mutex
	crashRNG := rand.New(rand.NewPCG(1, 2))
	crashRate := 0.0
	crashed := false
	hook := func(int64, string) {
		crashMu.Lock()
		defer crashMu.Unlock()
		if crashRNG.Float64() < crashRate {
			crashed = true
			panic("simulated crash")
		}
	}
	engineN := 0
	newEngine := func() *Engine {
		engineN++
		return h.newEngine(fmt.Sprintf("prop-%d", engineN), hook)
	}
	envN := 0
	ctx := context.Background()
	outcomes := map[store.RunState]int{}

	rapid.Check(t, func(rt *rapid.T) {
		envN++
		env := h.env(fmt.Sprintf("prop-%d", envN), nil)
		eng := newEngine()
		strategies := []string{"canary", "ring", "blue_green", "rolling", "shadow", "recreate"}
		versions := 2
		var runs []int64
		newRun := func() {
			versions++
			s := rapid.SampledFrom(strategies).Draw(rt, "strategy")
			r, _, err := eng.CreateRun(ctx, NewRun{App: h.app, Environment: env, Version: fmt.Sprintf("v%d", versions),
				Strategy: s, CreatedBy: "user:prop"})
			if err != nil {
				rt.Fatalf("creating run: %v", err)
			}
			runs = append(runs, r.ID)
		}
		newRun()

		terminal := map[int64]store.Run{}
		check := func(op string) {
			active := 0
			for _, id := range runs {
				r := h.run(id)
				if prev, ok := terminal[id]; ok {
					if r.State != prev.State || r.Version != prev.Version {
						rt.Fatalf("after %s: terminal run %d changed from %s v%d to %s v%d", op, id, prev.State, prev.Version, r.State, r.Version)
					}
					continue
				}
				if r.State.Active() {
					active++
				}
				// Phases applied in order, none skipped.
				next := 0
				for _, ev := range h.events(id) {
					if ev.Type != "phase.applied" {
						continue
					}
					var p struct{ Phase int }
					_ = json.Unmarshal(ev.Payload, &p)
					if p.Phase != next {
						rt.Fatalf("after %s: run %d applied phase %d, expected %d", op, id, p.Phase, next)
					}
					next++
				}
				if r.State.Terminal() {
					terminal[id] = r
					outcomes[r.State]++
					if r.State != store.RunSucceeded && r.Plan != nil {
						// The rollback finished: stable serves everyone.
						st, ok := h.fleet.State(h.app.Slug, env.Name)
						if ok && st.RunID == id {
							serving := map[string]int{}
							for _, v := range st.Versions {
								if v.Weight > 0 {
									serving[v.Version] = v.Weight
								}
							}
							if len(serving) != 1 || serving[r.FromVersion] != 100 {
								rt.Fatalf("after %s: run %d ended %s but serves %v, not %s at 100%%", op, id, r.State, serving, r.FromVersion)
							}
						}
					}
				}
			}
			if active > 1 {
				rt.Fatalf("after %s: %d active runs in one environment", op, active)
			}
		}

		ops := rapid.IntRange(10, 40).Draw(rt, "ops")
		for i := range ops {
			op := rapid.SampledFrom([]string{"step", "jump", "jump", "jump", "action", "verdict", "crash", "run"}).Draw(rt, "op")
			switch op {
			case "jump":
				if next, _ := h.store.NextDue(ctx); next != nil {
					h.clock.Set(*next)
				}
				fallthrough
			case "step":
				if _, err := eng.RunOnce(ctx); err != nil {
					rt.Fatalf("step: %v", err)
				}
				crashMu.Lock()
				if crashed {
					crashed = false
					eng = newEngine()
					h.clock.Advance(2 * time.Minute)
				}
				crashMu.Unlock()
			case "action":
				id := rapid.SampledFrom(runs).Draw(rt, "run")
				a := rapid.SampledFrom(Actions).Draw(rt, "action")
				_, err := eng.Act(ctx, id, ActionRequest{Action: a, Actor: "user:prop"})
				var ae *ActionError
				if err != nil && !errors.As(err, &ae) {
					rt.Fatalf("action %s on run %d: %v", a, id, err)
				}
			case "verdict":
				h.analyzer.set(env.ID, rapid.SampledFrom([]Verdict{VerdictContinue, VerdictContinue, VerdictRollback, VerdictMonitorLonger, VerdictInconclusive}).Draw(rt, "verdict"))
			case "crash":
				crashMu.Lock()
				crashRate = rapid.SampledFrom([]float64{0, 0.3, 1}).Draw(rt, "crash_rate")
				crashMu.Unlock()
			case "run":
				if len(runs) < 3 {
					newRun()
				}
			}
			check(fmt.Sprintf("op %d (%s)", i, op))
		}

		// Wind down: no crashes, then abort whatever is still going.
		crashMu.Lock()
		crashRate = 0
		crashMu.Unlock()
		for _, id := range runs {
			if r := h.run(id); !r.State.Terminal() && r.State != store.RunRollingBack {
				_, _ = eng.Act(ctx, id, ActionRequest{Action: ActionAbort, Actor: "user:prop"})
			}
		}
		for i := 0; i < 2000; i++ {
			n, err := eng.RunOnce(ctx)
			if err != nil {
				rt.Fatalf("wind-down step: %v", err)
			}
			if n == 0 {
				next, _ := h.store.NextDue(ctx)
				if next == nil {
					break
				}
				if next.After(h.clock.Now()) {
					h.clock.Set(*next)
				} else {
					// Due but leased by an engine that crashed: wait out the lease.
					h.clock.Advance(2 * time.Minute)
				}
			}
		}
		check("wind-down")
		for _, id := range runs {
			if r := h.run(id); !r.State.Terminal() {
				rt.Fatalf("run %d did not finish after abort: %s (%s)", id, r.State, r.Reason)
			}
		}
	})
	// The random sequences must reach the interesting endings, or the
	// invariants above were checked on nothing.
	require.Positive(t, outcomes[store.RunRolledBack], "outcomes: %v", outcomes)
	require.Positive(t, outcomes[store.RunAborted], "outcomes: %v", outcomes)
	t.Logf("outcomes: %v", outcomes)
}
