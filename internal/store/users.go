package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// User is a person who signs in to Flightdeck; API tokens belong to users.
// The password hash stays in the store: nothing outside it needs it.
type User struct {
	ID          int64
	Username    string
	DisplayName string
	IsAdmin     bool
	// DisabledAt is when the user was disabled, nil while enabled. The
	// tokens of a disabled user do not authenticate.
	DisabledAt *time.Time
	CreatedAt  time.Time
}

func userFromRow(r sqlcdb.User) User {
	return User{
		ID: r.ID, Username: r.Username, DisplayName: r.DisplayName, IsAdmin: r.IsAdmin,
		DisabledAt: r.DisabledAt, CreatedAt: r.CreatedAt,
	}
}

// EnsureAdminUser returns the user with the username, created if missing
// and made an administrator if not one already. Calling it again changes
// nothing, so the server can call it at every start. A username that breaks
// the schema's rule is ErrInvalid.
func (s *Store) EnsureAdminUser(ctx context.Context, username string) (User, error) {
	row, err := s.q.UserEnsureAdmin(ctx, sqlcdb.UserEnsureAdminParams{Username: username, Now: s.Now()})
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}

// UserByID returns the user with the id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	row, err := s.q.UserGetByID(ctx, id)
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}
