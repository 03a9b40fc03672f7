package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// FlagsChannel is the Postgres channel on which flag changes are announced.
// The payload is "<app_id>:<environment_id>"; environment 0 stands for every
// environment of the app (a flag definition or a segment changed). The
// notification is sent inside the changing transaction, so Postgres
// delivers it at commit and never after a rollback.
const FlagsChannel = "flightdeck_flags"

// The types of flag_events rows.
const (
	FlagEventCreated      = "flag.created"
	FlagEventUpdated      = "flag.updated"
	FlagEventStateChanged = "flag.state_changed"
	FlagEventKilled       = "flag.killed"
	SegmentEventCreated   = "segment.created"
	SegmentEventUpdated   = "segment.updated"
)

// Flag is a stored feature flag of an app: its definition, shared by all
// environments, and the version for compare-and-swap.
type Flag struct {
	ID    int64
	AppID int64
	// Definition is the flag as release managers edit it; its Key is the
	// flag's key.
	Definition flags.Flag
	// Version increases with every change of the definition.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Key returns the flag's key.
func (f Flag) Key() string { return f.Definition.Key }

// FlagState is a flag's configuration in one environment.
type FlagState struct {
	Flag          Flag
	EnvironmentID int64
	// State carries the stored version in State.Version; 0 when the flag has
	// never been configured in the environment.
	State flags.EnvState
	// Configured is false when the flag has no state in the environment
	// yet; it is then off there.
	Configured bool
	UpdatedAt  time.Time
	UpdatedBy  string
}

// Segment is a stored group of users shared by the flags of an app.
type Segment struct {
	ID         int64
	AppID      int64
	Definition flags.Segment
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// FlagEvent is one row of the append-only history of flags and segments.
type FlagEvent struct {
	ID    int64
	AppID int64
	// FlagID is 0 for segment events.
	FlagID int64
	// EnvironmentID is 0 for changes that concern every environment.
	EnvironmentID int64
	At            time.Time
	Actor         string
	Type          string
	Payload       json.RawMessage
}

// FlagConfig is everything needed to build the flags.Snapshot of one app in
// one environment.
type FlagConfig struct {
	AppID           int64
	AppSlug         string
	EnvironmentID   int64
	EnvironmentName string
	// Entries holds every flag of the app, sorted by key, with its state in
	// the environment (the zero, disabled state when it has none).
	Entries  []flags.Entry
	Segments []flags.Segment
}

func flagFromRow(r sqlcdb.Flag) (Flag, error) {
	f := Flag{ID: r.ID, AppID: r.AppID, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Definition, &f.Definition); err != nil {
		return Flag{}, fmt.Errorf("decoding flag %d: %w", r.ID, err)
	}
	return f, nil
}

func segmentFromRow(r sqlcdb.Segment) (Segment, error) {
	seg := Segment{ID: r.ID, AppID: r.AppID, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Definition, &seg.Definition); err != nil {
		return Segment{}, fmt.Errorf("decoding segment %d: %w", r.ID, err)
	}
	return seg, nil
}

func decodeState(raw json.RawMessage, version int64) (flags.EnvState, error) {
	var st flags.EnvState
	if err := json.Unmarshal(raw, &st); err != nil {
		return flags.EnvState{}, fmt.Errorf("decoding flag state: %w", err)
	}
	st.Version = version
	return st, nil
}

func flagEventFromRow(r sqlcdb.FlagEvent) FlagEvent {
	return FlagEvent{
		ID: r.ID, AppID: r.AppID, FlagID: derefInt(r.FlagID), EnvironmentID: derefInt(r.EnvironmentID),
		At: r.At, Actor: r.Actor, Type: r.Type, Payload: r.Payload,
	}
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func optionalID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// FlagScope formats the FlagsChannel payload for an app and environment.
func FlagScope(appID, environmentID int64) string {
	return strconv.FormatInt(appID, 10) + ":" + strconv.FormatInt(environmentID, 10)
}

// ParseFlagScope reads a FlagsChannel payload; ok is false when it is not
// "<app_id>:<environment_id>".
func ParseFlagScope(payload string) (appID, environmentID int64, ok bool) {
	a, e, found := strings.Cut(payload, ":")
	if !found {
		return 0, 0, false
	}
	appID, err1 := strconv.ParseInt(a, 10, 64)
	environmentID, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || appID <= 0 || environmentID < 0 {
		return 0, 0, false
	}
	return appID, environmentID, true
}

// flagsChanged announces a flag change on FlagsChannel from inside the
// transaction that makes it.
func (s *Store) flagsChanged(ctx context.Context, appID, environmentID int64) error {
	err := s.q.FlagNotify(ctx, sqlcdb.FlagNotifyParams{Channel: FlagsChannel, Payload: FlagScope(appID, environmentID)})
	if err != nil {
		return fmt.Errorf("announcing flag change: %w", mapError(err))
	}
	return nil
}

func (s *Store) appendFlagEvent(ctx context.Context, ev FlagEvent, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encoding %s event payload: %w", ev.Type, err)
	}
	actor := cmp.Or(ev.Actor, "system")
	addr, userAgent := originColumns(ctx, actor)
	_, err = s.q.FlagEventInsert(ctx, sqlcdb.FlagEventInsertParams{
		AppID: ev.AppID, FlagID: optionalID(ev.FlagID), EnvironmentID: optionalID(ev.EnvironmentID),
		At: s.Now(), Actor: actor, Type: ev.Type, Payload: b, RemoteAddr: addr, UserAgent: userAgent,
	})
	if err != nil {
		return mapError(err)
	}
	return nil
}

func (s *Store) segmentDefinitions(ctx context.Context, appID int64) ([]flags.Segment, error) {
	segs, err := s.ListSegments(ctx, appID)
	if err != nil {
		return nil, err
	}
	return mapRows(segs, func(seg Segment) flags.Segment { return seg.Definition }), nil
}

// CreateFlag stores a new flag of an app. An invalid definition returns the
// *flags.ValidationError from flags.Validate unchanged and writes nothing; a
// flag with the same key returns ErrAlreadyExists. The new flag is off in
// every environment until its state is set there.
func (s *Store) CreateFlag(ctx context.Context, appID int64, def flags.Flag, actor string) (Flag, error) {
	var created Flag
	err := s.inTx(ctx, func(tx *Store) error {
		segs, err := tx.segmentDefinitions(ctx, appID)
		if err != nil {
			return err
		}
		if err := flags.Validate(def, flags.EnvState{}, segs); err != nil {
			return err
		}
		b, err := json.Marshal(def)
		if err != nil {
			return fmt.Errorf("encoding flag %q: %w", def.Key, err)
		}
		row, err := tx.q.FlagInsert(ctx, sqlcdb.FlagInsertParams{
			AppID: appID, Key: def.Key, Type: string(def.Type), Definition: b, Now: tx.Now(),
		})
		if err != nil {
			return mapError(err)
		}
		if created, err = flagFromRow(row); err != nil {
			return err
		}
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: appID, FlagID: row.ID, Actor: actor, Type: FlagEventCreated},
			map[string]any{"definition": json.RawMessage(b)}); err != nil {
			return err
		}
		return tx.flagsChanged(ctx, appID, 0)
	})
	if err != nil {
		return Flag{}, err
	}
	return created, nil
}

