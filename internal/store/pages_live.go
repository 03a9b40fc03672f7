package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// InFlightStates are the states of a run that is not finished: waiting in
// line or active.
var InFlightStates = []RunState{RunPending, RunRunning, RunAwaitingApproval, RunPaused, RunRollingBack}

// InFlightRun is a run that is not finished, with what the incident view and
// the approvals page show about it: where it deploys, the phase it is in and
// the next, and the newest decision on it.
type InFlightRun struct {
	ID          int64
	AppID       int64
	AppSlug     string
	AppName     string
	EnvID       int64
	Environment string
	Tier        string
	// ApproverNotStarter is the environment's policy that the person who
	// approves must not be the one who started the run.
	ApproverNotStarter bool
	FromVersion        string
	ToVersion          string
	Strategy           string
	State              RunState
	PhaseIndex         int
	// PhaseCount is the number of phases in the plan; 0 before it is built.
	PhaseCount int
	// Phase and NextPhase are the plan's entries for the current phase and
	// the one after it, as JSON; nil when there is none.
	Phase          json.RawMessage
	NextPhase      json.RawMessage
	PhaseStartedAt *time.Time
	BakeExtension  time.Duration
	Extensions     int
	CreatedBy      string
	CreatedAt      time.Time
	StartedAt      *time.Time
	UpdatedAt      time.Time
	Reason         string
	// Decision is the newest decision on the run; nil before the first.
	Decision *Decision
	// WaitingSince is when a run awaiting approval began to wait.
	WaitingSince *time.Time
}

// ListInFlightRuns returns the runs in the given states (every state not
// finished when none are given) across every app, newest first, at most
// limit of them.
func (s *Store) ListInFlightRuns(ctx context.Context, states []RunState, limit int) ([]InFlightRun, error) {
	if len(states) == 0 {
		states = InFlightStates
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	rows, err := s.q.InFlightRunList(ctx, sqlcdb.InFlightRunListParams{States: names, MaxRows: int32(limitOr(limit, 200))})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, inFlightRunFromRow), nil
}

func inFlightRunFromRow(r sqlcdb.InFlightRunListRow) InFlightRun {
	run := InFlightRun{
		ID: r.ID, AppID: r.AppID, AppSlug: r.AppSlug, AppName: r.AppName,
		EnvID: r.EnvironmentID, Environment: r.EnvironmentName, Tier: r.EnvironmentTier,
		ApproverNotStarter: r.ApproverNotStarter,
		FromVersion:        deref(r.FromVersion), ToVersion: r.ToVersion, Strategy: r.Strategy,
		State: RunState(r.State), PhaseIndex: int(r.PhaseIndex), PhaseCount: int(r.PhaseCount),
		Phase: r.Phase, NextPhase: r.NextPhase, PhaseStartedAt: r.PhaseStartedAt,
		BakeExtension: time.Duration(r.BakeExtensionSeconds) * time.Second, Extensions: int(r.Extensions),
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt,
		Reason: r.Reason, WaitingSince: r.WaitingSince,
	}
	if r.DecisionID != nil && r.DecisionAt != nil {
		run.Decision = &Decision{
			ID: *r.DecisionID, RunID: r.ID, PhaseIndex: int(r.DecisionPhaseIndex.Int32), At: *r.DecisionAt,
			Verdict: deref(r.DecisionVerdict), Explanation: deref(r.DecisionExplanation), Record: r.DecisionRecord,
		}
	}
	return run
}
