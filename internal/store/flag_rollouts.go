package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// FlagRolloutState is where a guarded rollout stands.
type FlagRolloutState string

// The states of a guarded rollout. Only running is not final.
const (
	FlagRolloutRunning    FlagRolloutState = "running"
	FlagRolloutCompleted  FlagRolloutState = "completed"
	FlagRolloutRolledBack FlagRolloutState = "rolled_back"
	FlagRolloutCancelled  FlagRolloutState = "cancelled"
)

// The flag history's events of guarded rollouts.
const (
	FlagEventRolloutStarted    = "flag.rollout_started"
	FlagEventRolloutAdvanced   = "flag.rollout_advanced"
	FlagEventRolloutCompleted  = "flag.rollout_completed"
	FlagEventRolloutRolledBack = "flag.rollout_rolled_back"
	FlagEventRolloutCancelled  = "flag.rollout_cancelled"
)

// Bounds of a guarded rollout.
const (
	MaxFlagRolloutSteps = 20
	MinFlagRolloutBake  = time.Second
	MaxFlagRolloutBake  = 30 * 24 * time.Hour
)

// ErrRolloutRunning is returned when a guarded rollout would start while
// another one of the same flag runs in the environment.
var ErrRolloutRunning = errors.New("a guarded rollout of this flag is running in this environment already")

// DefaultFlagRolloutSteps are the percentages a rollout steps through when
// none are given.
var DefaultFlagRolloutSteps = []float64{5, 25, 50, 100}

// FlagRollout is a guarded rollout: one variant of a flag released to a
// growing share of users in one environment, each step judged from metrics
// split by variant.
type FlagRollout struct {
	ID            int64
	FlagID        int64
	EnvironmentID int64
	// Variant is released; ControlVariant is what the other users keep.
	Variant        string
	ControlVariant string
	// Steps are the percentages of users served Variant; the last is 100.
	Steps     []float64
	StepBake  time.Duration
	State     FlagRolloutState
	StepIndex int
	// StepStartedAt is when the current step's percentage took effect.
	StepStartedAt time.Time
	NextCheckAt   time.Time
	StartedBy     string
	CreatedAt     time.Time
	// FinishedAt is zero while the rollout runs.
	FinishedAt time.Time
	// Outcome is the sentence that ended the rollout.
	Outcome string
	// LastDecision is the latest analysis.Decision JSON, nil before the
	// first check.
	LastDecision json.RawMessage
}

// Percent is the share of users the rollout serves its variant now.
func (r FlagRollout) Percent() float64 { return r.Steps[min(r.StepIndex, len(r.Steps)-1)] }

// Running reports whether the rollout has not ended.
func (r FlagRollout) Running() bool { return r.State == FlagRolloutRunning }

func flagRolloutFromRow(r sqlcdb.FlagRollout) FlagRollout {
	out := FlagRollout{
		ID: r.ID, FlagID: r.FlagID, EnvironmentID: r.EnvironmentID, Variant: r.Variant, ControlVariant: r.ControlVariant,
		Steps: r.Steps, StepBake: time.Duration(r.StepBakeMs) * time.Millisecond, State: FlagRolloutState(r.State),
		StepIndex: int(r.StepIndex), StepStartedAt: r.StepStartedAt, NextCheckAt: r.NextCheckAt, StartedBy: r.StartedBy,
		CreatedAt: r.CreatedAt, Outcome: r.Outcome, LastDecision: r.LastDecision,
	}
	if r.FinishedAt != nil {
		out.FinishedAt = *r.FinishedAt
	}
	return out
}

// NewFlagRollout asks for a guarded rollout.
type NewFlagRollout struct {
	FlagID        int64
	EnvironmentID int64
	// Variant is released; ControlVariant is what the others keep. For a
	// boolean flag they default to true and false.
	Variant        string
	ControlVariant string
	// Steps default to DefaultFlagRolloutSteps.
	Steps    []float64
	StepBake time.Duration
	Actor    string
}