// UpdateFlag replaces the definition of flag f.ID, provided f.Version is
// still the stored version; otherwise it returns a *ConflictError. The key
// cannot change, and the new definition must still fit the flag's state in
// every environment (a rule may not serve a variant that is removed); a
// *flags.ValidationError says what does not, with fields of environment
// states prefixed by environments["name"]. Nothing is written on an error.
func (s *Store) UpdateFlag(ctx context.Context, f Flag, actor string) (Flag, error) {
	var updated Flag
	err := s.inTx(ctx, func(tx *Store) error {
		row, err := tx.q.FlagGetByID(ctx, f.ID)
		if err != nil {
			return mapError(err)
		}
		def := f.Definition
		if def.Key != row.Key {
			return &flags.ValidationError{Errors: []flags.FieldError{{
				Field:   "key",
				Message: fmt.Sprintf("a flag's key cannot change (SDKs ask for %q by key); create a new flag instead", row.Key),
			}}}
		}
		segs, err := tx.segmentDefinitions(ctx, row.AppID)
		if err != nil {
			return err
		}
		if err := flags.Validate(def, flags.EnvState{}, segs); err != nil {
			return err
		}
		if err := tx.validateStatesAgainst(ctx, row.ID, def, segs); err != nil {
			return err
		}
		b, err := json.Marshal(def)
		if err != nil {
			return fmt.Errorf("encoding flag %q: %w", def.Key, err)
		}
		newRow, err := tx.q.FlagUpdate(ctx, sqlcdb.FlagUpdateParams{
			ID: f.ID, ExpectedVersion: f.Version, Type: string(def.Type), Definition: b, Now: tx.Now(),
		})
		if errors.Is(mapError(err), ErrNotFound) {
			return &ConflictError{Entity: "flag", ID: f.ID, Expected: f.Version, Actual: row.Version}
		}
		if err != nil {
			return mapError(err)
		}
		if updated, err = flagFromRow(newRow); err != nil {
			return err
		}
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: row.AppID, FlagID: row.ID, Actor: actor, Type: FlagEventUpdated},
			map[string]any{"definition": json.RawMessage(b), "version": newRow.Version}); err != nil {
			return err
		}
		return tx.flagsChanged(ctx, row.AppID, 0)
	})
	if err != nil {
		return Flag{}, err
	}
	return updated, nil
}

