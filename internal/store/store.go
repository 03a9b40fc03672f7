// Package store is the only package in Flightdeck that speaks SQL. It keeps
// apps, environments and deployment runs in Postgres, maps rows to the domain
// types below and guarantees that every change to a run is a compare-and-swap
// on its version written together with its run_events row.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// ErrNotFound is returned when the requested row does not exist.
var ErrNotFound = errors.New("not found")

// ErrAlreadyExists is returned when a row with the same unique key exists.
var ErrAlreadyExists = errors.New("already exists")

// ErrInvalid is returned when a write breaks one of the schema's rules,
// which are there to make illegal states impossible.
var ErrInvalid = errors.New("violates a rule of the schema")

// ErrInUse is returned when a row cannot be deleted because other rows,
// such as environments or runs, still refer to it.
var ErrInUse = errors.New("still in use")

// ErrActiveRun is returned when a run would become active while another run
// is already active for the same app and environment.
var ErrActiveRun = errors.New("another run is already active for this app and environment")

// ConflictError reports a lost compare-and-swap: somebody else changed the
// row after the caller read it. Nothing was written. Callers re-read and
// decide again.
type ConflictError struct {
	// Entity names the kind of row, such as "run".
	Entity string
	// ID is the row's id.
	ID int64
	// Expected is the version the caller based its change on.
	Expected int64
	// Actual is the version stored now.
	Actual int64
}

// Error says which row changed underneath the caller.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %d was changed concurrently: expected version %d, found %d", e.Entity, e.ID, e.Expected, e.Actual)
}

// dbtx is what both a pool and a transaction offer; Store runs on either.
type dbtx interface {
	sqlcdb.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store reads and writes Flightdeck's state. A Store is either bound to the
// pool or, inside WithTx, to one transaction.
type Store struct {
	pool     *pgxpool.Pool
	db       dbtx
	q        *sqlcdb.Queries
	now      func() time.Time
	notifier *Notifier
	// changed collects the runs changed inside a transaction so they are
	// announced only after it commits.
	changed *[]int64
}

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Now is the clock; tests inject one to move time without waiting.
	Now func() time.Time
	// Notifier, when set, announces changed runs after each commit.
	Notifier *Notifier
}

// New returns a Store on the pool.
func New(pool *pgxpool.Pool, opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, db: pool, q: sqlcdb.New(pool), now: now, notifier: opts.Notifier}
}

// Pool returns the underlying connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Now returns the store's clock reading, truncated to what Postgres keeps.
func (s *Store) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// WithTx runs fn with a Store bound to one transaction and commits when fn
// returns nil. Nested calls use a savepoint. Runs changed inside the
// transaction are announced only after the outermost commit.
func (s *Store) WithTx(ctx context.Context, fn func(tx *Store) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	// Roll back even when ctx is already cancelled; after Commit this is a no-op.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	outer := s.changed == nil
	changed := s.changed
	if outer {
		changed = new([]int64)
	}
	txs := &Store{pool: s.pool, db: tx, q: s.q.WithTx(tx), now: s.now, notifier: s.notifier, changed: changed}
	if err := fn(txs); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing transaction: %w", mapError(err))
	}
	if outer {
		s.announce(*changed...)
	}
	return nil
}

// inTx runs fn in the caller's transaction when there is one (a failure
// then fails that whole transaction, as its caller expects) and in a new
// one otherwise, saving a savepoint round trip per write.
func (s *Store) inTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.changed != nil {
		return fn(s)
	}
	return s.WithTx(ctx, fn)
}

// runChanged records that a run changed: immediately when not inside a
// transaction, otherwise after the transaction commits.
func (s *Store) runChanged(ids ...int64) {
	if s.changed != nil {
		*s.changed = append(*s.changed, ids...)
		return
	}
	s.announce(ids...)
}

func (s *Store) announce(ids ...int64) {
	if s.notifier == nil {
		return
	}
	for _, id := range ids {
		s.notifier.RunChanged(id)
	}
}

// mapError turns driver errors into the store's sentinel errors.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			if pgErr.ConstraintName == "runs_one_active_per_environment" {
				return ErrActiveRun
			}
			return fmt.Errorf("%w: %s", ErrAlreadyExists, pgErr.ConstraintName)
		case "23514": // check_violation
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.ConstraintName)
		case "23503": // foreign_key_violation
			if isDeleteViolation(pgErr) {
				return fmt.Errorf("%w: %s", ErrInUse, pgErr.Detail)
			}
			return fmt.Errorf("%w: %s", ErrNotFound, pgErr.Detail)
		}
	}
	return err
}

// isDeleteViolation tells a delete blocked by referring rows from an insert
// that points at a missing row; Postgres words the two differently.
func isDeleteViolation(pgErr *pgconn.PgError) bool {
	return strings.Contains(pgErr.Message, "update or delete on table")
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return nil
}

// mapRows turns sqlc rows into domain values.
func mapRows[R, T any](rows []R, f func(R) T) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}
