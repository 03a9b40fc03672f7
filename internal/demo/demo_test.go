package demo_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/demo"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// world is a Flightdeck as the server runs it, on a test clock: the
// simulator driver and metric source, the real analysis and the engine.
type world struct {
	t      *testing.T
	clock  *clock
	store  *store.Store
	engine *engine.Engine
	cfg    demo.Config
}

func setup(t *testing.T) *world {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st := store.New(dbtest.New(t), store.Options{Now: c.Now})
	fleet := simulator.New(simulator.Options{Seed: 7})
	drivers := driver.NewRegistry()
	drivers.Register(simulator.Type, fleet)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.New(engine.Config{
		Store: st, Drivers: drivers, Now: c.Now, Logger: logger,
		Analyzer: &analysis.Analyzer{Sources: func(store.Environment) (analysis.Source, error) {
			return analysis.SimulatorSource{Fleet: fleet}, nil
		}},
		AnalysisInterval: 15 * time.Second,
	})
	require.NoError(t, err)
	return &world{t: t, clock: c, store: st, engine: eng, cfg: demo.Config{Store: st, Runs: eng, Logger: logger, Now: c.Now}}
}

// advance moves the clock in five-second ticks, stepping every run that
// falls due, as the server's engine would.
func (w *world) advance(d time.Duration, each func(at time.Duration)) {
	w.t.Helper()
	ctx := context.Background()
	for at := 5 * time.Second; at <= d; at += 5 * time.Second {
		w.clock.Advance(5 * time.Second)
		for range 50 {
			n, err := w.engine.RunOnce(ctx)
			require.NoError(w.t, err)
			if n == 0 {
				break
			}
		}
		if each != nil {
			each(at)
		}
	}
}

func (w *world) runs() map[string]store.Run {
	w.t.Helper()
	ctx := context.Background()
	runs, err := w.store.ListRuns(ctx, store.RunFilter{Limit: 100})
	require.NoError(w.t, err)
	out := map[string]store.Run{}
	for _, r := range runs {
		app, err := w.store.AppByID(ctx, r.AppID)
		require.NoError(w.t, err)
		env, err := w.store.EnvironmentByID(ctx, r.EnvironmentID)
		require.NoError(w.t, err)
		out[app.Slug+"/"+env.Name+" "+r.ToVersion] = r
	}
	return out
}

// run reads a run again.
func (w *world) run(id int64) store.Run {
	w.t.Helper()
	r, err := w.store.Run(context.Background(), id)
	require.NoError(w.t, err)
	return r
}

