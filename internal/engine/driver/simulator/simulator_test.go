package simulator_test

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

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// window is a fixed start for observed windows, so tests do not depend on
// the wall clock.
var window = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// setup returns a fleet with a fixed seed and a context for applies.
func setup(t *testing.T) (*simulator.Fleet, context.Context) {
	t.Helper()
	t.Parallel()
	return simulator.New(simulator.Options{Seed: 42}), t.Context()
}

// canary is a desired state with weight percent of traffic on v2.
func canary(weight int) plan.DesiredState {
	return plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 10, Weight: 100 - weight},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 1, Weight: weight},
	}}
}

// request is a delivery of desired for run in the checkout app's
// production environment.
func request(run, generation int64, desired plan.DesiredState, config string) driver.Request {
	return driver.Request{
		RunID:       run,
		Generation:  generation,
		App:         "checkout",
		Environment: "production",
		PhaseIndex:  int(generation) - 1,
		Phase:       fmt.Sprintf("phase %d", generation),
		Desired:     desired,
		Config:      json.RawMessage(config),
	}
}

const simulatorConfig = `{"type": "simulator"}`

func TestApplySetsStateAndRecordsApplies(t *testing.T) {
	fleet, ctx := setup(t)
	_, ok := fleet.State("checkout", "production")
	require.False(t, ok)

	require.NoError(t, fleet.Apply(ctx, request(7, 1, canary(5), simulatorConfig)))
	require.NoError(t, fleet.Apply(ctx, request(7, 2, canary(25), simulatorConfig)))

	state, ok := fleet.State("checkout", "production")
	require.True(t, ok)
	require.Equal(t, simulator.EnvState{
		Versions:   canary(25).Versions,
		RunID:      7,
		Generation: 2,
		PhaseIndex: 1,
		Sequence:   2,
	}, state)

	applied := fleet.Applied()
	require.Len(t, applied, 2)
	require.Equal(t, simulator.Applied{
		Sequence: 1, RunID: 7, Generation: 1, App: "checkout", Env: "production",
		PhaseIndex: 0, Phase: "phase 1", Desired: canary(5),
	}, applied[0])
	require.Equal(t, int64(2), applied[1].Generation)
	require.Zero(t, fleet.Duplicates())

	// The copies handed out must not alias the fleet's records.
	state.Versions[0].Weight = 1
	applied[0].Desired.Versions[0].Weight = 1
	again, _ := fleet.State("checkout", "production")
	require.Equal(t, 75, again.Versions[0].Weight)
	require.Equal(t, 95, fleet.Applied()[0].Desired.Versions[0].Weight)
}

func TestApplyIgnoresRepeatedAndStaleGenerations(t *testing.T) {
	t.Parallel()
	var (
		mu         sync.Mutex
		deliveries int
	)
	fleet := simulator.New(simulator.Options{OnApply: func(driver.Request) {
		mu.Lock()
		deliveries++
		mu.Unlock()
	}})
	ctx := t.Context()

	require.NoError(t, fleet.Apply(ctx, request(7, 1, canary(5), simulatorConfig)))
	require.NoError(t, fleet.Apply(ctx, request(7, 2, canary(25), simulatorConfig)))
	// A retry of generation 2 and a stale worker still holding generation 1
	// must both leave 25% on the canary.
	require.NoError(t, fleet.Apply(ctx, request(7, 2, canary(25), simulatorConfig)))
	require.NoError(t, fleet.Apply(ctx, request(7, 1, canary(5), simulatorConfig)))

	state, _ := fleet.State("checkout", "production")
	require.Equal(t, int64(2), state.Generation)
	require.Equal(t, 25, state.Versions[1].Weight)
	require.Len(t, fleet.Applied(), 2)
	require.Equal(t, 2, fleet.Duplicates())
	require.Equal(t, 4, deliveries)

	// Generations belong to their run: a new run starts again from 1.
	require.NoError(t, fleet.Apply(ctx, request(8, 1, canary(50), simulatorConfig)))
	state, _ = fleet.State("checkout", "production")
	require.Equal(t, simulator.EnvState{Versions: canary(50).Versions, RunID: 8, Generation: 1, Sequence: 3}, state)
	require.Equal(t, 2, fleet.Duplicates())
}

