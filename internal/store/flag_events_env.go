package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// EnvironmentFlagEvent is a flag event of one environment with the key and
// default variant of the flag it is about, for the environment's timeline.
type EnvironmentFlagEvent struct {
	FlagEvent
	FlagKey            string
	FlagDefaultVariant string
}

// beforeOrNewest turns a paging cursor into the id bound of a query: 0
// means "from the newest".
func beforeOrNewest(beforeID int64) int64 {
	if beforeID <= 0 {
		return math.MaxInt64
	}
	return beforeID
}

// ListEnvironmentFlagEvents returns up to limit flag events of an
// environment with an id below beforeID (0: from the newest), newest first.
// Changes that concern every environment (definitions, segments) are not
// among them.
func (s *Store) ListEnvironmentFlagEvents(ctx context.Context, envID, beforeID int64, limit int) ([]EnvironmentFlagEvent, error) {
	rows, err := s.q.FlagEventListByEnvironment(ctx, sqlcdb.FlagEventListByEnvironmentParams{
		EnvironmentID: envID, BeforeID: beforeOrNewest(beforeID), Max: int32(limitOr(limit, 50)),
	})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.FlagEventListByEnvironmentRow) EnvironmentFlagEvent {
		return EnvironmentFlagEvent{FlagEvent: flagEventFromRow(r.FlagEvent), FlagKey: r.FlagKey, FlagDefaultVariant: r.FlagDefaultVariant}
	}), nil
}

// ListFlagEventsBefore returns up to limit events of a flag with an id
// below beforeID (0: from the newest), newest first, for paging back
// through its history.
func (s *Store) ListFlagEventsBefore(ctx context.Context, flagID, beforeID int64, limit int) ([]FlagEvent, error) {
	rows, err := s.q.FlagEventListBefore(ctx, sqlcdb.FlagEventListBeforeParams{
		FlagID: &flagID, BeforeID: beforeOrNewest(beforeID), Max: int32(limitOr(limit, 50)),
	})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, flagEventFromRow), nil
}

// FlagEventPayload is what a flag event's payload holds; which fields are
// set depends on the event's type.
type FlagEventPayload struct {
	// Definition is the flag as created or updated.
	Definition *flags.Flag `json:"definition,omitempty"`
	// State is the environment state as set.
	State *flags.EnvState `json:"state,omitempty"`
	// Segment is the segment as created or replaced.
	Segment *flags.Segment `json:"segment,omitempty"`
	// WasEnabled says, for a kill, whether the flag was on before.
	WasEnabled *bool `json:"was_enabled,omitempty"`
	// Version is the version the change produced.
	Version int64 `json:"version,omitempty"`

	// Rollout is the guarded rollout an event of one is about; the fields
	// below it are set by the rollout events that know them.
	Rollout int64 `json:"rollout,omitempty"`
	// Variant is released over ControlVariant.
	Variant        string `json:"variant,omitempty"`
	ControlVariant string `json:"control_variant,omitempty"`
	// Steps are the percentages the rollout steps through, StepBake how
	// long each one bakes (a Go duration such as "10m0s").
	Steps    []float64 `json:"steps,omitempty"`
	StepBake string    `json:"step_bake,omitempty"`
	// Percent is the first step's share when a rollout starts;
	// FromPercent and ToPercent are the shares before and after a step.
	Percent     *float64 `json:"percent,omitempty"`
	FromPercent *float64 `json:"from_percent,omitempty"`
	ToPercent   *float64 `json:"to_percent,omitempty"`
	// Explanation is the decision's sentence that moved or rolled back
	// the rollout; Outcome the sentence that ended it.
	Explanation string `json:"explanation,omitempty"`
	Outcome     string `json:"outcome,omitempty"`
}

