package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// OverviewEntry is one environment of an app as the overview shows it:
// what it serves, the run in flight there and the last deployment that
// finished. An app without environments has one entry with EnvironmentID 0.
type OverviewEntry struct {
	AppID   int64
	AppSlug string
	AppName string

	EnvironmentID         int64
	EnvironmentName       string
	Tier                  string
	StableVersion         string
	PreviousStableVersion string

	// Current is the run in flight: the active run, or else the oldest
	// pending one; nil when the environment is idle.
	Current *OverviewRun
	// Queued counts the pending runs waiting for the environment.
	Queued int
	// Last is the newest run that started and finished; nil before the
	// first deployment.
	Last *OverviewLastRun
}

// OverviewRun is the run in flight in an environment, with its phase and
// the latest decision on it.
type OverviewRun struct {
	ID          int64
	State       RunState
	FromVersion string
	ToVersion   string
	Strategy    string
	// PhaseIndex and PhaseName locate the run in its plan of PhaseCount
	// phases; PhaseCount is 0 before the plan is built.
	PhaseIndex int
	PhaseName  string
	PhaseCount int
	CreatedBy  string
	StartedAt  *time.Time
	Reason     string
	// Decision is the latest decision on the run, nil before the first.
	Decision *OverviewDecision
}

// OverviewDecision is the gist of a run's latest decision.
type OverviewDecision struct {
	Verdict     string
	PhaseIndex  int
	Explanation string
	At          time.Time
}

// OverviewLastRun is the last deployment of an environment that finished.
type OverviewLastRun struct {
	ID         int64
	State      RunState
	ToVersion  string
	CreatedBy  string
	FinishedAt time.Time
}

// Overview returns every app with each of its environments, ordered by app
// slug and then from development to production, in one query.
func (s *Store) Overview(ctx context.Context) ([]OverviewEntry, error) {
	rows, err := s.q.OverviewList(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, overviewFromRow), nil
}

func overviewFromRow(r sqlcdb.OverviewListRow) OverviewEntry {
	e := OverviewEntry{AppID: r.AppID, AppSlug: r.AppSlug, AppName: r.AppName, Queued: int(r.Queued)}
	if r.EnvironmentID == nil {
		return e
	}
	e.EnvironmentID = *r.EnvironmentID
	e.EnvironmentName = deref(r.EnvironmentName)
	e.Tier = deref(r.EnvironmentTier)
	e.StableVersion = deref(r.StableVersion)
	e.PreviousStableVersion = deref(r.PreviousStableVersion)
	if r.RunID != nil {
		run := &OverviewRun{
			ID: *r.RunID, State: RunState(deref(r.RunState)), FromVersion: deref(r.RunFromVersion),
			ToVersion: deref(r.RunToVersion), Strategy: deref(r.RunStrategy),
			PhaseIndex: int(r.RunPhaseIndex.Int32), PhaseName: r.RunPhaseName, PhaseCount: int(r.RunPhaseCount),
			CreatedBy: deref(r.RunCreatedBy), StartedAt: r.RunStartedAt, Reason: deref(r.RunReason),
		}
		if r.DecisionVerdict != nil && r.DecisionAt != nil {
			run.Decision = &OverviewDecision{
				Verdict: *r.DecisionVerdict, PhaseIndex: int(r.DecisionPhaseIndex.Int32),
				Explanation: deref(r.DecisionExplanation), At: *r.DecisionAt,
			}
		}
		e.Current = run
		// The run in flight may itself be the oldest pending one.
		if run.State == RunPending {
			e.Queued--
		}
	}
	if r.LastRunID != nil && r.LastFinishedAt != nil {
		e.Last = &OverviewLastRun{
			ID: *r.LastRunID, State: RunState(deref(r.LastState)), ToVersion: deref(r.LastToVersion),
			CreatedBy: deref(r.LastCreatedBy), FinishedAt: *r.LastFinishedAt,
		}
	}
	return e
}

// EnvironmentName names an environment of an app, for pickers.
type EnvironmentName struct {
	AppSlug         string
	Environment     string
	Tier            string
	DefaultStrategy string
}

// ListEnvironmentNames returns every environment of every app, ordered by
// app slug and then from development to production.
func (s *Store) ListEnvironmentNames(ctx context.Context) ([]EnvironmentName, error) {
	rows, err := s.q.EnvironmentNameList(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.EnvironmentNameListRow) EnvironmentName {
		return EnvironmentName{AppSlug: r.AppSlug, Environment: r.EnvironmentName, Tier: r.EnvironmentTier, DefaultStrategy: r.DefaultStrategy}
	}), nil
}