func TestApplyCrashOnStart(t *testing.T) {
	fleet, ctx := setup(t)
	config := `{"type": "simulator", "faults": {"v2": {"crash_on_start": true}}}`
	started := plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 10, Weight: 100},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 0, Weight: 0},
	}}
	require.NoError(t, fleet.Apply(ctx, request(7, 1, started, config)), "v2 is not asked to run yet")

	err := fleet.Apply(ctx, request(7, 2, canary(5), config))
	require.EqualError(t, err, "instances of v2 crashed on start")
	require.ErrorIs(t, err, driver.ErrPermanent)
	state, _ := fleet.State("checkout", "production")
	require.Equal(t, int64(1), state.Generation, "a crash changes nothing")
	require.Len(t, fleet.Applied(), 1)

	// A failed generation was never applied, so delivering it again is no
	// duplicate: it fails again, and succeeds once the fault is cancelled
	// at runtime.
	require.ErrorIs(t, fleet.Apply(ctx, request(7, 2, canary(5), config)), driver.ErrPermanent)
	require.NoError(t, fleet.SetFaults("checkout", "production", "v2", simulator.Fault{}))
	require.NoError(t, fleet.Apply(ctx, request(7, 2, canary(5), config)))
	require.Zero(t, fleet.Duplicates())

	// A runtime fault crashes a version the configuration thinks healthy,
	// and clearing it restores the configuration's faults.
	require.NoError(t, fleet.SetFaults("checkout", "production", "v1", simulator.Fault{CrashOnStart: true}))
	err = fleet.Apply(ctx, request(7, 3, canary(25), config))
	require.EqualError(t, err, "instances of v1 crashed on start")
	fleet.ClearFaults("checkout", "production")
	require.EqualError(t, fleet.Apply(ctx, request(7, 3, canary(25), config)), "instances of v2 crashed on start")
}

func TestApplyRejectsBadInputPermanently(t *testing.T) {
	fleet, ctx := setup(t)
	tests := []struct {
		name string
		req  driver.Request
		want string
	}{
		{
			name: "invalid config",
			req:  request(1, 1, canary(5), `{"type": "simulator", "base_error_rate": 2}`),
			want: "invalid simulator driver config: base_error_rate: must be between 0 and 1, got 2",
		},
		{
			name: "no app",
			req:  driver.Request{RunID: 1, Generation: 1, Environment: "production", Desired: canary(5)},
			want: `simulator request for run 1 names no app or environment (app "", environment "production")`,
		},
		{
			name: "weights not adding up",
			req:  request(1, 1, plan.DesiredState{Versions: []plan.VersionState{{Version: "v1", Instances: 2, Weight: 60}}}, ""),
			want: "invalid desired state: weights add up to 60, want 100 while instances run",
		},
		{
			name: "traffic to a stopped version",
			req: request(1, 1, plan.DesiredState{Versions: []plan.VersionState{
				{Version: "v1", Instances: 2, Weight: 50}, {Version: "v2", Instances: 0, Weight: 50},
			}}, ""),
			want: "invalid desired state: version v2 has weight 50 but no instances to serve it",
		},
		{
			name: "mirror to a stopped version",
			req: request(1, 1, plan.DesiredState{
				Versions: []plan.VersionState{{Version: "v1", Instances: 2, Weight: 100}},
				Mirror:   &plan.Mirror{From: "v1", To: "v2", Percent: 100},
			}, ""),
			want: "invalid desired state: mirror from v1 to v2 needs instances of both versions",
		},
		{
			name: "cohort to an unknown version",
			req: request(1, 1, plan.DesiredState{
				Versions: []plan.VersionState{{Version: "v1", Instances: 2, Weight: 100}},
				Cohorts:  []plan.CohortRule{{Name: "arm_b", Version: "v3", Match: plan.Match{Kind: plan.MatchAll}}},
			}, ""),
			want: "invalid desired state: cohort arm_b routes to version v3, which has no instances",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fleet.Apply(ctx, tt.req)
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, driver.ErrPermanent)
		})
	}
	require.Empty(t, fleet.Applied())
	require.Zero(t, fleet.Duplicates())
}

