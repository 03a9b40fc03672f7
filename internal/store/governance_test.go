package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestDeployWindowsAreValidatedAndStored(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	set, err := f.store.DeployWindows(ctx, f.env.ID)
	require.NoError(t, err)
	require.Empty(t, set.Windows)
	require.Equal(t, governance.OutsideWait, set.Outside)

	_, err = f.store.SetDeployWindows(ctx, f.env.ID, governance.Settings{Outside: governance.OutsideRefuse,
		Windows: []governance.WindowSpec{{Days: []string{"mon"}, Start: "24:30", End: "10:00", TimeZone: "UTC"}}}, "user:admin")
	var v *governance.ValidationError
	require.ErrorAs(t, err, &v)
	set, err = f.store.DeployWindows(ctx, f.env.ID)
	require.NoError(t, err)
	require.Empty(t, set.Windows, "bad settings change nothing")

	saved, err := f.store.SetDeployWindows(ctx, f.env.ID, governance.Settings{Outside: governance.OutsideRefuse,
		Windows: []governance.WindowSpec{{Days: []string{"Thursday", "mon", "tue"}, Start: "09:00", End: "16:00", TimeZone: "Europe/Berlin"}}}, "user:admin")
	require.NoError(t, err)
	require.Equal(t, []string{"mon", "tue", "thu"}, saved.Windows[0].Days)
	got, err := f.store.DeployWindows(ctx, f.env.ID)
	require.NoError(t, err)
	require.Equal(t, saved, got)
}

func TestFreezesHaltAndHolds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	fr, err := f.store.CreateFreeze(ctx, store.Freeze{EnvironmentID: f.env.ID, Reason: "year-end", StartsAt: fixedNow.Add(-time.Hour),
		EndsAt: fixedNow.Add(time.Hour), CreatedBy: "user:carol"})
	require.NoError(t, err)
	_, err = f.store.CreateFreeze(ctx, store.Freeze{EnvironmentID: f.env.ID, Reason: "backwards", StartsAt: fixedNow, EndsAt: fixedNow, CreatedBy: "user:carol"})
	require.ErrorIs(t, err, store.ErrInvalid)

	g, err := f.store.Gate(ctx, f.env, fixedNow)
	require.NoError(t, err)
	require.Len(t, g.Freezes, 1)
	require.Equal(t, governance.CauseFreeze, g.Check(fixedNow, false).Cause)

	ended, err := f.store.EndFreeze(ctx, fr.ID, "user:dave")
	require.NoError(t, err)
	require.Equal(t, "user:dave", ended.EndedBy)
	_, err = f.store.EndFreeze(ctx, fr.ID, "user:dave")
	require.ErrorIs(t, err, store.ErrNotFound, "an ended freeze cannot end again")
	g, err = f.store.Gate(ctx, f.env, fixedNow)
	require.NoError(t, err)
	require.True(t, g.Check(fixedNow, false).Open)

	_, err = f.store.SetHalt(ctx, "incident", "user:oncall")
	require.NoError(t, err)
	_, err = f.store.SetHalt(ctx, "again", "user:oncall")
	require.ErrorIs(t, err, store.ErrHalted)
	g, err = f.store.Gate(ctx, f.env, fixedNow)
	require.NoError(t, err)
	require.Equal(t, governance.CauseHalt, g.Check(fixedNow, true).Cause)
	h, err := f.store.LiftHalt(ctx, "user:oncall")
	require.NoError(t, err)
	require.False(t, h.Active)
	_, err = f.store.LiftHalt(ctx, "user:oncall")
	require.ErrorIs(t, err, store.ErrNotHalted)

	// A hold counts only while the run is still paused at the same moment.
	run := f.newRun(t, "v2")
	run.State, run.Plan = store.RunRunning, testPlan
	run, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.started"})
	require.NoError(t, err)
	paused := fixedNow
	run.State, run.ResumeState, run.PausedAt = store.RunPaused, store.RunRunning, &paused
	run, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.paused"})
	require.NoError(t, err)
	require.NoError(t, f.store.PutGovernanceHold(ctx, run.ID, governance.CauseHalt, paused))
	ids, err := f.store.HeldRuns(ctx, governance.CauseHalt)
	require.NoError(t, err)
	require.Equal(t, []int64{run.ID}, ids)
	run.State, run.PausedAt = store.RunRunning, nil
	_, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.resumed"})
	require.NoError(t, err)
	_, held, err := f.store.GovernanceHold(ctx, run.ID)
	require.NoError(t, err)
	require.False(t, held, "a run a person resumed is no longer held")
}