// validateStatesAgainst checks every stored state of a flag against a new
// definition and reports the problems per environment.
func (s *Store) validateStatesAgainst(ctx context.Context, flagID int64, def flags.Flag, segs []flags.Segment) error {
	states, err := s.q.FlagStateListByFlag(ctx, flagID)
	if err != nil {
		return mapError(err)
	}
	var all []flags.FieldError
	for _, st := range states {
		state, err := decodeState(st.State, 0)
		if err != nil {
			return err
		}
		var verr *flags.ValidationError
		if err := flags.Validate(def, state, segs); !errors.As(err, &verr) {
			continue
		}
		env, err := s.q.EnvironmentGetByID(ctx, st.EnvironmentID)
		if err != nil {
			return mapError(err)
		}
		prefix := "environments[" + strconv.Quote(env.Name) + "]."
		for _, fe := range verr.Errors {
			all = append(all, flags.FieldError{Field: prefix + fe.Field, Message: fe.Message})
		}
	}
	if len(all) > 0 {
		return &flags.ValidationError{Errors: all}
	}
	return nil
}

// Flag returns the flag of the app with the key.
func (s *Store) Flag(ctx context.Context, appID int64, key string) (Flag, error) {
	row, err := s.q.FlagGet(ctx, sqlcdb.FlagGetParams{AppID: appID, Key: key})
	if err != nil {
		return Flag{}, mapError(err)
	}
	return flagFromRow(row)
}

// FlagByID returns the flag with the id.
func (s *Store) FlagByID(ctx context.Context, id int64) (Flag, error) {
	row, err := s.q.FlagGetByID(ctx, id)
	if err != nil {
		return Flag{}, mapError(err)
	}
	return flagFromRow(row)
}