// checkFlagRollout returns the field errors of a new rollout of def.
func checkFlagRollout(def flags.Flag, n *NewFlagRollout) error {
	var errs []flags.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, flags.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if def.Type == flags.TypeBoolean {
		if n.Variant == "" {
			n.Variant = "true"
		}
		if n.ControlVariant == "" {
			n.ControlVariant = "false"
		}
	}
	names := variantNames(def)
	switch _, ok := def.Variants[n.Variant]; {
	case n.Variant == "":
		add("variant", "name the variant to release: one of %s", names)
	case !ok:
		add("variant", "flag %q has no variant %q; its variants are %s", def.Key, n.Variant, names)
	}
	switch _, ok := def.Variants[n.ControlVariant]; {
	case n.ControlVariant == "":
		add("control_variant", "name the variant the other users keep: one of %s", names)
	case !ok:
		add("control_variant", "flag %q has no variant %q; its variants are %s", def.Key, n.ControlVariant, names)
	case n.ControlVariant == n.Variant:
		add("control_variant", "must differ from the variant released (%q): the rollout compares the two", n.Variant)
	}
	if len(n.Steps) == 0 {
		n.Steps = DefaultFlagRolloutSteps
	}
	if len(n.Steps) > MaxFlagRolloutSteps {
		add("steps", "has %d steps; at most %d", len(n.Steps), MaxFlagRolloutSteps)
	}
	for i, p := range n.Steps {
		field := "steps[" + strconv.Itoa(i) + "]"
		switch {
		case math.IsNaN(p) || p <= 0 || p > 100:
			add(field, "%s is not a percentage above 0 and at most 100", strconv.FormatFloat(p, 'g', -1, 64))
		case math.Abs(p*100-math.Round(p*100)) > 1e-9:
			add(field, "%s has more than two decimals", strconv.FormatFloat(p, 'g', -1, 64))
		case i > 0 && p <= n.Steps[i-1]:
			add(field, "%s does not grow from the step before (%s); steps must increase",
				strconv.FormatFloat(p, 'g', -1, 64), strconv.FormatFloat(n.Steps[i-1], 'g', -1, 64))
		}
	}
	if last := n.Steps[len(n.Steps)-1]; last != 100 {
		add("steps", "the last step is %s%%; it must be 100 so the rollout ends with every user released", strconv.FormatFloat(last, 'g', -1, 64))
	}
	switch {
	case n.StepBake < MinFlagRolloutBake:
		add("step_bake", "%s is shorter than %s: a step needs time to gather evidence", n.StepBake, MinFlagRolloutBake)
	case n.StepBake > MaxFlagRolloutBake:
		add("step_bake", "%s is longer than 30 days", n.StepBake)
	}
	if len(errs) > 0 {
		return &flags.ValidationError{Errors: errs}
	}
	return nil
}

func variantNames(def flags.Flag) string {
	out := ""
	for i, name := range slices.Sorted(maps.Keys(def.Variants)) {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(name)
	}
	return out
}

// rolloutServe is the default rollout of a step: pct percent get variant,
// the rest control.
func rolloutServe(variant, control string, pct float64) flags.Serve {
	if pct >= 100 {
		return flags.Serve{Variant: variant}
	}
	return flags.Serve{Rollout: []flags.WeightedVariant{
		{Variant: variant, Weight: pct},
		{Variant: control, Weight: math.Round((100-pct)*100) / 100},
	}}
}

