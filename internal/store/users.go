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

// NewUser is a user to create. PasswordHash is the encoded hash, empty for
// a user who cannot sign in with a password yet.
type NewUser struct {
	Username     string
	DisplayName  string
	PasswordHash string
	IsAdmin      bool
}

// CreateUser stores a new user; a taken username is ErrAlreadyExists and a
// username that breaks the schema's rule is ErrInvalid.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (User, error) {
	var hash *string
	if u.PasswordHash != "" {
		hash = &u.PasswordHash
	}
	row, err := s.q.UserCreate(ctx, sqlcdb.UserCreateParams{
		Username: u.Username, DisplayName: u.DisplayName, PasswordHash: hash, IsAdmin: u.IsAdmin, Now: s.Now(),
	})
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}

// UserByUsername returns the user with the username, or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	row, err := s.q.UserGetByUsername(ctx, username)
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}

// PasswordHash returns the user's encoded password hash, "" when the user
// has none.
func (s *Store) PasswordHash(ctx context.Context, userID int64) (string, error) {
	hash, err := s.q.UserPasswordHash(ctx, userID)
	if err != nil {
		return "", mapError(err)
	}
	if hash == nil {
		return "", nil
	}
	return *hash, nil
}

// SetPasswordHash replaces the user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	return mapError(s.q.UserSetPassword(ctx, sqlcdb.UserSetPasswordParams{ID: userID, PasswordHash: &hash}))
}

// ListUsers returns every user by username.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.q.UserList(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, userFromRow), nil
}

// RoleBinding gives a user a role on an app's environment; App and
// Environment are "*" for every one.
type RoleBinding struct {
	ID          int64
	UserID      int64
	App         string
	Environment string
	Role        string
	CreatedAt   time.Time
}

func roleBindingFromRow(r sqlcdb.RoleBinding) RoleBinding {
	return RoleBinding{ID: r.ID, UserID: r.UserID, App: r.App, Environment: r.Environment, Role: r.Role, CreatedAt: r.CreatedAt}
}

// SetRole gives the user the role on the app and environment, replacing
// the role the user had there.
func (s *Store) SetRole(ctx context.Context, b RoleBinding) (RoleBinding, error) {
	row, err := s.q.RoleBindingUpsert(ctx, sqlcdb.RoleBindingUpsertParams{
		UserID: b.UserID, App: b.App, Environment: b.Environment, Role: b.Role, Now: s.Now(),
	})
	if err != nil {
		return RoleBinding{}, mapError(err)
	}
	return roleBindingFromRow(row), nil
}

// DeleteRole removes a role binding; a missing one is ErrNotFound.
func (s *Store) DeleteRole(ctx context.Context, id int64) error {
	n, err := s.q.RoleBindingDelete(ctx, id)
	if err != nil {
		return mapError(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// RolesOf returns the user's role bindings.
func (s *Store) RolesOf(ctx context.Context, userID int64) ([]RoleBinding, error) {
	rows, err := s.q.RoleBindingListByUser(ctx, userID)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, roleBindingFromRow), nil
}

// ListRoles returns every role binding.
func (s *Store) ListRoles(ctx context.Context) ([]RoleBinding, error) {
	rows, err := s.q.RoleBindingListAll(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, roleBindingFromRow), nil
}

// SetUserDisabled disables the user (their sessions and tokens stop
// working) or enables them again; a missing user is ErrNotFound.
func (s *Store) SetUserDisabled(ctx context.Context, id int64, disabled bool) (User, error) {
	row, err := s.q.UserSetDisabled(ctx, sqlcdb.UserSetDisabledParams{ID: id, Disabled: disabled, Now: s.Now()})
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}
