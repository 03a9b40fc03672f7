package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// windows gives an environment deploy windows in UTC.
func (h *harness) windows(env store.Environment, outside governance.Outside, days []string, start, end string) {
	h.t.Helper()
	_, err := h.store.SetDeployWindows(context.Background(), env.ID, governance.Settings{Outside: outside, Windows: []governance.WindowSpec{
		{Days: days, Start: start, End: end, TimeZone: "UTC"},
	}}, "user:admin")
	require.NoError(h.t, err)
}

func hasEvent(evs []store.RunEvent, typ, text string) bool {
	for _, ev := range evs {
		if ev.Type == typ && strings.Contains(string(ev.Payload), text) {
			return true
		}
	}
	return false
}

var everyDay = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func TestRunOutsideWindowWaitsOrIsRefused(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	// The clock reads Monday 2 March 2026 09:00 UTC.
	waiting := h.env("staging", nil)
	h.windows(waiting, governance.OutsideWait, []string{"mon"}, "10:00", "12:00")
	refusing := h.env("production", nil)
	h.windows(refusing, governance.OutsideRefuse, []string{"mon"}, "10:00", "12:00")

	_, _, err := h.engine.CreateRun(ctx, NewRun{App: h.app, Environment: refusing, Version: "v2", Strategy: "canary", CreatedBy: "user:test"})
	var closed *governance.ClosedError
	require.ErrorAs(t, err, &closed)
	require.Equal(t, "production deploys only Mon 10:00–12:00 UTC; the next window opens Monday 10:00 UTC (in 1 h)", closed.Message)
	runs, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: refusing.ID})
	require.NoError(t, err)
	require.Empty(t, runs, "a refused run is not stored")

	run := h.start(waiting, "canary", `{"steps": [100], "step_bake": "5m"}`)
	_, err = h.engine.RunOnce(ctx)
	require.NoError(t, err)
	got := h.run(run.ID)
	require.Equal(t, store.RunPending, got.State)
	require.Contains(t, got.Reason, "waiting: staging deploys only Mon 10:00–12:00 UTC")
	require.True(t, hasEvent(h.events(run.ID), "run.waiting", "the next window opens Monday 10:00 UTC"))
	require.False(t, got.NextEvalAt.After(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), "it is looked at again by the time the window opens")

	h.driveUntilState(run.ID, store.RunRunning)
	require.False(t, h.clock.Now().Before(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), "the run started before its window opened")
	h.driveUntilState(run.ID, store.RunSucceeded)
}

func TestRunInFlightPausesWhenWindowClosesAndResumesWhenItOpens(t *testing.T) {
	t.Parallel()
	h := setup(t)
	env := h.env("production", nil)
	// Every day 09:00–09:20 UTC; the clock reads 09:00, and each of the
	// three steps bakes 15 minutes.
	h.windows(env, governance.OutsideWait, everyDay, "09:00", "09:20")
	run := h.start(env, "canary", `{"steps": [10, 50, 100], "step_bake": "15m"}`)

	paused := h.driveUntilState(run.ID, store.RunPaused)
	// Phase 0 bakes 09:00–09:15; phase 1 starts inside the window and
	// finishes at 09:30, after it closed: phase 2 does not start.
	require.Equal(t, 1, paused.PhaseIndex)
	require.Equal(t, time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), paused.PausedAt.UTC())
	require.Equal(t, "paused: the deploy window closed at 09:20 UTC; resumes when it opens", paused.Reason)
	require.Equal(t, store.RunRunning, paused.ResumeState)

	resumed := h.driveUntilState(run.ID, store.RunRunning)
	require.Equal(t, time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC), h.clock.Now().UTC())
	require.True(t, hasEvent(h.events(run.ID), "run.resumed", "the deploy window opened"))
	require.Equal(t, 1, resumed.PhaseIndex)
	phases, err := h.store.ListRunPhases(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, store.PhasePending, phases[2].Status, "the last phase waited for the window")
	h.driveUntilState(run.ID, store.RunSucceeded)
}

