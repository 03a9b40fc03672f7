package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// newCheckoutFlag is a boolean flag with variants on and off, off by default.
func newCheckoutFlag(key string) flags.Flag {
	return flags.Flag{
		Key:            key,
		Type:           flags.TypeBoolean,
		Variants:       map[string]json.RawMessage{"on": json.RawMessage(`true`), "off": json.RawMessage(`false`)},
		DefaultVariant: "off",
		Description:    "the new checkout flow",
	}
}

// servingOn is a state that serves "on" to everybody.
var servingOn = flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "on"}}

func validationFields(t *testing.T, err error) map[string]string {
	t.Helper()
	var ve *flags.ValidationError
	require.ErrorAs(t, err, &ve)
	out := map[string]string{}
	for _, fe := range ve.Errors {
		out[fe.Field] = fe.Message
	}
	return out
}

func flagEventTypes(t *testing.T, s *store.Store, flagID int64) []string {
	t.Helper()
	evs, err := s.ListFlagEvents(context.Background(), flagID, 0, 100)
	require.NoError(t, err)
	var types []string
	for _, ev := range evs {
		require.Equal(t, flagID, ev.FlagID)
		types = append(types, ev.Type)
	}
	return types
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestFlagCreateReadUpdate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	created, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)
	require.Equal(t, int64(1), created.Version)
	require.Equal(t, "new-checkout", created.Key())
	require.Equal(t, fixedNow, created.CreatedAt.UTC())

	got, err := f.store.Flag(ctx, f.app.ID, "new-checkout")
	require.NoError(t, err)
	require.Equal(t, created.ID, got.ID)
	require.Equal(t, "the new checkout flow", got.Definition.Description)
	require.JSONEq(t, `true`, string(got.Definition.Variants["on"]))

	_, err = f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = f.store.Flag(ctx, f.app.ID, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.CreateFlag(ctx, 424242, newCheckoutFlag("orphan"), "user:alice")
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("another"), "user:alice")
	require.NoError(t, err)
	list, err := f.store.ListFlags(ctx, f.app.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "another", list[0].Key())
	require.Equal(t, "new-checkout", list[1].Key())

	edit := got
	edit.Definition.Description = "the one-page checkout"
	updated, err := f.store.UpdateFlag(ctx, edit, "user:bob")
	require.NoError(t, err)
	require.Equal(t, int64(2), updated.Version)
	require.Equal(t, "the one-page checkout", updated.Definition.Description)

	// A second edit based on the version read before the first loses.
	stale := got
	stale.Definition.Description = "stale"
	_, err = f.store.UpdateFlag(ctx, stale, "user:carol")
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, int64(1), conflict.Expected)
	require.Equal(t, int64(2), conflict.Actual)
	again, err := f.store.FlagByID(ctx, got.ID)
	require.NoError(t, err)
	require.Equal(t, "the one-page checkout", again.Definition.Description)

	require.Equal(t, []string{store.FlagEventCreated, store.FlagEventUpdated}, flagEventTypes(t, f.store, got.ID))
	evs, err := f.store.ListFlagEvents(ctx, got.ID, 0, 100)
	require.NoError(t, err)
	require.Equal(t, "user:bob", evs[1].Actor)
	more, err := f.store.ListFlagEvents(ctx, got.ID, evs[0].ID, 100)
	require.NoError(t, err)
	require.Len(t, more, 1)
}

func TestFlagValidationErrorsWriteNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	bad := newCheckoutFlag("new-checkout")
	bad.Type = "colour"
	bad.DefaultVariant = "maybe"
	_, err := f.store.CreateFlag(ctx, f.app.ID, bad, "user:alice")
	fields := validationFields(t, err)
	require.Contains(t, fields, "type")
	require.Contains(t, fields, "default_variant")
	require.Equal(t, 0, countRows(t, f.pool, "flags"))
	require.Equal(t, 0, countRows(t, f.pool, "flag_events"))

	flag, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)

	// A state serving a variant the flag does not have.
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "maybe"}}, 0, "user:alice")
	require.Contains(t, validationFields(t, err), "default_rollout.variant")
	// A rule naming a segment the app does not have.
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, flags.EnvState{Enabled: true, Rules: []flags.Rule{
		{Name: "beta", Segment: "beta-testers", Serve: flags.Serve{Variant: "on"}},
	}}, 0, "user:alice")
	require.Contains(t, validationFields(t, err), "rules[0].segment")
	require.Equal(t, 0, countRows(t, f.pool, "flag_states"))

	// Removing a variant that production still serves is refused, naming
	// the environment.
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, servingOn, 0, "user:alice")
	require.NoError(t, err)
	edit := flag
	edit.Definition.Variants = map[string]json.RawMessage{"off": json.RawMessage(`false`)}
	_, err = f.store.UpdateFlag(ctx, edit, "user:alice")
	require.Contains(t, validationFields(t, err), `environments["production"].default_rollout.variant`)

	// The key cannot change.
	rename := flag
	rename.Definition.Key = "renamed"
	_, err = f.store.UpdateFlag(ctx, rename, "user:alice")
	require.Contains(t, validationFields(t, err), "key")

	// An invalid segment.
	_, err = f.store.UpsertSegment(ctx, f.app.ID, flags.Segment{Key: "bad key!"}, 0, "user:alice")
	require.Contains(t, validationFields(t, err), "key")
	require.Equal(t, 0, countRows(t, f.pool, "segments"))

	again, err := f.store.FlagByID(ctx, flag.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), again.Version)
	require.Len(t, again.Definition.Variants, 2)
	require.Equal(t, []string{store.FlagEventCreated, store.FlagEventStateChanged}, flagEventTypes(t, f.store, flag.ID))
}

