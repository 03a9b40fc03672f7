package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// step applies one step to a claimed run and commits it with its event.
// Every step ends in exactly one compare-and-swap write (or a reschedule),
// which also gives up the lease.
func (e *Engine) step(ctx context.Context, run store.Run) error {
	switch run.State {
	case store.RunPending:
		return e.startRun(ctx, run)
	case store.RunRunning, store.RunAwaitingApproval:
		return e.advance(ctx, run)
	case store.RunRollingBack:
		return e.rollBack(ctx, run)
	case store.RunPaused:
		return e.stepPaused(ctx, run)
	default:
		// Paused and terminal runs have nothing to do; a due time left on a
		// paused run is cleared so it is not claimed again.
		_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, nil)
		return err
	}
}

// runContext loads what a step needs besides the run itself.
type runContext struct {
	app  store.App
	env  store.Environment
	plan plan.Plan
}

func (e *Engine) load(ctx context.Context, run store.Run) (runContext, error) {
	var rc runContext
	var err error
	if rc.env, err = e.store.EnvironmentByID(ctx, run.EnvironmentID); err != nil {
		return rc, fmt.Errorf("loading environment: %w", err)
	}
	if rc.app, err = e.store.AppByID(ctx, run.AppID); err != nil {
		return rc, fmt.Errorf("loading app: %w", err)
	}
	if len(run.Plan) > 0 {
		if err := json.Unmarshal(run.Plan, &rc.plan); err != nil {
			return rc, fmt.Errorf("decoding plan of run %d: %w", run.ID, err)
		}
	}
	return rc, nil
}

// commit writes the run (clearing the lease) with its event, and runs
// extra writes in the same transaction.
func (e *Engine) commit(ctx context.Context, run store.Run, ev store.Event, extra func(tx *store.Store) error) error {
	run.LeaseOwner, run.LeaseExpiresAt = "", nil
	if ev.Actor == "" {
		ev.Actor = "engine"
	}
	return e.store.WithTx(ctx, func(tx *store.Store) error {
		if _, err := tx.UpdateRun(ctx, run, ev); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
}

// startRun compiles the plan and makes the run active, or leaves it queued
// while another run holds the environment.
func (e *Engine) startRun(ctx context.Context, run store.Run) error {
	rc, err := e.load(ctx, run)
	if err != nil {
		return err
	}
	now := e.now()
	// The stable version may have changed while the run was queued.
	run.FromVersion = rc.env.StableVersion
	if run.FromVersion == run.ToVersion {
		run.State, run.Reason = store.RunFailed, fmt.Sprintf("%s is already the stable version of %s", run.ToVersion, rc.env.Name)
		return e.commit(ctx, run, store.Event{Type: "run.failed", Payload: map[string]any{"reason": run.Reason}}, nil)
	}
	p, err := BuildPlan(run.Strategy, run.Params, rc.env, run.FromVersion, run.ToVersion)
	if err != nil {
		run.State, run.Reason = store.RunFailed, "the plan could not be built: "+err.Error()
		return e.commit(ctx, run, store.Event{Type: "run.failed", Payload: map[string]any{"reason": run.Reason}}, nil)
	}
	planJSON, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding plan: %w", err)
	}
	// Outside the deploy windows, during a freeze or a halt, the run waits.
	if held, err := e.waitForGate(ctx, run, rc.env, now); held || err != nil {
		return err
	}
	// First come, first served: an older queued run starts first.
	older, err := e.store.HasOlderPending(ctx, run.EnvironmentID, run.ID)
	if err != nil {
		return err
	}
	if older {
		err = store.ErrActiveRun
	} else {
		err = e.activate(ctx, run, p, planJSON, now)
	}
	if errors.Is(err, errStableMoved) {
		return e.startRun(ctx, run)
	}
	if !errors.Is(err, store.ErrActiveRun) {
		return err
	}
	// Queued: another run is active or older. Announce it once, then wait
	// to be woken when the active run ends (or poll).
	next := now.Add(e.cfg.QueuePoll)
	if run.Reason == queuedReason {
		_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, &next)
		return err
	}
	queued := run
	queued.Reason = queuedReason
	queued.NextEvalAt = &next
	return e.commit(ctx, queued, store.Event{Type: "run.queued", Payload: map[string]any{"reason": queuedReason}}, nil)
}