func TestApplyWaitsForDelayAndHonoursCancel(t *testing.T) {
	t.Parallel()
	fleet := simulator.New(simulator.Options{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := fleet.Apply(ctx, request(1, 1, canary(5), simulatorConfig))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, driver.ErrPermanent, "a cancelled apply may be retried")
	require.Empty(t, fleet.Applied())

	fast := simulator.New(simulator.Options{Delay: time.Millisecond})
	require.NoError(t, fast.Apply(t.Context(), request(1, 1, canary(5), simulatorConfig)))
	require.Len(t, fast.Applied(), 1)
}

func TestValidateConfig(t *testing.T) {
	t.Parallel()
	valid := []string{
		``,
		`null`,
		`{}`,
		`{"type": "simulator"}`,
		`{"type": "simulator", "requests_per_second": 20, "base_error_rate": 0.01, "base_latency_ms": 120,
		  "faults": {"v2": {"error_rate": 0.05, "latency_ms": 400, "health_check_failures": 2, "crash_on_start": false, "cpu": 0.9, "memory": 0.8}}}`,
		`{"requests_per_second": 0, "base_error_rate": 0, "base_latency_ms": 0, "faults": null}`,
		`{"faults": {"v2": {"error_rate": null}}}`,
	}
	for _, config := range valid {
		require.NoError(t, simulator.ValidateConfig(json.RawMessage(config)), config)
	}

	tests := []struct {
		name   string
		config string
		want   []plan.FieldError
	}{
		{"unknown field", `{"type": "simulator", "rps": 20}`, []plan.FieldError{
			{Field: "rps", Message: "is not a simulator setting; known settings are type, instances, requests_per_second, base_error_rate, base_latency_ms and faults"},
		}},
		{"other type", `{"type": "webhook"}`, []plan.FieldError{
			{Field: "type", Message: `must be "simulator", got "webhook"`},
		}},
		{"negative traffic", `{"requests_per_second": -1}`, []plan.FieldError{
			{Field: "requests_per_second", Message: "must not be negative, got -1"},
		}},
		{"too much traffic", `{"requests_per_second": 2e6}`, []plan.FieldError{
			{Field: "requests_per_second", Message: "must be at most 1000000, got 2e+06"},
		}},
		{"rate above one", `{"base_error_rate": 1.5}`, []plan.FieldError{
			{Field: "base_error_rate", Message: "must be between 0 and 1, got 1.5"},
		}},
		{"every problem at once", `{"base_error_rate": -0.1, "base_latency_ms": -5, "requests_per_second": "fast"}`, []plan.FieldError{
			{Field: "base_error_rate", Message: "must be between 0 and 1, got -0.1"},
			{Field: "base_latency_ms", Message: "must not be negative, got -5"},
			{Field: "requests_per_second", Message: `must be a number, got "fast"`},
		}},
		{"bad fault numbers", `{"faults": {"v2": {"error_rate": 5, "latency_ms": -1, "health_check_failures": -2, "cpu": 1.1, "memory": -0.5}}}`, []plan.FieldError{
			{Field: `faults["v2"].error_rate`, Message: "must be between 0 and 1, got 5"},
			{Field: `faults["v2"].latency_ms`, Message: "must not be negative, got -1"},
			{Field: `faults["v2"].health_check_failures`, Message: "must not be negative, got -2"},
			{Field: `faults["v2"].cpu`, Message: "must be between 0 and 1, got 1.1"},
			{Field: `faults["v2"].memory`, Message: "must be between 0 and 1, got -0.5"},
		}},
		{"bad fault types", `{"faults": {"v2": {"health_check_failures": 1.5, "crash_on_start": "yes", "errors": 3}}}`, []plan.FieldError{
			{Field: `faults["v2"].crash_on_start`, Message: `must be true or false, got "yes"`},
			{Field: `faults["v2"].errors`, Message: "is not a fault setting; known settings are error_rate, latency_ms, health_check_failures, crash_on_start, cpu and memory"},
			{Field: `faults["v2"].health_check_failures`, Message: "must be a whole number, got 1.5"},
		}},
		{"fault not an object", `{"faults": {"v2": 0.05}}`, []plan.FieldError{
			{Field: `faults["v2"]`, Message: "must be a JSON object, got 0.05"},
		}},
		{"fault without version", `{"faults": {"": {"error_rate": 0.05}}}`, []plan.FieldError{
			{Field: `faults[""]`, Message: "must name a version"},
		}},
		{"faults not an object", `{"faults": ["v2"]}`, []plan.FieldError{
			{Field: "faults", Message: `must be a JSON object, got ["v2"]`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := simulator.ValidateConfig(json.RawMessage(tt.config))
			configErr, ok := errors.AsType[*driver.ConfigError](err)
			require.True(t, ok, "got %v", err)
			require.Equal(t, simulator.Type, configErr.Type)
			require.Equal(t, tt.want, configErr.Errors)
		})
	}

	require.EqualError(t, simulator.ValidateConfig(json.RawMessage(`[1, 2]`)), "invalid simulator driver config: config: must be a JSON object")
	require.EqualError(t, simulator.ValidateConfig(json.RawMessage(`{"faults": }`)), "invalid simulator driver config: config: is not valid JSON")
}

func TestParseConfigFillsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := simulator.ParseConfig(json.RawMessage(`{"type": "simulator", "base_error_rate": 0}`))
	require.NoError(t, err)
	require.Equal(t, simulator.Config{
		Instances:         simulator.DefaultInstances,
		RequestsPerSecond: simulator.DefaultRequestsPerSecond,
		BaseErrorRate:     0,
		BaseLatencyMS:     simulator.DefaultBaseLatencyMS,
	}, cfg, "an explicit zero is kept, a missing field gets its default")
}

func TestSetFaultsRejectsBadNumbers(t *testing.T) {
	fleet, _ := setup(t)
	err := fleet.SetFaults("checkout", "production", "v2", simulator.Fault{ErrorRate: 2})
	require.EqualError(t, err, `fault for version "v2": invalid simulator driver config: error_rate: must be between 0 and 1, got 2`)
}

func TestObserveIsDeterministic(t *testing.T) {
	fleet, ctx := setup(t)
	require.NoError(t, fleet.Apply(ctx, request(1, 1, canary(25), `{"faults": {"v2": {"error_rate": 0.05}}}`)))
	to := window.Add(5 * time.Minute)

	first := fleet.Observe("checkout", "production", "v2", window, to)
	require.Equal(t, first, fleet.Observe("checkout", "production", "v2", window, to))
	require.Equal(t, int64(1500), first.Requests, "20 rps × 25% × 300 s")
	require.Equal(t, 1, first.Instances)
	require.Equal(t, 25, first.Weight)

	twin := simulator.New(simulator.Options{Seed: 42})
	require.NoError(t, twin.Apply(ctx, request(1, 1, canary(25), `{"faults": {"v2": {"error_rate": 0.05}}}`)))
	require.Equal(t, first, twin.Observe("checkout", "production", "v2", window, to), "same seed, same numbers")

	next := fleet.Observe("checkout", "production", "v2", to, to.Add(5*time.Minute))
	require.NotEqual(t, first, next, "the next window draws afresh")
	other := simulator.New(simulator.Options{Seed: 43})
	require.NoError(t, other.Apply(ctx, request(1, 1, canary(25), `{"faults": {"v2": {"error_rate": 0.05}}}`)))
	require.NotEqual(t, first, other.Observe("checkout", "production", "v2", window, to))
}

func TestObserveErrorRateFollowsFault(t *testing.T) {
	fleet, ctx := setup(t)
	config := `{"requests_per_second": 20, "base_error_rate": 0.01, "faults": {"v2": {"error_rate": 0.05}}}`
	require.NoError(t, fleet.Apply(ctx, request(1, 1, canary(50), config)))

	// One hour at 10 rps is 36,000 requests; the standard deviation of the
	// error rate is about 0.0011, so ±0.005 is more than four of them.
	hour := fleet.Observe("checkout", "production", "v2", window, window.Add(time.Hour))
	require.Equal(t, int64(36000), hour.Requests)
	require.InDelta(t, 0.05, float64(hour.Errors)/float64(hour.Requests), 0.005)
	stable := fleet.Observe("checkout", "production", "v1", window, window.Add(time.Hour))
	require.InDelta(t, 0.01, float64(stable.Errors)/float64(stable.Requests), 0.003)

	// The same hour as sixty one-minute windows of 600 requests each,
	// drawn request by request, agrees within the same tolerance.
	var requests, errs int64
	for m := range 60 {
		from := window.Add(time.Duration(m) * time.Minute)
		obs := fleet.Observe("checkout", "production", "v2", from, from.Add(time.Minute))
		requests += obs.Requests
		errs += obs.Errors
	}
	require.Equal(t, int64(36000), requests)
	require.InDelta(t, 0.05, float64(errs)/float64(requests), 0.005)
}

func TestObserveRareErrors(t *testing.T) {
	fleet, ctx := setup(t)
	require.NoError(t, fleet.Apply(ctx, request(1, 1, canary(0), `{"base_error_rate": 0.0001}`)))

	// 200 hours of 72,000 requests expect 7.2 errors an hour; the mean of
	// 200 draws has a standard deviation of 0.19, so ±1 is over five.
	var errs int64
	for h := range 200 {
		from := window.Add(time.Duration(h) * time.Hour)
		errs += fleet.Observe("checkout", "production", "v1", from, from.Add(time.Hour)).Errors
	}
	require.InDelta(t, 7.2, float64(errs)/200, 1)
}

func TestObserveTraffic(t *testing.T) {
	fleet, ctx := setup(t)
	shadow := plan.DesiredState{
		Versions: []plan.VersionState{
			{Version: "v1", Role: plan.RoleStable, Instances: 10, Weight: 100},
			{Version: "v2", Role: plan.RoleCandidate, Instances: 5, Weight: 0},
			{Version: "v0", Role: plan.RoleStable, Instances: 0, Weight: 0},
		},
		Mirror: &plan.Mirror{From: "v1", To: "v2", Percent: 40},
	}
	require.NoError(t, fleet.Apply(ctx, request(1, 1, shadow, `{"requests_per_second": 10}`)))
	to := window.Add(time.Minute)

	require.Equal(t, int64(600), fleet.Observe("checkout", "production", "v1", window, to).Requests)
	require.Equal(t, int64(240), fleet.Observe("checkout", "production", "v2", window, to).Requests, "the mirrored 40%")
	require.Equal(t, simulator.Observation{}, fleet.Observe("checkout", "production", "v0", window, to), "no instances, nothing observed")

	require.NoError(t, fleet.Apply(ctx, request(1, 2, canary(0), `{"requests_per_second": 10}`)))
	idle := fleet.Observe("checkout", "production", "v2", window, to)
	require.Equal(t, simulator.Observation{Instances: 1, Weight: 0, CPU: idle.CPU, Memory: idle.Memory}, idle, "weight 0 gets no requests")

	require.Equal(t, simulator.Observation{}, fleet.Observe("checkout", "staging", "v1", window, to))
	require.Equal(t, simulator.Observation{}, fleet.Observe("billing", "production", "v1", window, to))
	require.Equal(t, simulator.Observation{}, fleet.Observe("checkout", "production", "v9", window, to))
}

func TestObserveLatencyHealthAndUsage(t *testing.T) {
	fleet, ctx := setup(t)
	config := `{"base_latency_ms": 120, "faults": {"v2": {"latency_ms": 400, "health_check_failures": 2, "cpu": 0.9, "memory": 0.8}}}`
	require.NoError(t, fleet.Apply(ctx, request(1, 1, canary(50), config)))
	to := window.Add(time.Hour)

	slow := fleet.Observe("checkout", "production", "v2", window, to)
	// With 36,000 requests the noise on a quantile is about 2%.
	require.InDelta(t, 400, slow.LatencyP50, 40)
	require.InDelta(t, 400*1.64, slow.LatencyP95, 0.1*400*1.64)
	require.InDelta(t, 400*2.01, slow.LatencyP99, 0.1*400*2.01)
	require.Equal(t, 2, slow.HealthCheckFailures)
	require.InDelta(t, 0.9, slow.CPU, 0.1)
	require.InDelta(t, 0.8, slow.Memory, 0.1)

	healthy := fleet.Observe("checkout", "production", "v1", window, to)
	require.InDelta(t, 120, healthy.LatencyP50, 12)
	require.Zero(t, healthy.HealthCheckFailures)
	require.Less(t, healthy.CPU, 0.6)

	// Quantiles stay ordered even over windows with very few requests.
	for s := range 200 {
		from := window.Add(time.Duration(s) * time.Second)
		obs := fleet.Observe("checkout", "production", "v2", from, from.Add(time.Second))
		require.Equal(t, int64(10), obs.Requests)
		require.LessOrEqual(t, obs.LatencyP50, obs.LatencyP95)
		require.LessOrEqual(t, obs.LatencyP95, obs.LatencyP99)
		require.GreaterOrEqual(t, obs.CPU, 0.0)
		require.LessOrEqual(t, obs.CPU, 1.0)
	}

	// A runtime fault wins over the configuration's.
	require.NoError(t, fleet.SetFaults("checkout", "production", "v2", simulator.Fault{LatencyMS: 1000}))
	require.InDelta(t, 1000, fleet.Observe("checkout", "production", "v2", window, to).LatencyP50, 100)
	require.Zero(t, fleet.Observe("checkout", "production", "v2", window, to).HealthCheckFailures)
	fleet.ClearFaults("checkout", "production")
	require.Equal(t, slow, fleet.Observe("checkout", "production", "v2", window, to))
}

// TestEveryPlanApplies steps the fleet through every phase and the rollback
// of every strategy's default plan, so the simulator accepts exactly what
// the plan package builds.
func TestEveryPlanApplies(t *testing.T) {
	t.Parallel()
	targets := []plan.Target{
		{FromVersion: "v1", ToVersion: "v2", Instances: 10},
		{FromVersion: "v1", ToVersion: "v2", Instances: 1},
		{ToVersion: "v2", Instances: 3},
	}
	for _, s := range plan.Strategies {
		for _, target := range targets {
			p, err := plan.Build(s, nil, target)
			if err != nil {
				continue // A first deploy is not every strategy's to make.
			}
			t.Run(fmt.Sprintf("%s/%s->%s/%d", s, target.FromVersion, target.ToVersion, target.Instances), func(t *testing.T) {
				fleet, ctx := setup(t)
				var generation int64
				apply := func(index int, name string, desired plan.DesiredState) {
					generation++
					req := request(1, generation, desired, simulatorConfig)
					req.PhaseIndex, req.Phase = index, name
					require.NoError(t, fleet.Apply(ctx, req), name)
					state, _ := fleet.State("checkout", "production")
					require.Equal(t, generation, state.Generation)
				}
				for i, ph := range p.Phases {
					apply(i, ph.Name, ph.Desired)
				}
				for _, step := range p.Rollback.Steps {
					apply(-1, "rollback", step)
				}
				require.Len(t, fleet.Applied(), len(p.Phases)+len(p.Rollback.Steps))
			})
		}
	}
}

// TestAnyPlanApplies widens TestEveryPlanApplies to drawn fleet sizes and
// the parameters that shape desired states, so no plan the engine can build
// is refused by the simulator.
func TestAnyPlanApplies(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.SampledFrom(plan.Strategies).Draw(t, "strategy")
		target := plan.Target{FromVersion: "v1", ToVersion: "v2", Instances: rapid.IntRange(1, 300).Draw(t, "instances")}
		if rapid.IntRange(0, 4).Draw(t, "first_deploy") == 0 {
			target.FromVersion = ""
		}
		params := map[string]any{}
		switch s {
		case plan.Rolling:
			params["batch_size"] = rapid.IntRange(1, 400).Draw(t, "batch_size")
		case plan.Canary:
			params["steps"] = []int{rapid.IntRange(1, 49).Draw(t, "first_step"), rapid.IntRange(50, 99).Draw(t, "second_step"), 100}
		case plan.Shadow:
			params["mirror_percent"] = rapid.IntRange(1, 100).Draw(t, "mirror_percent")
		case plan.ABTest:
			params["split_percent"] = rapid.IntRange(1, 99).Draw(t, "split_percent")
		}
		raw, err := json.Marshal(params)
		require.NoError(t, err)
		p, err := plan.Build(s, raw, target)
		if err != nil {
			t.Skip("not a plan this strategy builds:", err)
		}
		fleet := simulator.New(simulator.Options{})
		steps := make([]plan.DesiredState, 0, len(p.Phases)+len(p.Rollback.Steps))
		for _, ph := range p.Phases {
			steps = append(steps, ph.Desired)
		}
		steps = append(steps, p.Rollback.Steps...)
		for i, desired := range steps {
			require.NoError(t, fleet.Apply(context.Background(), request(1, int64(i+1), desired, simulatorConfig)))
		}
	})
}

