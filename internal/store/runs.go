package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// RunState is where a run is in its life.
type RunState string

// The states of a run. Pending runs wait for the environment to be free;
// running, awaiting_approval, paused and rolling_back are active; the rest
// are terminal and never change again.
const (
	RunPending          RunState = "pending"
	RunRunning          RunState = "running"
	RunAwaitingApproval RunState = "awaiting_approval"
	RunPaused           RunState = "paused"
	RunRollingBack      RunState = "rolling_back"
	RunSucceeded        RunState = "succeeded"
	RunRolledBack       RunState = "rolled_back"
	RunAborted          RunState = "aborted"
	RunFailed           RunState = "failed"
)

// Terminal reports whether the state is final.
func (s RunState) Terminal() bool {
	switch s {
	case RunSucceeded, RunRolledBack, RunAborted, RunFailed:
		return true
	}
	return false
}

// Active reports whether a run in this state holds its environment; at most
// one run per app and environment is active.
func (s RunState) Active() bool {
	switch s {
	case RunRunning, RunAwaitingApproval, RunPaused, RunRollingBack:
		return true
	}
	return false
}

// Run is one deployment of a version to an environment.
type Run struct {
	ID            int64
	AppID         int64
	EnvironmentID int64
	// FromVersion is the stable version when the run was created; "" on a
	// first deploy.
	FromVersion string
	ToVersion   string
	Strategy    string
	// Params are the strategy parameters the run was started with.
	Params json.RawMessage
	// Plan is the compiled plan, set when the run starts.
	Plan       json.RawMessage
	State      RunState
	PhaseIndex int
	// Generation numbers the desired states sent to the driver, so drivers
	// can treat a repeated call as a no-op.
	Generation     int64
	NextEvalAt     *time.Time
	LeaseOwner     string
	LeaseExpiresAt *time.Time
	// Version increases with every change, for compare-and-swap.
	Version        int64
	CreatedBy      string
	IdempotencyKey string
	// Reason says why the run is in its state, for people.
	Reason string
	// Desired is the desired state of the current generation, kept so a
	// step repeated after a crash sends the driver exactly the same thing.
	Desired json.RawMessage
	// AppliedGeneration is the newest generation the driver confirmed.
	AppliedGeneration int64
	// PhaseStartedAt is when the current phase's state was confirmed; its
	// bake counts from here.
	PhaseStartedAt *time.Time
	// BakeExtension lengthens the current phase's bake when the decision
	// was to monitor longer; Extensions counts those decisions.
	BakeExtension time.Duration
	Extensions    int
	// PausedAt and ResumeState remember where a paused run returns to.
	PausedAt    *time.Time
	ResumeState RunState
	// FinalState is where a rollback ends: rolled_back, aborted or failed.
	FinalState RunState
	// RollbackStep is the next rollback step to apply.
	RollbackStep int
	// ConsecutiveErrors counts failed driver or analysis attempts in a row.
	ConsecutiveErrors int
	CreatedAt         time.Time
	UpdatedAt         time.Time
	StartedAt         *time.Time
	FinishedAt        *time.Time
}

// NewRun holds what is needed to create a run.
type NewRun struct {
	AppID          int64
	EnvironmentID  int64
	FromVersion    string
	ToVersion      string
	Strategy       string
	Params         json.RawMessage
	CreatedBy      string
	IdempotencyKey string
	Reason         string
	// NextEvalAt is when the engine first looks at the run; nil leaves it
	// for later.
	NextEvalAt *time.Time
}

// Event is a change to record in a run's append-only event log.
type Event struct {
	// Type is a dotted lower-case name such as "run.created".
	Type string
	// Actor is who caused it: "user:alice", "token:ci", "engine".
	Actor string
	// Payload is marshalled to a JSON object; nil is {}.
	Payload any
}

func runFromRow(r sqlcdb.Run) Run {
	return Run{
		ID: r.ID, AppID: r.AppID, EnvironmentID: r.EnvironmentID,
		FromVersion: deref(r.FromVersion), ToVersion: r.ToVersion, Strategy: r.Strategy,
		Params: r.Params, Plan: r.Plan, State: RunState(r.State), PhaseIndex: int(r.PhaseIndex),
		Generation: r.Generation, NextEvalAt: r.NextEvalAt, LeaseOwner: deref(r.LeaseOwner),
		LeaseExpiresAt: r.LeaseExpiresAt, Version: r.Version, CreatedBy: r.CreatedBy,
		IdempotencyKey: deref(r.IdempotencyKey), Reason: r.Reason,
		Desired: r.Desired, AppliedGeneration: r.AppliedGeneration, PhaseStartedAt: r.PhaseStartedAt,
		BakeExtension: time.Duration(r.BakeExtensionSeconds) * time.Second, Extensions: int(r.Extensions),
		PausedAt: r.PausedAt, ResumeState: RunState(deref(r.ResumeState)), FinalState: RunState(deref(r.FinalState)),
		RollbackStep: int(r.RollbackStep), ConsecutiveErrors: int(r.ConsecutiveErrors),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
	}
}

