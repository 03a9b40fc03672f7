// Package simulator is the built-in driver of a modelled fleet. It needs no
// infrastructure, so the demo runs out of the box and the engine, the
// analysis and the pages can be tested against a fleet whose faults are
// injected on purpose: a version that fails more requests, answers slowly,
// fails health checks, burns CPU or crashes on start.
//
// A Fleet keeps, per app and environment, the state the last effective
// apply asked for, and reports metrics for it through Observe. The metrics
// are drawn from a pseudo-random generator seeded by the window, so a test
// that observes the same window twice sees the same numbers.
package simulator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Options configure a Fleet. The zero value is a usable fleet that applies
// instantly.
type Options struct {
	// Seed makes the fleet's metric noise reproducible: two fleets with the
	// same seed and state report the same numbers for the same window.
	Seed int64
	// Delay is how long every apply takes, to simulate a deploy system
	// that needs time to start instances and move traffic. A cancelled
	// context ends the wait with the context's error.
	Delay time.Duration
	// OnApply, when set, is called at the start of every Apply, before
	// deduplication, with the request as delivered. Tests use it to count
	// deliveries, to hold a worker in the middle of an apply, or to inject
	// a fault just before a step takes effect.
	OnApply func(driver.Request)
}

// EnvState is what one app's environment runs in the simulator: the desired
// state of the last effective apply and who set it.
type EnvState struct {
	// Versions are the versions with their instances and traffic weights.
	Versions []plan.VersionState `json:"versions"`
	// Cohorts are the sticky routing rules in force.
	Cohorts []plan.CohortRule `json:"cohorts,omitempty"`
	// Mirror is the traffic mirror in force, or nil.
	Mirror *plan.Mirror `json:"mirror,omitempty"`
	// RunID is the run whose apply set the state.
	RunID int64 `json:"run_id"`
	// Generation is the generation of that apply.
	Generation int64 `json:"generation"`
	// PhaseIndex is the phase of that apply, -1 for a rollback step.
	PhaseIndex int `json:"phase_index"`
	// Sequence is the position of that apply in Applied, counting from 1.
	// It grows with every effective apply across the fleet, so it orders
	// changes without a clock.
	Sequence int64 `json:"sequence"`
}

// Applied is one effective apply, recorded so tests and pages can replay
// exactly what the fleet was asked to do and in which order.
type Applied struct {
	// Sequence is the apply's position, counting from 1.
	Sequence int64 `json:"sequence"`
	// RunID is the run the apply belonged to.
	RunID int64 `json:"run_id"`
	// Generation is the apply's generation within its run.
	Generation int64 `json:"generation"`
	// App is the app's slug.
	App string `json:"app"`
	// Env is the environment's name.
	Env string `json:"env"`
	// PhaseIndex is the phase applied, -1 for a rollback step.
	PhaseIndex int `json:"phase_index"`
	// Phase is the phase's name.
	Phase string `json:"phase"`
	// Desired is the state applied.
	Desired plan.DesiredState `json:"desired"`
}

// Fleet is a modelled fleet of every app and environment configured with
// the simulator driver. It implements driver.Driver and is safe for
// concurrent use, including by two engines sharing one Fleet, which is how
// tests model several server replicas.
type Fleet struct {
	opts Options

	mu sync.RWMutex
	// envs holds the state of each app's environment.
	envs map[envKey]*envState
	// newest is the newest generation applied for each run.
	newest map[int64]int64
	// applied records every effective apply in order.
	applied []Applied
	// duplicates counts repeated and stale deliveries.
	duplicates int
	// faults are faults injected at runtime, by environment and version.
	faults map[envKey]map[string]Fault
}

// envKey names one app's environment.
type envKey struct {
	app, env string
}

// envState is an environment's state together with the configuration it
// was applied with, which Observe needs for traffic and faults.
type envState struct {
	state  EnvState
	config Config
}

var _ driver.Driver = (*Fleet)(nil)