// ListFlags returns the flags of an app ordered by key.
func (s *Store) ListFlags(ctx context.Context, appID int64) ([]Flag, error) {
	rows, err := s.q.FlagListByApp(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Flag, 0, len(rows))
	for _, r := range rows {
		f, err := flagFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// flagAndEnvironment reads a flag and checks that the environment belongs
// to the flag's app.
func (s *Store) flagAndEnvironment(ctx context.Context, flagID, envID int64) (sqlcdb.Flag, flags.Flag, error) {
	row, err := s.q.FlagGetByID(ctx, flagID)
	if err != nil {
		return sqlcdb.Flag{}, flags.Flag{}, fmt.Errorf("flag %d: %w", flagID, mapError(err))
	}
	env, err := s.q.EnvironmentGetByID(ctx, envID)
	if err != nil {
		return sqlcdb.Flag{}, flags.Flag{}, fmt.Errorf("environment %d: %w", envID, mapError(err))
	}
	if env.AppID != row.AppID {
		return sqlcdb.Flag{}, flags.Flag{}, fmt.Errorf("%w: environment %q is not an environment of flag %q's app", ErrNotFound, env.Name, row.Key)
	}
	f, err := flagFromRow(row)
	if err != nil {
		return sqlcdb.Flag{}, flags.Flag{}, err
	}
	return row, f.Definition, nil
}

// SetFlagState writes a flag's configuration in an environment. It is a
// compare-and-swap: expectedVersion is the state's version the caller read,
// 0 when the flag has no state there yet; a different stored version returns
// a *ConflictError. An invalid state returns the *flags.ValidationError from
// flags.Validate unchanged. Nothing is written on an error; otherwise a
// flag.state_changed event is written in the same transaction.
func (s *Store) SetFlagState(ctx context.Context, flagID, envID int64, state flags.EnvState, expectedVersion int64, actor string) (FlagState, error) {
	var out FlagState
	err := s.inTx(ctx, func(tx *Store) error {
		row, def, err := tx.flagAndEnvironment(ctx, flagID, envID)
		if err != nil {
			return err
		}
		segs, err := tx.segmentDefinitions(ctx, row.AppID)
		if err != nil {
			return err
		}
		state.Version = 0
		if err := flags.Validate(def, state, segs); err != nil {
			return err
		}
		if out, err = tx.writeFlagState(ctx, row, envID, state, expectedVersion, actor); err != nil {
			return err
		}
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: row.AppID, FlagID: row.ID, EnvironmentID: envID, Actor: actor, Type: FlagEventStateChanged},
			map[string]any{"state": out.State, "version": out.State.Version}); err != nil {
			return err
		}
		if !state.Enabled {
			// Turning the flag off by hand stops a guarded rollout as the
			// kill switch does.
			if err := tx.stopRolloutOnKill(ctx, row.AppID, flagID, envID, actor); err != nil {
				return err
			}
		}
		return tx.flagsChanged(ctx, row.AppID, envID)
	})
	if err != nil {
		return FlagState{}, err
	}
	return out, nil
}

// writeFlagState inserts (expectedVersion 0) or compare-and-swaps the state.
func (s *Store) writeFlagState(ctx context.Context, row sqlcdb.Flag, envID int64, state flags.EnvState, expectedVersion int64, actor string) (FlagState, error) {
	state.Version = expectedVersion + 1
	b, err := json.Marshal(state)
	if err != nil {
		return FlagState{}, fmt.Errorf("encoding state of flag %q: %w", row.Key, err)
	}
	if actor == "" {
		actor = "system"
	}
	var st sqlcdb.FlagState
	if expectedVersion == 0 {
		st, err = s.q.FlagStateInsert(ctx, sqlcdb.FlagStateInsertParams{
			FlagID: row.ID, EnvironmentID: envID, State: b, Now: s.Now(), UpdatedBy: actor,
		})
	} else {
		st, err = s.q.FlagStateUpdate(ctx, sqlcdb.FlagStateUpdateParams{
			FlagID: row.ID, EnvironmentID: envID, ExpectedVersion: expectedVersion, State: b, Now: s.Now(), UpdatedBy: actor,
		})
	}
	if errors.Is(mapError(err), ErrNotFound) {
		var actual int64
		cur, cerr := s.q.FlagStateGet(ctx, sqlcdb.FlagStateGetParams{FlagID: row.ID, EnvironmentID: envID})
		switch {
		case cerr == nil:
			actual = cur.Version
		case !errors.Is(cerr, pgx.ErrNoRows):
			return FlagState{}, mapError(cerr)
		}
		return FlagState{}, &ConflictError{Entity: "flag state", ID: row.ID, Expected: expectedVersion, Actual: actual}
	}
	if err != nil {
		return FlagState{}, mapError(err)
	}
	return flagStateFromRows(row, st)
}

func flagStateFromRows(row sqlcdb.Flag, st sqlcdb.FlagState) (FlagState, error) {
	f, err := flagFromRow(row)
	if err != nil {
		return FlagState{}, err
	}
	state, err := decodeState(st.State, st.Version)
	if err != nil {
		return FlagState{}, err
	}
	return FlagState{Flag: f, EnvironmentID: st.EnvironmentID, State: state, Configured: true, UpdatedAt: st.UpdatedAt, UpdatedBy: st.UpdatedBy}, nil
}

