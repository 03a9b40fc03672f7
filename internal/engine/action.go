package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Action is something a person or CI asks of a run.
type Action string

// The actions on a run.
const (
	ActionPause    Action = "pause"
	ActionResume   Action = "resume"
	ActionPromote  Action = "promote"
	ActionApprove  Action = "approve"
	ActionReject   Action = "reject"
	ActionAbort    Action = "abort"
	ActionRollback Action = "rollback"
)

// Actions lists every action, for validation and documentation.
var Actions = []Action{ActionPause, ActionResume, ActionPromote, ActionApprove, ActionReject, ActionAbort, ActionRollback}

// ActionRequest is one action with who asked and why.
type ActionRequest struct {
	Action  Action
	Actor   string
	Comment string
	// ToEnd, with promote, skips the rest of the plan and goes straight to
	// its last phase, instead of only the rest of the current bake.
	ToEnd bool
	// SchemaOverride, with rollback of a finished run, is an
	// administrator's reason to return to a version the environment's
	// schema changes would keep out.
	SchemaOverride string
}

// ActionError says why an action is not possible in the run's state; the
// API answers it with 409 Conflict.
type ActionError struct {
	Action Action
	RunID  int64
	State  store.RunState
	Detail string
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("cannot %s run %d (%s): %s", e.Action, e.RunID, e.State, e.Detail)
}

// ActionResult is the run after the action; a rollback of a finished run
// creates a new run, returned as Created.
type ActionResult struct {
	Run     store.Run
	Created *store.Run
}

// Act performs an action on a run. Precedence follows from the state
// machine: abort and rollback are allowed from every active state and
// promote is not allowed once a rollback has begun, so abort and rollback
// always win over promote; terminal runs never change.
func (e *Engine) Act(ctx context.Context, runID int64, req ActionRequest) (ActionResult, error) {
	valid := false
	for _, a := range Actions {
		valid = valid || a == req.Action
	}
	if !valid {
		return ActionResult{}, &plan.ValidationError{Errors: []plan.FieldError{{Field: "action", Message: fmt.Sprintf("unknown action %q", req.Action)}}}
	}
	req.Actor = cmp.Or(req.Actor, "system")
	for attempt := 0; ; attempt++ {
		run, err := e.store.Run(ctx, runID)
		if err != nil {
			return ActionResult{}, err
		}
		res, err := e.act(ctx, run, req)
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && attempt < 10 {
			continue // an engine stepped the run meanwhile; decide again on the new state
		}
		if err == nil {
			e.Wake()
		}
		return res, err
	}
}

