package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// PhaseStatus is where one phase of a run's plan is.
type PhaseStatus string

// The statuses of a phase.
const (
	PhasePending          PhaseStatus = "pending"
	PhaseApplying         PhaseStatus = "applying"
	PhaseBaking           PhaseStatus = "baking"
	PhaseAwaitingApproval PhaseStatus = "awaiting_approval"
	PhaseSucceeded        PhaseStatus = "succeeded"
	PhaseFailed           PhaseStatus = "failed"
	PhaseSkipped          PhaseStatus = "skipped"
	PhaseRolledBack       PhaseStatus = "rolled_back"
)

// RunPhase is one phase of a run's plan with its progress.
type RunPhase struct {
	RunID      int64
	Index      int
	Name       string
	Kind       string
	Status     PhaseStatus
	Desired    json.RawMessage
	Bake       time.Duration
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// CreateRunPhases stores the phases of a run's plan, all pending.
func (s *Store) CreateRunPhases(ctx context.Context, phases []RunPhase) error {
	rows := make([]sqlcdb.RunPhasesInsertParams, len(phases))
	for i, p := range phases {
		rows[i] = sqlcdb.RunPhasesInsertParams{
			RunID: p.RunID, PhaseIndex: int32(p.Index), Name: p.Name, Kind: p.Kind,
			Status: string(PhasePending), Desired: jsonOr(p.Desired, `{}`), BakeSeconds: int64(p.Bake / time.Second),
		}
	}
	_, err := s.q.RunPhasesInsert(ctx, rows)
	return mapError(err)
}

// SetRunPhaseStatus records a phase's new status; started is kept from the
// first time it is set, finished is set when given.
func (s *Store) SetRunPhaseStatus(ctx context.Context, runID int64, index int, status PhaseStatus, started, finished *time.Time) error {
	return mapError(s.q.RunPhaseSetStatus(ctx, sqlcdb.RunPhaseSetStatusParams{
		RunID: runID, PhaseIndex: int32(index), Status: string(status), StartedAt: started, FinishedAt: finished,
	}))
}

// SetRunPhasesStatusFrom marks every unfinished phase from index on.
func (s *Store) SetRunPhasesStatusFrom(ctx context.Context, runID int64, from int, status PhaseStatus, finished *time.Time) error {
	return mapError(s.q.RunPhasesSetStatusFrom(ctx, sqlcdb.RunPhasesSetStatusFromParams{
		RunID: runID, FromIndex: int32(from), Status: string(status), FinishedAt: finished,
	}))
}

// ListRunPhases returns a run's phases in order.
func (s *Store) ListRunPhases(ctx context.Context, runID int64) ([]RunPhase, error) {
	rows, err := s.q.RunPhaseList(ctx, runID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]RunPhase, len(rows))
	for i, r := range rows {
		out[i] = RunPhase{
			RunID: r.RunID, Index: int(r.PhaseIndex), Name: r.Name, Kind: r.Kind, Status: PhaseStatus(r.Status),
			Desired: r.Desired, Bake: time.Duration(r.BakeSeconds) * time.Second, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		}
	}
	return out, nil
}
