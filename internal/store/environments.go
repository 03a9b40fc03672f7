package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// Environment is where an app is deployed (staging, production, ...), with
// the driver that moves its traffic, the source of its metrics, the
// strategy defaults, thresholds and policies for its runs.
type Environment struct {
	ID    int64
	AppID int64
	Name  string
	// Tier is development, staging or production.
	Tier string
	// Driver is the driver configuration, a JSON object with a "type".
	Driver json.RawMessage
	// Metrics is the metric-source configuration, a JSON object with a "type".
	Metrics json.RawMessage
	// DefaultStrategy is used when a run names none.
	DefaultStrategy string
	// StrategyDefaults holds parameters per strategy, keyed by its identifier.
	StrategyDefaults json.RawMessage
	// Thresholds holds the decision thresholds for analysis.
	Thresholds json.RawMessage
	// StableVersion is the version serving all users, "" before the first deploy.
	StableVersion string
	// PreviousStableVersion is what "roll back to previous" returns to.
	PreviousStableVersion string
	RequireApproval       bool
	ApproverNotStarter    bool
	// FailurePolicy is rollback or pause.
	FailurePolicy string
	// Version increases with every change, for compare-and-swap.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

func environmentFromRow(r sqlcdb.Environment) Environment {
	return Environment{
		ID: r.ID, AppID: r.AppID, Name: r.Name, Tier: r.Tier,
		Driver: r.Driver, Metrics: r.Metrics,
		DefaultStrategy: r.DefaultStrategy, StrategyDefaults: r.StrategyDefaults, Thresholds: r.Thresholds,
		StableVersion: deref(r.StableVersion), PreviousStableVersion: deref(r.PreviousStableVersion),
		RequireApproval: r.RequireApproval, ApproverNotStarter: r.ApproverNotStarter,
		FailurePolicy: r.FailurePolicy, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// jsonOr returns raw, or fallback when raw is empty.
func jsonOr(raw json.RawMessage, fallback string) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(fallback)
	}
	return raw
}

// CreateEnvironment stores a new environment of an app. Empty fields take
// the defaults: tier development, simulator driver and metrics, canary,
// rollback on failure.
func (s *Store) CreateEnvironment(ctx context.Context, e Environment) (Environment, error) {
	var created Environment
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		created, err = tx.insertEnvironment(ctx, e)
		if err != nil {
			return err
		}
		// Flag caches learn of the new environment at once, so that flag
		// evaluations there answer from the first moment.
		return tx.flagsChanged(ctx, created.AppID, created.ID)
	})
	if err != nil {
		return Environment{}, err
	}
	return created, nil
}

func (s *Store) insertEnvironment(ctx context.Context, e Environment) (Environment, error) {
	row, err := s.q.EnvironmentInsert(ctx, sqlcdb.EnvironmentInsertParams{
		AppID:              e.AppID,
		Name:               e.Name,
		Tier:               cmp.Or(e.Tier, "development"),
		Driver:             jsonOr(e.Driver, `{"type": "simulator"}`),
		Metrics:            jsonOr(e.Metrics, `{"type": "simulator"}`),
		DefaultStrategy:    cmp.Or(e.DefaultStrategy, "canary"),
		StrategyDefaults:   jsonOr(e.StrategyDefaults, `{}`),
		Thresholds:         jsonOr(e.Thresholds, `{}`),
		RequireApproval:    e.RequireApproval,
		ApproverNotStarter: e.ApproverNotStarter,
		FailurePolicy:      cmp.Or(e.FailurePolicy, "rollback"),
		Now:                s.Now(),
	})
	if err != nil {
		return Environment{}, mapError(err)
	}
	return environmentFromRow(row), nil
}

// Environment returns the environment of the app with the name.
func (s *Store) Environment(ctx context.Context, appID int64, name string) (Environment, error) {
	row, err := s.q.EnvironmentGet(ctx, sqlcdb.EnvironmentGetParams{AppID: appID, Name: name})
	if err != nil {
		return Environment{}, mapError(err)
	}
	return environmentFromRow(row), nil
}

// EnvironmentByID returns the environment with the id.
func (s *Store) EnvironmentByID(ctx context.Context, id int64) (Environment, error) {
	row, err := s.q.EnvironmentGetByID(ctx, id)
	if err != nil {
		return Environment{}, mapError(err)
	}
	return environmentFromRow(row), nil
}

// ListEnvironments returns the environments of an app ordered by name.
func (s *Store) ListEnvironments(ctx context.Context, appID int64) ([]Environment, error) {
	rows, err := s.q.EnvironmentListByApp(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, environmentFromRow), nil
}

// UpdateEnvironment writes every editable field of e, provided e.Version is
// still the stored version; otherwise it returns a *ConflictError and
// changes nothing.
func (s *Store) UpdateEnvironment(ctx context.Context, e Environment) (Environment, error) {
	row, err := s.q.EnvironmentUpdate(ctx, sqlcdb.EnvironmentUpdateParams{
		ID:                    e.ID,
		ExpectedVersion:       e.Version,
		Tier:                  e.Tier,
		Driver:                jsonOr(e.Driver, `{"type": "simulator"}`),
		Metrics:               jsonOr(e.Metrics, `{"type": "simulator"}`),
		DefaultStrategy:       e.DefaultStrategy,
		StrategyDefaults:      jsonOr(e.StrategyDefaults, `{}`),
		Thresholds:            jsonOr(e.Thresholds, `{}`),
		StableVersion:         nullable(e.StableVersion),
		PreviousStableVersion: nullable(e.PreviousStableVersion),
		RequireApproval:       e.RequireApproval,
		ApproverNotStarter:    e.ApproverNotStarter,
		FailurePolicy:         e.FailurePolicy,
		Now:                   s.Now(),
	})
	if err == nil {
		return environmentFromRow(row), nil
	}
	err = mapError(err)
	if !errors.Is(err, ErrNotFound) {
		return Environment{}, err
	}
	actual, verr := s.q.EnvironmentVersion(ctx, e.ID)
	if verr != nil {
		return Environment{}, mapError(verr)
	}
	return Environment{}, &ConflictError{Entity: "environment", ID: e.ID, Expected: e.Version, Actual: actual}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// SetStableVersion records that version now serves all users of the
// environment, keeping the one it replaced as the previous stable version.
func (s *Store) SetStableVersion(ctx context.Context, envID int64, version string) error {
	return mapError(s.q.EnvironmentSetStable(ctx, sqlcdb.EnvironmentSetStableParams{ID: envID, StableVersion: version, Now: s.Now()}))
}
