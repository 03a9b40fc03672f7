package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// IdempotencyTTL is how long the answer to a request sent with an
// Idempotency-Key is kept. A day covers every retry a CI job makes; a key
// reused after that is handled as a new request.
const IdempotencyTTL = 24 * time.Hour

// IdempotencyKey names one request sent with an Idempotency-Key header: the
// key is scoped to the token that sent it and to the method and path, so
// two clients choosing the same key never share answers.
type IdempotencyKey struct {
	TokenID int64
	Method  string
	Path    string
	Key     string
}

// IdempotentResponse is what is stored under an IdempotencyKey: the hash of
// the request that first used it and, once that request was answered, the
// answer.
type IdempotentResponse struct {
	RequestHash []byte
	// Completed is false while the first request is still being handled.
	Completed bool
	Status    int
	Location  string
	Body      []byte
	CreatedAt time.Time
}

func idempotentFromRow(r sqlcdb.IdempotencyKey) IdempotentResponse {
	return IdempotentResponse{
		RequestHash: r.RequestHash, Completed: r.CompletedAt != nil, Status: int(r.Status.Int32),
		Location: r.Location, Body: r.ResponseBody, CreatedAt: r.CreatedAt,
	}
}

// ClaimIdempotencyKey records that a request with the key is about to be
// handled. It returns claimed true when the caller is the first (or the key
// had expired) and must handle the request and then call
// CompleteIdempotencyKey or ReleaseIdempotencyKey. Otherwise it returns
// what is stored under the key: a request still in flight, or the answer
// to replay. Claiming with one insert makes concurrent duplicates
// race on the primary key, so exactly one of them wins.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, k IdempotencyKey, requestHash []byte) (stored IdempotentResponse, claimed bool, err error) {
	now := s.Now()
	_, err = s.q.IdempotencyClaim(ctx, sqlcdb.IdempotencyClaimParams{
		TokenID: k.TokenID, Method: k.Method, Path: k.Path, Key: k.Key,
		RequestHash: requestHash, Now: now, ExpiredBefore: now.Add(-IdempotencyTTL),
	})
	if err == nil {
		return IdempotentResponse{}, true, nil
	}
	if err = mapError(err); !errors.Is(err, ErrNotFound) {
		return IdempotentResponse{}, false, err
	}
	row, err := s.q.IdempotencyGet(ctx, sqlcdb.IdempotencyGetParams{TokenID: k.TokenID, Method: k.Method, Path: k.Path, Key: k.Key})
	if errors.Is(mapError(err), ErrNotFound) {
		// The first request failed and released the key between the
		// insert and this read; the caller may claim again.
		return s.ClaimIdempotencyKey(ctx, k, requestHash)
	}
	if err != nil {
		return IdempotentResponse{}, false, mapError(err)
	}
	return idempotentFromRow(row), false, nil
}

// CompleteIdempotencyKey stores the answer to the request that claimed the
// key, to be replayed to every retry.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, k IdempotencyKey, status int, location string, body []byte) error {
	now := s.Now()
	_, err := s.q.IdempotencyComplete(ctx, sqlcdb.IdempotencyCompleteParams{
		Status: pgtype.Int4{Int32: int32(status), Valid: true}, Location: location, ResponseBody: body, Now: &now,
		TokenID: k.TokenID, Method: k.Method, Path: k.Path, Key: k.Key,
	})
	return mapError(err)
}

// ReleaseIdempotencyKey gives up the claim of a request that failed on the
// server's side, so a retry is handled afresh instead of replaying a fault.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, k IdempotencyKey) error {
	return mapError(s.q.IdempotencyRelease(ctx, sqlcdb.IdempotencyReleaseParams{TokenID: k.TokenID, Method: k.Method, Path: k.Path, Key: k.Key}))
}

// DeleteExpiredIdempotencyKeys removes the keys older than IdempotencyTTL
// and returns how many there were.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context) (int64, error) {
	n, err := s.q.IdempotencyDeleteExpired(ctx, s.Now().Add(-IdempotencyTTL))
	return n, mapError(err)
}
