package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testPlan stands in for a compiled plan; active runs must have one.
var testPlan = json.RawMessage(`{"strategy": "canary", "phases": []}`)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	pool  *pgxpool.Pool
	store *store.Store
	app   store.App
	env   store.Environment
}

func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.New(t)
	s := store.New(pool, store.Options{Now: func() time.Time { return fixedNow }})
	app, err := s.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	return fixture{pool: pool, store: s, app: app, env: env}
}

func (f fixture) newRun(t *testing.T, version string) store.Run {
	t.Helper()
	run, created, err := f.store.CreateRun(context.Background(), store.NewRun{
		AppID: f.app.ID, EnvironmentID: f.env.ID, FromVersion: "v1", ToVersion: version,
		Strategy: "canary", CreatedBy: "user:alice",
	})
	require.NoError(t, err)
	require.True(t, created)
	return run
}

func TestNotFoundIsMapped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	_, err := f.store.App(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.Run(ctx, 424242)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.Environment(ctx, f.app.ID, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.UpdateApp(ctx, "missing", store.AppUpdate{Name: "x"})
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, f.store.DeleteApp(ctx, "missing"), store.ErrNotFound)
	_, err = f.store.UpdateRun(ctx, store.Run{ID: 424242, Version: 1, State: store.RunRunning}, store.Event{Type: "run.started"})
	require.ErrorIs(t, err, store.ErrNotFound)
	// A run for an environment that does not exist is refused by its foreign key.
	_, _, err = f.store.CreateRun(ctx, store.NewRun{AppID: f.app.ID, EnvironmentID: 999, ToVersion: "v2", Strategy: "canary", CreatedBy: "user:alice"})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestClockIsInjected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	run := f.newRun(t, "v2")
	require.True(t, run.CreatedAt.Equal(fixedNow), "created_at %v", run.CreatedAt)
	require.True(t, f.app.CreatedAt.Equal(fixedNow))
}

func TestDuplicateSlugIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.store.CreateApp(context.Background(), store.NewApp{Slug: "checkout", Name: "Another"})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	app, err := f.store.App(context.Background(), "checkout")
	require.NoError(t, err)
	require.Equal(t, "Checkout", app.Name, "the stored app must be unchanged")
}

func TestDeletingAnAppWithEnvironmentsIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	require.ErrorIs(t, f.store.DeleteApp(ctx, "checkout"), store.ErrInUse)
	_, err := f.store.Environment(ctx, f.app.ID, "production")
	require.NoError(t, err)

	empty, err := f.store.CreateApp(ctx, store.NewApp{Slug: "empty", Name: "Empty"})
	require.NoError(t, err)
	require.NoError(t, f.store.DeleteApp(ctx, empty.Slug))
	_, err = f.store.App(ctx, "empty")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestRunCompareAndSwapConflictChangesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")
	require.Equal(t, int64(1), run.Version)

	stale := run
	started := run
	started.State = store.RunRunning
	started.Plan = testPlan
	started, err := f.store.UpdateRun(ctx, started, store.Event{Type: "run.started", Actor: "engine"})
	require.NoError(t, err)
	require.Equal(t, int64(2), started.Version)
	require.NotNil(t, started.StartedAt)

	stale.State = store.RunAborted
	_, err = f.store.UpdateRun(ctx, stale, store.Event{Type: "run.aborted", Actor: "user:bob"})
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, store.ConflictError{Entity: "run", ID: run.ID, Expected: 1, Actual: 2}, *conflict)

	got, err := f.store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State)
	require.Equal(t, int64(2), got.Version)
	events, err := f.store.ListRunEvents(ctx, run.ID, 0, 0)
	require.NoError(t, err)
	require.Len(t, events, 2, "the losing write must not leave an event")
	require.Equal(t, []string{"run.created", "run.started"}, []string{events[0].Type, events[1].Type})
}

func TestEnvironmentCompareAndSwap(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	e := f.env
	e.StableVersion = "v1"
	updated, err := f.store.UpdateEnvironment(ctx, e)
	require.NoError(t, err)
	require.Equal(t, "v1", updated.StableVersion)

	e.StableVersion = "v0" // based on the old version
	_, err = f.store.UpdateEnvironment(ctx, e)
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	got, err := f.store.EnvironmentByID(ctx, f.env.ID)
	require.NoError(t, err)
	require.Equal(t, "v1", got.StableVersion)
}

