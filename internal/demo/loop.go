package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// inFlight are the states of a run that keep an environment busy, pending
// included: the loop never queues a second run behind one.
var inFlight = []store.RunState{
	store.RunPending, store.RunRunning, store.RunAwaitingApproval, store.RunPaused, store.RunRollingBack,
}

// Loop keeps the demo moving until ctx ends: every Interval it calls
// Refill, and every ten seconds FeedFlagRollouts. It touches only the demo's own environments, and only while they
// still use the simulator, so apps people add and environments they point
// at a real fleet are left alone.
func Loop(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	traffic := time.NewTicker(10 * time.Second)
	defer traffic.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-traffic.C:
			if _, err := FeedFlagRollouts(ctx, cfg); err != nil && ctx.Err() == nil {
				cfg.Logger.WarnContext(ctx, "demo: reporting flag rollout traffic", slog.String("error", err.Error()))
			}
			continue
		case <-ticker.C:
		}
		passCtx, cancel := context.WithTimeout(ctx, cfg.Interval)
		started, err := Refill(passCtx, cfg)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			cfg.Logger.WarnContext(ctx, "demo: starting the next runs", slog.String("error", err.Error()))
		}
		for _, r := range started {
			cfg.Logger.DebugContext(ctx, "demo run started", slog.Int64("run_id", r.ID),
				slog.String("version", r.ToVersion), slog.String("strategy", r.Strategy))
		}
	}
}

// Refill starts a run in every demo environment that has none in flight
// (pending included) and whose last run finished at least Rest ago: the
// next version number, with the next strategy of the environment's
// rotation. Every fourth version has a fault, written into the
// environment's simulator settings (and the audit log) before its run
// starts, so the analysis has something to catch now and then. It returns
// the runs it started; a problem with one environment does not keep the
// others from being refilled.
func Refill(ctx context.Context, cfg Config) ([]store.Run, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var started []store.Run
	var errs []error
	for _, a := range catalog {
		app, err := cfg.Store.App(ctx, a.slug)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return started, fmt.Errorf("loading app %s: %w", a.slug, err)
		}
		for _, e := range a.envs {
			env, err := cfg.Store.Environment(ctx, app.ID, e.name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("loading %s/%s: %w", a.slug, e.name, err))
				continue
			}
			run, ok, err := refill(ctx, cfg, app, env, e)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", a.slug, e.name, err))
				continue
			}
			if ok {
				started = append(started, run)
			}
		}
	}
	return started, errors.Join(errs...)
}

// refill starts the next run in one environment when it is idle.
func refill(ctx context.Context, cfg Config, app store.App, env store.Environment, e envSpec) (store.Run, bool, error) {
	var driverType struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(env.Driver, &driverType) != nil || driverType.Type != simulator.Type {
		return store.Run{}, false, nil
	}
	busy, err := cfg.Store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, States: inFlight, Limit: 1})
	if err != nil {
		return store.Run{}, false, fmt.Errorf("looking for runs in flight: %w", err)
	}
	if len(busy) > 0 {
		return store.Run{}, false, nil
	}
	latest, err := cfg.Store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, Limit: 1})
	if err != nil {
		return store.Run{}, false, fmt.Errorf("looking for the last run: %w", err)
	}
	var last *store.Run
	if len(latest) > 0 {
		last = &latest[0]
		finished := last.UpdatedAt
		if last.FinishedAt != nil {
			finished = *last.FinishedAt
		}
		if cfg.Now().Sub(finished) < cfg.Rest {
			return store.Run{}, false, nil
		}
	}
	next, ok := nextVersion(env.StableVersion, last)
	if !ok {
		// Someone deployed a version the demo cannot number after.
		return store.Run{}, false, nil
	}
	strategy := nextStrategy(e.rotation, last)
	env, err = setFaults(ctx, cfg, app, env, next)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		// Another server's loop, or an admin, changed the environment
		// meanwhile; it is looked at again next time.
		return store.Run{}, false, nil
	}
	if err != nil {
		return store.Run{}, false, err
	}
	run, created, err := cfg.Runs.CreateRun(ctx, engine.NewRun{
		App: app, Environment: env, Version: next, Strategy: string(strategy),
		CreatedBy: Actor, IdempotencyKey: idempotencyKey(env, next),
	})
	if err != nil {
		return store.Run{}, false, fmt.Errorf("starting %s of %s: %w", strategy, next, err)
	}
	// A run that existed already was started by another server's loop.
	return run, created, nil
}

// version is a version string of the form v1.2.3.
type version [3]int

var versionSyntax = regexp.MustCompile(`^v(\d{1,6})\.(\d{1,6})\.(\d{1,6})$`)