func (e *Engine) act(ctx context.Context, run store.Run, req ActionRequest) (ActionResult, error) {
	deny := func(format string, args ...any) (ActionResult, error) {
		return ActionResult{}, &ActionError{Action: req.Action, RunID: run.ID, State: run.State, Detail: fmt.Sprintf(format, args...)}
	}
	if run.State.Terminal() && req.Action != ActionRollback {
		return deny("the run has finished")
	}
	if run.State == store.RunPending && req.Action != ActionAbort {
		return deny("the run has not started yet; it can only be aborted")
	}
	rc, err := e.load(ctx, run)
	if err != nil {
		return ActionResult{}, err
	}
	now := e.now()
	payload := map[string]any{"comment": req.Comment, "phase": run.PhaseIndex}
	ev := func(typ string) store.Event { return store.Event{Type: typ, Actor: req.Actor, Payload: payload} }
	done := func(updated store.Run, err error) (ActionResult, error) { return ActionResult{Run: updated}, err }

	switch req.Action {
	case ActionPause:
		if run.State != store.RunRunning && run.State != store.RunAwaitingApproval {
			return deny("only a running run or one awaiting approval can be paused")
		}
		run.ResumeState, run.State = run.State, store.RunPaused
		run.PausedAt, run.NextEvalAt = &now, nil
		run.Reason = "paused by " + req.Actor
		return done(e.store.UpdateRun(ctx, run, ev("run.paused")))

	case ActionResume:
		if run.State != store.RunPaused {
			return deny("only a paused run can be resumed")
		}
		// The bake does not count the time spent paused.
		if run.PhaseStartedAt != nil && run.PausedAt != nil {
			shifted := run.PhaseStartedAt.Add(now.Sub(*run.PausedAt))
			run.PhaseStartedAt = &shifted
		}
		run.State, run.ResumeState, run.PausedAt = run.ResumeState, "", nil
		run.NextEvalAt, run.Reason, run.ConsecutiveErrors = &now, "", 0
		return done(e.store.UpdateRun(ctx, run, ev("run.resumed")))

	case ActionPromote:
		phase := rc.plan.Phases[min(run.PhaseIndex, len(rc.plan.Phases)-1)]
		switch {
		case run.State == store.RunAwaitingApproval && phase.ManualPromote:
			return e.finishOrAdvance(ctx, run, rc, req, "run.promoted", nil)
		case run.State == store.RunAwaitingApproval:
			return deny("phase %q waits for an approval, not a promotion", phase.Name)
		case run.State != store.RunRunning:
			return deny("only a running run can be promoted")
		case run.AppliedGeneration < run.Generation:
			return deny("phase %q is still being applied; promote once it bakes", phase.Name)
		}
		if req.ToEnd && run.PhaseIndex < len(rc.plan.Phases)-1 {
			payload["skipped_from"] = run.PhaseIndex + 1
			from := run.PhaseIndex
			run.PhaseIndex = len(rc.plan.Phases) - 1
			if err := setDesired(&run, rc.plan.Phases[run.PhaseIndex].Desired); err != nil {
				return ActionResult{}, err
			}
			run.NextEvalAt = &now
			payload["to_phase"] = run.PhaseIndex
			var updated store.Run
			err := e.store.WithTx(ctx, func(tx *store.Store) error {
				var err error
				if updated, err = tx.UpdateRun(ctx, run, ev("run.promoted")); err != nil {
					return err
				}
				if err := tx.SetRunPhaseStatus(ctx, run.ID, from, store.PhaseSucceeded, nil, &now); err != nil {
					return err
				}
				for i := from + 1; i < run.PhaseIndex; i++ {
					if err := tx.SetRunPhaseStatus(ctx, run.ID, i, store.PhaseSkipped, nil, &now); err != nil {
						return err
					}
				}
				return tx.SetRunPhaseStatus(ctx, run.ID, run.PhaseIndex, store.PhaseApplying, &now, nil)
			})
			return done(updated, err)
		}
		// Skip the rest of this phase's bake: it completes at the next step,
		// after one last judgement, and approvals still apply.
		ended := now.Add(-time.Duration(phase.Bake) - run.BakeExtension)
		run.PhaseStartedAt = &ended
		run.NextEvalAt = &now
		run.ConsecutiveErrors = 0
		return done(e.store.UpdateRun(ctx, run, ev("run.promoted")))

	case ActionApprove, ActionReject:
		if run.State != store.RunAwaitingApproval {
			return deny("the run is not waiting for an approval")
		}
		if req.Action == ActionApprove && rc.env.ApproverNotStarter && req.Actor == run.CreatedBy {
			return deny("%s started this run, and %s/%s requires someone else to approve it", req.Actor, rc.app.Slug, rc.env.Name)
		}
		outcome := "approved"
		if req.Action == ActionReject {
			outcome = "rejected"
		}
		record := func(tx *store.Store) error {
			_, err := tx.InsertApproval(ctx, store.Approval{RunID: run.ID, PhaseIndex: run.PhaseIndex, Outcome: outcome, Actor: req.Actor, Comment: req.Comment})
			return err
		}
		if req.Action == ActionApprove {
			policy, err := e.store.ApprovalPolicy(ctx, rc.env.ID)
			if err != nil {
				return ActionResult{}, fmt.Errorf("reading the approval policy: %w", err)
			}
			if closed, err := e.approvalWindowClosed(ctx, run, rc, policy, now); err != nil {
				return ActionResult{}, err
			} else if closed != "" {
				return deny("%s; %s/%s takes approvals only inside its deploy window", closed, rc.app.Slug, rc.env.Name)
			}
			needed, approvers, err := e.approversNeeded(ctx, run, rc, policy)
			if err != nil {
				return ActionResult{}, err
			}
			if slices.Contains(approvers, req.Actor) {
				return deny("%s approved this phase already; it needs %d different approvers (%d so far)", req.Actor, needed, len(approvers))
			}
			if len(approvers)+1 < needed {
				// Not enough people yet: the approval is kept, and the run
				// waits for the others. Updating the run (its version) keeps
				// two approvals at once from both counting as the last one.
				payload["approvers"] = len(approvers) + 1
				payload["needed"] = needed
				return done(e.updateRecording(ctx, run, ev("run.approval_recorded"), record))
			}
		}
		if req.Action == ActionReject {
			reason := fmt.Sprintf("rejected by %s", req.Actor)
			if req.Comment != "" {
				reason += ": " + req.Comment
			}
			return done(e.rollbackNow(ctx, run, rc, store.RunRolledBack, reason, req.Actor, "run.rejected", record))
		}
		return e.finishOrAdvance(ctx, run, rc, req, "run.approved", record)

	case ActionAbort:
		switch {
		case run.State == store.RunPending:
			run.State, run.Reason, run.NextEvalAt = store.RunAborted, "aborted by "+req.Actor, nil
			return done(e.store.UpdateRun(ctx, run, ev("run.aborted")))
		case run.State == store.RunRollingBack:
			return deny("a rollback is already returning traffic to stable")
		}
		return done(e.rollbackNow(ctx, run, rc, store.RunAborted, "aborted by "+req.Actor, req.Actor, "run.rolling_back", nil))

	case ActionRollback:
		switch {
		case run.State == store.RunSucceeded:
			return e.rollbackFinished(ctx, run, rc, req)
		case run.State.Terminal():
			return deny("only a succeeded run can be rolled back after it finished")
		case run.State == store.RunPending:
			return deny("the run has not started; abort it instead")
		case run.State == store.RunRollingBack:
			return deny("the run is already rolling back")
		}
		return done(e.rollbackNow(ctx, run, rc, store.RunRolledBack, "rolled back by "+req.Actor, req.Actor, "run.rolling_back", nil))
	}
	return deny("unknown action")
}

