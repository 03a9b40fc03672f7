package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestAllStrategiesRunEndToEnd(t *testing.T) {
	t.Parallel()
	for _, s := range plan.Strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			env := h.env("prod", nil)
			run := h.start(env, string(s), "")
			var p plan.Plan

			// Approve every ring, promote every report, until the run ends.
			for {
				r := h.driveUntilState(run.ID, store.RunAwaitingApproval, store.RunSucceeded, store.RunRolledBack, store.RunFailed, store.RunAborted)
				require.NoError(t, json.Unmarshal(r.Plan, &p))
				if r.State != store.RunAwaitingApproval {
					require.Equal(t, store.RunSucceeded, r.State, r.Reason)
					break
				}
				phase := p.Phases[r.PhaseIndex]
				action := ActionApprove
				if phase.ManualPromote {
					action = ActionPromote
				}
				_, err := h.act(run.ID, action)
				require.NoError(t, err)
			}

			// Every phase ran, in order, each applied once.
			var applied []int
			for _, ev := range h.events(run.ID) {
				if ev.Type == "phase.applied" {
					var pl struct{ Phase int }
					require.NoError(t, json.Unmarshal(ev.Payload, &pl))
					applied = append(applied, pl.Phase)
				}
			}
			want := make([]int, len(p.Phases))
			for i := range want {
				want[i] = i
			}
			require.Equal(t, want, applied)
			phases, err := h.store.ListRunPhases(context.Background(), run.ID)
			require.NoError(t, err)
			for _, ph := range phases {
				require.Equal(t, store.PhaseSucceeded, ph.Status, ph.Name)
			}

			got, err := h.store.EnvironmentByID(context.Background(), env.ID)
			require.NoError(t, err)
			if s == plan.Shadow || s == plan.ABTest {
				// Reports never switch users by themselves.
				require.Equal(t, "v1", got.StableVersion)
				require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
				return
			}
			require.Equal(t, "v2", got.StableVersion)
			require.Equal(t, "v1", got.PreviousStableVersion)
			require.Equal(t, map[string]int{"v2": 100}, h.serving(env))
			require.Zero(t, h.instances(env)["v1"])
		})
	}
}

func TestRingBakeOfDaysRunsOnTheInjectedClock(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	start := h.clock.Now()
	run := h.start(env, "ring", "")
	r := h.driveUntilState(run.ID, store.RunAwaitingApproval)
	require.Equal(t, 0, r.PhaseIndex)
	require.GreaterOrEqual(t, h.clock.Now().Sub(start), 24*time.Hour, "ring 0 bakes a day before asking")
	_, err := h.act(run.ID, ActionApprove)
	require.NoError(t, err)
	r = h.driveUntilState(run.ID, store.RunAwaitingApproval)
	require.Equal(t, 1, r.PhaseIndex)
	require.GreaterOrEqual(t, h.clock.Now().Sub(start), 96*time.Hour, "ring 1 bakes three more days")
	approvals, err := h.store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)
	require.Equal(t, "user:alice", approvals[0].Actor)
}

func TestRollbackVerdictReturnsTrafficToStable(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "canary", "")
	h.drive(func() bool {
		return h.run(run.ID).PhaseIndex == 1 && h.run(run.ID).AppliedGeneration == h.run(run.ID).Generation
	})
	require.Equal(t, map[string]int{"v1": 75, "v2": 25}, h.serving(env))

	h.analyzer.set(env.ID, VerdictRollback)
	r := h.driveUntilState(run.ID, store.RunRolledBack)
	require.Contains(t, r.Reason, "scripted rollback")
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
	decisions, err := h.store.ListDecisions(context.Background(), run.ID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, "rollback", decisions[len(decisions)-1].Verdict)
	got, err := h.store.EnvironmentByID(context.Background(), env.ID)
	require.NoError(t, err)
	require.Equal(t, "v1", got.StableVersion)
	phases, err := h.store.ListRunPhases(context.Background(), run.ID)
	require.NoError(t, err)
	statuses := make([]store.PhaseStatus, len(phases))
	for i, p := range phases {
		statuses[i] = p.Status
	}
	require.Equal(t, []store.PhaseStatus{store.PhaseSucceeded, store.PhaseRolledBack, store.PhaseSkipped, store.PhaseSkipped}, statuses,
		"the phase that failed is rolled back; the ones never reached are skipped")
}