func TestFlagStateCompareAndSwapAndKill(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	flag, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)

	states, err := f.store.ListFlagStates(ctx, f.app.ID, f.env.ID)
	require.NoError(t, err)
	require.Len(t, states, 1)
	require.False(t, states[0].Configured)
	require.False(t, states[0].State.Enabled)

	st, err := f.store.SetFlagState(ctx, flag.ID, f.env.ID, servingOn, 0, "user:alice")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.State.Version)
	require.True(t, st.State.Enabled)
	require.Equal(t, "user:alice", st.UpdatedBy)

	// Creating it again, or editing from a stale version, loses.
	var conflict *store.ConflictError
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, servingOn, 0, "user:bob")
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, int64(1), conflict.Actual)
	rollout := flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "on", Weight: 5}, {Variant: "off", Weight: 95}}}}
	st, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, rollout, 1, "user:bob")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.State.Version)
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, servingOn, 1, "user:carol")
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, int64(2), conflict.Actual)

	killed, err := f.store.KillFlag(ctx, flag.ID, f.env.ID, "user:oncall")
	require.NoError(t, err)
	require.False(t, killed.State.Enabled)
	require.Equal(t, int64(3), killed.State.Version)
	require.Len(t, killed.State.DefaultRollout.Rollout, 2, "a kill keeps the rollout for when the flag is turned back on")

	states, err = f.store.ListFlagStates(ctx, f.app.ID, f.env.ID)
	require.NoError(t, err)
	require.True(t, states[0].Configured)
	require.False(t, states[0].State.Enabled)
	require.Equal(t, int64(3), states[0].State.Version)
	require.Equal(t, "user:oncall", states[0].UpdatedBy)

	require.Equal(t, []string{store.FlagEventCreated, store.FlagEventStateChanged, store.FlagEventStateChanged, store.FlagEventKilled},
		flagEventTypes(t, f.store, flag.ID))

	// A kill in an environment where the flag was never configured leaves
	// it off, recorded.
	staging, err := f.store.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "staging"})
	require.NoError(t, err)
	killed, err = f.store.KillFlag(ctx, flag.ID, staging.ID, "user:oncall")
	require.NoError(t, err)
	require.False(t, killed.State.Enabled)
	require.Equal(t, int64(1), killed.State.Version)

	// Environments of other apps are not the flag's.
	other, err := f.store.CreateApp(ctx, store.NewApp{Slug: "search", Name: "Search"})
	require.NoError(t, err)
	otherEnv, err := f.store.CreateEnvironment(ctx, store.Environment{AppID: other.ID, Name: "production"})
	require.NoError(t, err)
	_, err = f.store.SetFlagState(ctx, flag.ID, otherEnv.ID, servingOn, 0, "user:alice")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.KillFlag(ctx, flag.ID, otherEnv.ID, "user:alice")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.ListFlagStates(ctx, f.app.ID, otherEnv.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.KillFlag(ctx, 424242, f.env.ID, "user:alice")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestSegmentsAndFlagConfigs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	beta := flags.Segment{Key: "beta-testers", IncludedKeys: []string{"user-1"}}
	seg, err := f.store.UpsertSegment(ctx, f.app.ID, beta, 0, "user:alice")
	require.NoError(t, err)
	require.Equal(t, int64(1), seg.Version)
	var conflict *store.ConflictError
	_, err = f.store.UpsertSegment(ctx, f.app.ID, beta, 0, "user:alice")
	require.ErrorAs(t, err, &conflict)
	beta.IncludedKeys = append(beta.IncludedKeys, "user-2")
	seg, err = f.store.UpsertSegment(ctx, f.app.ID, beta, 1, "user:alice")
	require.NoError(t, err)
	require.Equal(t, int64(2), seg.Version)
	_, err = f.store.UpsertSegment(ctx, f.app.ID, beta, 1, "user:bob")
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, int64(2), conflict.Actual)
	segs, err := f.store.ListSegments(ctx, f.app.ID)
	require.NoError(t, err)
	require.Len(t, segs, 1)
	require.Equal(t, []string{"user-1", "user-2"}, segs[0].Definition.IncludedKeys)

	flag, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)
	_, err = f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("dark-mode"), "user:alice")
	require.NoError(t, err)
	_, err = f.store.SetFlagState(ctx, flag.ID, f.env.ID, flags.EnvState{Enabled: true, Rules: []flags.Rule{
		{Name: "beta", Segment: "beta-testers", Serve: flags.Serve{Variant: "on"}},
	}}, 0, "user:alice")
	require.NoError(t, err)

	configs, err := f.store.FlagConfigs(ctx, f.app.ID, f.env.ID)
	require.NoError(t, err)
	require.Len(t, configs, 1)
	c := configs[0]
	require.Equal(t, "checkout", c.AppSlug)
	require.Equal(t, "production", c.EnvironmentName)
	require.Len(t, c.Entries, 2)
	require.Equal(t, "dark-mode", c.Entries[0].Flag.Key)
	require.False(t, c.Entries[0].State.Enabled)
	require.Equal(t, "new-checkout", c.Entries[1].Flag.Key)
	require.Equal(t, int64(1), c.Entries[1].State.Version)
	require.Len(t, c.Segments, 1)

	snap := flags.NewSnapshot(c.Entries, c.Segments)
	require.Empty(t, snap.Errors())
	require.Equal(t, "on", snap.Evaluate("new-checkout", flags.EvalContext{"targetingKey": "user-2"}).Variant)
	require.Equal(t, "off", snap.Evaluate("new-checkout", flags.EvalContext{"targetingKey": "user-3"}).Variant)

	all, err := f.store.FlagConfigs(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, all, 1)
	none, err := f.store.FlagConfigs(ctx, f.app.ID, 424242)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestFlagEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)

	for _, stmt := range []string{
		"UPDATE flag_events SET actor = 'user:mallory'",
		"DELETE FROM flag_events",
	} {
		_, err := f.pool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, stmt)
		require.Equal(t, "23001", pgErr.Code, stmt) // restrict_violation
		require.Contains(t, pgErr.Message, "append-only")
	}
	require.Equal(t, 1, countRows(t, f.pool, "flag_events"))
}

