package templates

import (
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// EnvironmentView is what the environment page shows.
type EnvironmentView struct {
	AppSlug string
	AppName string
	Env     store.Environment
	// Role is the viewer's role here; CanRollback and CanEdit follow from it.
	Role        auth.Role
	CanRollback bool
	CanEdit     bool
	Now         time.Time
	// Current is the run in flight, nil when the environment is idle;
	// Queued are the runs waiting behind it, oldest first.
	Current *EnvRunInFlight
	Queued  []store.Run
	// History is one page of runs, newest first. Older, when not zero, is
	// the ?before= of the next page; Newest is false on later pages.
	History []store.Run
	Older   int64
	Newest  bool
	// Timeline interleaves the page's runs with the flag changes made in
	// the environment, newest first. OlderFlags, when not zero, is the
	// ?flags_before= of the next page; HasOlder says there is one.
	Timeline   []EnvTimelineEntry
	OlderFlags int64
	HasOlder   bool
	// Schema lists the app's expand–contract schema changes with the phase
	// this environment has reached in each.
	Schema []EnvSchemaChange
	// Rollback says whether "roll back to previous" can be offered.
	Rollback EnvRollback
	Settings EnvSettingsForm
}

// EnvRunInFlight is the run in flight with where it is and how it does.
type EnvRunInFlight struct {
	Run        store.Run
	PhaseName  string
	PhaseIndex int
	PhaseCount int
	// Verdict and Explanation are the latest decision's; empty before one.
	Verdict     string
	Explanation string
}

// EnvRollback is the environment's "roll back to previous": To is the
// version it returns to, or empty when there is none; Blocked says why it
// cannot be done now, if it cannot.
type EnvRollback struct {
	To      string
	Blocked string
	// SchemaBlocked is set when the schema changes are what block it, which
	// an administrator may override with a reason.
	SchemaBlocked bool
}

// EnvSettingsForm is the settings form, as stored or as typed, with the
// problems found in it keyed by field (thresholds as "thresholds.<name>").
type EnvSettingsForm struct {
	// Digest identifies the stored settings the form was based on, so a
	// change made meanwhile by someone else is noticed instead of lost.
	Digest             string
	Tier               string
	DefaultStrategy    string
	StrategyDefaults   string
	Driver             string
	Metrics            string
	FailurePolicy      string
	RequireApproval    bool
	ApproverNotStarter bool
	Thresholds         []EnvThresholdField
	Errors             map[string][]string
	// Error is a problem with the form as a whole.
	Error string

	Tiers           []string
	Strategies      []string
	FailurePolicies []string
}

// EnvThresholdField is one threshold of the form: empty Value means the
// default applies.
type EnvThresholdField struct {
	Name    string
	Label   string
	Hint    string
	Default string
	Value   string
	// Bool marks a yes/no threshold, shown as a checkbox; Value is "true"
	// when it is on.
	Bool bool
}

// envThresholdText names and explains each threshold of the rollback
// decision for the settings form, in the order the form shows them.
var envThresholdText = []struct{ name, label, hint string }{
	{"error_rate_pp", "Error rate increase", "percentage points the candidate's error rate may exceed the baseline's"},
	{"p99_ratio", "p99 latency ratio", "times the baseline's p99 latency the candidate's may reach"},
	{"health_check_failures", "Failed health checks", "failed health checks tolerated"},
	{"warmup", "Warm-up", "ignored after each traffic change, such as 5m"},
	{"confidence", "Confidence", "of every statistical test, at least 0.5 and below 1"},
	{"exposure_limit", "Exposure limit", "share of users (0 to 1) above which a degraded candidate is rolled back rather than watched longer"},
	{"fast_fail_ratio", "Fast-fail ratio", "during warm-up, an error rate this many times the baseline's rolls back at once"},
	{"fast_fail_min_requests", "Fast-fail evidence", "requests the fast-fail guard needs before it acts"},
	{"cpu_increase", "CPU increase", "share of utilisation (0 to 1) the candidate may use above the baseline"},
	{"memory_increase", "Memory increase", "share of utilisation (0 to 1) the candidate may use above the baseline"},
	{"trend_windows", "Trend windows", "recent windows that decide \"getting worse\" (2 to 20)"},
	{"window", "Analysis window", "length of one analysis window, such as 30s"},
	{"min_signature_count", "New error signature", "times an error message must appear, never seen in the baseline, to count as new"},
	{"strict", "Strict error rate", "degraded only when above the threshold with confidence, not merely above the baseline"},
}

// EnvThresholdOrder lists the thresholds in the order the form shows them.
func EnvThresholdOrder() []string {
	names := make([]string, len(envThresholdText))
	for i, t := range envThresholdText {
		names[i] = t.name
	}
	return names
}

// EnvThresholdLabel returns a threshold's label and explanation; a
// threshold without one is shown by its name.
func EnvThresholdLabel(name string) (label, hint string) {
	for _, t := range envThresholdText {
		if t.name == name {
			return t.label, t.hint
		}
	}
	return name, ""
}

// envFieldErrors returns the problems of one field of the settings form.
func (f EnvSettingsForm) envFieldErrors(key string) []string { return f.Errors[key] }

// envHasError reports whether the field has a problem, for its styling.
func (f EnvSettingsForm) envHasError(key string) bool { return len(f.Errors[key]) > 0 }

// envEffective is the threshold's value in force: the one set, or the
// default.
func envEffective(t EnvThresholdField) string {
	if t.Value != "" {
		return t.Value
	}
	return t.Default
}

// envPhase is where the run in flight is in its plan.
func envPhase(r *EnvRunInFlight) string {
	if r.PhaseCount == 0 {
		return "waiting to start"
	}
	return fmt.Sprintf("%s · phase %d of %d", r.PhaseName, r.PhaseIndex+1, r.PhaseCount)
}

// envRunDuration is how long a run took, or has taken so far.
func envRunDuration(r store.Run, now time.Time) string {
	switch {
	case r.StartedAt == nil:
		return "—"
	case r.FinishedAt == nil:
		return envDuration(now.Sub(*r.StartedAt)) + " so far"
	}
	return envDuration(r.FinishedAt.Sub(*r.StartedAt))
}

// envVersions is "v1 → v2", or "→ v1" on a first deploy.
func envVersions(r store.Run) string {
	if r.FromVersion == "" {
		return "first deploy → " + r.ToVersion
	}
	return r.FromVersion + " → " + r.ToVersion
}

// envRollbackConfirm is the question asked before rolling back.
func (v EnvironmentView) envRollbackConfirm() string {
	return fmt.Sprintf("Roll back %s/%s from %s to %s? This starts a blue-green run that moves all traffic back to %s.",
		v.AppSlug, v.Env.Name, v.Env.StableVersion, v.Rollback.To, v.Rollback.To)
}

// EnvSchemaChange is one schema change of the app as one environment sees
// it: which of expand, migrate and contract it has reached.
type EnvSchemaChange struct {
	Key         string
	Description string
	// Reached is the furthest phase reached here, "" for none; Next is the
	// phase to record next, "" after the contract.
	Reached string
	Next    string
	// Phases are expand, migrate and contract with when each was reached
	// here (zero when not yet).
	Phases []EnvSchemaPhase
}

// EnvSchemaPhase is one phase of a schema change in one environment.
type EnvSchemaPhase struct {
	Name      string
	Done      bool
	ReachedAt time.Time
	ReachedBy string
}