func TestBreachWhileAwaitingApprovalStillRollsBack(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "ring", "")
	h.driveUntilState(run.ID, store.RunAwaitingApproval)
	h.analyzer.set(env.ID, VerdictRollback)
	r := h.driveUntilState(run.ID, store.RunRolledBack)
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
	_, err := h.act(r.ID, ActionApprove)
	var ae *ActionError
	require.ErrorAs(t, err, &ae, "a finished run cannot be approved")
}

func TestMonitorLongerExtendsTheBakeBoundedly(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	h.analyzer.set(env.ID, VerdictMonitorLonger)
	run := h.start(env, "canary", `{"steps": [50, 100], "step_bake": "5m"}`)
	r := h.driveUntilState(run.ID, store.RunRolledBack)
	require.Contains(t, r.Reason, "still degraded after 3 extensions")
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
}

func TestInconclusiveIsNeverAPass(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rollback", "pause"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			env := h.env("prod", func(e *store.Environment) { e.FailurePolicy = policy })
			h.analyzer.set(env.ID, "error")
			run := h.start(env, "canary", `{"steps": [10, 100], "step_bake": "1m"}`)
			want := store.RunFailed
			if policy == "pause" {
				want = store.RunPaused
			}
			r := h.driveUntilState(run.ID, want)
			require.Equal(t, 0, r.PhaseIndex, "an inconclusive phase is never promoted")
			require.Contains(t, r.Reason, "inconclusive 3 times in a row")
			if policy == "rollback" {
				require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
			}
		})
	}
}

func TestCrashingVersionFailsAndRollsBack(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", func(e *store.Environment) {
		e.Driver = json.RawMessage(`{"type": "simulator", "faults": {"v2": {"crash_on_start": true}}}`)
	})
	run := h.start(env, "canary", "")
	r := h.driveUntilState(run.ID, store.RunFailed)
	require.Contains(t, r.Reason, "crashed on start")
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))
}

func TestRunsQueuePerEnvironment(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	first := h.start(env, "canary", `{"steps": [100], "step_bake": "10m"}`)
	second, _, err := h.engine.CreateRun(context.Background(), NewRun{App: h.app, Environment: env, Version: "v3", Strategy: "canary",
		Params: json.RawMessage(`{"steps": [100], "step_bake": "10m"}`), CreatedBy: "token:ci"})
	require.NoError(t, err)

	h.drive(func() bool { return h.run(second.ID).Reason == queuedReason })
	require.Equal(t, store.RunPending, h.run(second.ID).State)
	require.Equal(t, store.RunRunning, h.run(first.ID).State)

	h.driveUntilState(first.ID, store.RunSucceeded)
	r := h.driveUntilState(second.ID, store.RunSucceeded)
	require.Equal(t, "v2", r.FromVersion, "a queued run starts from the version before it")
	require.Equal(t, map[string]int{"v3": 100}, h.serving(env))
}

func TestPauseStopsTheBakeClock(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "canary", `{"steps": [20, 100], "step_bake": "10m"}`)
	h.drive(func() bool { return h.run(run.ID).PhaseStartedAt != nil })
	startedAt := *h.run(run.ID).PhaseStartedAt

	_, err := h.act(run.ID, ActionPause)
	require.NoError(t, err)
	h.clock.Advance(3 * time.Hour)
	n, err := h.engine.RunOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "a paused run is not stepped")
	require.Equal(t, store.RunPaused, h.run(run.ID).State)

	res, err := h.act(run.ID, ActionResume)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, res.Run.State)
	require.Equal(t, startedAt.Add(3*time.Hour), *res.Run.PhaseStartedAt, "time paused does not count as bake")
	r := h.driveUntilState(run.ID, store.RunSucceeded)
	require.Equal(t, 1, r.PhaseIndex)
}

