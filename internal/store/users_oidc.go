package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// UserIdentity ties an account at a single sign-on provider, the issuer
// and subject of its ID tokens, to a Flightdeck user.
type UserIdentity struct {
	ID          int64
	UserID      int64
	Issuer      string
	Subject     string
	CreatedAt   time.Time
	LastLoginAt *time.Time
}

func userIdentityFromRow(r sqlcdb.UserIdentity) UserIdentity {
	return UserIdentity{
		ID: r.ID, UserID: r.UserID, Issuer: r.Issuer, Subject: r.Subject,
		CreatedAt: r.CreatedAt, LastLoginAt: r.LastLoginAt,
	}
}

// SSOSignIn is what a single sign-on provider says about a person who just
// signed in, and what Flightdeck grants them for it.
type SSOSignIn struct {
	// Issuer and Subject identify the person at the provider.
	Issuer  string
	Subject string
	// Usernames are the names to give a new user, tried in order until
	// one is free; an existing user keeps the name they have.
	Usernames   []string
	DisplayName string
	// IsAdmin and Bindings replace what the user had: the provider's
	// claims are the only source of an SSO user's roles.
	IsAdmin  bool
	Bindings []RoleBinding
}

// SSOSignInResult is the user an SSO sign-in found or created.
type SSOSignInResult struct {
	User User
	// Created is true when this sign-in created the user.
	Created bool
}

// ErrUsernamesTaken is returned when every username offered for a new SSO
// user belongs to somebody else already.
var ErrUsernamesTaken = errors.New("every username offered is taken")

// SignInWithSSO finds the user with the provider identity, creating a user
// without a password when there is none, and replaces the user's display
// name, administrator flag and role bindings with what the sign-in grants.
// Users are found by identity only: a local user with the same name is
// never taken over (see LinkIdentity). A disabled user is returned as it
// is, with nothing changed, for the caller to refuse.
func (s *Store) SignInWithSSO(ctx context.Context, in SSOSignIn) (SSOSignInResult, error) {
	var res SSOSignInResult
	err := s.inTx(ctx, func(tx *Store) error {
		now := tx.Now()
		ident, err := tx.q.UserIdentityGet(ctx, sqlcdb.UserIdentityGetParams{Issuer: in.Issuer, Subject: in.Subject})
		switch err = mapError(err); {
		case errors.Is(err, ErrNotFound):
			u, err := tx.createSSOUser(ctx, in)
			if err != nil {
				return err
			}
			if ident, err = tx.q.UserIdentityCreate(ctx, sqlcdb.UserIdentityCreateParams{
				UserID: u.ID, Issuer: in.Issuer, Subject: in.Subject, Now: now,
			}); err != nil {
				return fmt.Errorf("recording the identity of %s: %w", u.Username, mapError(err))
			}
			res.Created = true
		case err != nil:
			return fmt.Errorf("looking up the identity: %w", err)
		}
		row, err := tx.q.UserGetForUpdate(ctx, ident.UserID)
		if err != nil {
			return fmt.Errorf("loading user %d: %w", ident.UserID, mapError(err))
		}
		if row.DisabledAt != nil {
			res.User = userFromRow(row)
			return nil
		}
		if row, err = tx.q.UserSetProfileFromProvider(ctx, sqlcdb.UserSetProfileFromProviderParams{
			ID: row.ID, DisplayName: in.DisplayName, IsAdmin: in.IsAdmin,
		}); err != nil {
			return fmt.Errorf("updating %s: %w", row.Username, mapError(err))
		}
		if err := tx.q.RoleBindingDeleteByUser(ctx, row.ID); err != nil {
			return fmt.Errorf("clearing the roles of %s: %w", row.Username, mapError(err))
		}
		for _, b := range in.Bindings {
			if _, err := tx.q.RoleBindingUpsert(ctx, sqlcdb.RoleBindingUpsertParams{
				UserID: row.ID, App: b.App, Environment: b.Environment, Role: b.Role, Now: now,
			}); err != nil {
				return fmt.Errorf("granting %s on %s/%s to %s: %w", b.Role, b.App, b.Environment, row.Username, mapError(err))
			}
		}
		if err := tx.q.UserIdentityTouch(ctx, sqlcdb.UserIdentityTouchParams{ID: ident.ID, Now: now}); err != nil {
			return fmt.Errorf("recording the sign-in of %s: %w", row.Username, mapError(err))
		}
		res.User = userFromRow(row)
		return nil
	})
	if err != nil {
		return SSOSignInResult{}, err
	}
	return res, nil
}

// createSSOUser creates a user without a password under the first free
// username offered.
func (s *Store) createSSOUser(ctx context.Context, in SSOSignIn) (User, error) {
	for _, name := range in.Usernames {
		if _, err := s.q.UserGetByUsername(ctx, name); err == nil {
			continue
		} else if !errors.Is(mapError(err), ErrNotFound) {
			return User{}, fmt.Errorf("looking up username %q: %w", name, mapError(err))
		}
		row, err := s.q.UserCreate(ctx, sqlcdb.UserCreateParams{
			Username: name, DisplayName: in.DisplayName, Now: s.Now(),
		})
		if err != nil {
			return User{}, fmt.Errorf("creating user %q: %w", name, mapError(err))
		}
		return userFromRow(row), nil
	}
	return User{}, fmt.Errorf("%w: %q", ErrUsernamesTaken, in.Usernames)
}

// LinkIdentity ties a provider identity to an existing user, so that the
// person signs in as that user through single sign-on from then on. It is
// the only way a local user becomes an SSO user: linking removes the
// user's password, and from the next sign-in the provider's claims decide
// the user's roles. An identity linked already is ErrAlreadyExists; a
// missing user is ErrNotFound.
func (s *Store) LinkIdentity(ctx context.Context, userID int64, issuer, subject string) (UserIdentity, error) {
	var out UserIdentity
	err := s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.q.UserGetForUpdate(ctx, userID); err != nil {
			return mapError(err)
		}
		if err := tx.q.UserClearPassword(ctx, userID); err != nil {
			return mapError(err)
		}
		row, err := tx.q.UserIdentityCreate(ctx, sqlcdb.UserIdentityCreateParams{
			UserID: userID, Issuer: issuer, Subject: subject, Now: tx.Now(),
		})
		if err != nil {
			return mapError(err)
		}
		out = userIdentityFromRow(row)
		return nil
	})
	return out, err
}

// IdentitiesOf returns the provider identities linked to the user.
func (s *Store) IdentitiesOf(ctx context.Context, userID int64) ([]UserIdentity, error) {
	rows, err := s.q.UserIdentityListByUser(ctx, userID)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, userIdentityFromRow), nil
}