// StartFlagRollout turns the flag on in the environment with its default
// rollout at the first step and records the rollout, in one transaction.
// The flag's targeting rules stay: users they match keep what the rules
// serve. Bad requests return a *flags.ValidationError and change nothing;
// a rollout already running returns ErrRolloutRunning.
func (s *Store) StartFlagRollout(ctx context.Context, n NewFlagRollout) (FlagRollout, FlagState, error) {
	var out FlagRollout
	var state FlagState
	err := s.inTx(ctx, func(tx *Store) error {
		row, def, err := tx.flagAndEnvironment(ctx, n.FlagID, n.EnvironmentID)
		if err != nil {
			return err
		}
		if err := checkFlagRollout(def, &n); err != nil {
			return err
		}
		if _, err := tx.q.FlagRolloutRunningForUpdate(ctx, sqlcdb.FlagRolloutRunningForUpdateParams{FlagID: n.FlagID, EnvironmentID: n.EnvironmentID}); err == nil {
			return ErrRolloutRunning
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return mapError(err)
		}
		cur, expected, err := tx.lockedFlagState(ctx, n.FlagID, n.EnvironmentID)
		if err != nil {
			return err
		}
		cur.Enabled = true
		cur.DefaultRollout = rolloutServe(n.Variant, n.ControlVariant, n.Steps[0])
		segs, err := tx.segmentDefinitions(ctx, row.AppID)
		if err != nil {
			return err
		}
		cur.Version = 0
		if err := flags.Validate(def, cur, segs); err != nil {
			return err
		}
		if state, err = tx.writeFlagState(ctx, row, n.EnvironmentID, cur, expected, n.Actor); err != nil {
			return err
		}
		now := tx.Now()
		r, err := tx.q.FlagRolloutInsert(ctx, sqlcdb.FlagRolloutInsertParams{
			FlagID: n.FlagID, EnvironmentID: n.EnvironmentID, Variant: n.Variant, ControlVariant: n.ControlVariant,
			Steps: n.Steps, StepBakeMs: n.StepBake.Milliseconds(), Now: now, NextCheckAt: now, StartedBy: cmpActor(n.Actor),
		})
		if err != nil {
			if errors.Is(mapError(err), ErrAlreadyExists) {
				return ErrRolloutRunning
			}
			return mapError(err)
		}
		out = flagRolloutFromRow(r)
		if err := tx.appendFlagEvent(ctx, FlagEvent{AppID: row.AppID, FlagID: row.ID, EnvironmentID: n.EnvironmentID, Actor: n.Actor, Type: FlagEventRolloutStarted},
			map[string]any{"rollout": out.ID, "variant": out.Variant, "control_variant": out.ControlVariant, "steps": out.Steps,
				"step_bake": out.StepBake.String(), "percent": out.Percent(), "version": state.State.Version}); err != nil {
			return err
		}
		return tx.flagsChanged(ctx, row.AppID, n.EnvironmentID)
	})
	if err != nil {
		return FlagRollout{}, FlagState{}, err
	}
	return out, state, nil
}

func cmpActor(actor string) string {
	if actor == "" {
		return "system"
	}
	return actor
}

// lockedFlagState reads and locks a flag's state in an environment; a flag
// without state there gets the zero state and expected version 0.
func (s *Store) lockedFlagState(ctx context.Context, flagID, envID int64) (flags.EnvState, int64, error) {
	cur, err := s.q.FlagStateGetForUpdate(ctx, sqlcdb.FlagStateGetForUpdateParams{FlagID: flagID, EnvironmentID: envID})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return flags.EnvState{}, 0, nil
	case err != nil:
		return flags.EnvState{}, 0, mapError(err)
	}
	st, err := decodeState(cur.State, cur.Version)
	if err != nil {
		return flags.EnvState{}, 0, err
	}
	return st, cur.Version, nil
}

// FlagRollout returns a rollout by id.
func (s *Store) FlagRollout(ctx context.Context, id int64) (FlagRollout, error) {
	r, err := s.q.FlagRolloutGet(ctx, id)
	if err != nil {
		return FlagRollout{}, fmt.Errorf("flag rollout %d: %w", id, mapError(err))
	}
	return flagRolloutFromRow(r), nil
}

// CurrentFlagRollout returns the running rollout of a flag in an
// environment, or else its latest one; ErrNotFound when it never had one.
func (s *Store) CurrentFlagRollout(ctx context.Context, flagID, envID int64) (FlagRollout, error) {
	r, err := s.q.FlagRolloutLatest(ctx, sqlcdb.FlagRolloutLatestParams{FlagID: flagID, EnvironmentID: envID})
	if err != nil {
		return FlagRollout{}, mapError(err)
	}
	return flagRolloutFromRow(r), nil
}

// ListFlagRollouts returns a flag's rollouts in every environment, newest
// first.
func (s *Store) ListFlagRollouts(ctx context.Context, flagID int64, limit int) ([]FlagRollout, error) {
	rows, err := s.q.FlagRolloutListByFlag(ctx, sqlcdb.FlagRolloutListByFlagParams{FlagID: flagID, MaxRows: int32(limit)})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, flagRolloutFromRow), nil
}