func TestPromoteSkipsTheBakeButNotApprovals(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "ring", "")
	h.drive(func() bool { return h.run(run.ID).PhaseStartedAt != nil })
	begin := h.clock.Now()
	_, err := h.act(run.ID, ActionPromote)
	require.NoError(t, err)
	r := h.driveUntilState(run.ID, store.RunAwaitingApproval)
	require.Less(t, h.clock.Now().Sub(begin), time.Hour, "promote skipped the 24h bake")
	_, err = h.act(r.ID, ActionPromote)
	var ae *ActionError
	require.ErrorAs(t, err, &ae, "promote does not replace an approval")
	require.Contains(t, ae.Detail, "waits for an approval")
}

func TestPromoteToEndSkipsPhases(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "canary", "")
	h.drive(func() bool { return h.run(run.ID).PhaseStartedAt != nil })
	_, err := h.engine.Act(context.Background(), run.ID, ActionRequest{Action: ActionPromote, Actor: "user:alice", ToEnd: true})
	require.NoError(t, err)
	h.driveUntilState(run.ID, store.RunSucceeded)
	phases, err := h.store.ListRunPhases(context.Background(), run.ID)
	require.NoError(t, err)
	statuses := []store.PhaseStatus{}
	for _, p := range phases {
		statuses = append(statuses, p.Status)
	}
	require.Equal(t, []store.PhaseStatus{store.PhaseSucceeded, store.PhaseSkipped, store.PhaseSkipped, store.PhaseSucceeded}, statuses)
}

func TestAbortAndRollbackWinOverPromote(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "canary", "")
	h.drive(func() bool { return h.run(run.ID).PhaseStartedAt != nil })

	_, err := h.act(run.ID, ActionAbort)
	require.NoError(t, err)
	for _, a := range []Action{ActionPromote, ActionApprove, ActionResume, ActionRollback, ActionAbort} {
		_, err := h.act(run.ID, a)
		var ae *ActionError
		require.ErrorAs(t, err, &ae, "%s after abort", a)
	}
	r := h.driveUntilState(run.ID, store.RunAborted)
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))

	// Terminal states are final.
	for _, a := range []Action{ActionPause, ActionResume, ActionPromote, ActionApprove, ActionReject, ActionAbort} {
		_, err := h.act(r.ID, a)
		var ae *ActionError
		require.ErrorAs(t, err, &ae, "%s on an aborted run", a)
	}
	require.Equal(t, r.Version, h.run(r.ID).Version)
}

func TestRejectRollsBack(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "ring", "")
	h.driveUntilState(run.ID, store.RunAwaitingApproval)
	_, err := h.act(run.ID, ActionReject)
	require.NoError(t, err)
	r := h.driveUntilState(run.ID, store.RunRolledBack)
	require.Contains(t, r.Reason, "rejected by user:alice: from a test")
	approvals, err := h.store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, "rejected", approvals[0].Outcome)
}

func TestAbortingAQueuedRunNeedsNoRollback(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	h.start(env, "canary", "")
	second, _, err := h.engine.CreateRun(context.Background(), NewRun{App: h.app, Environment: env, Version: "v3", CreatedBy: "token:ci"})
	require.NoError(t, err)
	res, err := h.act(second.ID, ActionAbort)
	require.NoError(t, err)
	require.Equal(t, store.RunAborted, res.Run.State)
}

func TestRollbackAfterSuccessDeploysThePreviousVersion(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	run := h.start(env, "canary", `{"steps": [100], "step_bake": "1m"}`)
	h.driveUntilState(run.ID, store.RunSucceeded)

	res, err := h.act(run.ID, ActionRollback)
	require.NoError(t, err)
	require.NotNil(t, res.Created)
	require.Equal(t, "v1", res.Created.ToVersion)
	require.Equal(t, "blue_green", res.Created.Strategy)
	require.Equal(t, store.RunSucceeded, h.run(run.ID).State, "the finished run itself stays final")
	h.driveUntilState(res.Created.ID, store.RunSucceeded)
	require.Equal(t, map[string]int{"v1": 100}, h.serving(env))

	_, err = h.act(run.ID, ActionRollback)
	var ae *ActionError
	require.ErrorAs(t, err, &ae, "v2 is no longer live")
}

