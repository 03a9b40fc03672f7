package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// adminPasswordOutcome says what ensureAdminPassword did.
type adminPasswordOutcome string

const (
	adminPasswordKept      adminPasswordOutcome = "kept"
	adminPasswordSet       adminPasswordOutcome = "set"
	adminPasswordGenerated adminPasswordOutcome = "generated"
	adminPasswordMissing   adminPasswordOutcome = "missing"
)

// ensureAdminPassword gives the admin user a password people can sign in
// with. A configured password becomes the admin's (created if missing)
// unless it already is; with none configured, an admin who has a password
// keeps it, and on the embedded database a new one is generated for an
// admin without one and returned, to be shown once. On an external
// database nothing is generated: whoever runs it sets the password.
func ensureAdminPassword(ctx context.Context, st *store.Store, configured string, embedded bool) (outcome adminPasswordOutcome, password string, err error) {
	err = st.WithTx(ctx, func(tx *store.Store) error {
		// The upsert locks the admin's row until commit, so replicas
		// starting together take turns and only one generates.
		user, err := tx.EnsureAdminUser(ctx, adminUsername)
		if err != nil {
			return fmt.Errorf("ensuring the %s user: %w", adminUsername, err)
		}
		hash, err := tx.PasswordHash(ctx, user.ID)
		if err != nil {
			return fmt.Errorf("reading the %s user's password: %w", adminUsername, err)
		}
		switch {
		case configured != "":
			if ok, err := auth.PasswordMatches(configured, hash); err == nil && ok {
				outcome, password = adminPasswordKept, configured
				return nil
			}
			outcome, password = adminPasswordSet, configured
		case hash != "":
			outcome = adminPasswordKept
			return nil
		case !embedded:
			outcome = adminPasswordMissing
			return nil
		default:
			if password, err = auth.GeneratePassword(); err != nil {
				return err
			}
			outcome = adminPasswordGenerated
		}
		newHash, err := auth.HashPassword(password)
		if err != nil {
			return err
		}
		return tx.SetPasswordHash(ctx, user.ID, newHash)
	})
	return outcome, password, err
}

// logAdminPassword tells people how to sign in; a generated password is
// printed this once and never again.
func logAdminPassword(ctx context.Context, logger *slog.Logger, outcome adminPasswordOutcome, password string) {
	switch outcome {
	case adminPasswordGenerated:
		logger.WarnContext(ctx, "sign in to the pages as admin with this generated password; it is shown only now, so keep it",
			slog.String("username", adminUsername), slog.String("password", password))
	case adminPasswordSet:
		logger.InfoContext(ctx, "admin password set from FLIGHTDECK_ADMIN_PASSWORD", slog.String("username", adminUsername))
	case adminPasswordMissing:
		logger.WarnContext(ctx, "no one can sign in to the pages yet: set FLIGHTDECK_ADMIN_PASSWORD (or _FILE) to give the admin user a password")
	}
}