// ClaimDueFlagRollouts leases up to limit running rollouts whose next check
// is due, so that one replica judges each; the lease ends with the next
// FinishFlagRolloutCheck or at leaseUntil.
func (s *Store) ClaimDueFlagRollouts(ctx context.Context, leaseUntil time.Time, limit int) ([]FlagRollout, error) {
	rows, err := s.q.FlagRolloutClaimDue(ctx, sqlcdb.FlagRolloutClaimDueParams{Now: s.Now(), LeaseUntil: &leaseUntil, MaxRows: int32(limit)})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, flagRolloutFromRow), nil
}

// NextFlagRolloutDue returns when the earliest running rollout is due; ok
// is false when none runs.
func (s *Store) NextFlagRolloutDue(ctx context.Context) (time.Time, bool, error) {
	at, err := s.q.FlagRolloutNextDue(ctx)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, mapError(err)
	}
	return at, true, nil
}

// RolloutAction is what a check of a guarded rollout concluded.
type RolloutAction string

// The actions of a check.
const (
	// RolloutWait keeps the step: warming up, not enough evidence yet, or
	// not baked long enough.
	RolloutWait RolloutAction = "wait"
	// RolloutAdvance moves to the next step; from the step before 100% it
	// completes the rollout.
	RolloutAdvance RolloutAction = "advance"
	// RolloutRollBack turns the flag off in the environment.
	RolloutRollBack RolloutAction = "roll_back"
)

// FlagRolloutCheck is the result of judging a rollout once.
type FlagRolloutCheck struct {
	RolloutID int64
	// StepIndex is the step the check judged; a rollout that moved on
	// meanwhile is left alone.
	StepIndex int
	Action    RolloutAction
	// Decision is the analysis.Decision JSON, Explanation its sentence.
	Decision    json.RawMessage
	Explanation string
	NextCheckAt time.Time
	// Actor is who acts: the rollout itself.
	Actor string
}

// ErrRolloutMoved is returned by FinishFlagRolloutCheck when the rollout
// ended or changed step after it was claimed; the check is dropped.
var ErrRolloutMoved = errors.New("the rollout moved on since it was checked")

// FinishFlagRolloutCheck applies a check in one transaction: it records the
// decision, and advances the flag's default rollout, completes the rollout
// or turns the flag off, with their history events and a flag change
// notice. A flag someone turned off meanwhile cancels the rollout instead
// of advancing it.
func (s *Store) FinishFlagRolloutCheck(ctx context.Context, c FlagRolloutCheck) (FlagRollout, error) {
	var out FlagRollout
	err := s.inTx(ctx, func(tx *Store) error {
		row, err := tx.q.FlagRolloutGetForUpdate(ctx, c.RolloutID)
		if err != nil {
			return fmt.Errorf("flag rollout %d: %w", c.RolloutID, mapError(err))
		}
		r := flagRolloutFromRow(row)
		if !r.Running() || r.StepIndex != c.StepIndex {
			return ErrRolloutMoved
		}
		upd := sqlcdb.FlagRolloutUpdateParams{
			ID: r.ID, State: string(r.State), StepIndex: int32(r.StepIndex), StepStartedAt: r.StepStartedAt,
			NextCheckAt: c.NextCheckAt, Outcome: r.Outcome, LastDecision: c.Decision,
		}
		if c.Action != RolloutWait {
			if err := tx.applyRolloutAction(ctx, r, c, &upd); err != nil {
				return err
			}
		}
		updated, err := tx.q.FlagRolloutUpdate(ctx, upd)
		if err != nil {
			return mapError(err)
		}
		out = flagRolloutFromRow(updated)
		return nil
	})
	if err != nil {
		return FlagRollout{}, err
	}
	return out, nil
}

