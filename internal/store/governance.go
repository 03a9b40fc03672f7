package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// ErrNotHalted is returned when a halt is lifted that is not in force, and
// ErrHalted when the line is stopped a second time.
var (
	ErrNotHalted = errors.New("the line is not stopped")
	ErrHalted    = errors.New("the line is already stopped")
)

// DeployWindows returns an environment's deploy windows; an environment
// that never set any may deploy at any time, and runs asked to start during
// a freeze wait.
func (s *Store) DeployWindows(ctx context.Context, environmentID int64) (governance.Settings, error) {
	row, err := s.q.DeployWindowsGet(ctx, environmentID)
	if errors.Is(mapError(err), ErrNotFound) {
		return governance.Settings{Windows: []governance.WindowSpec{}, Outside: governance.OutsideWait}, nil
	}
	if err != nil {
		return governance.Settings{}, mapError(err)
	}
	set := governance.Settings{Outside: governance.Outside(row.Outside)}
	if err := json.Unmarshal(row.Windows, &set.Windows); err != nil {
		return governance.Settings{}, fmt.Errorf("decoding deploy windows of environment %d: %w", environmentID, err)
	}
	if set.Windows == nil {
		set.Windows = []governance.WindowSpec{}
	}
	return set, nil
}

// SetDeployWindows replaces an environment's deploy windows. The settings
// are checked first; bad ones return a *governance.ValidationError and
// change nothing.
func (s *Store) SetDeployWindows(ctx context.Context, environmentID int64, set governance.Settings, by string) (governance.Settings, error) {
	if _, err := set.Compile(); err != nil {
		return governance.Settings{}, err
	}
	set = set.Normalize()
	raw, err := json.Marshal(set.Windows)
	if err != nil {
		return governance.Settings{}, fmt.Errorf("encoding deploy windows: %w", err)
	}
	if _, err := s.q.DeployWindowsPut(ctx, sqlcdb.DeployWindowsPutParams{
		EnvironmentID: environmentID, Windows: raw, Outside: string(set.Outside), UpdatedBy: by, Now: s.Now(),
	}); err != nil {
		return governance.Settings{}, mapError(err)
	}
	return set, nil
}

// Freeze stops runs from starting in an environment for a while.
type Freeze struct {
	ID            int64
	EnvironmentID int64
	Reason        string
	StartsAt      time.Time
	EndsAt        time.Time
	CreatedBy     string
	CreatedAt     time.Time
	// EndedAt and EndedBy are set when the freeze was ended early.
	EndedAt *time.Time
	EndedBy string
}

// ActiveAt reports whether the freeze holds at t.
func (f Freeze) ActiveAt(t time.Time) bool {
	return f.EndedAt == nil && !t.Before(f.StartsAt) && t.Before(f.EndsAt)
}

// Over reports whether the freeze has ended (early or on time) by t.
func (f Freeze) Over(t time.Time) bool { return f.EndedAt != nil || !t.Before(f.EndsAt) }

func freezeFromRow(r sqlcdb.Freeze) Freeze {
	return Freeze{
		ID: r.ID, EnvironmentID: r.EnvironmentID, Reason: r.Reason, StartsAt: r.StartsAt, EndsAt: r.EndsAt,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, EndedAt: r.EndedAt, EndedBy: deref(r.EndedBy),
	}
}

// CreateFreeze stores a freeze; its end must be after its start.
func (s *Store) CreateFreeze(ctx context.Context, f Freeze) (Freeze, error) {
	row, err := s.q.FreezeInsert(ctx, sqlcdb.FreezeInsertParams{
		EnvironmentID: f.EnvironmentID, Reason: f.Reason, StartsAt: f.StartsAt, EndsAt: f.EndsAt,
		CreatedBy: f.CreatedBy, Now: s.Now(),
	})
	if err != nil {
		return Freeze{}, mapError(err)
	}
	return freezeFromRow(row), nil
}

// FreezeByID returns a freeze, or ErrNotFound.
func (s *Store) FreezeByID(ctx context.Context, id int64) (Freeze, error) {
	row, err := s.q.FreezeGet(ctx, id)
	if err != nil {
		return Freeze{}, mapError(err)
	}
	return freezeFromRow(row), nil
}

// ListFreezes returns an environment's freezes, the latest to start first.
func (s *Store) ListFreezes(ctx context.Context, environmentID int64, limit int) ([]Freeze, error) {
	rows, err := s.q.FreezeListRecent(ctx, sqlcdb.FreezeListRecentParams{EnvironmentID: environmentID, Max: int32(limitOr(limit, 50))})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, freezeFromRow), nil
}

// EndFreeze ends a freeze early. A freeze that is over already, or does not
// exist, is ErrNotFound.
func (s *Store) EndFreeze(ctx context.Context, id int64, by string) (Freeze, error) {
	now := s.Now()
	row, err := s.q.FreezeEnd(ctx, sqlcdb.FreezeEndParams{ID: id, Now: &now, EndedBy: &by})
	if err != nil {
		return Freeze{}, mapError(err)
	}
	return freezeFromRow(row), nil
}

// HaltState is the installation-wide halt.
type HaltState struct {
	Active   bool
	Reason   string
	HaltedBy string
	HaltedAt *time.Time
	LiftedBy string
	LiftedAt *time.Time
}

func haltFromRow(r sqlcdb.Halt) HaltState {
	return HaltState{Active: r.Active, Reason: r.Reason, HaltedBy: r.HaltedBy, HaltedAt: r.HaltedAt, LiftedBy: r.LiftedBy, LiftedAt: r.LiftedAt}
}