func TestSeedPutsEveryStrategyInFlightAndTheAnalysisActs(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	const password = "demo password 1234"
	w.cfg.DemoPassword = password
	seeded, err := demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.True(t, seeded)

	apps, err := w.store.ListApps(ctx, "", 100)
	require.NoError(t, err)
	require.Len(t, apps, 8)
	for _, app := range apps {
		envs, err := w.store.ListEnvironments(ctx, app.ID)
		require.NoError(t, err)
		require.NotEmpty(t, envs, app.Slug)
		for _, env := range envs {
			require.NoError(t, simulator.ValidateConfig(env.Driver), "%s/%s", app.Slug, env.Name)
			require.JSONEq(t, `{"type": "simulator"}`, string(env.Metrics))
			_, err := analysis.ParseThresholds("thresholds", env.Thresholds)
			require.NoError(t, err, "%s/%s", app.Slug, env.Name)
			require.NotEmpty(t, env.StableVersion, "every environment has a baseline")
		}
	}

	// The storefront shows a release in stages: dark in production but on
	// for employees and 5% of users, one flag killed.
	storefront, err := w.store.App(ctx, "storefront")
	require.NoError(t, err)
	production := w.environment("storefront", "production")
	cfgs, err := w.store.FlagConfigs(ctx, storefront.ID, production.ID)
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	snap := flags.NewSnapshot(cfgs[0].Entries, cfgs[0].Segments)
	require.Empty(t, snap.Errors(), "every demo flag compiles")
	require.Equal(t, 4, snap.Len())
	employee := snap.Evaluate("checkout-redesign", flags.EvalContext{"targetingKey": "kim", "email": "kim@storefront.example"})
	require.Equal(t, "true", employee.Variant)
	require.Equal(t, "employees", employee.RuleName)
	require.Equal(t, flags.ReasonDisabled, snap.Evaluate("recommendations-v2", flags.EvalContext{"targetingKey": "kim"}).Reason)

	for username, role := range map[string]auth.Role{"release-manager": auth.RoleApprover, "oncall": auth.RoleDeployer, "viewer": auth.RoleViewer} {
		u, err := w.store.UserByUsername(ctx, username)
		require.NoError(t, err)
		require.False(t, u.IsAdmin, username)
		roles, err := w.store.RolesOf(ctx, u.ID)
		require.NoError(t, err)
		require.Len(t, roles, 1, username)
		require.Equal(t, [3]string{"*", "*", string(role)}, [3]string{roles[0].App, roles[0].Environment, roles[0].Role}, username)
		hash, err := w.store.PasswordHash(ctx, u.ID)
		require.NoError(t, err)
		ok, err := auth.PasswordMatches(password, hash)
		require.NoError(t, err)
		require.True(t, ok, "%s signs in with the demo password", username)
	}

	runs := w.runs()
	require.Len(t, runs, 8)
	strategies := map[plan.Strategy]bool{}
	for key, r := range runs {
		require.Equal(t, demo.Actor, r.CreatedBy, key)
		require.NotEmpty(t, r.FromVersion, "%s runs against a baseline", key)
		strategies[plan.Strategy(r.Strategy)] = true
	}
	for _, s := range plan.Strategies {
		require.True(t, strategies[s], "a %s run is in flight", s)
	}

	seeded, err = demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.False(t, seeded, "a database with apps is not seeded again")
	require.Len(t, w.runs(), 8)

	ring := runs["mobile-api/production v7.1.0"]
	faulty := runs["payments/production v5.2.0"]
	canary := runs["storefront/production v3.8.0"]
	var ringWaits, faultyRolledBack time.Duration
	w.advance(3*time.Minute, func(at time.Duration) {
		if ringWaits == 0 && w.run(ring.ID).State == store.RunAwaitingApproval {
			ringWaits = at
		}
		if faultyRolledBack == 0 && w.run(faulty.ID).State == store.RunRolledBack {
			faultyRolledBack = at
		}
	})
	require.NotZero(t, ringWaits, "the ring run waits for an approval")
	require.LessOrEqual(t, ringWaits, time.Minute, "the ring run waits for an approval within a minute")
	require.Equal(t, 0, w.run(ring.ID).PhaseIndex)

	require.NotZero(t, faultyRolledBack, "the faulty canary is rolled back: %s", w.run(faulty.ID).Reason)
	decision, err := w.store.LatestDecision(ctx, faulty.ID)
	require.NoError(t, err)
	require.Equal(t, string(engine.VerdictRollback), decision.Verdict, "the analysis rolled it back")
	require.Contains(t, decision.Explanation, "error rate")
	require.Equal(t, "engine", w.lastEventActor(faulty.ID, "run.rolling_back"))

	require.Equal(t, store.RunRunning, w.run(canary.ID).State)
	require.GreaterOrEqual(t, w.run(canary.ID).PhaseIndex, 1, "the healthy canary moved on while we watched")

	// Every healthy run goes its way without a rollback: a few more
	// minutes take the blue-green run past its switch and the rolling run
	// into its last batch, where the old version no longer serves users.
	w.advance(3*time.Minute, nil)
	for key, r := range w.runs() {
		if r.ID == faulty.ID {
			continue
		}
		require.NotContains(t, []store.RunState{store.RunRolledBack, store.RunFailed, store.RunAborted}, r.State,
			"%s is healthy and must not end badly: %s", key, r.Reason)
	}
}

