package api

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// countingTokens is the real store, counting the lookups that reach it.
type countingTokens struct {
	*store.Store
	lookups, touches atomic.Int64
}

func (c *countingTokens) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	c.lookups.Add(1)
	return c.Store.TokenByHash(ctx, hash)
}

func (c *countingTokens) TouchToken(ctx context.Context, id int64, now time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchToken(ctx, id, now)
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestEvaluatingTokensAreRememberedForTheirTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	owner, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	tok, err := st.CreateToken(ctx, store.NewToken{Name: "checkout-app", Hash: hash, Prefix: prefix, Scopes: []auth.Scope{auth.ScopeFlags}, UserID: owner.ID})
	require.NoError(t, err)

	inner := &countingTokens{Store: st}
	clock := &testClock{t: time.Now()}
	cache := newTokenCache(inner, TokenCacheTTL, clock.now)
	for range 100 {
		got, err := cache.TokenByHash(ctx, auth.Hash(plain))
		require.NoError(t, err)
		require.Equal(t, tok.ID, got.ID)
		require.NoError(t, cache.TouchToken(ctx, got.ID, clock.now()))
	}
	require.Equal(t, int64(1), inner.lookups.Load(), "a hundred evaluations ask the database once")
	require.Eventually(t, func() bool { return inner.touches.Load() == 1 }, time.Second, time.Millisecond,
		"the last use is written once a minute, not per request")

	// Revoked: still trusted until the entry is stale, then refused.
	require.NoError(t, st.RevokeToken(ctx, tok.ID))
	_, err = cache.TokenByHash(ctx, auth.Hash(plain))
	require.NoError(t, err)
	clock.advance(TokenCacheTTL)
	_, err = cache.TokenByHash(ctx, auth.Hash(plain))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = cache.TokenByHash(ctx, auth.Hash(plain))
	require.ErrorIs(t, err, store.ErrNotFound, "a refused token is not remembered")

	// Unknown tokens are never cached.
	other, _, _, err := auth.Generate()
	require.NoError(t, err)
	before := inner.lookups.Load()
	for range 3 {
		_, err = cache.TokenByHash(ctx, auth.Hash(other))
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, before+3, inner.lookups.Load())
}

func TestCachedTokenStopsAtItsOwnExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &testClock{t: time.Now()}
	st := store.New(dbtest.New(t), store.Options{Now: clock.now})
	owner, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	expires := clock.now().Add(2 * time.Second)
	_, err = st.CreateToken(ctx, store.NewToken{Name: "short-lived", Hash: hash, Prefix: prefix, Scopes: []auth.Scope{auth.ScopeFlags}, UserID: owner.ID, ExpiresAt: &expires})
	require.NoError(t, err)

	cache := newTokenCache(&countingTokens{Store: st}, TokenCacheTTL, clock.now)
	_, err = cache.TokenByHash(ctx, auth.Hash(plain))
	require.NoError(t, err)
	clock.advance(3 * time.Second)
	_, err = cache.TokenByHash(ctx, auth.Hash(plain))
	require.Error(t, err, "an expired token is refused even while its entry is fresh")
}
