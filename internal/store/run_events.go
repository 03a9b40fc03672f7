package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// RunEvent is one row of a run's append-only event log.
type RunEvent struct {
	ID      int64
	RunID   int64
	At      time.Time
	Type    string
	Actor   string
	Payload json.RawMessage
}

func runEventFromRow(r sqlcdb.RunEvent) RunEvent {
	return RunEvent{ID: r.ID, RunID: r.RunID, At: r.At, Type: r.Type, Actor: r.Actor, Payload: r.Payload}
}

// AppendRunEvent records something that happened to a run without changing
// its state, such as a driver's output.
func (s *Store) AppendRunEvent(ctx context.Context, runID int64, ev Event) (RunEvent, error) {
	return s.appendEvent(ctx, runID, ev)
}

func (s *Store) appendEvent(ctx context.Context, runID int64, ev Event) (RunEvent, error) {
	payload := json.RawMessage(`{}`)
	if ev.Payload != nil {
		b, err := json.Marshal(ev.Payload)
		if err != nil {
			return RunEvent{}, fmt.Errorf("encoding %s event payload: %w", ev.Type, err)
		}
		payload = b
	}
	actor := cmp.Or(ev.Actor, "system")
	addr, userAgent := originColumns(ctx, actor)
	row, err := s.q.RunEventInsert(ctx, sqlcdb.RunEventInsertParams{
		RunID: runID, At: s.Now(), Type: ev.Type, Actor: actor, Payload: payload,
		RemoteAddr: addr, UserAgent: userAgent,
	})
	if err != nil {
		return RunEvent{}, mapError(err)
	}
	s.runChanged(runID)
	return runEventFromRow(row), nil
}

// ListRunEvents returns up to limit events of a run with an id greater than
// afterID, oldest first, so readers can resume where they stopped.
func (s *Store) ListRunEvents(ctx context.Context, runID, afterID int64, limit int) ([]RunEvent, error) {
	rows, err := s.q.RunEventList(ctx, sqlcdb.RunEventListParams{RunID: runID, AfterID: afterID, Max: int32(limitOr(limit, 500))})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, runEventFromRow), nil
}
