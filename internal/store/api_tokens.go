package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// Token is an API token as Flightdeck keeps it. It has no hash field: the
// hash is only ever compared inside the store, so it cannot leak through a
// listing or a log.
type Token struct {
	ID   int64
	Name string
	// Prefix is the token's first characters, shown so people can tell
	// their tokens apart.
	Prefix string
	Scopes []auth.Scope
	UserID int64
	// Apps and Environments limit the token to those app slugs and
	// environment names; empty means no limit. See auth.Principal.
	Apps         []string
	Environments []string
	CreatedAt    time.Time
	// ExpiresAt is when the token stops working, nil for never.
	ExpiresAt *time.Time
	// LastUsedAt is when the token last authenticated a request, to within
	// a minute; nil when it never has.
	LastUsedAt *time.Time
	// RevokedAt is when the token was revoked, nil while it is live.
	RevokedAt *time.Time
}

// Principal returns who a request presenting the token acts as.
func (t Token) Principal() auth.Principal {
	return auth.Principal{
		TokenID: t.ID, Name: t.Name, UserID: t.UserID,
		Scopes: t.Scopes, Apps: t.Apps, Environments: t.Environments,
	}
}

// NewToken holds what is needed to store a token. The plaintext is not
// part of it: Flightdeck never keeps it.
type NewToken struct {
	Name string
	// Hash is auth.Hash of the plaintext.
	Hash   []byte
	Prefix string
	Scopes []auth.Scope
	UserID int64
	// ExpiresAt is when the token stops working; nil for never.
	ExpiresAt    *time.Time
	Apps         []string
	Environments []string
}

func tokenFromRow(r sqlcdb.ApiToken) Token {
	scopes := make([]auth.Scope, len(r.Scopes))
	for i, s := range r.Scopes {
		scopes[i] = auth.Scope(s)
	}
	return Token{
		ID: r.ID, Name: r.Name, Prefix: r.Prefix, Scopes: scopes, UserID: r.UserID,
		Apps: r.Apps, Environments: r.Environments,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
	}
}

// orEmpty keeps nil slices from reaching NOT NULL array columns.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CreateToken stores a new token. A name already used by a live token, or
// a hash already stored, is ErrAlreadyExists; an unknown user is
// ErrNotFound; no scopes, malformed limits or an expiry that is not after
// now are ErrInvalid.
func (s *Store) CreateToken(ctx context.Context, t NewToken) (Token, error) {
	row, err := s.q.TokenInsert(ctx, sqlcdb.TokenInsertParams{
		Name: t.Name, TokenHash: t.Hash, Prefix: t.Prefix, Scopes: auth.ScopeStrings(t.Scopes), UserID: t.UserID,
		Apps: orEmpty(t.Apps), Environments: orEmpty(t.Environments), Now: s.Now(), ExpiresAt: t.ExpiresAt,
	})
	if err != nil {
		return Token{}, mapError(err)
	}
	return tokenFromRow(row), nil
}

// TokenByHash returns the token with the hash if it may authenticate now:
// not revoked, not expired and its user not disabled. Otherwise it is
// ErrNotFound, without saying which, since a caller must not learn more
// about a token it does not hold.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	row, err := s.q.TokenGetUsable(ctx, sqlcdb.TokenGetUsableParams{TokenHash: hash, Now: s.Now()})
	if err != nil {
		return Token{}, mapError(err)
	}
	return tokenFromRow(row), nil
}

// TokenByName returns the live (not revoked) token with the name, expired
// or not, or ErrNotFound.
func (s *Store) TokenByName(ctx context.Context, name string) (Token, error) {
	row, err := s.q.TokenGetActiveByName(ctx, name)
	if err != nil {
		return Token{}, mapError(err)
	}
	return tokenFromRow(row), nil
}

// ListTokens returns the tokens that are not revoked, ordered by name.
// Expired tokens are included, so that people see them and can revoke
// them to free their names; revoked tokens are gone from view, as a
// deletion would be, but stay in the table for the audit trail.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.q.TokenListActive(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, tokenFromRow), nil
}

// RevokeToken stops the token from working from now on. A token that does
// not exist or is already revoked is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	n, err := s.q.TokenRevoke(ctx, sqlcdb.TokenRevokeParams{ID: id, Now: s.Now()})
	if err != nil {
		return mapError(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchToken records that the token was used at now. It writes at most
// once a minute per token, so a pipeline polling a run does not update the
// row on every request; last-used times are therefore exact to a minute.
func (s *Store) TouchToken(ctx context.Context, id int64, now time.Time) error {
	if err := s.q.TokenTouch(ctx, sqlcdb.TokenTouchParams{ID: id, Now: now.UTC().Truncate(time.Microsecond)}); err != nil {
		return mapError(err)
	}
	return nil
}