// applyRolloutAction changes the flag's state for an advance or a rollback
// and fills in the rollout's new row.
func (s *Store) applyRolloutAction(ctx context.Context, r FlagRollout, c FlagRolloutCheck, upd *sqlcdb.FlagRolloutUpdateParams) error {
	flagRow, def, err := s.flagAndEnvironment(ctx, r.FlagID, r.EnvironmentID)
	if err != nil {
		return err
	}
	cur, expected, err := s.lockedFlagState(ctx, r.FlagID, r.EnvironmentID)
	if err != nil {
		return err
	}
	now := s.Now()
	ev := FlagEvent{AppID: flagRow.AppID, FlagID: r.FlagID, EnvironmentID: r.EnvironmentID, Actor: c.Actor}
	payload := map[string]any{"rollout": r.ID, "variant": r.Variant, "control_variant": r.ControlVariant,
		"explanation": c.Explanation, "from_percent": r.Percent()}
	finish := func(state FlagRolloutState, outcome string) {
		upd.State, upd.Outcome, upd.FinishedAt = string(state), outcome, &now
	}
	switch {
	case c.Action == RolloutAdvance && !cur.Enabled:
		// Someone turned the flag off; the rollout stops where it is.
		finish(FlagRolloutCancelled, "Stopped: the flag was turned off while the rollout ran, so it was not advanced.")
		ev.Type = FlagEventRolloutCancelled
		payload["outcome"] = upd.Outcome
		return s.appendFlagEvent(ctx, ev, payload)
	case c.Action == RolloutAdvance:
		next := r.StepIndex + 1
		pct := r.Steps[min(next, len(r.Steps)-1)]
		cur.DefaultRollout = rolloutServe(r.Variant, r.ControlVariant, pct)
		upd.StepIndex, upd.StepStartedAt, upd.NextCheckAt = int32(next), now, now
		ev.Type = FlagEventRolloutAdvanced
		payload["to_percent"] = pct
		if pct >= 100 {
			finish(FlagRolloutCompleted, fmt.Sprintf("Released: %q serves every user after %d guarded steps.", r.Variant, len(r.Steps)-1))
			ev.Type = FlagEventRolloutCompleted
			payload["outcome"] = upd.Outcome
		}
	case c.Action == RolloutRollBack:
		cur.Enabled = false
		finish(FlagRolloutRolledBack, c.Explanation)
		ev.Type = FlagEventRolloutRolledBack
	default:
		return fmt.Errorf("unknown rollout action %q", c.Action)
	}
	segs, err := s.segmentDefinitions(ctx, flagRow.AppID)
	if err != nil {
		return err
	}
	cur.Version = 0
	if err := flags.Validate(def, cur, segs); err != nil {
		return fmt.Errorf("the rollout's next state of flag %q is invalid: %w", def.Key, err)
	}
	state, err := s.writeFlagState(ctx, flagRow, r.EnvironmentID, cur, expected, c.Actor)
	if err != nil {
		return err
	}
	payload["version"] = state.State.Version
	if err := s.appendFlagEvent(ctx, ev, payload); err != nil {
		return err
	}
	return s.flagsChanged(ctx, flagRow.AppID, r.EnvironmentID)
}

// CancelFlagRollout stops a running rollout where it is: the flag keeps
// serving the current step's percentage. ErrTerminal when it has ended.
func (s *Store) CancelFlagRollout(ctx context.Context, id int64, actor string) (FlagRollout, error) {
	var out FlagRollout
	err := s.inTx(ctx, func(tx *Store) error {
		row, err := tx.q.FlagRolloutGetForUpdate(ctx, id)
		if err != nil {
			return fmt.Errorf("flag rollout %d: %w", id, mapError(err))
		}
		r := flagRolloutFromRow(row)
		if !r.Running() {
			return fmt.Errorf("flag rollout %d is %s: %w", id, r.State, ErrTerminal)
		}
		outcome := fmt.Sprintf("Cancelled by %s at %s%%; the flag keeps serving that share.", cmpActor(actor), strconv.FormatFloat(r.Percent(), 'g', -1, 64))
		out, err = tx.endRollout(ctx, r, FlagRolloutCancelled, outcome)
		if err != nil {
			return err
		}
		flag, err := tx.q.FlagGetByID(ctx, r.FlagID)
		if err != nil {
			return mapError(err)
		}
		return tx.appendFlagEvent(ctx, FlagEvent{AppID: flag.AppID, FlagID: r.FlagID, EnvironmentID: r.EnvironmentID, Actor: actor, Type: FlagEventRolloutCancelled},
			map[string]any{"rollout": r.ID, "variant": r.Variant, "control_variant": r.ControlVariant, "outcome": outcome, "from_percent": r.Percent()})
	})
	if err != nil {
		return FlagRollout{}, err
	}
	return out, nil
}