// activate makes a pending run active with its compiled plan.
func (e *Engine) activate(ctx context.Context, run store.Run, p plan.Plan, planJSON json.RawMessage, now time.Time) error {
	started := run
	started.State = store.RunRunning
	started.Plan = planJSON
	started.Reason = ""
	started.PhaseIndex = 0
	if err := setDesired(&started, p.Phases[0].Desired); err != nil {
		return err
	}
	started.NextEvalAt = &now
	return e.commit(ctx, started, store.Event{Type: "run.started", Payload: map[string]any{
		"from_version": started.FromVersion, "to_version": started.ToVersion, "strategy": started.Strategy,
		"phases": len(p.Phases), "first_phase": p.Phases[0].Name,
	}}, func(tx *store.Store) error {
		// Holding the environment's active slot now, check that the stable
		// version read above is still the stable version: a run that just
		// finished may have changed it after we read it.
		cur, err := tx.EnvironmentByID(ctx, run.EnvironmentID)
		if err != nil {
			return err
		}
		if cur.StableVersion != started.FromVersion {
			return errStableMoved
		}
		phases := make([]store.RunPhase, len(p.Phases))
		for i, ph := range p.Phases {
			desired, err := json.Marshal(ph.Desired)
			if err != nil {
				return err
			}
			phases[i] = store.RunPhase{RunID: run.ID, Index: i, Name: ph.Name, Kind: ph.Kind, Desired: desired, Bake: time.Duration(ph.Bake)}
		}
		if err := tx.CreateRunPhases(ctx, phases); err != nil {
			return err
		}
		return tx.SetRunPhaseStatus(ctx, run.ID, 0, store.PhaseApplying, &now, nil)
	})
}

// errStableMoved makes startRun read the environment again.
var errStableMoved = errors.New("the stable version changed while the run started")

const queuedReason = "queued: another run is active in this environment"

// setDesired moves the run to a new generation with the desired state.
func setDesired(run *store.Run, d plan.DesiredState) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding desired state: %w", err)
	}
	run.Generation++
	run.Desired = b
	run.PhaseStartedAt = nil
	run.BakeExtension = 0
	run.Extensions = 0
	run.ConsecutiveErrors = 0
	return nil
}

// apply sends the run's current desired state to the environment's driver.
// A crash after this call and before the commit repeats it with the same
// generation, which drivers treat as a no-op.
func (e *Engine) apply(ctx context.Context, run store.Run, rc runContext, phaseIndex int, phaseName string) error {
	d, err := e.cfg.Drivers.Lookup(rc.env.Driver)
	if err != nil {
		return fmt.Errorf("%w: %w", driver.ErrPermanent, err)
	}
	var desired plan.DesiredState
	if err := json.Unmarshal(run.Desired, &desired); err != nil {
		return fmt.Errorf("%w: decoding desired state: %w", driver.ErrPermanent, err)
	}
	report := func(summary, detail string) {
		// What the driver did is bookkeeping for people; a failure to
		// record it must not fail the step that did it.
		if _, err := e.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "driver.output", Actor: "engine",
			Payload: map[string]any{"phase": phaseIndex, "generation": run.Generation, "summary": summary, "output": detail}}); err != nil {
			e.logger.WarnContext(ctx, "recording driver output", slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
		}
	}
	return d.Apply(ctx, driver.Request{
		RunID: run.ID, Generation: run.Generation, App: rc.app.Slug, Environment: rc.env.Name,
		PhaseIndex: phaseIndex, Phase: phaseName, Desired: desired, Config: rc.env.Driver, Report: report,
	})
}