// CreateRun stores a new pending run together with its "run.created"
// event. When the environment already has a run with the same idempotency
// key, that run is returned with created false and nothing is written.
func (s *Store) CreateRun(ctx context.Context, n NewRun) (run Run, created bool, err error) {
	err = s.WithTx(ctx, func(tx *Store) error {
		row, err := tx.q.RunInsert(ctx, sqlcdb.RunInsertParams{
			AppID: n.AppID, EnvironmentID: n.EnvironmentID,
			FromVersion: nullable(n.FromVersion), ToVersion: n.ToVersion,
			Strategy: n.Strategy, Params: jsonOr(n.Params, `{}`),
			CreatedBy: n.CreatedBy, IdempotencyKey: nullable(n.IdempotencyKey),
			Reason: n.Reason, NextEvalAt: n.NextEvalAt, Now: tx.Now(),
		})
		if err != nil {
			return mapError(err)
		}
		run = runFromRow(row)
		created = true
		_, err = tx.appendEvent(ctx, run.ID, Event{Type: "run.created", Actor: n.CreatedBy, Payload: map[string]any{
			"from_version": n.FromVersion, "to_version": n.ToVersion, "strategy": n.Strategy,
		}})
		return err
	})
	if errors.Is(err, ErrAlreadyExists) && n.IdempotencyKey != "" {
		row, gerr := s.q.RunGetByIdempotencyKey(ctx, sqlcdb.RunGetByIdempotencyKeyParams{
			EnvironmentID: n.EnvironmentID, IdempotencyKey: &n.IdempotencyKey,
		})
		if gerr == nil {
			return runFromRow(row), false, nil
		}
	}
	if err != nil {
		return Run{}, false, err
	}
	return run, true, nil
}

// Run returns the run with the id, or ErrNotFound.
func (s *Store) Run(ctx context.Context, id int64) (Run, error) {
	row, err := s.q.RunGet(ctx, id)
	if err != nil {
		return Run{}, mapError(err)
	}
	return runFromRow(row), nil
}

// RunFilter selects runs; zero fields match everything.
type RunFilter struct {
	AppID         int64
	EnvironmentID int64
	States        []RunState
	// BeforeID pages backwards: only runs with a smaller id.
	BeforeID int64
	Limit    int
}

// ListRuns returns runs matching f, newest first.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	p := sqlcdb.RunListParams{Max: int32(limitOr(f.Limit, 50))}
	if f.AppID != 0 {
		p.AppID = &f.AppID
	}
	if f.EnvironmentID != 0 {
		p.EnvironmentID = &f.EnvironmentID
	}
	if f.BeforeID != 0 {
		p.BeforeID = &f.BeforeID
	}
	if len(f.States) > 0 {
		p.States = make([]string, len(f.States))
		for i, st := range f.States {
			p.States[i] = string(st)
		}
	}
	rows, err := s.q.RunList(ctx, p)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, runFromRow), nil
}

