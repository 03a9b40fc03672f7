package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// scripted is an analyzer whose verdict the test sets, per environment.
type scripted struct {
	mu       sync.Mutex
	verdicts map[int64]Verdict
	calls    int
}

func (s *scripted) set(envID int64, v Verdict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verdicts == nil {
		s.verdicts = map[int64]Verdict{}
	}
	s.verdicts[envID] = v
}

func (s *scripted) Analyze(_ context.Context, req AnalysisRequest) (Analysis, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	v, ok := s.verdicts[req.Environment.ID]
	if !ok {
		v = VerdictContinue
	}
	if v == "error" {
		return Analysis{}, fmt.Errorf("metric source unreachable")
	}
	return Analysis{Verdict: v, Explanation: fmt.Sprintf("scripted %s for phase %d", v, req.PhaseIndex), Record: json.RawMessage(`{"scripted": true}`)}, nil
}

type harness struct {
	t        *testing.T
	clock    *clock
	store    *store.Store
	fleet    *simulator.Fleet
	drivers  *driver.Registry
	analyzer *scripted
	engine   *Engine
	// analysisInterval is what new engines judge at; default 5m.
	analysisInterval time.Duration
	app              store.App
}

func setup(t *testing.T) *harness {
	t.Helper()
	c := newClock()
	st := store.New(dbtest.New(t), store.Options{Now: c.Now})
	fleet := simulator.New(simulator.Options{Seed: 1})
	reg := driver.NewRegistry()
	reg.Register("simulator", fleet)
	h := &harness{t: t, clock: c, store: st, fleet: fleet, drivers: reg, analyzer: &scripted{}}
	h.engine = h.newEngine("engine-1", nil)
	app, err := st.CreateApp(context.Background(), store.NewApp{Slug: "shop", Name: "Shop"})
	require.NoError(t, err)
	h.app = app
	return h
}

func (h *harness) newEngine(id string, hook func(int64, string)) *Engine {
	e, err := New(Config{
		Store: h.store, Drivers: h.drivers, Analyzer: h.analyzer, Now: h.clock.Now, ID: id,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		AnalysisInterval: cmp.Or(h.analysisInterval, 5*time.Minute), Lease: time.Minute,
		crashHook: hook,
	})
	require.NoError(h.t, err)
	return e
}

// env creates an environment on the simulator with v1 stable.
func (h *harness) env(name string, mutate func(*store.Environment)) store.Environment {
	h.t.Helper()
	ctx := context.Background()
	e, err := h.store.CreateEnvironment(ctx, store.Environment{AppID: h.app.ID, Name: name, Tier: "production",
		Driver: json.RawMessage(`{"type": "simulator"}`)})
	require.NoError(h.t, err)
	e.StableVersion = "v1"
	if mutate != nil {
		mutate(&e)
	}
	e, err = h.store.UpdateEnvironment(ctx, e)
	require.NoError(h.t, err)
	return e
}

func (h *harness) start(env store.Environment, strategy, params string) store.Run {
	h.t.Helper()
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	run, created, err := h.engine.CreateRun(context.Background(), NewRun{
		App: h.app, Environment: env, Version: "v2", Strategy: strategy, Params: raw, CreatedBy: "user:test",
	})
	require.NoError(h.t, err)
	require.True(h.t, created)
	return run
}

func (h *harness) run(id int64) store.Run {
	h.t.Helper()
	r, err := h.store.Run(context.Background(), id)
	require.NoError(h.t, err)
	return r
}

// drive steps runs, moving the clock to the next due evaluation whenever
// nothing is due, until stop says so or nothing is scheduled at all.
func (h *harness) drive(stop func() bool) {
	h.t.Helper()
	ctx := context.Background()
	for i := 0; i < 10_000; i++ {
		if stop != nil && stop() {
			return
		}
		n, err := h.engine.RunOnce(ctx)
		require.NoError(h.t, err)
		if n > 0 {
			continue
		}
		next, err := h.store.NextDue(ctx)
		require.NoError(h.t, err)
		if next == nil {
			return
		}
		h.clock.Set(*next)
	}
	h.t.Fatal("runs did not settle in 10,000 steps")
}

// driveUntilState steps until the run reaches one of the states.
func (h *harness) driveUntilState(id int64, states ...store.RunState) store.Run {
	h.t.Helper()
	h.drive(func() bool {
		r := h.run(id)
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
		return false
	})
	r := h.run(id)
	require.Contains(h.t, states, r.State, "run ended in %s: %s", r.State, r.Reason)
	return r
}

func (h *harness) events(id int64) []store.RunEvent {
	h.t.Helper()
	evs, err := h.store.ListRunEvents(context.Background(), id, 0, 10_000)
	require.NoError(h.t, err)
	return evs
}

func (h *harness) act(id int64, a Action) (ActionResult, error) {
	return h.engine.Act(context.Background(), id, ActionRequest{Action: a, Actor: "user:alice", Comment: "from a test"})
}

// serving returns the weight of each version the simulator serves.
func (h *harness) serving(env store.Environment) map[string]int {
	h.t.Helper()
	st, ok := h.fleet.State(h.app.Slug, env.Name)
	require.True(h.t, ok, "the simulator has no state for %s", env.Name)
	out := map[string]int{}
	for _, v := range st.Versions {
		if v.Weight > 0 || v.Instances > 0 {
			out[v.Version] = v.Weight
		}
	}
	return out
}

func (h *harness) instances(env store.Environment) map[string]int {
	h.t.Helper()
	st, ok := h.fleet.State(h.app.Slug, env.Name)
	require.True(h.t, ok)
	out := map[string]int{}
	for _, v := range st.Versions {
		out[v.Version] = v.Instances
	}
	return out
}