// Halt returns whether the line is stopped, by whom and why.
func (s *Store) Halt(ctx context.Context) (HaltState, error) {
	row, err := s.q.HaltGet(ctx)
	if err != nil {
		return HaltState{}, mapError(err)
	}
	return haltFromRow(row), nil
}

// SetHalt stops the line; ErrHalted when it is stopped already.
func (s *Store) SetHalt(ctx context.Context, reason, by string) (HaltState, error) {
	now := s.Now()
	row, err := s.q.HaltSet(ctx, sqlcdb.HaltSetParams{Reason: reason, HaltedBy: by, Now: &now})
	if errors.Is(mapError(err), ErrNotFound) {
		return HaltState{}, ErrHalted
	}
	if err != nil {
		return HaltState{}, mapError(err)
	}
	return haltFromRow(row), nil
}

// LiftHalt restarts the line; ErrNotHalted when it is not stopped.
func (s *Store) LiftHalt(ctx context.Context, by string) (HaltState, error) {
	now := s.Now()
	row, err := s.q.HaltLift(ctx, sqlcdb.HaltLiftParams{LiftedBy: by, Now: &now})
	if errors.Is(mapError(err), ErrNotFound) {
		return HaltState{}, ErrNotHalted
	}
	if err != nil {
		return HaltState{}, mapError(err)
	}
	return haltFromRow(row), nil
}

// PutGovernanceHold records that a run was paused by a closed window, a
// freeze or the halt at pausedAt (the run's PausedAt).
func (s *Store) PutGovernanceHold(ctx context.Context, runID int64, cause governance.Cause, pausedAt time.Time) error {
	return mapError(s.q.GovernanceHoldPut(ctx, sqlcdb.GovernanceHoldPutParams{RunID: runID, Cause: string(cause), PausedAt: pausedAt}))
}

// GovernanceHold returns why a paused run is held, when it is still paused
// by the gate and not by a person; ok is false otherwise.
func (s *Store) GovernanceHold(ctx context.Context, runID int64) (cause governance.Cause, ok bool, err error) {
	row, err := s.q.GovernanceHoldGet(ctx, runID)
	if errors.Is(mapError(err), ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, mapError(err)
	}
	return governance.Cause(row.Cause), true, nil
}

// HeldRuns returns the runs still paused by cause.
func (s *Store) HeldRuns(ctx context.Context, cause governance.Cause) ([]int64, error) {
	ids, err := s.q.GovernanceHoldListByCause(ctx, string(cause))
	return ids, mapError(err)
}

// DeleteGovernanceHold forgets a run's hold.
func (s *Store) DeleteGovernanceHold(ctx context.Context, runID int64) error {
	return mapError(s.q.GovernanceHoldDelete(ctx, runID))
}

// Override lets one run pass closed windows and freezes.
type Override struct {
	RunID     int64
	Reason    string
	Actor     string
	CreatedAt time.Time
}

// RecordOverride stores an override for a run together with the run's
// change (usually made due at once) and its "run.override" event, in one
// transaction; a run changed meanwhile is a *ConflictError.
func (s *Store) RecordOverride(ctx context.Context, run Run, reason, actor string) (Run, error) {
	var updated Run
	err := s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.q.GovernanceOverrideInsert(ctx, sqlcdb.GovernanceOverrideInsertParams{RunID: run.ID, Reason: reason, Actor: actor, Now: tx.Now()}); err != nil {
			return mapError(err)
		}
		var err error
		updated, err = tx.UpdateRun(ctx, run, Event{Type: "run.override", Actor: actor, Payload: map[string]any{
			"reason": reason, "detail": "deploy windows and freezes overridden by " + actor + ": " + reason,
		}})
		return err
	})
	return updated, err
}

// RunOverride returns a run's override; ok is false when it has none.
func (s *Store) RunOverride(ctx context.Context, runID int64) (Override, bool, error) {
	row, err := s.q.GovernanceOverrideGet(ctx, runID)
	if errors.Is(mapError(err), ErrNotFound) {
		return Override{}, false, nil
	}
	if err != nil {
		return Override{}, false, mapError(err)
	}
	return Override{RunID: row.RunID, Reason: row.Reason, Actor: row.Actor, CreatedAt: row.CreatedAt}, true, nil
}

// RunIDsInStates returns the ids of every run in one of the states.
func (s *Store) RunIDsInStates(ctx context.Context, states ...RunState) ([]int64, error) {
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	ids, err := s.q.RunIDsByStates(ctx, names)
	return ids, mapError(err)
}

// Gate gathers what decides whether runs in an environment may go at now:
// its windows, its freezes and the halt. Windows that no longer compile
// (a time zone removed from the system's database) are treated as none.
func (s *Store) Gate(ctx context.Context, env Environment, now time.Time) (governance.Gate, error) {
	g := governance.Gate{Environment: env.Name}
	set, err := s.DeployWindows(ctx, env.ID)
	if err != nil {
		return g, err
	}
	g.Outside = set.Outside
	if sched, err := set.Compile(); err == nil {
		g.Schedule = sched
	}
	rows, err := s.q.FreezeListCurrent(ctx, sqlcdb.FreezeListCurrentParams{EnvironmentID: env.ID, Now: now})
	if err != nil {
		return g, mapError(err)
	}
	for _, r := range rows {
		g.Freezes = append(g.Freezes, governance.Freeze{ID: r.ID, Reason: r.Reason, By: r.CreatedBy, From: r.StartsAt, Until: r.EndsAt})
	}
	h, err := s.Halt(ctx)
	if err != nil {
		return g, err
	}
	if h.Active {
		since := now
		if h.HaltedAt != nil {
			since = *h.HaltedAt
		}
		g.Halt = &governance.Halt{Reason: h.Reason, By: h.HaltedBy, Since: since}
	}
	return g, nil
}
