package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestIdempotencyKeyLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := fixedNow
	s := store.New(dbtest.New(t), store.Options{Now: func() time.Time { return now }})
	k := store.IdempotencyKey{TokenID: 7, Method: "POST", Path: "/api/v1/runs/1/actions/pause", Key: "job-1"}
	hash := []byte("hash-a")

	_, claimed, err := s.ClaimIdempotencyKey(ctx, k, hash)
	require.NoError(t, err)
	require.True(t, claimed, "the first request claims the key")

	stored, claimed, err := s.ClaimIdempotencyKey(ctx, k, hash)
	require.NoError(t, err)
	require.False(t, claimed)
	require.False(t, stored.Completed, "the first request is still in flight")
	require.Equal(t, hash, stored.RequestHash)

	other := k
	other.TokenID = 8
	_, claimed, err = s.ClaimIdempotencyKey(ctx, other, hash)
	require.NoError(t, err)
	require.True(t, claimed, "a key belongs to one token")

	require.NoError(t, s.CompleteIdempotencyKey(ctx, k, 200, "/api/v1/runs/1", []byte(`{"ok": true}`)))
	stored, claimed, err = s.ClaimIdempotencyKey(ctx, k, []byte("hash-b"))
	require.NoError(t, err)
	require.False(t, claimed)
	require.True(t, stored.Completed)
	require.Equal(t, 200, stored.Status)
	require.Equal(t, "/api/v1/runs/1", stored.Location)
	require.JSONEq(t, `{"ok": true}`, string(stored.Body))
	require.Equal(t, hash, stored.RequestHash, "the first request's hash is kept")

	// A released claim is free again; a completed answer is not released.
	require.NoError(t, s.ReleaseIdempotencyKey(ctx, other))
	_, claimed, err = s.ClaimIdempotencyKey(ctx, other, hash)
	require.NoError(t, err)
	require.True(t, claimed)
	require.NoError(t, s.ReleaseIdempotencyKey(ctx, k))
	_, claimed, err = s.ClaimIdempotencyKey(ctx, k, hash)
	require.NoError(t, err)
	require.False(t, claimed)

	// After the time to live, the key is a new request.
	now = now.Add(store.IdempotencyTTL + time.Second)
	_, claimed, err = s.ClaimIdempotencyKey(ctx, k, []byte("hash-b"))
	require.NoError(t, err)
	require.True(t, claimed)
	n, err := s.DeleteExpiredIdempotencyKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the other token's key was left to expire")
}