func TestTerminalRunsNeverChange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")
	run.State = store.RunRunning
	run.Plan = testPlan
	run, err := f.store.UpdateRun(ctx, run, store.Event{Type: "run.started"})
	require.NoError(t, err)
	run.State = store.RunSucceeded
	run, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.succeeded"})
	require.NoError(t, err)
	require.NotNil(t, run.FinishedAt)
	require.Nil(t, run.NextEvalAt)

	run.State = store.RunRollingBack
	_, err = f.store.UpdateRun(ctx, run, store.Event{Type: "run.rolling_back"})
	require.ErrorIs(t, err, store.ErrTerminal)
	got, err := f.store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunSucceeded, got.State)
}

func TestOneActiveRunUnderConcurrentStarts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]int64, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			run, _, err := f.store.CreateRun(ctx, store.NewRun{
				AppID: f.app.ID, EnvironmentID: f.env.ID, ToVersion: "v" + strconv.Itoa(i+2),
				Strategy: "canary", CreatedBy: "token:ci",
			})
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = run.ID
			run.State = store.RunRunning
			run.Plan = testPlan
			_, errs[i] = f.store.UpdateRun(ctx, run, store.Event{Type: "run.started", Actor: "engine"})
		}()
	}
	close(start)
	wg.Wait()

	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, store.ErrActiveRun, "run %d", i)
		require.NotZero(t, ids[i], "every run is created, only starting is refused")
	}
	require.Equal(t, 1, won)

	active, err := f.store.ListRuns(ctx, store.RunFilter{EnvironmentID: f.env.ID, States: []store.RunState{store.RunRunning, store.RunAwaitingApproval, store.RunPaused, store.RunRollingBack}})
	require.NoError(t, err)
	require.Len(t, active, 1)
	pending, err := f.store.ListRuns(ctx, store.RunFilter{EnvironmentID: f.env.ID, States: []store.RunState{store.RunPending}})
	require.NoError(t, err)
	require.Len(t, pending, n-1)
	for _, r := range pending {
		require.Equal(t, int64(1), r.Version, "a refused start must not bump the version")
		events, err := f.store.ListRunEvents(ctx, r.ID, 0, 0)
		require.NoError(t, err)
		require.Len(t, events, 1)
	}
}

func TestEveryRunChangeWritesAnEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	run.Plan = testPlan
	steps := []struct {
		state  store.RunState
		phase  int
		ev     string
		mutate func(*store.Run)
	}{
		{store.RunRunning, 0, "run.started", nil},
		{store.RunRunning, 1, "phase.started", nil},
		{store.RunPaused, 1, "run.paused", func(r *store.Run) { r.PausedAt, r.ResumeState = &fixedNow, store.RunRunning }},
		{store.RunRunning, 1, "run.resumed", func(r *store.Run) { r.PausedAt, r.ResumeState = nil, "" }},
		{store.RunRollingBack, 1, "run.rolling_back", func(r *store.Run) { r.FinalState = store.RunRolledBack }},
		{store.RunRolledBack, 1, "run.rolled_back", nil},
	}
	for _, st := range steps {
		run.State, run.PhaseIndex = st.state, st.phase
		if st.mutate != nil {
			st.mutate(&run)
		}
		var err error
		run, err = f.store.UpdateRun(ctx, run, store.Event{Type: st.ev, Actor: "user:alice", Payload: map[string]any{"phase": st.phase}})
		require.NoError(t, err)
	}
	require.Equal(t, int64(len(steps)+1), run.Version)

	events, err := f.store.ListRunEvents(ctx, run.ID, 0, 0)
	require.NoError(t, err)
	require.Len(t, events, len(steps)+1)
	for i, st := range steps {
		ev := events[i+1]
		require.Equal(t, st.ev, ev.Type)
		require.Equal(t, "user:alice", ev.Actor)
		require.JSONEq(t, `{"phase": `+strconv.Itoa(st.phase)+`}`, string(ev.Payload))
		require.Greater(t, ev.ID, events[i].ID)
	}

	// Readers resume after the last id they saw.
	rest, err := f.store.ListRunEvents(ctx, run.ID, events[3].ID, 0)
	require.NoError(t, err)
	require.Len(t, rest, len(events)-4)

	// The log is append-only, even for someone with SQL access.
	_, err = f.pool.Exec(ctx, "UPDATE run_events SET type = 'run.tampered' WHERE run_id = $1", run.ID)
	require.ErrorContains(t, err, "append-only")
	_, err = f.pool.Exec(ctx, "DELETE FROM run_events WHERE run_id = $1", run.ID)
	require.ErrorContains(t, err, "append-only")
}

