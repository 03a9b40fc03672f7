package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// The phases of an expand–contract schema change, in order.
const (
	SchemaExpand   = "expand"
	SchemaMigrate  = "migrate"
	SchemaContract = "contract"
)

// SchemaPhases lists the phases in the order environments reach them.
var SchemaPhases = []string{SchemaExpand, SchemaMigrate, SchemaContract}

// schemaPhaseRank orders the phases; 0 is none reached.
func schemaPhaseRank(phase string) int { return slices.Index(SchemaPhases, phase) + 1 }

var schemaChangeKey = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)

// SchemaChange is an expand–contract schema change of an app, with the
// phases each environment has reached.
type SchemaChange struct {
	ID          int64
	AppID       int64
	Key         string
	Description string
	CreatedAt   time.Time
	CreatedBy   string
	// Reached maps an environment id to the phases it has reached, in
	// order.
	Reached map[int64][]SchemaPhase
}

// SchemaPhase is a phase reached in one environment.
type SchemaPhase struct {
	Phase     string
	ReachedAt time.Time
	ReachedBy string
	// RunID is the deployment that carried the phase, 0 when none was named.
	RunID int64
}

// Latest returns the furthest phase the environment has reached, "" for
// none.
func (c SchemaChange) Latest(envID int64) string {
	ps := c.Reached[envID]
	if len(ps) == 0 {
		return ""
	}
	return ps[len(ps)-1].Phase
}

// reachedAt returns when the environment reached the phase.
func (c SchemaChange) reachedAt(envID int64, phase string) (time.Time, bool) {
	for _, p := range c.Reached[envID] {
		if p.Phase == phase {
			return p.ReachedAt, true
		}
	}
	return time.Time{}, false
}

// SchemaError is a schema change request that cannot be done, with the
// field at fault.
type SchemaError struct {
	Field   string
	Message string
}

func (e *SchemaError) Error() string { return e.Field + ": " + e.Message }

// CreateSchemaChange records a new schema change of the app.
func (s *Store) CreateSchemaChange(ctx context.Context, appID int64, key, description, actor string) (SchemaChange, error) {
	if !schemaChangeKey.MatchString(key) {
		return SchemaChange{}, &SchemaError{"key", fmt.Sprintf("%q must be 1 to 128 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", key)}
	}
	if len(description) > 2000 {
		return SchemaChange{}, &SchemaError{"description", "is longer than 2,000 characters"}
	}
	r, err := s.q.SchemaChangeInsert(ctx, sqlcdb.SchemaChangeInsertParams{AppID: appID, Key: key, Description: description, Now: s.Now(), CreatedBy: cmpActor(actor)})
	if err != nil {
		return SchemaChange{}, mapError(err)
	}
	return SchemaChange{ID: r.ID, AppID: r.AppID, Key: r.Key, Description: r.Description, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, Reached: map[int64][]SchemaPhase{}}, nil
}

// ListSchemaChanges returns the app's schema changes by key, each with the
// phases every environment has reached.
func (s *Store) ListSchemaChanges(ctx context.Context, appID int64) ([]SchemaChange, error) {
	rows, err := s.q.SchemaChangeList(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	phases, err := s.q.SchemaPhaseList(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]SchemaChange, len(rows))
	byID := map[int64]*SchemaChange{}
	for i, r := range rows {
		out[i] = SchemaChange{ID: r.ID, AppID: r.AppID, Key: r.Key, Description: r.Description, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, Reached: map[int64][]SchemaPhase{}}
		byID[r.ID] = &out[i]
	}
	for _, p := range phases {
		c := byID[p.ChangeID]
		if c == nil {
			continue
		}
		c.Reached[p.EnvironmentID] = append(c.Reached[p.EnvironmentID], SchemaPhase{Phase: p.Phase, ReachedAt: p.ReachedAt, ReachedBy: p.ReachedBy, RunID: derefInt(p.RunID)})
	}
	for i := range out {
		for env := range out[i].Reached {
			slices.SortFunc(out[i].Reached[env], func(a, b SchemaPhase) int { return schemaPhaseRank(a.Phase) - schemaPhaseRank(b.Phase) })
		}
	}
	return out, nil
}

// SchemaChange returns one schema change of the app by key.
func (s *Store) SchemaChange(ctx context.Context, appID int64, key string) (SchemaChange, error) {
	all, err := s.ListSchemaChanges(ctx, appID)
	if err != nil {
		return SchemaChange{}, err
	}
	for _, c := range all {
		if c.Key == key {
			return c, nil
		}
	}
	return SchemaChange{}, fmt.Errorf("schema change %q: %w", key, ErrNotFound)
}

