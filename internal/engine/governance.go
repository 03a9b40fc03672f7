package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"time"

	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Deploy windows, freezes and the halt act on runs at three points:
//
//   - creating a run: outside a window or during a freeze, an environment
//     set to "refuse" refuses it (*governance.ClosedError); otherwise the
//     run is created and waits, pending, until the gate opens. A halt never
//     refuses: new runs wait until it is lifted.
//   - starting a pending run: it waits (event "run.waiting") and is looked
//     at again when the window opens or the freeze ends, or after QueuePoll.
//   - finishing a phase: a run whose next phase would start outside its
//     windows, during a freeze or while the line is stopped finishes the
//     current phase and pauses (a hold records that the gate paused it).
//     Runs paused by a window or a freeze resume by themselves when the
//     gate opens; runs paused by the halt resume when it is lifted. A run
//     a person resumes or pauses again is no longer the gate's.
//
// A person approving or promoting a phase moves the run on regardless:
// the approval is an explicit decision. An admin's override lets one run
// pass windows and freezes, never the halt.

// verdict checks the gate of a run's environment at now.
func (e *Engine) verdict(ctx context.Context, run store.Run, env store.Environment, now time.Time) (governance.Verdict, error) {
	g, err := e.store.Gate(ctx, env, now)
	if err != nil {
		return governance.Verdict{}, fmt.Errorf("reading deploy windows, freezes and the halt: %w", err)
	}
	override := false
	if run.ID != 0 {
		_, override, err = e.store.RunOverride(ctx, run.ID)
		if err != nil {
			return governance.Verdict{}, fmt.Errorf("reading the override of run %d: %w", run.ID, err)
		}
	}
	return g.Check(now, override), nil
}

// recheck is when a run held by the gate is looked at again: when the gate
// is known to open, but at least every QueuePoll for a freeze or the halt
// (a freeze may end early) and every 15 minutes for a window (windows may
// be edited).
func (e *Engine) recheck(v governance.Verdict, now time.Time) *time.Time {
	next := now.Add(e.cfg.QueuePoll)
	if v.Cause == governance.CauseWindow {
		next = now.Add(max(e.cfg.QueuePoll, 15*time.Minute))
	}
	if !v.Until.IsZero() && v.Until.Before(next) {
		next = v.Until
	}
	return &next
}

// waitForGate keeps a pending run waiting while its gate is closed; held
// reports whether it did.
func (e *Engine) waitForGate(ctx context.Context, run store.Run, env store.Environment, now time.Time) (held bool, err error) {
	v, err := e.verdict(ctx, run, env, now)
	if err != nil || v.Open {
		return false, err
	}
	next := e.recheck(v, now)
	reason := "waiting: " + v.Reason
	if run.Reason == reason {
		_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, next)
		return true, err
	}
	run.Reason, run.NextEvalAt = reason, next
	payload := map[string]any{"reason": v.Message(now), "cause": string(v.Cause)}
	if !v.Until.IsZero() {
		payload["until"] = v.Until
	}
	return true, e.commit(ctx, run, store.Event{Type: "run.waiting", Payload: payload}, nil)
}

// pauseAtPhaseEnd pauses a run whose next phase may not start now; paused
// reports whether it did. extra runs in the same transaction.
func (e *Engine) pauseAtPhaseEnd(ctx context.Context, run store.Run, rc runContext, extra func(*store.Store) error) (paused bool, err error) {
	now := e.now()
	v, err := e.verdict(ctx, run, rc.env, now)
	if err != nil || v.Open {
		return false, err
	}
	var reason string
	switch v.Cause {
	case governance.CauseHalt:
		reason = "stop the line: " + haltReason(v)
	case governance.CauseFreeze:
		reason = "paused: " + v.Reason + "; resumes when the freeze ends"
	default:
		g, err := e.store.Gate(ctx, rc.env, now)
		if err != nil {
			return false, err
		}
		closed, loc := g.Schedule.LastClose(now)
		if closed.IsZero() {
			reason = "paused: " + rc.env.Name + " is outside its deploy windows (" + g.Schedule.String() + "); resumes when one opens"
		} else {
			reason = fmt.Sprintf("paused: the deploy window closed at %s %s; resumes when it opens", closed.In(loc).Format("15:04"), loc)
		}
	}
	run.ResumeState, run.State = run.State, store.RunPaused
	run.PausedAt = &now
	run.Reason = reason
	run.NextEvalAt = nil
	if v.Cause != governance.CauseHalt {
		run.NextEvalAt = e.recheck(v, now)
	}
	payload := map[string]any{"reason": reason, "cause": string(v.Cause), "phase": run.PhaseIndex, "detail": v.Message(now)}
	return true, e.commit(ctx, run, store.Event{Type: "run.paused", Payload: payload}, func(tx *store.Store) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.PutGovernanceHold(ctx, run.ID, v.Cause, now)
	})
}

