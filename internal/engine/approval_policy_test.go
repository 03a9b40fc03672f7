package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

func approve(h *harness, id int64, actor string) error {
	_, err := h.engine.Act(context.Background(), id, ActionRequest{Action: ActionApprove, Actor: actor})
	return err
}

func TestGateNeedsTheMinimumOfDistinctApprovers(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	_, err := h.store.SetApprovalPolicy(context.Background(), store.ApprovalPolicy{EnvironmentID: env.ID, MinApprovers: 2, OnTimeout: store.OnTimeoutReject}, "user:admin")
	require.NoError(t, err)
	run := h.start(env, "ring", "")
	h.driveUntilState(run.ID, store.RunAwaitingApproval)
	phase := h.run(run.ID).PhaseIndex

	require.NoError(t, approve(h, run.ID, "user:ana"))
	require.Equal(t, store.RunAwaitingApproval, h.run(run.ID).State, "one of two approvals does not move the run")
	require.Equal(t, phase, h.run(run.ID).PhaseIndex)

	err = approve(h, run.ID, "user:ana")
	var denied *ActionError
	require.ErrorAs(t, err, &denied)
	require.Contains(t, denied.Detail, "user:ana approved this phase already; it needs 2 different approvers (1 so far)")

	require.NoError(t, approve(h, run.ID, "user:bob"))
	require.NotEqual(t, store.RunAwaitingApproval, h.run(run.ID).State, "the second approver moves it on")
	approvals, err := h.store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 2)
}

func TestRingAsksForMoreApproversThanTheEnvironment(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "ring", `{"rings": [
		{"name": "staff", "audience": {"kind": "header", "key": "X-Group", "values": ["staff"]}, "bake": "1m", "approvers": 3},
		{"name": "everyone", "audience": {"kind": "all"}}]}`)
	h.driveUntilState(run.ID, store.RunAwaitingApproval)
	for _, who := range []string{"user:a", "user:b"} {
		require.NoError(t, approve(h, run.ID, who))
		require.Equal(t, store.RunAwaitingApproval, h.run(run.ID).State)
	}
	require.NoError(t, approve(h, run.ID, "user:c"))
	require.NotEqual(t, store.RunAwaitingApproval, h.run(run.ID).State)
}

func TestTwoApproversAtOnceNeverPromoteTwice(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "ring", `{"rings": [
		{"name": "staff", "audience": {"kind": "header", "key": "X-Group", "values": ["staff"]}, "bake": "1m"},
		{"name": "beta", "audience": {"kind": "hash", "key": "user_id", "percent": 20}, "bake": "1m"},
		{"name": "everyone", "audience": {"kind": "all"}}]}`)
	h.driveUntilState(run.ID, store.RunAwaitingApproval)
	before := h.run(run.ID).PhaseIndex

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = approve(h, run.ID, "user:approver-"+string(rune('a'+i))) })
	}
	wg.Wait()
	succeeded := 0
	for _, err := range errs {
		if err == nil {
			succeeded++
			continue
		}
		var denied *ActionError
		require.ErrorAs(t, err, &denied, "a losing approver is told why, not given an error")
	}
	require.Equal(t, 1, succeeded, "exactly one approval answers the gate")
	require.Equal(t, before+1, h.run(run.ID).PhaseIndex, "the run moved exactly one ring on")
	approved := 0
	for _, e := range h.events(run.ID) {
		if e.Type == "run.approved" {
			approved++
		}
	}
	require.Equal(t, 1, approved)
}

