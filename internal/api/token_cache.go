package api

import (
	"context"
	"sync"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TokenCacheTTL is how long an evaluating application's token is trusted
// without asking the database again: a token revoked, expired by its owner
// or whose user was disabled stops evaluating flags within this time.
const TokenCacheTTL = 10 * time.Second

// touchEvery is how often a cached token's last-used time is written; the
// store keeps it to the minute.
const touchEvery = time.Minute

// tokenCache keeps the tokens that authenticated recently, so that flag
// evaluation, which applications ask for on every request they serve,
// does not wait on the database for each one. Unknown tokens are always
// looked up; a token's own expiry is honoured to the second.
type tokenCache struct {
	inner TokenLookup
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]cachedToken
}

type cachedToken struct {
	tok       store.Token
	until     time.Time
	touchedAt time.Time
}

// maxCachedTokens bounds the cache; past it, it starts again empty.
const maxCachedTokens = 10000

func newTokenCache(inner TokenLookup, ttl time.Duration, now func() time.Time) *tokenCache {
	if now == nil {
		now = time.Now
	}
	return &tokenCache{inner: inner, ttl: ttl, now: now, entries: map[string]cachedToken{}}
}

// TokenByHash answers from the cache while the entry is fresh and the
// token has not expired, and from the database otherwise.
func (tc *tokenCache) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	now := tc.now()
	tc.mu.Lock()
	e, ok := tc.entries[string(hash)]
	tc.mu.Unlock()
	if ok && now.Before(e.until) && (e.tok.ExpiresAt == nil || now.Before(*e.tok.ExpiresAt)) {
		return e.tok, nil
	}
	tok, err := tc.inner.TokenByHash(ctx, hash)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if err != nil {
		delete(tc.entries, string(hash))
		return store.Token{}, err
	}
	if len(tc.entries) >= maxCachedTokens {
		tc.entries = map[string]cachedToken{}
	}
	tc.entries[string(hash)] = cachedToken{tok: tok, until: now.Add(tc.ttl), touchedAt: e.touchedAt}
	return tok, nil
}

// TouchToken records the last use at most once a minute per token,
// without making the request wait for the write.
func (tc *tokenCache) TouchToken(ctx context.Context, id int64, now time.Time) error {
	tc.mu.Lock()
	var due bool
	for hash, e := range tc.entries {
		if e.tok.ID != id {
			continue
		}
		if now.Sub(e.touchedAt) >= touchEvery {
			e.touchedAt = now
			tc.entries[hash] = e
			due = true
		}
		break
	}
	tc.mu.Unlock()
	if !due {
		return nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tc.inner.TouchToken(ctx, id, now)
	}()
	return nil
}
