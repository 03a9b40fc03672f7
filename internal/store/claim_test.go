package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestIllegalRunStatesAreRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	running := run
	running.State = store.RunRunning
	_, err := f.store.UpdateRun(ctx, running, store.Event{Type: "run.started"})
	require.ErrorIs(t, err, store.ErrInvalid, "an active run needs a plan")

	running.Plan = testPlan
	running, err = f.store.UpdateRun(ctx, running, store.Event{Type: "run.started"})
	require.NoError(t, err)

	paused := running
	paused.State = store.RunPaused
	_, err = f.store.UpdateRun(ctx, paused, store.Event{Type: "run.paused"})
	require.ErrorIs(t, err, store.ErrInvalid, "a paused run must know where it resumes")

	back := running
	back.State = store.RunRollingBack
	_, err = f.store.UpdateRun(ctx, back, store.Event{Type: "run.rolling_back"})
	require.ErrorIs(t, err, store.ErrInvalid, "a rollback must know how it ends")

	ahead := running
	ahead.AppliedGeneration = ahead.Generation + 1
	_, err = f.store.UpdateRun(ctx, ahead, store.Event{Type: "driver.applied"})
	require.ErrorIs(t, err, store.ErrInvalid, "the driver cannot confirm a generation never requested")

	got, err := f.store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, running.Version, got.Version, "refused writes change nothing")
}

func TestClaimsAreExclusiveAndLeased(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	now := fixedNow

	var ids []int64
	for i := range 30 {
		env, err := f.store.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "env-" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
		require.NoError(t, err)
		run, _, err := f.store.CreateRun(ctx, store.NewRun{AppID: f.app.ID, EnvironmentID: env.ID, ToVersion: "v2", Strategy: "canary", CreatedBy: "token:ci"})
		require.NoError(t, err)
		due := now.Add(-time.Second)
		run.NextEvalAt = &due
		_, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.scheduled"})
		require.NoError(t, err)
		ids = append(ids, run.ID)
	}

	// Three claimers race; each run goes to exactly one of them.
	var mu sync.Mutex
	claimedBy := map[int64]string{}
	var wg sync.WaitGroup
	for _, owner := range []string{"engine-a", "engine-b", "engine-c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				runs, err := f.store.ClaimDueRuns(ctx, owner, now, now.Add(time.Minute), 4)
				if err != nil {
					t.Error(err)
					return
				}
				if len(runs) == 0 {
					return
				}
				mu.Lock()
				for _, r := range runs {
					if prev, ok := claimedBy[r.ID]; ok {
						t.Errorf("run %d claimed by %s and %s", r.ID, prev, owner)
					}
					claimedBy[r.ID] = owner
					require.Equal(t, owner, r.LeaseOwner)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, claimedBy, len(ids))

	// While leased, nobody else claims them; once the lease expires, they can.
	again, err := f.store.ClaimDueRuns(ctx, "engine-d", now.Add(30*time.Second), now.Add(time.Minute), 100)
	require.NoError(t, err)
	require.Empty(t, again)
	again, err = f.store.ClaimDueRuns(ctx, "engine-d", now.Add(2*time.Minute), now.Add(3*time.Minute), 100)
	require.NoError(t, err)
	require.Len(t, again, len(ids))

	// Releasing only works for the holder.
	require.NoError(t, f.store.ReleaseLease(ctx, ids[0], "engine-a"))
	r, err := f.store.Run(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "engine-d", r.LeaseOwner)
	require.NoError(t, f.store.ReleaseLease(ctx, ids[0], "engine-d"))
	r, err = f.store.Run(ctx, ids[0])
	require.NoError(t, err)
	require.Empty(t, r.LeaseOwner)
	require.Equal(t, int64(2), r.Version, "leases are not state changes")
}