// advance steps a running or approval-waiting run: apply the phase's state,
// judge it during its bake, then move on, wait for a person or finish.
func (e *Engine) advance(ctx context.Context, run store.Run) error {
	rc, err := e.load(ctx, run)
	if err != nil {
		return err
	}
	if run.PhaseIndex >= len(rc.plan.Phases) {
		return fmt.Errorf("run %d is at phase %d of a %d-phase plan", run.ID, run.PhaseIndex, len(rc.plan.Phases))
	}
	phase := rc.plan.Phases[run.PhaseIndex]
	now := e.now()

	if run.AppliedGeneration < run.Generation {
		if err := e.apply(ctx, run, rc, run.PhaseIndex, phase.Name); err != nil {
			if inProgress(err) {
				return e.awaitDriver(ctx, run)
			}
			return e.applyFailed(ctx, run, rc, err)
		}
		e.crashPoint(run.ID, "after_apply")
		run.AppliedGeneration = run.Generation
		run.PhaseStartedAt = &now
		run.ConsecutiveErrors = 0
		next := now
		if phase.Analysis && time.Duration(phase.Bake) > 0 {
			next = now.Add(min(e.analysisInterval(phase), time.Duration(phase.Bake)))
		} else if time.Duration(phase.Bake) > 0 {
			next = now.Add(time.Duration(phase.Bake))
		}
		run.NextEvalAt = &next
		return e.commit(ctx, run, store.Event{Type: "phase.applied", Payload: map[string]any{
			"phase": run.PhaseIndex, "name": phase.Name, "generation": run.Generation,
		}}, func(tx *store.Store) error {
			return tx.SetRunPhaseStatus(ctx, run.ID, run.PhaseIndex, store.PhaseBaking, &now, nil)
		})
	}

	started := now
	if run.PhaseStartedAt != nil {
		started = *run.PhaseStartedAt
	}
	bakeEnd := started.Add(time.Duration(phase.Bake) + run.BakeExtension)
	waiting := run.State == store.RunAwaitingApproval

	// Judge the phase at every step while it bakes, once more when the
	// bake is over (even when the engine is late), and while it waits for a
	// person: a breach during the wait still rolls back.
	var decision *store.Decision
	verdict := VerdictContinue
	if phase.Analysis {
		a, err := e.analyze(ctx, run, rc, phase, started, now)
		if err != nil {
			return err
		}
		verdict = a.Verdict
		decision = &store.Decision{RunID: run.ID, PhaseIndex: run.PhaseIndex, Verdict: string(a.Verdict), Explanation: a.Explanation, Record: a.Record}
		switch a.Verdict {
		case VerdictRollback:
			return e.beginRollback(ctx, run, rc, store.RunRolledBack, a.Explanation, "engine", decision)
		case VerdictMonitorLonger:
			if run.Extensions >= e.cfg.MaxExtensions {
				reason := fmt.Sprintf("still degraded after %d extensions of the bake: %s", run.Extensions, a.Explanation)
				return e.beginRollback(ctx, run, rc, store.RunRolledBack, reason, "engine", decision)
			}
			run.Extensions++
			ext := max(e.analysisInterval(phase), time.Duration(phase.Bake)/4)
			run.BakeExtension += ext
			bakeEnd = bakeEnd.Add(ext)
		case VerdictInconclusive:
			run.ConsecutiveErrors++
			if run.ConsecutiveErrors >= e.cfg.ConsecutiveErrorLimit {
				reason := fmt.Sprintf("analysis inconclusive %d times in a row: %s", run.ConsecutiveErrors, a.Explanation)
				return e.failurePolicy(ctx, run, rc, reason, decision)
			}
		default:
			run.ConsecutiveErrors = 0
			if a.EndPhase && !waiting {
				bakeEnd = now
			}
		}
	}

	analysisEvent := func(typ string) store.Event {
		payload := map[string]any{"phase": run.PhaseIndex}
		if decision != nil {
			payload["verdict"] = decision.Verdict
			payload["explanation"] = decision.Explanation
		}
		return store.Event{Type: typ, Payload: payload}
	}
	withDecision := func(more func(tx *store.Store) error) func(tx *store.Store) error {
		return func(tx *store.Store) error {
			if decision != nil {
				if _, err := tx.InsertDecision(ctx, *decision); err != nil {
					return err
				}
			}
			if more != nil {
				return more(tx)
			}
			return nil
		}
	}

	// Still baking, waiting for a person, or held by an inconclusive
	// verdict (never promoted automatically): judge again later.
	// A phase whose bake is shorter than the warm-up waits for it: a phase
	// that was never judged is not promoted.
	if now.Before(bakeEnd) || waiting || verdict == VerdictInconclusive || verdict == VerdictMonitorLonger || verdict == VerdictWarmingUp {
		next := now.Add(e.analysisInterval(phase))
		if !waiting && verdict != VerdictInconclusive && verdict != VerdictWarmingUp && bakeEnd.Before(next) {
			next = bakeEnd
		}
		if waiting && !phase.Analysis {
			run.NextEvalAt = nil
		} else {
			run.NextEvalAt = &next
		}
		if decision == nil {
			// Nothing happened but time: no state change to record.
			_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, run.NextEvalAt)
			return err
		}
		return e.commit(ctx, run, analysisEvent("analysis."+decision.Verdict), withDecision(nil))
	}

	// The bake is over and the phase is healthy.
	if phase.ApprovalRequired || phase.ManualPromote {
		run.State = store.RunAwaitingApproval
		run.NextEvalAt = nil
		if phase.Analysis {
			next := now.Add(e.analysisInterval(phase))
			run.NextEvalAt = &next
		}
		return e.commit(ctx, run, analysisEvent("phase.awaiting_approval"), withDecision(func(tx *store.Store) error {
			return tx.SetRunPhaseStatus(ctx, run.ID, run.PhaseIndex, store.PhaseAwaitingApproval, nil, nil)
		}))
	}
	// The next phase may not start outside the deploy windows, during a
	// freeze or a halt: the run pauses here (see governance.go).
	if run.PhaseIndex < len(rc.plan.Phases)-1 {
		if paused, err := e.pauseAtPhaseEnd(ctx, run, rc, withDecision(nil)); paused || err != nil {
			return err
		}
	}
	return e.completePhase(ctx, run, rc, analysisEvent, withDecision)
}