// rollbackNow starts the plan's rollback path from any active state.
// extra, when set, runs in the same transaction.
func (e *Engine) rollbackNow(ctx context.Context, run store.Run, rc runContext, final store.RunState, reason, actor, evType string, extra func(*store.Store) error) (store.Run, error) {
	now := e.now()
	run.State, run.FinalState, run.Reason = store.RunRollingBack, final, reason
	run.RollbackStep, run.PausedAt, run.ResumeState = 0, nil, ""
	if err := setDesired(&run, rc.plan.Rollback.Steps[0]); err != nil {
		return store.Run{}, err
	}
	run.NextEvalAt = &now
	var updated store.Run
	err := e.store.WithTx(ctx, func(tx *store.Store) error {
		var err error
		updated, err = tx.UpdateRun(ctx, run, store.Event{Type: evType, Actor: actor, Payload: map[string]any{
			"reason": reason, "final_state": final, "phase": run.PhaseIndex,
		}})
		if err != nil || extra == nil {
			return err
		}
		return extra(tx)
	})
	return updated, err
}

// finishOrAdvance completes an approved or promoted phase; record, when
// set, runs in the same transaction.
func (e *Engine) finishOrAdvance(ctx context.Context, run store.Run, rc runContext, req ActionRequest, evType string, record func(*store.Store) error) (ActionResult, error) {
	var updated store.Run
	event := func(string) store.Event {
		return store.Event{Type: evType, Actor: req.Actor, Payload: map[string]any{"comment": req.Comment, "phase": run.PhaseIndex}}
	}
	// completePhase commits through e.commit, which clears the lease: an
	// engine stepping the run meanwhile loses its compare-and-swap anyway.
	err := e.completePhase(ctx, run, rc, event, func(more func(*store.Store) error) func(*store.Store) error {
		return func(tx *store.Store) error {
			if record != nil {
				if err := record(tx); err != nil {
					return err
				}
			}
			if more != nil {
				if err := more(tx); err != nil {
					return err
				}
			}
			got, err := tx.Run(ctx, run.ID)
			updated = got
			return err
		}
	})
	return ActionResult{Run: updated}, err
}

// rollbackFinished returns an environment to the version before a
// succeeded run, as a new run: the previous version starts beside the
// current one and takes all traffic at once (blue-green without pre-switch
// checks), keeping the current one warm in case.
func (e *Engine) rollbackFinished(ctx context.Context, run store.Run, rc runContext, req ActionRequest) (ActionResult, error) {
	deny := func(format string, args ...any) (ActionResult, error) {
		return ActionResult{}, &ActionError{Action: req.Action, RunID: run.ID, State: run.State, Detail: fmt.Sprintf(format, args...)}
	}
	if run.FromVersion == "" {
		return deny("it was the first deployment; there is no earlier version to return to")
	}
	if rc.env.StableVersion != run.ToVersion {
		return deny("%s is no longer the stable version of %s (now %q)", run.ToVersion, rc.env.Name, rc.env.StableVersion)
	}
	params, _ := json.Marshal(map[string]any{"pre_switch_checks": "0s"})
	created, _, err := e.CreateRun(ctx, NewRun{
		App: rc.app, Environment: rc.env, Version: run.FromVersion, Strategy: string(plan.BlueGreen), Params: params,
		CreatedBy: req.Actor, Reason: fmt.Sprintf("rollback of run %d to %s", run.ID, run.FromVersion),
		SchemaOverride: req.SchemaOverride,
	})
	if err != nil {
		return ActionResult{}, err
	}
	if _, err := e.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "run.rollback_requested", Actor: req.Actor, Payload: map[string]any{
		"comment": req.Comment, "rollback_run": created.ID,
	}}); err != nil {
		return ActionResult{}, err
	}
	return ActionResult{Run: run, Created: &created}, nil
}