func TestHaltPausesEveryActiveRunAndLiftResumesOnlyThose(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	params := `{"steps": [10, 50, 100], "step_bake": "10m"}`
	a := h.start(h.env("eu", nil), "canary", params)
	b := h.start(h.env("us", nil), "canary", params)
	c := h.start(h.env("asia", nil), "canary", params)
	for _, id := range []int64{a.ID, b.ID, c.ID} {
		h.driveUntilState(id, store.RunRunning)
	}
	_, err := h.act(c.ID, ActionPause)
	require.NoError(t, err)

	res, err := h.engine.Halt(ctx, "user:oncall", "incident 42: checkout errors")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{a.ID, b.ID}, res.Runs)
	for _, id := range []int64{a.ID, b.ID} {
		r := h.run(id)
		require.Equal(t, store.RunPaused, r.State)
		require.Equal(t, "stop the line: incident 42: checkout errors", r.Reason)
		require.True(t, hasEvent(h.events(id), "run.paused", "stop the line"))
	}
	_, err = h.engine.Halt(ctx, "user:oncall", "again")
	require.ErrorIs(t, err, store.ErrHalted)

	// A new run waits while the line is stopped, and halted runs stay put.
	d := h.start(h.env("latam", nil), "canary", params)
	h.clock.Advance(time.Hour)
	_, err = h.engine.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, h.run(d.ID).State)
	require.Contains(t, h.run(d.ID).Reason, "the line is stopped: incident 42")
	require.Equal(t, store.RunPaused, h.run(a.ID).State)

	lifted, err := h.engine.LiftHalt(ctx, "user:oncall")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{a.ID, b.ID}, lifted.Runs)
	require.Equal(t, store.RunRunning, h.run(a.ID).State)
	require.Equal(t, store.RunRunning, h.run(b.ID).State)
	require.Equal(t, store.RunPaused, h.run(c.ID).State, "a run a person paused stays paused")
	_, err = h.engine.LiftHalt(ctx, "user:oncall")
	require.ErrorIs(t, err, store.ErrNotHalted)
	h.driveUntilState(d.ID, store.RunRunning)
}

func TestOverridePassesWindowButNotHalt(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	env := h.env("production", nil)
	h.windows(env, governance.OutsideRefuse, []string{"sat"}, "10:00", "12:00")

	run, created, err := h.engine.CreateRun(ctx, NewRun{App: h.app, Environment: env, Version: "v2", Strategy: "canary",
		Params: []byte(`{"steps": [100], "step_bake": "5m"}`), CreatedBy: "user:admin", Override: "hotfix for incident 42"})
	require.NoError(t, err)
	require.True(t, created)
	require.True(t, hasEvent(h.events(run.ID), "run.override", "hotfix for incident 42"))
	h.driveUntilState(run.ID, store.RunSucceeded)

	// A waiting run is overridden later.
	other := h.env("staging", nil)
	h.windows(other, governance.OutsideWait, []string{"sat"}, "10:00", "12:00")
	waiting := h.start(other, "canary", `{"steps": [100], "step_bake": "5m"}`)
	_, err = h.engine.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, h.run(waiting.ID).State)
	_, err = h.engine.Override(ctx, waiting.ID, "user:admin", "customer escalation")
	require.NoError(t, err)
	h.driveUntilState(waiting.ID, store.RunRunning)
	require.Equal(t, time.Monday, h.clock.Now().Weekday(), "the override did not wait for Saturday")

	// The halt is not overridden.
	_, err = h.engine.Halt(ctx, "user:oncall", "incident 43")
	require.NoError(t, err)
	_, err = h.engine.Override(ctx, waiting.ID, "user:admin", "please")
	var aErr *ActionError
	require.True(t, errors.As(err, &aErr), "got %v", err)
	require.Contains(t, aErr.Detail, "does not pass the halt")
}