// completePhase moves past the current phase: to the next one, or to
// success after the last.
func (e *Engine) completePhase(ctx context.Context, run store.Run, rc runContext,
	event func(string) store.Event, extra func(func(*store.Store) error) func(*store.Store) error,
) error {
	now := e.now()
	done := run.PhaseIndex
	if run.PhaseIndex == len(rc.plan.Phases)-1 {
		run.State = store.RunSucceeded
		run.Reason = ""
		return e.commit(ctx, run, event("run.succeeded"), extra(func(tx *store.Store) error {
			if err := tx.SetRunPhaseStatus(ctx, run.ID, done, store.PhaseSucceeded, nil, &now); err != nil {
				return err
			}
			if releasesCandidate(rc.plan.Strategy) {
				return tx.SetStableVersion(ctx, run.EnvironmentID, run.ToVersion)
			}
			return nil
		}))
	}
	run.State = store.RunRunning
	run.PhaseIndex++
	next := rc.plan.Phases[run.PhaseIndex]
	if err := setDesired(&run, next.Desired); err != nil {
		return err
	}
	run.NextEvalAt = &now
	ev := event("phase.started")
	ev.Payload.(map[string]any)["phase"] = run.PhaseIndex
	ev.Payload.(map[string]any)["name"] = next.Name
	return e.commit(ctx, run, ev, extra(func(tx *store.Store) error {
		if err := tx.SetRunPhaseStatus(ctx, run.ID, done, store.PhaseSucceeded, nil, &now); err != nil {
			return err
		}
		return tx.SetRunPhaseStatus(ctx, run.ID, run.PhaseIndex, store.PhaseApplying, &now, nil)
	}))
}

