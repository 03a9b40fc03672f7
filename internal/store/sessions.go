package store

import "context"

// DeleteExpiredSessions removes the pages' sessions that have expired and
// returns how many there were.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	n, err := s.q.SessionsDeleteExpired(ctx, s.Now())
	return n, mapError(err)
}