func TestIdempotencyKeyReturnsTheFirstRun(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	n := store.NewRun{AppID: f.app.ID, EnvironmentID: f.env.ID, ToVersion: "v2", Strategy: "canary", CreatedBy: "token:ci", IdempotencyKey: "build-77"}
	first, created, err := f.store.CreateRun(ctx, n)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := f.store.CreateRun(ctx, n)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)
	runs, err := f.store.ListRuns(ctx, store.RunFilter{EnvironmentID: f.env.ID})
	require.NoError(t, err)
	require.Len(t, runs, 1)
}

func TestRunChangesAreAnnouncedAfterCommit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	notifier := store.NewNotifier(f.pool, store.NotifierConfig{Interval: 20 * time.Millisecond})
	require.NoError(t, notifier.Start(ctx))
	t.Cleanup(notifier.Stop)
	s := store.New(f.pool, store.Options{Notifier: notifier})

	conn, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+store.RunsChannel)
	require.NoError(t, err)

	run := f.newRun(t, "v2")
	commit := make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- s.WithTx(ctx, func(tx *store.Store) error {
			r := run
			r.State = store.RunRunning
			r.Plan = testPlan
			if _, err := tx.UpdateRun(ctx, r, store.Event{Type: "run.started"}); err != nil {
				return err
			}
			<-commit
			return nil
		})
	}()

	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = conn.Conn().WaitForNotification(waitCtx)
	cancel()
	require.Error(t, err, "nothing is announced before the transaction commits")

	close(commit)
	require.NoError(t, <-txDone)
	waitCtx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, store.RunsChannel, n.Channel)
	require.Equal(t, []int64{run.ID}, store.ParseRunIDs(n.Payload))
}

func TestRolledBackTransactionAnnouncesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")
	boom := errors.New("boom")
	err := f.store.WithTx(ctx, func(tx *store.Store) error {
		r := run
		r.State = store.RunRunning
		r.Plan = testPlan
		if _, err := tx.UpdateRun(ctx, r, store.Event{Type: "run.started"}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	got, err := f.store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, got.State)
	events, err := f.store.ListRunEvents(ctx, run.ID, 0, 0)
	require.NoError(t, err)
	require.Len(t, events, 1)
}

func TestAppsUpdateAndPage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	updated, err := f.store.UpdateApp(ctx, "checkout", store.AppUpdate{Name: "Checkout v2", Description: "pays"})
	require.NoError(t, err)
	require.Equal(t, "Checkout v2", updated.Name)
	require.Equal(t, "pays", updated.Description)

	for _, slug := range []string{"alpha", "beta", "gamma", "delta"} {
		_, err := f.store.CreateApp(ctx, store.NewApp{Slug: slug, Name: slug})
		require.NoError(t, err)
	}
	var seen []string
	after := ""
	for {
		page, err := f.store.ListApps(ctx, after, 2)
		require.NoError(t, err)
		for _, a := range page {
			seen = append(seen, a.Slug)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Slug
	}
	require.Equal(t, []string{"alpha", "beta", "checkout", "delta", "gamma"}, seen)

	_, err = f.store.CreateApp(ctx, store.NewApp{Slug: "Not A Slug", Name: "x"})
	require.ErrorIs(t, err, store.ErrInvalid, "the schema refuses what the API should have caught")
}

func TestAChangeAfterAQuietSpellIsAnnouncedAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	// A long coalescing window: only changes that follow a flush wait for it.
	notifier := store.NewNotifier(f.pool, store.NotifierConfig{Interval: 3 * time.Second})
	require.NoError(t, notifier.Start(ctx))
	t.Cleanup(notifier.Stop)

	conn, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+store.RunsChannel)
	require.NoError(t, err)

	wait := func(within time.Duration) ([]int64, error) {
		waitCtx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(waitCtx)
		if err != nil {
			return nil, err
		}
		return store.ParseRunIDs(n.Payload), nil
	}

	notifier.RunChanged(41)
	ids, err := wait(time.Second)
	require.NoError(t, err, "the first change is not held back for the window")
	require.Equal(t, []int64{41}, ids)

	notifier.RunChanged(42)
	notifier.RunChanged(43)
	_, err = wait(time.Second)
	require.Error(t, err, "changes right after a flush wait for the window")
	ids, err = wait(5 * time.Second)
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{42, 43}, ids, "and are announced together")
}

func TestANewEnvironmentIsAnnouncedToFlagCaches(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	conn, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+store.FlagsChannel)
	require.NoError(t, err)

	env, err := f.store.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "qa"})
	require.NoError(t, err)
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	appID, envID, ok := store.ParseFlagScope(n.Payload)
	require.True(t, ok)
	require.Equal(t, [2]int64{f.app.ID, env.ID}, [2]int64{appID, envID})
}