// DecodePayload reads the event's payload.
func (e FlagEvent) DecodePayload() (FlagEventPayload, error) {
	var p FlagEventPayload
	if len(e.Payload) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return FlagEventPayload{}, fmt.Errorf("decoding the payload of flag event %d: %w", e.ID, err)
	}
	return p, nil
}

// DescribeServe says in a few words what a fixed variant or a rollout
// serves: "true", "5% true / 95% false". An empty one serves the flag's
// default variant.
func DescribeServe(s flags.Serve, defaultVariant string) string {
	if len(s.Rollout) > 0 {
		parts := make([]string, 0, len(s.Rollout))
		for _, wv := range s.Rollout {
			parts = append(parts, FormatPercent(wv.Weight)+"% "+wv.Variant)
		}
		return strings.Join(parts, " / ")
	}
	if s.Variant != "" {
		return s.Variant
	}
	if defaultVariant != "" {
		return defaultVariant
	}
	return "the default variant"
}

// FormatPercent writes a rollout weight without trailing zeros: 5, 12.5.
func FormatPercent(w float64) string {
	return strconv.FormatFloat(w, 'f', -1, 64)
}

// DescribeFlagState sums up a flag's state in an environment: "on, 2
// rules, default 5% true / 95% false".
func DescribeFlagState(st flags.EnvState, defaultVariant string) string {
	onOff := "off"
	if st.Enabled {
		onOff = "on"
	}
	return onOff + ", " + Plural(len(st.Rules), "rule", "rules") + ", default " + DescribeServe(st.DefaultRollout, defaultVariant)
}