// UpdateRun writes the mutable fields of run (state, phase, generation,
// plan, schedule, lease, reason, timestamps) and appends ev, in one
// transaction. The write is a compare-and-swap: it happens only when
// run.Version is still the stored version; otherwise a *ConflictError is
// returned and nothing changes. Becoming active while another run of the
// environment is active is ErrActiveRun. A terminal run is never changed.
// The returned run carries the new version.
func (s *Store) UpdateRun(ctx context.Context, run Run, ev Event) (Run, error) {
	if ev.Type == "" {
		return Run{}, errors.New("updating run: an event type is required")
	}
	var updated Run
	err := s.inTx(ctx, func(tx *Store) error {
		current, err := tx.q.RunGet(ctx, run.ID)
		if err != nil {
			return mapError(err)
		}
		if current.Version != run.Version {
			return &ConflictError{Entity: "run", ID: run.ID, Expected: run.Version, Actual: current.Version}
		}
		if RunState(current.State).Terminal() {
			return fmt.Errorf("run %d is %s: %w", run.ID, current.State, ErrTerminal)
		}
		now := tx.Now()
		finished := run.FinishedAt
		if run.State.Terminal() && finished == nil {
			finished = &now
		}
		started := run.StartedAt
		if run.State.Active() && started == nil {
			started = &now
		}
		nextEval := run.NextEvalAt
		if run.State.Terminal() {
			nextEval = nil
		}
		row, err := tx.q.RunUpdate(ctx, sqlcdb.RunUpdateParams{
			ID: run.ID, ExpectedVersion: run.Version,
			State: string(run.State), FromVersion: nullable(run.FromVersion), PhaseIndex: int32(run.PhaseIndex), Generation: run.Generation,
			Plan: run.Plan, NextEvalAt: nextEval,
			LeaseOwner: nullable(run.LeaseOwner), LeaseExpiresAt: run.LeaseExpiresAt,
			Reason: run.Reason, StartedAt: started, FinishedAt: finished, Now: now,
			Desired: run.Desired, AppliedGeneration: run.AppliedGeneration, PhaseStartedAt: run.PhaseStartedAt,
			BakeExtensionSeconds: int64(run.BakeExtension / time.Second), Extensions: int32(run.Extensions),
			PausedAt: run.PausedAt, ResumeState: nullable(string(run.ResumeState)), FinalState: nullable(string(run.FinalState)),
			RollbackStep: int32(run.RollbackStep), ConsecutiveErrors: int32(run.ConsecutiveErrors),
		})
		if err != nil {
			err = mapError(err)
			if errors.Is(err, ErrNotFound) {
				// The row lock was taken by a concurrent writer that won.
				v, verr := tx.q.RunVersion(ctx, run.ID)
				if verr != nil {
					return mapError(verr)
				}
				return &ConflictError{Entity: "run", ID: run.ID, Expected: run.Version, Actual: v}
			}
			return err
		}
		updated = runFromRow(row)
		if _, err = tx.appendEvent(ctx, run.ID, ev); err != nil {
			return err
		}
		if updated.State.Terminal() && RunState(current.State).Active() {
			// The environment is free now: wake the oldest pending run
			// instead of leaving it to its next poll.
			_, err = tx.q.RunWakeNextPending(ctx, sqlcdb.RunWakeNextPendingParams{Now: &now, EnvironmentID: updated.EnvironmentID})
			return mapError(err)
		}
		return nil
	})
	if err != nil {
		return Run{}, err
	}
	return updated, nil
}

// ErrTerminal is returned when a change is attempted on a finished run.
var ErrTerminal = errors.New("run is finished and cannot change")

// limitOr returns v when it is a usable limit, else fallback.
func limitOr(v, fallback int) int {
	if v <= 0 {
		return fallback
	}
	return v
}

// ClaimDueRuns leases up to limit runs whose next evaluation is due and
// whose lease is free, until leaseUntil. Several engines can claim at once;
// each run goes to one of them.
func (s *Store) ClaimDueRuns(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]Run, error) {
	rows, err := s.q.RunClaimDue(ctx, sqlcdb.RunClaimDueParams{Owner: &owner, LeaseUntil: &leaseUntil, Now: &now, Max: int32(limit)})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, runFromRow), nil
}

// ReleaseLease gives up a lease the owner still holds, so another engine
// may step the run at once instead of waiting for the lease to expire.
func (s *Store) ReleaseLease(ctx context.Context, runID int64, owner string) error {
	return mapError(s.q.RunReleaseLease(ctx, sqlcdb.RunReleaseLeaseParams{ID: runID, Owner: &owner}))
}

// Reschedule moves a run's next evaluation and releases the owner's lease
// without changing its state. It does nothing when the run changed since
// expectedVersion or the lease is no longer the owner's.
// A nil next leaves the run unscheduled until something wakes it.
func (s *Store) Reschedule(ctx context.Context, runID, expectedVersion int64, owner string, next *time.Time) (bool, error) {
	n, err := s.q.RunReschedule(ctx, sqlcdb.RunRescheduleParams{ID: runID, ExpectedVersion: expectedVersion, Owner: &owner, NextEvalAt: next})
	return n == 1, mapError(err)
}

// NextDue returns the earliest scheduled evaluation of any run, or nil.
func (s *Store) NextDue(ctx context.Context) (*time.Time, error) {
	t, err := s.q.RunNextDue(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	return t, nil
}

// HasOlderPending reports whether an environment has a pending run created
// before run id, which must start first.
func (s *Store) HasOlderPending(ctx context.Context, environmentID, id int64) (bool, error) {
	ok, err := s.q.RunHasOlderPending(ctx, sqlcdb.RunHasOlderPendingParams{EnvironmentID: environmentID, ID: id})
	return ok, mapError(err)
}

// NextClaimable returns when the next run that no live engine holds
// becomes due, or nil; engines sleep until then instead of a full poll.
func (s *Store) NextClaimable(ctx context.Context, now time.Time) (*time.Time, error) {
	t, err := s.q.RunNextClaimable(ctx, &now)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	return t, nil
}