// New returns an empty fleet: no environment runs anything until the first
// apply.
func New(opts Options) *Fleet {
	return &Fleet{
		opts:   opts,
		envs:   map[envKey]*envState{},
		newest: map[int64]int64{},
		faults: map[envKey]map[string]Fault{},
	}
}

// Apply makes req.Desired the state of req.App's req.Environment. A
// delivery of a generation already applied for the run, or older than the
// newest applied, changes nothing, returns nil and is counted in Duplicates.
// A bad configuration, a malformed desired state, or a desired state that
// runs a version whose fault is crash_on_start fails with an error wrapping
// driver.ErrPermanent and changes nothing.
func (f *Fleet) Apply(ctx context.Context, req driver.Request) error {
	if f.opts.OnApply != nil {
		f.opts.OnApply(req)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		return driver.Permanent(err)
	}
	if err := validateRequest(req); err != nil {
		return driver.Permanent(err)
	}
	// A repeated delivery returns at once rather than after Delay, as a
	// real driver that remembers what it did would.
	if f.skip(req) {
		return nil
	}
	if f.opts.Delay > 0 {
		timer := time.NewTimer(f.opts.Delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// Checked again under the lock: another worker may have applied this
	// or a newer generation while this one waited.
	if f.skipLocked(req) {
		return nil
	}
	key := envKey{req.App, req.Environment}
	for _, v := range req.Desired.Versions {
		if v.Instances > 0 && f.faultLocked(key, cfg, v.Version).CrashOnStart {
			return driver.Permanent(fmt.Errorf("instances of %s crashed on start", v.Version))
		}
	}
	desired := cloneDesired(req.Desired)
	sequence := int64(len(f.applied)) + 1
	f.applied = append(f.applied, Applied{
		Sequence:   sequence,
		RunID:      req.RunID,
		Generation: req.Generation,
		App:        req.App,
		Env:        req.Environment,
		PhaseIndex: req.PhaseIndex,
		Phase:      req.Phase,
		Desired:    desired,
	})
	f.newest[req.RunID] = req.Generation
	f.envs[key] = &envState{
		state: EnvState{
			Versions:   desired.Versions,
			Cohorts:    desired.Cohorts,
			Mirror:     desired.Mirror,
			RunID:      req.RunID,
			Generation: req.Generation,
			PhaseIndex: req.PhaseIndex,
			Sequence:   sequence,
		},
		config: cfg,
	}
	return nil
}

// skip reports, and counts, a delivery that is a repeat or older than the
// newest generation applied for its run.
func (f *Fleet) skip(req driver.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipLocked(req)
}

// skipLocked is skip for a caller holding the lock.
func (f *Fleet) skipLocked(req driver.Request) bool {
	newest, seen := f.newest[req.RunID]
	if seen && req.Generation <= newest {
		f.duplicates++
		return true
	}
	return false
}

// State returns the state of app's environment env, and false when nothing
// was applied to it yet. The result is a copy the caller may keep.
func (f *Fleet) State(app, env string) (EnvState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.envs[envKey{app, env}]
	if !ok {
		return EnvState{}, false
	}
	state := s.state
	desired := cloneDesired(plan.DesiredState{Versions: state.Versions, Cohorts: state.Cohorts, Mirror: state.Mirror})
	state.Versions, state.Cohorts, state.Mirror = desired.Versions, desired.Cohorts, desired.Mirror
	return state, true
}

// Applied returns every effective apply in the order it took effect. The
// result is a copy the caller may keep.
func (f *Fleet) Applied() []Applied {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Applied, len(f.applied))
	for i, a := range f.applied {
		a.Desired = cloneDesired(a.Desired)
		out[i] = a
	}
	return out
}

// Duplicates returns how many deliveries were ignored because their
// generation was already applied or older than the newest applied for their
// run. Tests use it to prove that retries and stale workers reached the
// driver and were harmless.
func (f *Fleet) Duplicates() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.duplicates
}