// RecordSchemaPhase records that the environment reached the phase of the
// change. Phases are reached in order, one at a time; recording the phase
// the environment is at already changes nothing.
func (s *Store) RecordSchemaPhase(ctx context.Context, c SchemaChange, envID int64, phase string, runID int64, actor string) (SchemaChange, error) {
	if schemaPhaseRank(phase) == 0 {
		return SchemaChange{}, &SchemaError{"phase", fmt.Sprintf("%q is not a phase; use expand, migrate or contract", phase)}
	}
	err := s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.q.SchemaChangeLock(ctx, c.ID); err != nil {
			return mapError(err)
		}
		all, err := tx.ListSchemaChanges(ctx, c.AppID)
		if err != nil {
			return err
		}
		for _, cur := range all {
			if cur.ID == c.ID {
				c = cur
			}
		}
		have := schemaPhaseRank(c.Latest(envID))
		want := schemaPhaseRank(phase)
		switch {
		case want <= have:
			return nil
		case want > have+1:
			return &SchemaError{"phase", fmt.Sprintf("%s comes after %s, which this environment has not reached; phases go expand, migrate, contract", phase, SchemaPhases[want-2])}
		}
		var run *int64
		if runID != 0 {
			run = &runID
		}
		_, err = tx.q.SchemaPhaseInsert(ctx, sqlcdb.SchemaPhaseInsertParams{ChangeID: c.ID, EnvironmentID: envID, Phase: phase, Now: tx.Now(), ReachedBy: cmpActor(actor), RunID: run})
		return mapError(err)
	})
	if err != nil {
		return SchemaChange{}, err
	}
	return s.SchemaChange(ctx, c.AppID, c.Key)
}

// VersionNeed is the phase of a schema change a version needs.
type VersionNeed struct {
	Change string
	Phase  string
}

// SetVersionNeeds replaces what the app's version needs of its schema
// changes; every change must exist.
func (s *Store) SetVersionNeeds(ctx context.Context, appID int64, version string, needs []VersionNeed, actor string) error {
	return s.inTx(ctx, func(tx *Store) error {
		changes, err := tx.ListSchemaChanges(ctx, appID)
		if err != nil {
			return err
		}
		if err := tx.q.VersionNeedsDelete(ctx, sqlcdb.VersionNeedsDeleteParams{AppID: appID, Version: version}); err != nil {
			return mapError(err)
		}
		seen := map[string]bool{}
		for i, n := range needs {
			field := fmt.Sprintf("needs[%d]", i)
			if schemaPhaseRank(n.Phase) == 0 {
				return &SchemaError{field + ".phase", fmt.Sprintf("%q is not a phase; use expand, migrate or contract", n.Phase)}
			}
			if seen[n.Change] {
				return &SchemaError{field + ".change", fmt.Sprintf("%q is named twice", n.Change)}
			}
			seen[n.Change] = true
			idx := slices.IndexFunc(changes, func(c SchemaChange) bool { return c.Key == n.Change })
			if idx < 0 {
				return &SchemaError{field + ".change", fmt.Sprintf("the app has no schema change %q", n.Change)}
			}
			if err := tx.q.VersionNeedInsert(ctx, sqlcdb.VersionNeedInsertParams{
				AppID: appID, Version: version, ChangeID: changes[idx].ID, Phase: n.Phase, Now: tx.Now(), SetBy: cmpActor(actor),
			}); err != nil {
				return mapError(err)
			}
		}
		return nil
	})
}

// VersionNeeds returns what the app's version needs of its schema changes.
func (s *Store) VersionNeeds(ctx context.Context, appID int64, version string) ([]VersionNeed, error) {
	rows, err := s.q.VersionNeedsList(ctx, sqlcdb.VersionNeedsListParams{AppID: appID, Version: version})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.VersionNeedsListRow) VersionNeed {
		return VersionNeed{Change: r.ChangeKey, Phase: r.Phase}
	}), nil
}

// SchemaBlock says why the schema keeps a version out of an environment.
type SchemaBlock struct {
	Message string
}

func (b *SchemaBlock) Error() string { return b.Message }

// CheckSchemaForVersion returns a *SchemaBlock when deploying the version
// to the environment would break on its schema: the version needs a phase
// the environment has not reached, or the environment has contracted a
// change that the version predates (it served there before the change
// reached migrate and does not declare it), so the old code would read
// what is gone. Nil means the schema allows it.
func (s *Store) CheckSchemaForVersion(ctx context.Context, appID int64, env Environment, version string) error {
	changes, err := s.ListSchemaChanges(ctx, appID)
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	needs, err := s.VersionNeeds(ctx, appID, version)
	if err != nil {
		return err
	}
	needOf := map[string]string{}
	for _, n := range needs {
		needOf[n.Change] = n.Phase
	}
	for _, c := range changes {
		have := c.Latest(env.ID)
		if need, ok := needOf[c.Key]; ok && schemaPhaseRank(have) < schemaPhaseRank(need) {
			reached := "has not started it"
			if have != "" {
				reached = "has reached " + have
			}
			return &SchemaBlock{Message: fmt.Sprintf("%s needs schema change %s at %s, and %s %s; run its %s phase there first",
				version, c.Key, need, env.Name, reached, SchemaPhases[schemaPhaseRank(have)])}
		}
		if have != SchemaContract || schemaPhaseRank(needOf[c.Key]) >= schemaPhaseRank(SchemaMigrate) {
			continue
		}
		migrated, _ := c.reachedAt(env.ID, SchemaMigrate)
		old, err := s.q.VersionDeployedBefore(ctx, sqlcdb.VersionDeployedBeforeParams{EnvironmentID: env.ID, Before: migrated, Version: version})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return mapError(err)
		}
		if old {
			return &SchemaBlock{Message: fmt.Sprintf("%s served %s before schema change %s reached migrate there, and %s has contracted it since: %s would break on the new schema. Deploy a version that reads the new schema, or override with a reason",
				version, env.Name, c.Key, env.Name, version)}
		}
	}
	return nil
}
