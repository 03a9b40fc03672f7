package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// newToken stores a token for the user and returns it with its plaintext.
func newToken(t *testing.T, s *store.Store, nt store.NewToken) (store.Token, string) {
	t.Helper()
	plaintext, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	nt.Hash, nt.Prefix = hash, prefix
	if nt.Scopes == nil {
		nt.Scopes = []auth.Scope{auth.ScopeDeploy}
	}
	tok, err := s.CreateToken(context.Background(), nt)
	require.NoError(t, err)
	return tok, plaintext
}

func adminUser(t *testing.T, s *store.Store) store.User {
	t.Helper()
	u, err := s.EnsureAdminUser(context.Background(), "admin")
	require.NoError(t, err)
	return u
}

func TestEnsureAdminUserIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	first, err := f.store.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	require.Equal(t, "admin", first.Username)
	require.True(t, first.IsAdmin)
	require.Nil(t, first.DisabledAt)
	require.True(t, first.CreatedAt.Equal(fixedNow))

	again, err := f.store.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	require.Equal(t, first, again)

	// An existing user who is not an administrator becomes one.
	_, err = f.pool.Exec(ctx, "INSERT INTO users (username) VALUES ('ops')")
	require.NoError(t, err)
	ops, err := f.store.EnsureAdminUser(ctx, "ops")
	require.NoError(t, err)
	require.True(t, ops.IsAdmin)

	byID, err := f.store.UserByID(ctx, first.ID)
	require.NoError(t, err)
	require.Equal(t, first, byID)
	_, err = f.store.UserByID(ctx, 424242)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.store.EnsureAdminUser(ctx, "Not A Username")
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)
	expires := fixedNow.Add(30 * 24 * time.Hour)
	created, plaintext := newToken(t, f.store, store.NewToken{
		Name: "ci", UserID: user.ID, Scopes: []auth.Scope{auth.ScopeRead, auth.ScopeDeploy}, ExpiresAt: &expires,
		Apps: []string{"checkout"}, Environments: []string{"staging", "production"},
	})
	require.NotZero(t, created.ID)
	require.Equal(t, "ci", created.Name)
	require.Equal(t, plaintext[:12], created.Prefix)
	require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeDeploy}, created.Scopes)
	require.Equal(t, []string{"checkout"}, created.Apps)
	require.Equal(t, []string{"staging", "production"}, created.Environments)
	require.True(t, created.CreatedAt.Equal(fixedNow))
	require.True(t, created.ExpiresAt.Equal(expires))
	require.Nil(t, created.LastUsedAt)
	require.Nil(t, created.RevokedAt)

	found, err := f.store.TokenByHash(ctx, auth.Hash(plaintext))
	require.NoError(t, err)
	require.Equal(t, created, found)
	byName, err := f.store.TokenByName(ctx, "ci")
	require.NoError(t, err)
	require.Equal(t, created, byName)

	require.Equal(t, auth.Principal{
		TokenID: created.ID, Name: "ci", UserID: user.ID, Scopes: created.Scopes,
		Apps: []string{"checkout"}, Environments: []string{"staging", "production"},
	}, found.Principal())

	// Unlimited tokens read back with empty, not nil, limits.
	open, _ := newToken(t, f.store, store.NewToken{Name: "open", UserID: user.ID})
	require.Equal(t, []string{}, open.Apps)
	require.Equal(t, []string{}, open.Environments)
	require.Nil(t, open.ExpiresAt)
}

func TestTokenByHashRefusesUnusableTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)

	_, err := f.store.TokenByHash(ctx, auth.Hash("fdk_unknown"))
	require.ErrorIs(t, err, store.ErrNotFound)

	revoked, revokedText := newToken(t, f.store, store.NewToken{Name: "revoked", UserID: user.ID})
	require.NoError(t, f.store.RevokeToken(ctx, revoked.ID))
	_, err = f.store.TokenByHash(ctx, auth.Hash(revokedText))
	require.ErrorIs(t, err, store.ErrNotFound)

	expires := fixedNow.Add(time.Hour)
	_, expiringText := newToken(t, f.store, store.NewToken{Name: "expiring", UserID: user.ID, ExpiresAt: &expires})
	_, err = f.store.TokenByHash(ctx, auth.Hash(expiringText))
	require.NoError(t, err, "valid until its expiry")
	for _, at := range []time.Time{expires, expires.Add(time.Second)} {
		later := store.New(f.pool, store.Options{Now: func() time.Time { return at }})
		_, err = later.TokenByHash(ctx, auth.Hash(expiringText))
		require.ErrorIs(t, err, store.ErrNotFound, "expired at %v", at)
	}

	_, err = f.pool.Exec(ctx, "INSERT INTO users (username) VALUES ('leaver')")
	require.NoError(t, err)
	var leaverID int64
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT id FROM users WHERE username = 'leaver'").Scan(&leaverID))
	_, leaverText := newToken(t, f.store, store.NewToken{Name: "leaver", UserID: leaverID})
	_, err = f.store.TokenByHash(ctx, auth.Hash(leaverText))
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, "UPDATE users SET disabled_at = now() WHERE id = $1", leaverID)
	require.NoError(t, err)
	_, err = f.store.TokenByHash(ctx, auth.Hash(leaverText))
	require.ErrorIs(t, err, store.ErrNotFound, "a disabled user's tokens stop working")
}