func (s *Store) endRollout(ctx context.Context, r FlagRollout, state FlagRolloutState, outcome string) (FlagRollout, error) {
	now := s.Now()
	row, err := s.q.FlagRolloutUpdate(ctx, sqlcdb.FlagRolloutUpdateParams{
		ID: r.ID, State: string(state), StepIndex: int32(r.StepIndex), StepStartedAt: r.StepStartedAt,
		NextCheckAt: r.NextCheckAt, FinishedAt: &now, Outcome: outcome, LastDecision: r.LastDecision,
	})
	if err != nil {
		return FlagRollout{}, mapError(err)
	}
	return flagRolloutFromRow(row), nil
}

// stopRolloutOnKill ends the running rollout of a flag that is being turned
// off; it runs inside KillFlag's transaction.
func (s *Store) stopRolloutOnKill(ctx context.Context, appID, flagID, envID int64, actor string) error {
	row, err := s.q.FlagRolloutRunningForUpdate(ctx, sqlcdb.FlagRolloutRunningForUpdateParams{FlagID: flagID, EnvironmentID: envID})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return mapError(err)
	}
	r := flagRolloutFromRow(row)
	outcome := fmt.Sprintf("Stopped: %s turned the flag off at %s%%.", cmpActor(actor), strconv.FormatFloat(r.Percent(), 'g', -1, 64))
	if _, err := s.endRollout(ctx, r, FlagRolloutCancelled, outcome); err != nil {
		return err
	}
	return s.appendFlagEvent(ctx, FlagEvent{AppID: appID, FlagID: flagID, EnvironmentID: envID, Actor: actor, Type: FlagEventRolloutCancelled},
		map[string]any{"rollout": r.ID, "variant": r.Variant, "control_variant": r.ControlVariant, "outcome": outcome, "from_percent": r.Percent()})
}

// InsertFlagRolloutWindows writes pushed metric windows of rollouts (their
// RunID is the rollout's id) with one COPY.
func (s *Store) InsertFlagRolloutWindows(ctx context.Context, windows []MetricWindow) (int64, error) {
	if len(windows) == 0 {
		return 0, nil
	}
	rows := make([]sqlcdb.FlagRolloutWindowsInsertParams, len(windows))
	for i, w := range windows {
		rows[i] = sqlcdb.FlagRolloutWindowsInsertParams{
			RolloutID: w.RunID, Cohort: w.Cohort, Metric: w.Metric,
			WindowStart: w.Start, WindowEnd: w.End, Count: w.Count, Sum: w.Sum,
			P50: float8(w.P50), P95: float8(w.P95), P99: float8(w.P99),
		}
	}
	n, err := s.q.FlagRolloutWindowsInsert(ctx, rows)
	if err != nil {
		return 0, fmt.Errorf("copying flag rollout windows: %w", mapError(err))
	}
	return n, nil
}

// ListFlagRolloutWindows reads one cohort's metric of a rollout in time
// order, windows starting in [from, to).
func (s *Store) ListFlagRolloutWindows(ctx context.Context, rolloutID int64, cohort, metric string, from, to time.Time) ([]MetricWindow, error) {
	rows, err := s.q.FlagRolloutWindowsList(ctx, sqlcdb.FlagRolloutWindowsListParams{
		RolloutID: rolloutID, Cohort: cohort, Metric: metric, FromStart: from, ToStart: to,
	})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.FlagRolloutWindowsListRow) MetricWindow {
		return MetricWindow{
			RunID: rolloutID, Cohort: cohort, Metric: metric, Start: r.WindowStart, End: r.WindowEnd,
			Count: r.Count, Sum: r.Sum, P50: floatPtr(r.P50), P95: floatPtr(r.P95), P99: floatPtr(r.P99),
		}
	}), nil
}
