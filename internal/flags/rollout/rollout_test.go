package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is the test's time, shared by the store and the guard.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	st    *store.Store
	clock *clock
	guard *rollout.Guard
	app   store.App
	env   store.Environment
	flag  store.Flag
}

// employees serves true to the company's own people before any rollout.
var employees = flags.Rule{
	Name:    "employees",
	Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@acme.com"}}},
	Serve:   flags.Serve{Variant: "true"},
}

func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st := store.New(dbtest.New(t), store.Options{Now: c.now})
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := st.CreateEnvironment(ctx, store.Environment{
		AppID: app.ID, Name: "production", Driver: json.RawMessage(`{"type": "simulator"}`),
		Thresholds: json.RawMessage(`{"warmup": "1m"}`),
	})
	require.NoError(t, err)
	flag, err := st.CreateFlag(ctx, app.ID, flags.Flag{
		Key: "checkout-redesign", Type: flags.TypeBoolean,
		Variants:       map[string]json.RawMessage{"true": json.RawMessage(`true`), "false": json.RawMessage(`false`)},
		DefaultVariant: "false",
	}, "user:alice")
	require.NoError(t, err)
	_, err = st.SetFlagState(ctx, flag.ID, env.ID, flags.EnvState{Enabled: true, Rules: []flags.Rule{employees}}, 0, "user:alice")
	require.NoError(t, err)
	g := rollout.New(st, rollout.Config{Interval: 15 * time.Second, Now: c.now})
	return fixture{st: st, clock: c, guard: g, app: app, env: env, flag: flag}
}

func (f fixture) start(t *testing.T, steps []float64, bake time.Duration) store.FlagRollout {
	t.Helper()
	r, _, err := f.st.StartFlagRollout(context.Background(), store.NewFlagRollout{
		FlagID: f.flag.ID, EnvironmentID: f.env.ID, Steps: steps, StepBake: bake, Actor: "user:rita",
	})
	require.NoError(t, err)
	return r
}

// push reports ten seconds of traffic of both variants, ending now: n
// requests each, with the given error rates and a p99-like latency.
func (f fixture) push(t *testing.T, r store.FlagRollout, candidateErrors, baselineErrors float64) {
	t.Helper()
	at := f.clock.now().Add(-5 * time.Second).Format(time.RFC3339)
	const n = 400
	sample := func(variant, metric string, count, sum float64) push.Sample {
		return push.Sample{Variant: variant, Metric: metric, Timestamp: at, Count: push.Num(count), Sum: push.Num(sum)}
	}
	b := push.Batch{Samples: []push.Sample{
		sample("true", analysis.MetricErrorRate, n, n*candidateErrors),
		sample("false", analysis.MetricErrorRate, n, n*baselineErrors),
		sample("true", analysis.MetricLatency, n, n*80),
		sample("false", analysis.MetricLatency, n, n*80),
	}}
	res, err := rollout.Ingest(context.Background(), f.st, r, f.flag.Key(), f.env.Name, b, f.clock.now())
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
}

// tick moves time by ten seconds with traffic, then lets the guard judge.
func (f fixture) tick(t *testing.T, r store.FlagRollout, candidateErrors, baselineErrors float64) store.FlagRollout {
	t.Helper()
	f.clock.advance(10 * time.Second)
	f.push(t, r, candidateErrors, baselineErrors)
	_, err := f.guard.RunOnce(context.Background())
	require.NoError(t, err)
	r, err = f.st.FlagRollout(context.Background(), r.ID)
	require.NoError(t, err)
	return r
}

func (f fixture) state(t *testing.T) flags.EnvState {
	t.Helper()
	states, err := f.st.ListFlagStates(context.Background(), f.app.ID, f.env.ID)
	require.NoError(t, err)
	require.Len(t, states, 1)
	return states[0].State
}

// served evaluates the stored state for a user.
func (f fixture) served(t *testing.T, ctx flags.EvalContext) flags.Result {
	t.Helper()
	c, err := flags.Compile(f.flag.Definition, f.state(t), nil)
	require.NoError(t, err)
	return c.Evaluate(ctx)
}

