package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// Decision is one analysis verdict on a run's phase, with the record of
// every input that led to it, kept for audit.
type Decision struct {
	ID          int64
	RunID       int64
	PhaseIndex  int
	At          time.Time
	Verdict     string
	Explanation string
	Record      json.RawMessage
}

// InsertDecision stores a verdict; call it in the transaction that acts on it.
func (s *Store) InsertDecision(ctx context.Context, d Decision) (Decision, error) {
	row, err := s.q.DecisionInsert(ctx, sqlcdb.DecisionInsertParams{
		RunID: d.RunID, PhaseIndex: int32(d.PhaseIndex), At: s.Now(),
		Verdict: d.Verdict, Explanation: d.Explanation, Record: jsonOr(d.Record, `{}`),
	})
	if err != nil {
		return Decision{}, mapError(err)
	}
	return decisionFromRow(row), nil
}

// ListDecisions returns a run's decisions with ids above afterID, oldest first.
func (s *Store) ListDecisions(ctx context.Context, runID, afterID int64, limit int) ([]Decision, error) {
	rows, err := s.q.DecisionListByRun(ctx, sqlcdb.DecisionListByRunParams{RunID: runID, AfterID: afterID, Max: int32(limitOr(limit, 500))})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, decisionFromRow), nil
}

// LatestDecision returns the newest decision on a run, or ErrNotFound when
// it has none yet.
func (s *Store) LatestDecision(ctx context.Context, runID int64) (Decision, error) {
	row, err := s.q.DecisionLatestByRun(ctx, runID)
	if err != nil {
		return Decision{}, mapError(err)
	}
	return decisionFromRow(row), nil
}

func decisionFromRow(r sqlcdb.Decision) Decision {
	return Decision{ID: r.ID, RunID: r.RunID, PhaseIndex: int(r.PhaseIndex), At: r.At, Verdict: r.Verdict, Explanation: r.Explanation, Record: r.Record}
}