// lastEventActor returns who caused the run's newest event of the type.
func (w *world) lastEventActor(runID int64, typ string) string {
	w.t.Helper()
	events, err := w.store.ListRunEvents(context.Background(), runID, 0, 1000)
	require.NoError(w.t, err)
	actor := ""
	for _, e := range events {
		if e.Type == typ {
			actor = e.Actor
		}
	}
	return actor
}

func TestSeedLeavesADatabaseWithAppsAlone(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	_, err := w.store.CreateApp(ctx, store.NewApp{Slug: "billing", Name: "Billing"})
	require.NoError(t, err)
	seeded, err := demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.False(t, seeded)
	apps, err := w.store.ListApps(ctx, "", 100)
	require.NoError(t, err)
	require.Len(t, apps, 1)
	users, err := w.store.ListUsers(ctx)
	require.NoError(t, err)
	require.Empty(t, users)
}

func TestSeedRefusesAnUnusablePasswordAndChangesNothing(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	w.cfg.DemoPassword = "short"
	seeded, err := demo.Seed(ctx, w.cfg)
	require.ErrorContains(t, err, "the demo users' password is not usable: a password needs at least 12 characters")
	require.False(t, seeded)
	apps, err := w.store.ListApps(ctx, "", 100)
	require.NoError(t, err)
	require.Empty(t, apps)
}

func TestRefillStartsTheNextRunInIdleDemoEnvironments(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	seeded, err := demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.True(t, seeded)
	w.advance(3*time.Minute, nil)
	seededRuns := w.runs()
	require.Equal(t, store.RunRolledBack, seededRuns["payments/production v5.2.0"].State)
	require.Equal(t, store.RunSucceeded, seededRuns["reports/production v0.9.0"].State)
	w.clock.Advance(time.Minute)

	// An app people added themselves is never deployed by the demo.
	billing, err := w.store.CreateApp(ctx, store.NewApp{Slug: "billing", Name: "Billing"})
	require.NoError(t, err)
	own, err := w.store.CreateEnvironment(ctx, store.Environment{AppID: billing.ID, Name: "production"})
	require.NoError(t, err)
	require.NoError(t, w.store.SetStableVersion(ctx, own.ID, "v1.0.0"))
	// The next version of storefront/staging is one with a fault.
	staging := w.environment("storefront", "staging")
	require.NoError(t, w.store.SetStableVersion(ctx, staging.ID, "v3.11.4"))

	started, err := demo.Refill(ctx, w.cfg)
	require.NoError(t, err)
	byEnv := map[string]store.Run{}
	for _, r := range started {
		app, err := w.store.AppByID(ctx, r.AppID)
		require.NoError(t, err)
		env, err := w.store.EnvironmentByID(ctx, r.EnvironmentID)
		require.NoError(t, err)
		byEnv[app.Slug+"/"+env.Name] = r
		require.Equal(t, demo.Actor, r.CreatedBy)
		require.Equal(t, env.StableVersion, r.FromVersion)
	}
	expect := map[string][2]string{
		// The first run of an environment takes the first strategy of its rotation.
		"storefront/staging": {"v3.12.0", "rolling"},
		// The rolled-back v5.2.0 is never tried again; the next strategy follows canary.
		"payments/production": {"v5.3.0", "blue_green"},
		"reports/production":  {"v0.10.0", "recreate"},
	}
	for key, want := range expect {
		r, ok := byEnv[key]
		require.True(t, ok, "a run starts in the idle %s", key)
		require.Equal(t, want, [2]string{r.ToVersion, r.Strategy}, key)
	}
	for key, r := range seededRuns {
		if r.State.Active() {
			env := key[:len(key)-len(" "+r.ToVersion)]
			require.NotContains(t, byEnv, env, "%s has a run in flight", env)
		}
	}
	require.NotContains(t, byEnv, "billing/production")

	// The faulty version's fault is in the simulator settings, on record.
	staging = w.environment("storefront", "staging")
	var driverCfg struct {
		Faults map[string]simulator.Fault `json:"faults"`
	}
	require.NoError(t, json.Unmarshal(staging.Driver, &driverCfg))
	require.Equal(t, map[string]simulator.Fault{"v3.12.0": {ErrorRate: 0.08}}, driverCfg.Faults)
	// The fault of the rolled-back v5.2.0 is gone with it.
	driverCfg.Faults = nil
	require.NoError(t, json.Unmarshal(w.environment("payments", "production").Driver, &driverCfg))
	require.Empty(t, driverCfg.Faults)
	entries, err := w.store.ListAudit(ctx, store.AuditFilter{Actor: demo.Actor, Limit: 10})
	require.NoError(t, err)
	var details []string
	for _, e := range entries {
		details = append(details, e.App+"/"+e.Environment+" "+e.Action+": "+e.Detail)
	}
	require.Contains(t, details, "storefront/staging environment.settings_changed: driver: the simulator now gives v3.12.0 an error rate of 8% (demo fault injection)")
	require.Contains(t, details, "payments/production environment.settings_changed: driver: removed the faults of v5.2.0 (demo fault injection)")

	again, err := demo.Refill(ctx, w.cfg)
	require.NoError(t, err)
	require.Empty(t, again, "environments with a run in flight get no second one")

	// The analysis catches the injected fault.
	faulty := byEnv["storefront/staging"]
	w.advance(3*time.Minute, nil)
	require.Equal(t, store.RunRolledBack, w.run(faulty.ID).State, w.run(faulty.ID).Reason)
}