// Plural writes a count with its noun: "1 rule", "2 rules", "no rules".
func Plural(n int, one, many string) string {
	switch n {
	case 0:
		return "no " + many
	case 1:
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// DescribeFlagDefinition sums up a flag's definition: "boolean; variants
// false, true; default false".
func DescribeFlagDefinition(def flags.Flag) string {
	names := make([]string, 0, len(def.Variants))
	for name := range def.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	out := string(def.Type) + "; variants " + strings.Join(names, ", ") + "; default " + def.DefaultVariant
	if def.OffVariant != "" && def.OffVariant != def.DefaultVariant {
		out += "; off " + def.OffVariant
	}
	return out
}

// DescribeSegment sums up a segment: "employees: 1 clause, 3 included
// keys".
func DescribeSegment(seg flags.Segment) string {
	return seg.Key + ": " + DescribeSegmentMembers(seg)
}

// DescribeSegmentMembers says how a segment picks its users: "1 clause, 3
// included keys".
func DescribeSegmentMembers(seg flags.Segment) string {
	parts := []string{Plural(len(seg.Clauses), "clause", "clauses")}
	if len(seg.IncludedKeys) > 0 {
		parts = append(parts, Plural(len(seg.IncludedKeys), "included key", "included keys"))
	}
	if len(seg.ExcludedKeys) > 0 {
		parts = append(parts, Plural(len(seg.ExcludedKeys), "excluded key", "excluded keys"))
	}
	return strings.Join(parts, ", ")
}

// DescribeFlagEvent is the audit log's detail of a flag or segment event:
// which flag or segment, and what it is now.
func DescribeFlagEvent(e FlagEvent, flagKey, defaultVariant string) string {
	p, err := e.DecodePayload()
	if err != nil {
		return flagKey
	}
	version := ""
	if p.Version > 0 {
		version = " (version " + strconv.FormatInt(p.Version, 10) + ")"
	}
	switch e.Type {
	case FlagEventCreated, FlagEventUpdated:
		if p.Definition != nil {
			return flagKey + ": " + DescribeFlagDefinition(*p.Definition) + version
		}
	case FlagEventStateChanged:
		if p.State != nil {
			return flagKey + ": " + DescribeFlagState(*p.State, defaultVariant) + version
		}
	case FlagEventKilled:
		if p.WasEnabled != nil && !*p.WasEnabled {
			return flagKey + " was already off; the kill switch stays off" + version
		}
		return flagKey + " turned off by its kill switch" + version
	case SegmentEventCreated, SegmentEventUpdated:
		if p.Segment != nil {
			return "segment " + DescribeSegment(*p.Segment) + version
		}
	}
	if text, ok := DescribeFlagRolloutEvent(e.Type, p, "", ""); ok {
		return flagKey + ": " + text + version
	}
	return flagKey + version
}

// DescribeFlagRolloutEvent words an event of a guarded rollout: "guarded
// rollout started in production: true to 5% → 25% → 50% → 100%, 10m per
// step", "rollout moved true from 5% to 25% in production". env names
// where it happened ("" leaves it out, as where a column says it);
// variant names the released variant when the payload does not. ok is
// false for events that are not about a guarded rollout.
func DescribeFlagRolloutEvent(typ string, p FlagEventPayload, env, variant string) (text string, ok bool) {
	in := ""
	if env != "" {
		in = " in " + env
	}
	variant = cmp.Or(p.Variant, variant)
	at := ""
	if p.FromPercent != nil {
		at = " at " + FormatPercent(*p.FromPercent) + "%"
	}
	switch typ {
	case FlagEventRolloutStarted:
		text = "guarded rollout started" + in
		var what []string
		if variant != "" {
			what = append(what, variant)
		}
		if len(p.Steps) > 0 {
			steps := make([]string, len(p.Steps))
			for i, s := range p.Steps {
				steps[i] = FormatPercent(s) + "%"
			}
			what = append(what, "to "+strings.Join(steps, " → "))
		}
		detail := strings.Join(what, " ")
		if bake, err := time.ParseDuration(p.StepBake); err == nil && p.StepBake != "" {
			detail = strings.TrimPrefix(detail+", "+FormatBake(bake)+" per step", ", ")
		}
		if detail != "" {
			text += ": " + detail
		}
		return text, true
	case FlagEventRolloutAdvanced:
		text = "rollout moved"
		if variant != "" {
			text += " " + variant
		}
		if p.FromPercent != nil && p.ToPercent != nil {
			text += " from " + FormatPercent(*p.FromPercent) + "% to " + FormatPercent(*p.ToPercent) + "%"
		}
		return text + in, true
	case FlagEventRolloutCompleted:
		text = "guarded rollout completed" + in
		if variant != "" {
			text += ": " + variant + " serves every user"
		}
		return text, true
	case FlagEventRolloutRolledBack:
		text = "rollout rolled back" + in + at
		// Decisions that roll back say so first ("Rolled back: ...",
		// "Rolled back during warm-up: ..."); the history says it once.
		switch rest, cut := strings.CutPrefix(p.Explanation, "Rolled back"); {
		case cut && rest != "":
			text += strings.TrimSuffix(rest, ".")
		case p.Explanation != "":
			text += ": " + strings.TrimSuffix(p.Explanation, ".")
		default:
			text += "; the flag was turned off"
		}
		return text, true
	case FlagEventRolloutCancelled:
		if rest, stopped := strings.CutPrefix(p.Outcome, "Stopped: "); stopped {
			if at != "" && strings.Contains(rest, strings.TrimPrefix(at, " at ")) {
				at = ""
			}
			return "rollout stopped" + in + at + ": " + strings.TrimSuffix(rest, "."), true
		}
		return "rollout cancelled" + in + at + "; the flag keeps serving that share", true
	}
	return "", false
}

// FormatBake writes a step's bake as it is typed: "10m", "1h30m", "90s",
// "3d".
func FormatBake(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d <= 0:
		return "0s"
	case d%time.Second != 0:
		return d.String()
	case d%day == 0 && d >= 2*day:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	var b strings.Builder
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
	}
	if m := d % time.Hour / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
	}
	if s := d % time.Minute / time.Second; s > 0 {
		b.WriteString(strconv.FormatInt(int64(s), 10) + "s")
	}
	return b.String()
}
