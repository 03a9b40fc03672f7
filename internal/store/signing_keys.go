package store

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// SigningKey returns the named key the server signs links with, making a
// random 32-byte one the first time any replica asks, so every replica
// signs and checks with the same key.
func (s *Store) SigningKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("making signing key %s: %w", name, err)
	}
	if err := s.q.SigningKeyInsert(ctx, sqlcdb.SigningKeyInsertParams{Name: name, Key: fresh}); err != nil {
		return nil, fmt.Errorf("storing signing key %s: %w", name, mapError(err))
	}
	key, err := s.q.SigningKeyGet(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading signing key %s: %w", name, mapError(err))
	}
	return key, nil
}