func TestLoopRefillsUntilStopped(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seeded, err := demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.True(t, seeded)
	staging := w.environment("storefront", "staging")

	w.cfg.Interval = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- demo.Loop(ctx, w.cfg) }()
	require.Eventually(t, func() bool {
		runs, err := w.store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: staging.ID})
		return err == nil && len(runs) == 1
	}, 10*time.Second, 20*time.Millisecond, "the loop starts a run in the idle staging environment")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "stopping is not an error")
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
}

// environment reads an environment by app slug and name.
func (w *world) environment(app, env string) store.Environment {
	w.t.Helper()
	ctx := context.Background()
	a, err := w.store.App(ctx, app)
	require.NoError(w.t, err)
	e, err := w.store.Environment(ctx, a.ID, env)
	require.NoError(w.t, err)
	return e
}

func TestDemoTrafficJudgesFlagRollouts(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	seeded, err := demo.Seed(ctx, w.cfg)
	require.NoError(t, err)
	require.True(t, seeded)
	app, err := w.store.App(ctx, "storefront")
	require.NoError(t, err)
	production := w.environment("storefront", "production")
	start := func(key string, steps []float64) store.FlagRollout {
		flag, err := w.store.Flag(ctx, app.ID, key)
		require.NoError(t, err)
		r, _, err := w.store.StartFlagRollout(ctx, store.NewFlagRollout{
			FlagID: flag.ID, EnvironmentID: production.ID, Steps: steps, StepBake: 2 * time.Minute, Actor: "release-manager",
		})
		require.NoError(t, err)
		return r
	}
	healthy := start("checkout-redesign", []float64{10, 100})
	faulty := start("recommendations-v2", []float64{25, 100})

	guard := rollout.New(w.store, rollout.Config{Interval: 15 * time.Second, Now: w.clock.Now})
	for range 60 {
		w.clock.Advance(10 * time.Second)
		fed, err := demo.FeedFlagRollouts(ctx, w.cfg)
		require.NoError(t, err)
		if fed == 0 {
			break
		}
		_, err = guard.RunOnce(ctx)
		require.NoError(t, err)
	}
	healthy, err = w.store.FlagRollout(ctx, healthy.ID)
	require.NoError(t, err)
	require.Equal(t, store.FlagRolloutCompleted, healthy.State, healthy.Outcome)
	faulty, err = w.store.FlagRollout(ctx, faulty.ID)
	require.NoError(t, err)
	require.Equal(t, store.FlagRolloutRolledBack, faulty.State, faulty.Outcome)
	require.Contains(t, faulty.Outcome, "recommendations-v2=true error rate")
}