// haltReason is the reason given when the line was stopped.
func haltReason(v governance.Verdict) string {
	r := strings.TrimPrefix(v.Reason, "the line is stopped: ")
	if i := strings.LastIndex(r, " (by "); i > 0 {
		r = r[:i]
	}
	return r
}

// stepPaused resumes a run the gate paused once the gate opens again; a
// run a person paused, or the halt paused, waits for a person (or the
// halt's lift).
func (e *Engine) stepPaused(ctx context.Context, run store.Run) error {
	cause, held, err := e.store.GovernanceHold(ctx, run.ID)
	if err != nil {
		return err
	}
	if !held || cause == governance.CauseHalt {
		_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, nil)
		return err
	}
	rc, err := e.load(ctx, run)
	if err != nil {
		return err
	}
	now := e.now()
	v, err := e.verdict(ctx, run, rc.env, now)
	if err != nil {
		return err
	}
	if !v.Open {
		_, err := e.store.Reschedule(ctx, run.ID, run.Version, run.LeaseOwner, e.recheck(v, now))
		return err
	}
	reason := "the deploy window opened"
	if cause == governance.CauseFreeze {
		reason = "the freeze ended"
	}
	resume(&run, now)
	return e.commit(ctx, run, store.Event{Type: "run.resumed", Payload: map[string]any{"reason": reason, "phase": run.PhaseIndex}}, func(tx *store.Store) error {
		return tx.DeleteGovernanceHold(ctx, run.ID)
	})
}

// resume returns a paused run to the state it was paused in; the bake does
// not count the time spent paused.
func resume(run *store.Run, now time.Time) {
	if run.PhaseStartedAt != nil && run.PausedAt != nil {
		shifted := run.PhaseStartedAt.Add(now.Sub(*run.PausedAt))
		run.PhaseStartedAt = &shifted
	}
	run.State, run.ResumeState, run.PausedAt = run.ResumeState, "", nil
	run.NextEvalAt, run.Reason, run.ConsecutiveErrors = &now, "", 0
}

// HaltResult says what stopping or restarting the line did.
type HaltResult struct {
	Halt store.HaltState
	// Runs are the runs paused (or resumed) by it.
	Runs []int64
}

// Halt stops the line: every running run and every run awaiting approval,
// in every environment, pauses at once with the reason "stop the line:
// <reason>", and runs not started yet wait. A rolling back run finishes
// its rollback. store.ErrHalted when the line is stopped already.
func (e *Engine) Halt(ctx context.Context, actor, reason string) (HaltResult, error) {
	h, err := e.store.SetHalt(ctx, reason, actor)
	if err != nil {
		return HaltResult{}, err
	}
	ids, err := e.store.RunIDsInStates(ctx, store.RunRunning, store.RunAwaitingApproval)
	if err != nil {
		return HaltResult{Halt: h}, err
	}
	res := HaltResult{Halt: h}
	var errs []error
	for _, id := range ids {
		paused, err := e.haltRun(ctx, id, actor, reason)
		if err != nil {
			errs = append(errs, fmt.Errorf("pausing run %d: %w", id, err))
			continue
		}
		if paused {
			res.Runs = append(res.Runs, id)
		}
	}
	e.Wake()
	return res, errors.Join(errs...)
}

func (e *Engine) haltRun(ctx context.Context, id int64, actor, reason string) (bool, error) {
	for attempt := 0; ; attempt++ {
		run, err := e.store.Run(ctx, id)
		if err != nil {
			return false, err
		}
		if run.State != store.RunRunning && run.State != store.RunAwaitingApproval {
			return false, nil
		}
		now := e.now()
		run.ResumeState, run.State = run.State, store.RunPaused
		run.PausedAt, run.NextEvalAt = &now, nil
		run.Reason = "stop the line: " + reason
		err = e.store.WithTx(ctx, func(tx *store.Store) error {
			if _, err := tx.UpdateRun(ctx, run, store.Event{Type: "run.paused", Actor: actor, Payload: map[string]any{
				"reason": run.Reason, "cause": string(governance.CauseHalt), "phase": run.PhaseIndex, "comment": reason,
			}}); err != nil {
				return err
			}
			return tx.PutGovernanceHold(ctx, run.ID, governance.CauseHalt, now)
		})
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && attempt < 10 {
			continue
		}
		if errors.Is(err, store.ErrTerminal) {
			return false, nil
		}
		return err == nil, err
	}
}