func parseVersion(s string) (version, bool) {
	m := versionSyntax.FindStringSubmatch(s)
	if m == nil {
		return version{}, false
	}
	var v version
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v, true
}

func (v version) String() string { return fmt.Sprintf("v%d.%d.%d", v[0], v[1], v[2]) }

func (v version) less(w version) bool { return slices.Compare(v[:], w[:]) < 0 }

// nextVersion is the minor release after the newest of the stable version
// and the last run's version, so a version that was rolled back is never
// tried again: its fix gets the next number, as it would in real life.
func nextVersion(stable string, last *store.Run) (string, bool) {
	newest, ok := parseVersion(stable)
	if !ok {
		return "", false
	}
	if last != nil {
		if v, ok := parseVersion(last.ToVersion); ok && newest.less(v) {
			newest = v
		}
	}
	return version{newest[0], newest[1] + 1, 0}.String(), true
}

// nextStrategy takes the strategy after the last run's in the rotation.
func nextStrategy(rotation []plan.Strategy, last *store.Run) plan.Strategy {
	if last == nil {
		return rotation[0]
	}
	i := slices.Index(rotation, plan.Strategy(last.Strategy))
	return rotation[(i+1)%len(rotation)]
}

// faultOf is how a version misbehaves in the demo: every fourth minor
// release has a fault, alternately failing 8% of its requests and being
// slow with 5% failing (either way several points above the 1% of a
// healthy version, which every strategy's analysis catches, also where
// the candidate is judged on its own).
func faultOf(v string) (simulator.Fault, bool) {
	pv, ok := parseVersion(v)
	if !ok || pv[1]%4 != 0 {
		return simulator.Fault{}, false
	}
	if pv[1]%8 == 4 {
		return simulator.Fault{ErrorRate: 0.08}, true
	}
	return simulator.Fault{ErrorRate: 0.05, LatencyMS: 400}, true
}

// setFaults makes the environment's simulator settings give next its fault,
// if it has one, and drops the faults of earlier demo versions, which will
// not run again. Faults of versions the demo does not number are kept. A
// change is saved only when there is one, and is recorded in the audit log.
func setFaults(ctx context.Context, cfg Config, app store.App, env store.Environment, next string) (store.Environment, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(env.Driver, &fields); err != nil {
		return env, fmt.Errorf("reading the simulator settings: %w", err)
	}
	faults := map[string]json.RawMessage{}
	if raw, ok := fields["faults"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &faults); err != nil {
			return env, fmt.Errorf("reading the simulator's faults: %w", err)
		}
	}
	nv, _ := parseVersion(next)
	var dropped []string
	for v := range faults {
		if pv, ok := parseVersion(v); ok && pv.less(nv) {
			delete(faults, v)
			dropped = append(dropped, v)
		}
	}
	fault, faulty := faultOf(next)
	if faulty {
		raw, err := json.Marshal(fault)
		if err != nil {
			return env, err
		}
		faults[next] = raw
	}
	if len(dropped) == 0 && !faulty {
		return env, nil
	}
	if len(faults) == 0 {
		delete(fields, "faults")
	} else {
		raw, err := json.Marshal(faults)
		if err != nil {
			return env, err
		}
		fields["faults"] = raw
	}
	driver, err := json.Marshal(fields)
	if err != nil {
		return env, err
	}
	if err := simulator.ValidateConfig(driver); err != nil {
		return env, err
	}
	slices.Sort(dropped)
	var detail []string
	if faulty {
		detail = append(detail, fmt.Sprintf("the simulator now gives %s %s", next, describeFault(fault)))
	}
	if len(dropped) > 0 {
		detail = append(detail, "removed the faults of "+strings.Join(dropped, ", "))
	}
	err = cfg.Store.WithTx(ctx, func(tx *store.Store) error {
		updated := env
		updated.Driver = driver
		saved, err := tx.UpdateEnvironment(ctx, updated)
		if err != nil {
			return err
		}
		env = saved
		_, err = tx.RecordAudit(ctx, store.AuditEvent{
			Actor: Actor, Action: "environment.settings_changed", App: app.Slug, Environment: env.Name,
			Detail: "driver: " + strings.Join(detail, "; ") + " (demo fault injection)",
		})
		return err
	})
	if err != nil {
		return env, fmt.Errorf("saving the simulator's faults: %w", err)
	}
	return env, nil
}

// describeFault says in words what a fault does.
func describeFault(f simulator.Fault) string {
	parts := []string{fmt.Sprintf("an error rate of %.3g%%", 100*f.ErrorRate)}
	if f.LatencyMS > 0 {
		parts = append(parts, fmt.Sprintf("a median latency of %.0f ms", f.LatencyMS))
	}
	return strings.Join(parts, " and ")
}