func TestBadRunRequestsStoreNothing(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	for name, tc := range map[string]struct {
		version, strategy, params, field string
	}{
		"unknown strategy": {"v2", "yolo", "", "strategy"},
		"bad params":       {"v2", "canary", `{"steps": [50, 10]}`, "params.steps"},
		"unknown param":    {"v2", "canary", `{"stepz": [5]}`, "params.stepz"},
		"same version":     {"v1", "canary", "", "version"},
	} {
		_, _, err := h.engine.CreateRun(context.Background(), NewRun{App: h.app, Environment: env, Version: tc.version,
			Strategy: tc.strategy, Params: json.RawMessage(tc.params), CreatedBy: "token:ci"})
		var ve *plan.ValidationError
		require.ErrorAs(t, err, &ve, name)
		require.Contains(t, ve.Error(), tc.field, name)
	}
	runs, err := h.store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: env.ID})
	require.NoError(t, err)
	require.Empty(t, runs)
}

func TestStaleWorkerCannotOverwriteANewerState(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	env := h.env("prod", nil)
	run := h.start(env, "canary", "")

	// Worker A claims the run, then stalls past its lease.
	now := h.clock.Now()
	claimed, err := h.store.ClaimDueRuns(ctx, "stale-worker", now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	snapshot := claimed[0]
	h.clock.Advance(2 * time.Minute)

	// Worker B takes over and moves the run on.
	b := h.newEngine("engine-b", nil)
	n, err := b.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	newer := h.run(run.ID)
	require.Equal(t, store.RunRunning, newer.State)

	// A wakes up and tries to apply its step on the old snapshot.
	stale := h.newEngine("stale-worker", nil)
	err = stale.step(ctx, snapshot)
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, newer.Version, h.run(run.ID).Version, "the newer state stands")
	require.Len(t, h.fleet.Applied(), 0, "the stale start never reached the driver")
}

func TestLiveEngineFollowsNotifications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := setup(t)
	// Real time and a running engine: the run is stepped without anyone
	// calling RunOnce, woken by NOTIFY rather than waiting for the poll.
	notifier := store.NewNotifier(h.store.Pool(), store.NotifierConfig{Interval: 10 * time.Millisecond})
	require.NoError(t, notifier.Start(ctx))
	defer notifier.Stop()
	st := store.New(h.store.Pool(), store.Options{Notifier: notifier})
	e, err := New(Config{Store: st, Drivers: h.drivers, Analyzer: h.analyzer, PollInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop()

	env := h.env("prod", nil)
	run, _, err := e.CreateRun(ctx, NewRun{App: h.app, Environment: env, Version: "v2", Strategy: "recreate",
		Params: json.RawMessage(`{"health_check_timeout": "1ms"}`), CreatedBy: "token:ci"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := st.Run(ctx, run.ID)
		return err == nil && r.State == store.RunSucceeded
	}, 20*time.Second, 20*time.Millisecond)
	e.Stop()
	e.Stop()
}

func TestAPhaseIsNotPromotedWhileWarmingUp(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", nil)
	h.analyzer.set(env.ID, VerdictWarmingUp)
	run := h.start(env, "canary", `{"steps": [50, 100], "step_bake": "1m"}`)
	h.drive(func() bool { return h.clock.Now().After(h.run(run.ID).CreatedAt.Add(3 * time.Hour)) })
	require.Equal(t, 0, h.run(run.ID).PhaseIndex, "the bake is over but the phase was never judged")
	h.analyzer.set(env.ID, VerdictContinue)
	h.driveUntilState(run.ID, store.RunSucceeded)
}

func TestApproverMustNotBeTheStarterWhenTheEnvironmentSaysSo(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("prod", func(e *store.Environment) { e.ApproverNotStarter = true })
	run := h.start(env, "ring", "")
	h.driveUntilState(run.ID, store.RunAwaitingApproval)

	_, err := h.engine.Act(context.Background(), run.ID, ActionRequest{Action: ActionApprove, Actor: "user:test"})
	var denied *ActionError
	require.ErrorAs(t, err, &denied)
	require.Contains(t, denied.Detail, "user:test started this run")
	require.Equal(t, store.RunAwaitingApproval, h.run(run.ID).State, "the refused approval changed nothing")

	// Someone else may approve.
	_, err = h.act(run.ID, ActionApprove)
	require.NoError(t, err)
	approvals, err := h.store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)
	require.Equal(t, "user:alice", approvals[0].Actor)
}