// KillFlag turns the flag off in the environment (its kill switch), keeping
// its rules for when it is turned back on. It wins over any concurrent
// edit: it locks the state instead of comparing versions, because an
// on-call engineer must never have to retry a kill. A flag without state
// there gets a disabled one. A flag.killed event is written in the same
// transaction, and a guarded rollout running there stops.
func (s *Store) KillFlag(ctx context.Context, flagID, envID int64, actor string) (FlagState, error) {
	var out FlagState
	err := s.inTx(ctx, func(tx *Store) error {
		row, _, err := tx.flagAndEnvironment(ctx, flagID, envID)
		if err != nil {
			return err
		}
		var state flags.EnvState
		var expected int64
		cur, err := tx.q.FlagStateGetForUpdate(ctx, sqlcdb.FlagStateGetForUpdateParams{FlagID: flagID, EnvironmentID: envID})
		switch {
		case err == nil:
			if state, err = decodeState(cur.State, cur.Version); err != nil {
				return err
			}
			expected = cur.Version
		case errors.Is(err, pgx.ErrNoRows):
		default:
			return mapError(err)
		}
		wasEnabled := state.Enabled
		state.Enabled = false
		if out, err = tx.writeFlagState(ctx, row, envID, state, expected, actor); err != nil {
			return err
		}
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: row.AppID, FlagID: row.ID, EnvironmentID: envID, Actor: actor, Type: FlagEventKilled},
			map[string]any{"was_enabled": wasEnabled, "version": out.State.Version}); err != nil {
			return err
		}
		if err := tx.stopRolloutOnKill(ctx, row.AppID, flagID, envID, actor); err != nil {
			return err
		}
		return tx.flagsChanged(ctx, row.AppID, envID)
	})
	if err != nil {
		return FlagState{}, err
	}
	return out, nil
}

// ListFlagStates returns every flag of the app, ordered by key, with its
// state in the environment; flags never configured there come back with
// Configured false and the zero (disabled) state.
func (s *Store) ListFlagStates(ctx context.Context, appID, envID int64) ([]FlagState, error) {
	env, err := s.q.EnvironmentGetByID(ctx, envID)
	if err != nil {
		return nil, mapError(err)
	}
	if env.AppID != appID {
		return nil, fmt.Errorf("%w: environment %q is not an environment of app %d", ErrNotFound, env.Name, appID)
	}
	rows, err := s.q.FlagStateListByEnvironment(ctx, sqlcdb.FlagStateListByEnvironmentParams{AppID: appID, EnvironmentID: envID})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]FlagState, 0, len(rows))
	for _, r := range rows {
		f, err := flagFromRow(r.Flag)
		if err != nil {
			return nil, err
		}
		fs := FlagState{Flag: f, EnvironmentID: envID}
		if r.StateVersion != nil {
			if fs.State, err = decodeState(r.State, *r.StateVersion); err != nil {
				return nil, err
			}
			fs.Configured = true
			fs.UpdatedBy = deref(r.StateUpdatedBy)
			if r.StateUpdatedAt != nil {
				fs.UpdatedAt = *r.StateUpdatedAt
			}
		}
		out = append(out, fs)
	}
	return out, nil
}

// UpsertSegment creates (expectedVersion 0) or replaces a segment of an
// app. Replacing is a compare-and-swap on the version; a lost one returns a
// *ConflictError. An invalid segment returns the *flags.ValidationError from
// flags.ValidateSegment unchanged. Nothing is written on an error.
func (s *Store) UpsertSegment(ctx context.Context, appID int64, seg flags.Segment, expectedVersion int64, actor string) (Segment, error) {
	if err := flags.ValidateSegment(seg); err != nil {
		return Segment{}, err
	}
	b, err := json.Marshal(seg)
	if err != nil {
		return Segment{}, fmt.Errorf("encoding segment %q: %w", seg.Key, err)
	}
	var out Segment
	err = s.inTx(ctx, func(tx *Store) error {
		var row sqlcdb.Segment
		var err error
		evType := SegmentEventUpdated
		if expectedVersion == 0 {
			evType = SegmentEventCreated
			row, err = tx.q.SegmentInsert(ctx, sqlcdb.SegmentInsertParams{AppID: appID, Key: seg.Key, Definition: b, Now: tx.Now()})
		} else {
			row, err = tx.q.SegmentUpdate(ctx, sqlcdb.SegmentUpdateParams{AppID: appID, Key: seg.Key, ExpectedVersion: expectedVersion, Definition: b, Now: tx.Now()})
		}
		if errors.Is(err, pgx.ErrNoRows) {
			actual, verr := tx.q.SegmentVersion(ctx, sqlcdb.SegmentVersionParams{AppID: appID, Key: seg.Key})
			if verr != nil && !errors.Is(verr, pgx.ErrNoRows) {
				return mapError(verr)
			}
			return &ConflictError{Entity: "segment " + strconv.Quote(seg.Key) + " of app", ID: appID, Expected: expectedVersion, Actual: actual}
		}
		if err != nil {
			return mapError(err)
		}
		if out, err = segmentFromRow(row); err != nil {
			return err
		}
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: appID, Actor: actor, Type: evType},
			map[string]any{"segment": json.RawMessage(b), "version": row.Version}); err != nil {
			return err
		}
		return tx.flagsChanged(ctx, appID, 0)
	})
	if err != nil {
		return Segment{}, err
	}
	return out, nil
}