func TestApprovalTimeoutRejectsOrEscalates(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	rejecting := h.env("prod", nil)
	escalating := h.env("staging", nil)
	_, err := h.store.SetApprovalPolicy(ctx, store.ApprovalPolicy{EnvironmentID: rejecting.ID, MinApprovers: 1, Timeout: time.Hour, OnTimeout: store.OnTimeoutReject}, "user:admin")
	require.NoError(t, err)
	_, err = h.store.SetApprovalPolicy(ctx, store.ApprovalPolicy{EnvironmentID: escalating.ID, MinApprovers: 1, Timeout: time.Hour, OnTimeout: store.OnTimeoutEscalate}, "user:admin")
	require.NoError(t, err)
	rejected := h.start(rejecting, "ring", "")
	escalated := h.start(escalating, "ring", "")
	h.driveUntilState(rejected.ID, store.RunAwaitingApproval)
	h.driveUntilState(escalated.ID, store.RunAwaitingApproval)

	timeouts := NewApprovalTimeouts(h.engine, time.Minute)
	n, err := timeouts.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due before the timeout")

	h.clock.Advance(time.Hour + time.Second)
	n, err = timeouts.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	r := h.run(rejected.ID)
	require.Contains(t, []store.RunState{store.RunRollingBack, store.RunRolledBack}, r.State)
	require.Contains(t, r.Reason, "nobody approved within 1h0m0s")
	require.Equal(t, store.RunAwaitingApproval, h.run(escalated.ID).State, "escalating keeps the run waiting")

	// Escalated once per gate, however often the check runs.
	_, err = timeouts.RunOnce(ctx)
	require.NoError(t, err)
	count := 0
	for _, e := range h.events(escalated.ID) {
		if e.Type == "approval.escalated" {
			count++
		}
	}
	require.Equal(t, 1, count)
}

func TestBadApprovalPoliciesAreRefused(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	for _, p := range []store.ApprovalPolicy{
		{EnvironmentID: env.ID, MinApprovers: 0, OnTimeout: store.OnTimeoutReject},
		{EnvironmentID: env.ID, MinApprovers: 11, OnTimeout: store.OnTimeoutReject},
		{EnvironmentID: env.ID, MinApprovers: 1, Timeout: time.Second, OnTimeout: store.OnTimeoutReject},
		{EnvironmentID: env.ID, MinApprovers: 1, OnTimeout: "ignore"},
	} {
		_, err := h.store.SetApprovalPolicy(context.Background(), p, "user:admin")
		var perr *store.PolicyError
		require.ErrorAs(t, err, &perr, "%+v", p)
	}
	got, err := h.store.ApprovalPolicy(context.Background(), env.ID)
	require.NoError(t, err)
	require.Equal(t, 1, got.MinApprovers, "nothing was stored")
}

func TestApprovalsOnlyInsideTheDeployWindow(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	env := h.env("prod", nil)
	_, err := h.store.SetApprovalPolicy(ctx, store.ApprovalPolicy{EnvironmentID: env.ID, MinApprovers: 1, OnTimeout: store.OnTimeoutReject, InWindowOnly: true}, "user:admin")
	require.NoError(t, err)
	run := h.start(env, "ring", `{"rings": [
		{"name": "staff", "audience": {"kind": "header", "key": "X-Group", "values": ["staff"]}, "bake": "1m"},
		{"name": "everyone", "audience": {"kind": "all"}}]}`)
	h.driveUntilState(run.ID, store.RunAwaitingApproval)

	freeze, err := h.store.CreateFreeze(ctx, store.Freeze{EnvironmentID: env.ID, Reason: "quarter close", StartsAt: h.clock.Now(),
		EndsAt: h.clock.Now().Add(2 * time.Hour), CreatedBy: "user:cfo"})
	require.NoError(t, err)
	err = approve(h, run.ID, "user:ana")
	var denied *ActionError
	require.ErrorAs(t, err, &denied)
	require.Contains(t, denied.Detail, "prod is frozen: quarter close")
	require.Contains(t, denied.Detail, "takes approvals only inside its deploy window")
	approvals, err := h.store.ListApprovals(ctx, run.ID)
	require.NoError(t, err)
	require.Empty(t, approvals, "a refused approval records nothing")

	_, err = h.store.EndFreeze(ctx, freeze.ID, "user:cfo")
	require.NoError(t, err)
	require.NoError(t, approve(h, run.ID, "user:ana"))
}