func TestTokenNamesAreUniqueAmongLiveTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)
	first, _ := newToken(t, f.store, store.NewToken{Name: "ci", UserID: user.ID})

	_, _, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = f.store.CreateToken(ctx, store.NewToken{Name: "ci", Hash: hash, Prefix: "fdk_x", Scopes: []auth.Scope{auth.ScopeRead}, UserID: user.ID})
	require.ErrorIs(t, err, store.ErrAlreadyExists)

	// Revoking frees the name.
	require.NoError(t, f.store.RevokeToken(ctx, first.ID))
	second, _ := newToken(t, f.store, store.NewToken{Name: "ci", UserID: user.ID})
	require.NotEqual(t, first.ID, second.ID)

	// The same hash is never stored twice, even once revoked, so a revoked
	// token cannot come back under another name.
	other, err := f.store.CreateToken(ctx, store.NewToken{Name: "other", Hash: hash, Prefix: "fdk_x", Scopes: []auth.Scope{auth.ScopeRead}, UserID: user.ID})
	require.NoError(t, err)
	require.NoError(t, f.store.RevokeToken(ctx, other.ID))
	_, err = f.store.CreateToken(ctx, store.NewToken{Name: "third", Hash: hash, Prefix: "fdk_x", Scopes: []auth.Scope{auth.ScopeRead}, UserID: user.ID})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
}

func TestCreateTokenRefusesBadTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)
	past := fixedNow.Add(-time.Hour)
	for name, tc := range map[string]struct {
		token store.NewToken
		want  error
	}{
		"no scopes":          {store.NewToken{Name: "a", UserID: user.ID, Scopes: []auth.Scope{}}, store.ErrInvalid},
		"unknown scope":      {store.NewToken{Name: "a", UserID: user.ID, Scopes: []auth.Scope{"root"}}, store.ErrInvalid},
		"empty name":         {store.NewToken{Name: "", UserID: user.ID}, store.ErrInvalid},
		"bad app slug":       {store.NewToken{Name: "a", UserID: user.ID, Apps: []string{"checkout", "Bad Slug"}}, store.ErrInvalid},
		"empty environment":  {store.NewToken{Name: "a", UserID: user.ID, Environments: []string{""}}, store.ErrInvalid},
		"expired on arrival": {store.NewToken{Name: "a", UserID: user.ID, ExpiresAt: &past}, store.ErrInvalid},
		"unknown user":       {store.NewToken{Name: "a", UserID: 424242}, store.ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			nt := tc.token
			_, prefix, hash, err := auth.Generate()
			require.NoError(t, err)
			nt.Hash, nt.Prefix = hash, prefix
			if nt.Scopes == nil {
				nt.Scopes = []auth.Scope{auth.ScopeRead}
			}
			_, err = f.store.CreateToken(ctx, nt)
			require.ErrorIs(t, err, tc.want)
		})
	}
	list, err := f.store.ListTokens(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestListAndRevokeTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)
	deploy, _ := newToken(t, f.store, store.NewToken{Name: "deploy", UserID: user.ID})
	agent, _ := newToken(t, f.store, store.NewToken{Name: "agent", UserID: user.ID, Scopes: []auth.Scope{auth.ScopeMetrics}})
	gone, _ := newToken(t, f.store, store.NewToken{Name: "gone", UserID: user.ID})
	require.NoError(t, f.store.RevokeToken(ctx, gone.ID))

	list, err := f.store.ListTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.Token{agent, deploy}, list, "live tokens by name")

	require.ErrorIs(t, f.store.RevokeToken(ctx, gone.ID), store.ErrNotFound, "already revoked")
	require.ErrorIs(t, f.store.RevokeToken(ctx, 424242), store.ErrNotFound)
	_, err = f.store.TokenByName(ctx, "gone")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestTouchTokenWritesAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user := adminUser(t, f.store)
	tok, _ := newToken(t, f.store, store.NewToken{Name: "ci", UserID: user.ID})
	lastUsed := func() *time.Time {
		t.Helper()
		got, err := f.store.TokenByName(ctx, "ci")
		require.NoError(t, err)
		return got.LastUsedAt
	}

	first := fixedNow.Add(time.Second)
	require.NoError(t, f.store.TouchToken(ctx, tok.ID, first))
	require.True(t, lastUsed().Equal(first))

	require.NoError(t, f.store.TouchToken(ctx, tok.ID, first.Add(30*time.Second)))
	require.True(t, lastUsed().Equal(first), "within the minute nothing is written")
	require.NoError(t, f.store.TouchToken(ctx, tok.ID, first.Add(time.Minute)))
	require.True(t, lastUsed().Equal(first), "exactly a minute later is still within it")

	later := first.Add(time.Minute + time.Second)
	require.NoError(t, f.store.TouchToken(ctx, tok.ID, later))
	require.True(t, lastUsed().Equal(later))

	require.NoError(t, f.store.TouchToken(ctx, 424242, later), "touching is bookkeeping, not a lookup")
}