// releasesCandidate reports whether a successful run makes its version the
// stable one. Shadow and A/B runs end in a report: users keep the stable
// version, and putting the candidate live is a separate deployment.
func releasesCandidate(s plan.Strategy) bool {
	return s != plan.Shadow && s != plan.ABTest
}

func (e *Engine) analyze(ctx context.Context, run store.Run, rc runContext, phase plan.Phase, started, now time.Time) (Analysis, error) {
	a, err := e.cfg.Analyzer.Analyze(ctx, AnalysisRequest{
		Run: run, App: rc.app, Environment: rc.env, Plan: rc.plan,
		PhaseIndex: run.PhaseIndex, Phase: phase, PhaseStartedAt: started, Now: now,
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return Analysis{}, err
		}
		// A failing metric source is inconclusive, never a pass.
		return Analysis{
			Verdict:     VerdictInconclusive,
			Explanation: "Inconclusive: the analysis failed: " + err.Error(),
			Record:      mustJSON(map[string]any{"error": err.Error()}),
		}, nil
	}
	if len(a.Record) == 0 {
		a.Record = json.RawMessage(`{}`)
	}
	return a, nil
}

// inProgress reports whether a driver answered that it is still working
// on the desired state; a permanent error never counts as in progress.
func inProgress(err error) bool {
	return errors.Is(err, driver.ErrInProgress) && !errors.Is(err, driver.ErrPermanent)
}

// awaitDriver asks the driver again after a short wait, without an event or
// a counted attempt: waiting for an asynchronous deploy system is not a
// failure, and the driver bounds the wait with its own deadline. A report
// of completion through the API makes the run due at once.
func (e *Engine) awaitDriver(ctx context.Context, run store.Run) error {
	next := e.now().Add(e.cfg.RetryBackoff)
	_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, &next)
	return err
}

// applyFailed retries a failed apply with backoff; a permanent error, or
// too many in a row, fails the phase and the failure policy applies.
func (e *Engine) applyFailed(ctx context.Context, run store.Run, rc runContext, applyErr error) error {
	if errors.Is(applyErr, context.Canceled) {
		return applyErr
	}
	run.ConsecutiveErrors++
	if errors.Is(applyErr, driver.ErrPermanent) || run.ConsecutiveErrors >= e.cfg.DriverAttempts {
		reason := fmt.Sprintf("phase %d could not be applied: %v", run.PhaseIndex, applyErr)
		return e.failurePolicy(ctx, run, rc, reason, nil)
	}
	next := e.now().Add(e.cfg.RetryBackoff << (run.ConsecutiveErrors - 1))
	run.NextEvalAt = &next
	return e.commit(ctx, run, store.Event{Type: "driver.error", Payload: map[string]any{
		"phase": run.PhaseIndex, "generation": run.Generation, "attempt": run.ConsecutiveErrors, "error": applyErr.Error(), "retry_at": next,
	}}, nil)
}

// failurePolicy pauses or rolls back, as the environment is configured.
func (e *Engine) failurePolicy(ctx context.Context, run store.Run, rc runContext, reason string, decision *store.Decision) error {
	if rc.env.FailurePolicy == "pause" {
		now := e.now()
		run.ResumeState = run.State
		run.State = store.RunPaused
		run.PausedAt = &now
		run.NextEvalAt = nil
		run.Reason = reason
		return e.commit(ctx, run, store.Event{Type: "run.paused", Payload: map[string]any{"reason": reason}}, func(tx *store.Store) error {
			if decision != nil {
				_, err := tx.InsertDecision(ctx, *decision)
				return err
			}
			return nil
		})
	}
	return e.beginRollback(ctx, run, rc, store.RunFailed, reason, "engine", decision)
}

