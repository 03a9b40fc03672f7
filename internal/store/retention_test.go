package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestRetentionRemovesOnlyWhatExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	// fixedNow is the store's clock: one old and one recent window.
	old := windowsFor(run.ID, "candidate", "error_rate", fixedNow.Add(-40*24*time.Hour), 3)
	recent := windowsFor(run.ID, "candidate", "error_rate", fixedNow.Add(-time.Hour), 2)
	_, err := f.store.InsertMetricWindows(ctx, append(old, recent...))
	require.NoError(t, err)

	key := store.IdempotencyKey{TokenID: 1, Method: "POST", Path: "/api/v1/apps", Key: "k1"}
	early := store.New(f.pool, store.Options{Now: func() time.Time { return fixedNow.Add(-48 * time.Hour) }})
	_, claimed, err := early.ClaimIdempotencyKey(ctx, key, []byte("body"))
	require.NoError(t, err)
	require.True(t, claimed)
	fresh := key
	fresh.Key = "k2"
	_, claimed, err = f.store.ClaimIdempotencyKey(ctx, fresh, []byte("body"))
	require.NoError(t, err)
	require.True(t, claimed)

	_, err = f.pool.Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('gone', '', $1), ('alive', '', $2)`,
		fixedNow.Add(-time.Minute), fixedNow.Add(time.Hour))
	require.NoError(t, err)

	r := store.NewRetention(f.store, store.RetentionConfig{})
	r.Pass(ctx)

	var sessions []string
	rows, err := f.pool.Query(ctx, "SELECT token FROM sessions ORDER BY token")
	require.NoError(t, err)
	for rows.Next() {
		var tok string
		require.NoError(t, rows.Scan(&tok))
		sessions = append(sessions, tok)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"alive"}, sessions, "expired sessions are removed, live ones kept")

	left, err := f.store.ListMetricWindows(ctx, run.ID, "candidate", "error_rate", fixedNow.Add(-60*24*time.Hour), fixedNow)
	require.NoError(t, err)
	require.Len(t, left, 2, "windows older than 30 days are removed, recent ones kept")
	n, err := f.store.DeleteExpiredIdempotencyKeys(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the pass already removed the expired key")
	_, claimed, err = f.store.ClaimIdempotencyKey(ctx, fresh, []byte("body"))
	require.NoError(t, err)
	require.False(t, claimed, "the recent key is still there")

	require.NoError(t, r.Start(ctx))
	r.Stop()
	r.Stop()
}