// LiftHalt restarts the line: exactly the runs the halt paused, and that no
// person has resumed or paused since, resume; runs people paused stay
// paused. store.ErrNotHalted when the line is not stopped.
func (e *Engine) LiftHalt(ctx context.Context, actor string) (HaltResult, error) {
	h, err := e.store.LiftHalt(ctx, actor)
	if err != nil {
		return HaltResult{}, err
	}
	ids, err := e.store.HeldRuns(ctx, governance.CauseHalt)
	if err != nil {
		return HaltResult{Halt: h}, err
	}
	res := HaltResult{Halt: h}
	var errs []error
	for _, id := range ids {
		resumed, err := e.liftRun(ctx, id, actor)
		if err != nil {
			errs = append(errs, fmt.Errorf("resuming run %d: %w", id, err))
			continue
		}
		if resumed {
			res.Runs = append(res.Runs, id)
		}
	}
	e.Wake()
	return res, errors.Join(errs...)
}

func (e *Engine) liftRun(ctx context.Context, id int64, actor string) (bool, error) {
	for attempt := 0; ; attempt++ {
		cause, held, err := e.store.GovernanceHold(ctx, id)
		if err != nil || !held || cause != governance.CauseHalt {
			return false, err
		}
		run, err := e.store.Run(ctx, id)
		if err != nil {
			return false, err
		}
		resume(&run, e.now())
		err = e.store.WithTx(ctx, func(tx *store.Store) error {
			if _, err := tx.UpdateRun(ctx, run, store.Event{Type: "run.resumed", Actor: actor, Payload: map[string]any{
				"reason": "the line was restarted", "phase": run.PhaseIndex,
			}}); err != nil {
				return err
			}
			return tx.DeleteGovernanceHold(ctx, id)
		})
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && attempt < 10 {
			continue
		}
		if errors.Is(err, store.ErrTerminal) {
			return false, nil
		}
		return err == nil, err
	}
}

// Override lets a run that waits for a window or a freeze (pending, or
// paused by the gate) go now, with an admin's reason; it is recorded on the
// run as a "run.override" event. The halt cannot be overridden.
func (e *Engine) Override(ctx context.Context, runID int64, actor, reason string) (store.Run, error) {
	if strings.TrimSpace(reason) == "" {
		return store.Run{}, errors.New("an override needs a reason")
	}
	for attempt := 0; ; attempt++ {
		run, err := e.store.Run(ctx, runID)
		if err != nil {
			return store.Run{}, err
		}
		deny := func(detail string) (store.Run, error) {
			return store.Run{}, &ActionError{Action: "override", RunID: run.ID, State: run.State, Detail: detail}
		}
		switch run.State {
		case store.RunPending:
		case store.RunPaused:
			cause, held, err := e.store.GovernanceHold(ctx, run.ID)
			if err != nil {
				return store.Run{}, err
			}
			if !held {
				return deny("a person paused it; resume it instead")
			}
			if cause == governance.CauseHalt {
				return deny("the line is stopped; an override does not pass the halt")
			}
		default:
			return deny("only a run waiting for a deploy window or a freeze can be overridden")
		}
		now := e.now()
		run.NextEvalAt = &now
		updated, err := e.store.RecordOverride(ctx, run, reason, actor)
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && attempt < 10 {
			continue
		}
		if err == nil {
			e.Wake()
		}
		return updated, err
	}
}

// checkGate refuses a new run with a *governance.ClosedError when the
// environment is set to refuse runs outside its windows or during a freeze;
// the error says when it may run. A halt never refuses (new runs wait), and
// an override passes windows and freezes.
func (e *Engine) checkGate(ctx context.Context, n NewRun) error {
	now := e.now()
	v, err := e.verdict(ctx, store.Run{}, n.Environment, now)
	if err != nil {
		return err
	}
	if v.Open || !v.Refuse || n.Override != "" {
		return nil
	}
	return &governance.ClosedError{Verdict: v, Message: v.Message(now)}
}