func eventTypes(t *testing.T, f fixture) []string {
	t.Helper()
	evs, err := f.st.ListFlagEvents(context.Background(), f.flag.ID, 0, 100)
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestHealthyRolloutStepsToEveryUser(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, []float64{5, 50, 100}, 2*time.Minute)

	st := f.state(t)
	require.True(t, st.Enabled)
	require.Equal(t, []flags.WeightedVariant{{Variant: "true", Weight: 5}, {Variant: "false", Weight: 95}}, st.DefaultRollout.Rollout)
	require.Len(t, st.Rules, 1, "the employees rule stays in front of the rollout")
	require.Equal(t, "true", f.served(t, flags.EvalContext{"targetingKey": "u1", "email": "kim@acme.com"}).Variant)

	// Two minutes of bake at 5%: the step is kept until the bake is over,
	// however good the numbers.
	for range 11 {
		r = f.tick(t, r, 0.005, 0.005)
		require.Equal(t, 0, r.StepIndex, "a step is kept for its whole bake")
	}
	r = f.tick(t, r, 0.005, 0.005)
	require.Equal(t, 1, r.StepIndex, "after the bake a healthy step moves on")
	require.Equal(t, float64(50), r.Percent())
	require.Equal(t, []flags.WeightedVariant{{Variant: "true", Weight: 50}, {Variant: "false", Weight: 50}}, f.state(t).DefaultRollout.Rollout)

	var d analysis.Decision
	require.NoError(t, json.Unmarshal(r.LastDecision, &d))
	require.Equal(t, engine.VerdictContinue, d.Verdict)
	require.Contains(t, d.Explanation, "checkout-redesign=true")

	for i := 0; r.Running() && i < 20; i++ {
		r = f.tick(t, r, 0.005, 0.005)
	}
	require.Equal(t, store.FlagRolloutCompleted, r.State)
	require.Contains(t, r.Outcome, "serves every user")
	require.Equal(t, flags.Serve{Variant: "true"}, f.state(t).DefaultRollout)
	require.Equal(t, "true", f.served(t, flags.EvalContext{"targetingKey": "anyone"}).Variant)
	require.Subset(t, eventTypes(t, f), []string{store.FlagEventRolloutStarted, store.FlagEventRolloutAdvanced, store.FlagEventRolloutCompleted})
}

func TestDegradedVariantTurnsTheFlagOff(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, []float64{25, 100}, 5*time.Minute)

	for i := 0; r.Running() && i < 30; i++ {
		r = f.tick(t, r, 0.20, 0.005)
	}
	require.Equal(t, store.FlagRolloutRolledBack, r.State)
	require.Contains(t, r.Outcome, "Rolled back")
	require.Contains(t, r.Outcome, "checkout-redesign=true")
	st := f.state(t)
	require.False(t, st.Enabled, "a rollback turns the flag off")
	res := f.served(t, flags.EvalContext{"targetingKey": "u1", "email": "kim@acme.com"})
	require.Equal(t, "false", res.Variant)
	require.Equal(t, flags.ReasonDisabled, res.Reason)
	require.Contains(t, eventTypes(t, f), store.FlagEventRolloutRolledBack)
}

func TestFewExposedUsersWithAStableRegressionAreWatchedNotPromoted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, []float64{5, 100}, time.Minute)
	// 3 points worse at 5% exposure: degraded, but below the exposure
	// limit and not getting worse, so the decision monitors longer and the
	// step must not move on however long it bakes.
	for range 40 {
		r = f.tick(t, r, 0.035, 0.005)
		if !r.Running() {
			break
		}
		require.Equal(t, 0, r.StepIndex)
	}
	var d analysis.Decision
	require.NoError(t, json.Unmarshal(r.LastDecision, &d))
	require.Contains(t, []engine.Verdict{engine.VerdictMonitorLonger, engine.VerdictRollback}, d.Verdict)
	require.NotEqual(t, store.FlagRolloutCompleted, r.State)
}

func TestKillSwitchStopsTheRollout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, nil, time.Minute)
	require.Equal(t, store.DefaultFlagRolloutSteps, r.Steps)
	r = f.tick(t, r, 0.005, 0.005)

	_, err := f.st.KillFlag(context.Background(), f.flag.ID, f.env.ID, "user:oncall")
	require.NoError(t, err)
	r, err = f.st.FlagRollout(context.Background(), r.ID)
	require.NoError(t, err)
	require.Equal(t, store.FlagRolloutCancelled, r.State)
	require.Contains(t, r.Outcome, "user:oncall turned the flag off")

	// A check that was already under way when the kill landed changes
	// nothing.
	f.clock.advance(2 * time.Minute)
	_, err = f.guard.Check(context.Background(), r)
	require.NoError(t, err)
	require.False(t, f.state(t).Enabled)
}

func TestCancelKeepsTheCurrentShare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, []float64{10, 100}, time.Minute)
	r, err := f.st.CancelFlagRollout(context.Background(), r.ID, "user:rita")
	require.NoError(t, err)
	require.Equal(t, store.FlagRolloutCancelled, r.State)
	require.Equal(t, []flags.WeightedVariant{{Variant: "true", Weight: 10}, {Variant: "false", Weight: 90}}, f.state(t).DefaultRollout.Rollout)
	_, err = f.st.CancelFlagRollout(context.Background(), r.ID, "user:rita")
	require.ErrorIs(t, err, store.ErrTerminal)

	// A new rollout may start once the old one has ended.
	f.start(t, []float64{50, 100}, time.Minute)
}

func TestBadRolloutsAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	before := f.state(t)

	cases := []struct {
		name  string
		n     store.NewFlagRollout
		field string
	}{
		{"unknown variant", store.NewFlagRollout{Variant: "blue", StepBake: time.Minute}, "variant"},
		{"same variants", store.NewFlagRollout{Variant: "true", ControlVariant: "true", StepBake: time.Minute}, "control_variant"},
		{"shrinking steps", store.NewFlagRollout{Steps: []float64{50, 20, 100}, StepBake: time.Minute}, "steps[1]"},
		{"not ending at 100", store.NewFlagRollout{Steps: []float64{5, 50}, StepBake: time.Minute}, "steps"},
		{"above 100", store.NewFlagRollout{Steps: []float64{5, 120}, StepBake: time.Minute}, "steps[1]"},
		{"three decimals", store.NewFlagRollout{Steps: []float64{0.125, 100}, StepBake: time.Minute}, "steps[0]"},
		{"no bake", store.NewFlagRollout{}, "step_bake"},
	}
	for _, tc := range cases {
		n := tc.n
		n.FlagID, n.EnvironmentID, n.Actor = f.flag.ID, f.env.ID, "user:rita"
		_, _, err := f.st.StartFlagRollout(ctx, n)
		var verr *flags.ValidationError
		require.ErrorAs(t, err, &verr, tc.name)
		require.NotEmpty(t, verr.Field(tc.field), "%s: %v", tc.name, err)
	}
	require.Equal(t, before, f.state(t), "a refused rollout changes nothing")
	_, err := f.st.CurrentFlagRollout(ctx, f.flag.ID, f.env.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	f.start(t, nil, time.Minute)
	_, _, err = f.st.StartFlagRollout(ctx, store.NewFlagRollout{FlagID: f.flag.ID, EnvironmentID: f.env.ID, StepBake: time.Minute, Actor: "user:bob"})
	require.ErrorIs(t, err, store.ErrRolloutRunning)
}

func TestPushedSamplesMustNameTheRolloutsVariants(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, nil, time.Minute)
	at := f.clock.now().Format(time.RFC3339)
	res, err := rollout.Ingest(context.Background(), f.st, r, f.flag.Key(), f.env.Name, push.Batch{Samples: []push.Sample{
		{Variant: "blue", Metric: analysis.MetricErrorRate, Timestamp: at, Value: push.Num(1)},
		{Variant: "true", Version: "false", Metric: analysis.MetricErrorRate, Timestamp: at, Value: push.Num(1)},
		{Variant: "true", Metric: analysis.MetricErrorRate, Timestamp: at, Value: push.Num(0)},
	}}, f.clock.now())
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 2)
	require.Equal(t, []string{`variant "blue" is not part of the rollout of checkout-redesign in production, which releases "true" over "false"`}, res.Rejected[0].Errors)
	require.Contains(t, res.Rejected[1].Errors[0], "disagree")
}

func TestTwoReplicasJudgeEachCheckOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, []float64{5, 100}, time.Minute)
	other := rollout.New(f.st, rollout.Config{Interval: 15 * time.Second, Now: f.clock.now})
	f.clock.advance(10 * time.Second)
	f.push(t, r, 0.005, 0.005)

	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, g := range []*rollout.Guard{f.guard, other} {
		wg.Go(func() { counts[i], errs[i] = g.RunOnce(context.Background()) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, 1, counts[0]+counts[1], "one replica leases the due rollout")
}

func TestTurningTheFlagOffByHandStopsTheRollout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.start(t, nil, time.Minute)
	st := f.state(t)
	st.Enabled = false
	_, err := f.st.SetFlagState(context.Background(), f.flag.ID, f.env.ID, st, st.Version, "user:oncall")
	require.NoError(t, err)
	r, err = f.st.FlagRollout(context.Background(), r.ID)
	require.NoError(t, err)
	require.Equal(t, store.FlagRolloutCancelled, r.State)
	require.Contains(t, r.Outcome, "user:oncall turned the flag off at 5%")

	evs, err := f.st.ListFlagEvents(context.Background(), f.flag.ID, 0, 100)
	require.NoError(t, err)
	last := evs[len(evs)-1]
	require.Equal(t, store.FlagEventRolloutCancelled, last.Type)
	require.Contains(t, string(last.Payload), `"variant": "true"`)
}
