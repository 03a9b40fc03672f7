package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// Approval is a person's answer to a phase that waited for approval.
type Approval struct {
	ID         int64
	RunID      int64
	PhaseIndex int
	// Outcome is approved or rejected.
	Outcome string
	Actor   string
	Comment string
	At      time.Time
}

// InsertApproval records an approval or rejection. Each person answers a
// phase once: a second answer from the same actor is ErrAlreadyExists.
func (s *Store) InsertApproval(ctx context.Context, a Approval) (Approval, error) {
	row, err := s.q.ApprovalInsert(ctx, sqlcdb.ApprovalInsertParams{
		RunID: a.RunID, PhaseIndex: int32(a.PhaseIndex), Outcome: a.Outcome, Actor: a.Actor, Comment: a.Comment, At: s.Now(),
	})
	if err != nil {
		return Approval{}, mapError(err)
	}
	return approvalFromRow(row), nil
}

// ListApprovals returns a run's approvals in order.
func (s *Store) ListApprovals(ctx context.Context, runID int64) ([]Approval, error) {
	rows, err := s.q.ApprovalListByRun(ctx, runID)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, approvalFromRow), nil
}

func approvalFromRow(r sqlcdb.Approval) Approval {
	return Approval{ID: r.ID, RunID: r.RunID, PhaseIndex: int(r.PhaseIndex), Outcome: r.Outcome, Actor: r.Actor, Comment: r.Comment, At: r.At}
}
