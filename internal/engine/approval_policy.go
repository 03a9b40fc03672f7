package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// approversNeeded returns how many different people must approve the
// run's waiting phase (the larger of the environment's policy and the
// phase's own) and who has approved it so far.
func (e *Engine) approversNeeded(ctx context.Context, run store.Run, rc runContext, policy store.ApprovalPolicy) (int, []string, error) {
	needed := policy.MinApprovers
	if run.PhaseIndex < len(rc.plan.Phases) {
		needed = max(needed, rc.plan.Phases[run.PhaseIndex].MinApprovers)
	}
	approvals, err := e.store.ListApprovals(ctx, run.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading approvals: %w", err)
	}
	var approvers []string
	for _, a := range approvals {
		if a.PhaseIndex == run.PhaseIndex && a.Outcome == "approved" {
			approvers = append(approvers, a.Actor)
		}
	}
	return max(needed, 1), approvers, nil
}

// approvalWindowClosed returns why an approval may not be given now when
// the environment takes approvals only inside its deploy window and the
// window is closed (or the environment frozen); "" when it may.
func (e *Engine) approvalWindowClosed(ctx context.Context, run store.Run, rc runContext, policy store.ApprovalPolicy, now time.Time) (string, error) {
	if !policy.InWindowOnly {
		return "", nil
	}
	v, err := e.verdict(ctx, run, rc.env, now)
	if err != nil || v.Open {
		return "", err
	}
	return v.Message(now), nil
}

// updateRecording updates the run with the event and runs record in the
// same transaction.
func (e *Engine) updateRecording(ctx context.Context, run store.Run, ev store.Event, record func(*store.Store) error) (store.Run, error) {
	var updated store.Run
	err := e.store.WithTx(ctx, func(tx *store.Store) error {
		var err error
		if updated, err = tx.UpdateRun(ctx, run, ev); err != nil {
			return err
		}
		return record(tx)
	})
	return updated, err
}

// ApprovalTimeouts applies the environments' approval timeouts: a gate
// nobody answered in time is rejected (rolling the run back) or escalated
// (an approval.escalated event, once per gate, which notifications carry
// to whoever should step in), as the policy says. Every replica may run
// one; the engine's compare-and-swap and the escalation's row lock keep
// each timeout applied once.
type ApprovalTimeouts struct {
	engine   *Engine
	interval time.Duration
	logger   *slog.Logger

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// NewApprovalTimeouts checks every interval (a minute when 0).
func NewApprovalTimeouts(e *Engine, interval time.Duration) *ApprovalTimeouts {
	if interval <= 0 {
		interval = time.Minute
	}
	return &ApprovalTimeouts{engine: e, interval: interval, logger: e.logger}
}

// Start checks until Stop.
func (a *ApprovalTimeouts) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(a.interval)
		defer t.Stop()
		for {
			if _, err := a.RunOnce(ctx); err != nil && ctx.Err() == nil {
				a.logger.ErrorContext(ctx, "applying approval timeouts", slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the loop. Safe to call twice.
func (a *ApprovalTimeouts) Stop() {
	a.stopOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
			a.wg.Wait()
		}
	})
}

// RunOnce applies the timeouts that are due and returns how many.
func (a *ApprovalTimeouts) RunOnce(ctx context.Context) (int, error) {
	e := a.engine
	waiting, err := e.store.ListInFlightRuns(ctx, []store.RunState{store.RunAwaitingApproval}, 1000)
	if err != nil {
		return 0, err
	}
	now := e.now()
	applied := 0
	for _, r := range waiting {
		if r.WaitingSince == nil {
			continue
		}
		policy, err := e.store.ApprovalPolicy(ctx, r.EnvID)
		if err != nil {
			return applied, err
		}
		if policy.Timeout == 0 || now.Sub(*r.WaitingSince) < policy.Timeout {
			continue
		}
		where := r.AppSlug + "/" + r.Environment
		why := fmt.Sprintf("nobody approved within %s, the approval timeout of %s", policy.Timeout, where)
		switch policy.OnTimeout {
		case store.OnTimeoutEscalate:
			ok, err := e.store.RecordEscalation(ctx, r.ID, r.PhaseIndex, store.Event{
				Type: "approval.escalated", Actor: "policy",
				Payload: map[string]any{"phase": r.PhaseIndex, "reason": why + "; escalated", "waiting_since": r.WaitingSince},
			})
			if err != nil {
				return applied, err
			}
			if ok {
				applied++
			}
		default:
			_, err := e.Act(ctx, r.ID, ActionRequest{Action: ActionReject, Actor: "policy", Comment: why})
			var refused *ActionError
			switch {
			case err == nil:
				applied++
			case errors.As(err, &refused):
				// Someone answered, or another replica applied it, meanwhile.
			default:
				return applied, err
			}
		}
	}
	return applied, nil
}