// ListSegments returns the segments of an app ordered by key.
func (s *Store) ListSegments(ctx context.Context, appID int64) ([]Segment, error) {
	rows, err := s.q.SegmentListByApp(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Segment, 0, len(rows))
	for _, r := range rows {
		seg, err := segmentFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, seg)
	}
	return out, nil
}

// ListFlagEvents returns up to limit events of a flag with an id greater
// than afterID, oldest first, so readers can resume where they stopped.
func (s *Store) ListFlagEvents(ctx context.Context, flagID, afterID int64, limit int) ([]FlagEvent, error) {
	rows, err := s.q.FlagEventList(ctx, sqlcdb.FlagEventListParams{FlagID: &flagID, AfterID: afterID, Max: int32(limitOr(limit, 500))})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, flagEventFromRow), nil
}

// FlagConfigs reads what the flag snapshots of the selected environments
// are built from: every environment when appID is 0, every environment of
// the app when envID is 0, else that one environment (none when it no longer
// exists). It reads in one repeatable-read transaction so that flags, states
// and segments are consistent with each other.
func (s *Store) FlagConfigs(ctx context.Context, appID, envID int64) ([]FlagConfig, error) {
	if s.changed != nil {
		return s.flagConfigs(ctx, s.q, appID, envID)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	out, err := s.flagConfigs(ctx, s.q.WithTx(tx), appID, envID)
	if err != nil {
		return nil, err
	}
	return out, tx.Commit(ctx)
}

func (s *Store) flagConfigs(ctx context.Context, q *sqlcdb.Queries, appID, envID int64) ([]FlagConfig, error) {
	scopes, err := q.FlagScopeList(ctx, sqlcdb.FlagScopeListParams{AppID: appID, EnvironmentID: envID})
	if err != nil {
		return nil, mapError(err)
	}
	if len(scopes) == 0 {
		return []FlagConfig{}, nil
	}
	entries, err := q.FlagScopeEntries(ctx, sqlcdb.FlagScopeEntriesParams{AppID: appID, EnvironmentID: envID})
	if err != nil {
		return nil, mapError(err)
	}
	segRows, err := q.SegmentScopeList(ctx, appID)
	if err != nil {
		return nil, mapError(err)
	}
	segments := map[int64][]flags.Segment{}
	for _, r := range segRows {
		var seg flags.Segment
		if err := json.Unmarshal(r.Definition, &seg); err != nil {
			return nil, fmt.Errorf("decoding segment of app %d: %w", r.AppID, err)
		}
		segments[r.AppID] = append(segments[r.AppID], seg)
	}
	byEnv := map[int64][]flags.Entry{}
	for _, r := range entries {
		var e flags.Entry
		if err := json.Unmarshal(r.Definition, &e.Flag); err != nil {
			return nil, fmt.Errorf("decoding flag in environment %d: %w", r.EnvironmentID, err)
		}
		if r.StateVersion != nil {
			if e.State, err = decodeState(r.State, *r.StateVersion); err != nil {
				return nil, err
			}
		}
		byEnv[r.EnvironmentID] = append(byEnv[r.EnvironmentID], e)
	}
	out := make([]FlagConfig, 0, len(scopes))
	for _, sc := range scopes {
		envEntries := byEnv[sc.EnvironmentID]
		if envEntries == nil {
			envEntries = []flags.Entry{}
		}
		out = append(out, FlagConfig{
			AppID: sc.AppID, AppSlug: sc.AppSlug, EnvironmentID: sc.EnvironmentID, EnvironmentName: sc.EnvironmentName,
			Entries: envEntries, Segments: segments[sc.AppID],
		})
	}
	return out, nil
}