// errRolledBack makes WithTx roll back in the notification test.
var errRolledBack = errors.New("rolled back on purpose")

func TestFlagChangesNotifyAfterCommitOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	listener, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer listener.Release()
	_, err = listener.Exec(ctx, "LISTEN "+store.FlagsChannel)
	require.NoError(t, err)
	next := func(wait time.Duration) (string, bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		n, err := listener.Conn().WaitForNotification(wctx)
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			return "", false
		}
		return n.Payload, true
	}

	flag, err := f.store.CreateFlag(ctx, f.app.ID, newCheckoutFlag("new-checkout"), "user:alice")
	require.NoError(t, err)
	payload, ok := next(5 * time.Second)
	require.True(t, ok)
	require.Equal(t, store.FlagScope(f.app.ID, 0), payload)

	// Inside a transaction nothing is announced before the commit.
	committed := make(chan error, 1)
	inside := make(chan struct{})
	release := make(chan struct{})
	go func() {
		committed <- f.store.WithTx(ctx, func(tx *store.Store) error {
			if _, err := tx.SetFlagState(ctx, flag.ID, f.env.ID, servingOn, 0, "user:alice"); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	_, ok = next(200 * time.Millisecond)
	require.False(t, ok, "a flag change was announced before its transaction committed")
	close(release)
	require.NoError(t, <-committed)
	payload, ok = next(5 * time.Second)
	require.True(t, ok)
	require.Equal(t, store.FlagScope(f.app.ID, f.env.ID), payload)
	appID, envID, ok := store.ParseFlagScope(payload)
	require.True(t, ok)
	require.Equal(t, f.app.ID, appID)
	require.Equal(t, f.env.ID, envID)

	// A rolled-back change is never announced, and never happened.
	err = f.store.WithTx(ctx, func(tx *store.Store) error {
		if _, err := tx.KillFlag(ctx, flag.ID, f.env.ID, "user:oncall"); err != nil {
			return err
		}
		return errRolledBack
	})
	require.ErrorIs(t, err, errRolledBack)
	_, ok = next(300 * time.Millisecond)
	require.False(t, ok, "a rolled-back flag change was announced")
	states, err := f.store.ListFlagStates(ctx, f.app.ID, f.env.ID)
	require.NoError(t, err)
	require.True(t, states[0].State.Enabled)

	for _, bad := range []string{"", "1", "a:b", "0:1", "1:-1"} {
		_, _, ok := store.ParseFlagScope(bad)
		require.False(t, ok, bad)
	}
}