// SetFaults gives version in app's environment env the fault f from now on,
// in place of any fault the environment's configuration gives it; setting a
// zero Fault therefore cancels a configured fault. It takes effect for later
// applies and observations, and rejects a fault with out-of-range numbers.
func (f *Fleet) SetFaults(app, env, version string, fault Fault) error {
	if err := fault.Validate(); err != nil {
		return fmt.Errorf("fault for version %q: %w", version, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := envKey{app, env}
	if f.faults[key] == nil {
		f.faults[key] = map[string]Fault{}
	}
	f.faults[key][version] = fault
	return nil
}

// ClearFaults removes every fault injected at runtime into app's
// environment env, so the faults of its configuration apply again.
func (f *Fleet) ClearFaults(app, env string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.faults, envKey{app, env})
}

// faultLocked is the fault in force for a version: one injected at runtime
// wins over the configuration's.
func (f *Fleet) faultLocked(key envKey, cfg Config, version string) Fault {
	if fault, ok := f.faults[key][version]; ok {
		return fault
	}
	return cfg.Faults[version]
}

// validateRequest checks what a real deploy system would refuse: a request
// without a target, or a desired state that cannot be made true. The plan
// package builds states that pass; anything else is an engine bug worth
// failing loudly in tests.
func validateRequest(req driver.Request) error {
	if req.App == "" || req.Environment == "" {
		return fmt.Errorf("simulator request for run %d names no app or environment (app %q, environment %q)", req.RunID, req.App, req.Environment)
	}
	return validateDesired(req.Desired)
}

// validateDesired checks that a desired state is one a fleet can take on.
func validateDesired(d plan.DesiredState) error {
	var problems []string
	running := map[string]bool{}
	listed := map[string]bool{}
	weights, instances := 0, 0
	for i, v := range d.Versions {
		switch {
		case v.Version == "":
			problems = append(problems, fmt.Sprintf("versions[%d] has no version", i))
		case listed[v.Version]:
			problems = append(problems, fmt.Sprintf("version %s is listed twice", v.Version))
		}
		listed[v.Version] = true
		running[v.Version] = running[v.Version] || v.Instances > 0
		if v.Instances < 0 {
			problems = append(problems, fmt.Sprintf("version %s has %d instances", v.Version, v.Instances))
		}
		if v.Weight < 0 || v.Weight > 100 {
			problems = append(problems, fmt.Sprintf("version %s has weight %d, outside 0 to 100", v.Version, v.Weight))
		}
		if v.Weight > 0 && v.Instances <= 0 {
			problems = append(problems, fmt.Sprintf("version %s has weight %d but no instances to serve it", v.Version, v.Weight))
		}
		weights += v.Weight
		instances += max(v.Instances, 0)
	}
	switch {
	case instances > 0 && weights != 100:
		problems = append(problems, fmt.Sprintf("weights add up to %d, want 100 while instances run", weights))
	case instances == 0 && weights != 0:
		problems = append(problems, fmt.Sprintf("weights add up to %d with no instances running", weights))
	}
	for _, c := range d.Cohorts {
		if !running[c.Version] {
			problems = append(problems, fmt.Sprintf("cohort %s routes to version %s, which has no instances", c.Name, c.Version))
		}
	}
	if m := d.Mirror; m != nil {
		if !running[m.From] || !running[m.To] {
			problems = append(problems, fmt.Sprintf("mirror from %s to %s needs instances of both versions", m.From, m.To))
		}
		if m.Percent < 1 || m.Percent > 100 {
			problems = append(problems, fmt.Sprintf("mirror percent %d is outside 1 to 100", m.Percent))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid desired state: %s", strings.Join(problems, "; "))
	}
	return nil
}

// cloneDesired deep-copies a desired state, so the fleet's records never
// share slices with callers.
func cloneDesired(d plan.DesiredState) plan.DesiredState {
	out := plan.DesiredState{Versions: slices.Clone(d.Versions)}
	if d.Cohorts != nil {
		out.Cohorts = make([]plan.CohortRule, len(d.Cohorts))
		for i, c := range d.Cohorts {
			c.Match.Values = slices.Clone(c.Match.Values)
			out.Cohorts[i] = c
		}
	}
	if d.Mirror != nil {
		m := *d.Mirror
		out.Mirror = &m
	}
	return out
}