// TestConcurrentDeliveries has many goroutines, as two engines sharing the
// fleet would, deliver every generation of several runs three times in a
// random order, while others read state and metrics.
func TestConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	fleet := simulator.New(simulator.Options{Seed: 1, Delay: 50 * time.Microsecond})
	ctx := t.Context()
	const (
		runs        = 6
		generations = 40
		copies      = 3
	)
	var deliveries []driver.Request
	for run := int64(1); run <= runs; run++ {
		for gen := int64(1); gen <= generations; gen++ {
			req := request(run, gen, canary(int(gen)%101), simulatorConfig)
			// Runs 1 and 2 share an environment; the others have their own.
			req.Environment = fmt.Sprintf("env-%d", max(run, 2))
			for range copies {
				deliveries = append(deliveries, req)
			}
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(deliveries), func(i, j int) {
		deliveries[i], deliveries[j] = deliveries[j], deliveries[i]
	})

	start := make(chan struct{})
	var wg sync.WaitGroup
	const readers, reads = 8, 50
	errs := make(chan error, len(deliveries)+readers*reads)
	for _, req := range deliveries {
		wg.Go(func() {
			<-start
			errs <- fleet.Apply(ctx, req)
		})
	}
	for i := range readers {
		wg.Go(func() {
			<-start
			env := fmt.Sprintf("env-%d", i%runs+1)
			for range reads {
				fleet.State("checkout", env)
				fleet.Observe("checkout", env, "v2", window, window.Add(time.Minute))
				fleet.Applied()
				fleet.Duplicates()
				errs <- fleet.SetFaults("checkout", env, "v1", simulator.Fault{LatencyMS: 300})
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	applied := fleet.Applied()
	newest := map[int64]int64{}
	for i, a := range applied {
		require.Equal(t, int64(i+1), a.Sequence)
		require.Greater(t, a.Generation, newest[a.RunID], "run %d applied generation %d after %d", a.RunID, a.Generation, newest[a.RunID])
		newest[a.RunID] = a.Generation
	}
	for run := int64(1); run <= runs; run++ {
		require.Equal(t, int64(generations), newest[run], "the newest generation of run %d is never stale", run)
	}
	require.Equal(t, len(deliveries), len(applied)+fleet.Duplicates())
	for _, env := range []string{"env-3", "env-4", "env-5", "env-6"} {
		state, ok := fleet.State("checkout", env)
		require.True(t, ok)
		require.Equal(t, int64(generations), state.Generation)
	}
}

// TestDeliveriesMatchModel checks any sequence of deliveries against a
// model of the rule: a run's generation takes effect only when it is newer
// than every generation applied for that run before.
func TestDeliveriesMatchModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		fleet := simulator.New(simulator.Options{})
		newest := map[int64]int64{}
		effective, ignored := 0, 0
		n := rapid.IntRange(1, 60).Draw(t, "deliveries")
		for i := range n {
			run := rapid.Int64Range(1, 3).Draw(t, fmt.Sprintf("run_%d", i))
			gen := rapid.Int64Range(0, 10).Draw(t, fmt.Sprintf("generation_%d", i))
			require.NoError(t, fleet.Apply(context.Background(), request(run, gen, canary(int(gen)*10), simulatorConfig)))
			if last, seen := newest[run]; seen && gen <= last {
				ignored++
				continue
			}
			newest[run] = gen
			effective++
			state, _ := fleet.State("checkout", "production")
			require.Equal(t, run, state.RunID)
			require.Equal(t, gen, state.Generation)
		}
		require.Len(t, fleet.Applied(), effective)
		require.Equal(t, ignored, fleet.Duplicates())
	})
}

func TestRegistryFindsSimulator(t *testing.T) {
	fleet, _ := setup(t)
	registry := driver.NewRegistry()
	registry.Register(simulator.Type, fleet)

	d, err := registry.Lookup(json.RawMessage(`{"type": "simulator", "requests_per_second": 5}`))
	require.NoError(t, err)
	require.Same(t, fleet, d)

	_, err = registry.Lookup(json.RawMessage(`{"type": "simulater"}`))
	require.EqualError(t, err, `unknown driver type "simulater"; known driver types: simulator`)
	require.ErrorIs(t, err, driver.ErrPermanent)
}

func TestInstancesSetting(t *testing.T) {
	t.Parallel()
	cfg, err := simulator.ParseConfig(json.RawMessage(`{"type": "simulator", "instances": 4}`))
	require.NoError(t, err)
	require.Equal(t, 4, cfg.Instances)
	for _, bad := range []string{`0`, `-1`, `2.5`, `10001`, `"ten"`} {
		err := simulator.ValidateConfig(json.RawMessage(`{"type": "simulator", "instances": ` + bad + `}`))
		require.ErrorContains(t, err, "instances", bad)
	}
}