// beginRollback turns the run around: traffic goes back to stable through
// the plan's rollback steps, and the run then ends in final.
func (e *Engine) beginRollback(ctx context.Context, run store.Run, rc runContext, final store.RunState, reason, actor string, decision *store.Decision) error {
	now := e.now()
	run.State = store.RunRollingBack
	run.FinalState = final
	run.Reason = reason
	run.RollbackStep = 0
	run.PausedAt, run.ResumeState = nil, ""
	steps := rc.plan.Rollback.Steps
	if len(steps) == 0 {
		return fmt.Errorf("run %d has no rollback steps", run.ID)
	}
	if err := setDesired(&run, steps[0]); err != nil {
		return err
	}
	run.NextEvalAt = &now
	return e.commit(ctx, run, store.Event{Type: "run.rolling_back", Actor: actor, Payload: map[string]any{
		"reason": reason, "final_state": final, "phase": run.PhaseIndex,
	}}, func(tx *store.Store) error {
		if decision != nil {
			if _, err := tx.InsertDecision(ctx, *decision); err != nil {
				return err
			}
		}
		return nil
	})
}

// rollBack applies the rollback steps one by one, then ends the run.
func (e *Engine) rollBack(ctx context.Context, run store.Run) error {
	rc, err := e.load(ctx, run)
	if err != nil {
		return err
	}
	steps := rc.plan.Rollback.Steps
	now := e.now()
	if run.AppliedGeneration < run.Generation {
		if err := e.apply(ctx, run, rc, -1, fmt.Sprintf("rollback step %d", run.RollbackStep+1)); err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			if inProgress(err) {
				return e.awaitDriver(ctx, run)
			}
			// A rollback must finish: keep retrying, with backoff.
			run.ConsecutiveErrors++
			next := now.Add(min(e.cfg.RetryBackoff<<min(run.ConsecutiveErrors-1, 6), 5*time.Minute))
			run.NextEvalAt = &next
			return e.commit(ctx, run, store.Event{Type: "driver.error", Payload: map[string]any{
				"rollback_step": run.RollbackStep, "generation": run.Generation, "attempt": run.ConsecutiveErrors, "error": err.Error(), "retry_at": next,
			}}, nil)
		}
		e.crashPoint(run.ID, "after_rollback_apply")
		run.AppliedGeneration = run.Generation
		run.ConsecutiveErrors = 0
	}
	if run.RollbackStep+1 < len(steps) {
		run.RollbackStep++
		if err := setDesired(&run, steps[run.RollbackStep]); err != nil {
			return err
		}
		run.NextEvalAt = &now
		return e.commit(ctx, run, store.Event{Type: "rollback.step_applied", Payload: map[string]any{
			"step": run.RollbackStep, "of": len(steps),
		}}, nil)
	}
	run.State = run.FinalState
	return e.commit(ctx, run, store.Event{Type: "run." + string(run.FinalState), Payload: map[string]any{
		"reason": run.Reason, "phase": run.PhaseIndex,
	}}, func(tx *store.Store) error {
		// Phases the run never reached are skipped; the ones in progress
		// were rolled back.
		if err := tx.SetRunPhasesStatusFrom(ctx, run.ID, run.PhaseIndex+1, store.PhaseSkipped, &now); err != nil {
			return err
		}
		return tx.SetRunPhasesStatusFrom(ctx, run.ID, 0, store.PhaseRolledBack, &now)
	})
}

// analysisInterval is how often a phase is judged: the configured interval,
// stretched for very long bakes (a 14-day A/B test need not be judged every
// 30 seconds) but never beyond 15 minutes.
func (e *Engine) analysisInterval(phase plan.Phase) time.Duration {
	return max(e.cfg.AnalysisInterval, min(time.Duration(phase.Bake)/288, 15*time.Minute))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
