package templates

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/a-h/templ"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// FlagsView is the flag list of an app: every flag with what it serves in
// each environment, the app's segments, and the forms that create them.
type FlagsView struct {
	AppSlug string
	AppName string
	// Environments are the column heads, development first.
	Environments []FlagEnvHead
	Rows         []FlagRow
	// CanEditApp is true for members who may change what every
	// environment shares: definitions and segments.
	CanEditApp bool
	// AppRoleNote says why the member may not, when they may not.
	AppRoleNote string
	Create      FlagDefinitionForm
	Segments    []SegmentRow
	NewSegment  SegmentForm
}

// FlagEnvHead is one environment column.
type FlagEnvHead struct {
	Name string
	Tier string
}

// FlagRow is one flag of the list.
type FlagRow struct {
	Key         string
	Type        string
	Description string
	Cells       []FlagCell
}

// FlagCell is a flag's state in one environment, in a few words.
type FlagCell struct {
	Env        string
	On         bool
	Configured bool
	// Summary is "on · 2 rules · 5% true", "off" or "not configured";
	// "on · rolling out · 25%" while a guarded rollout runs there.
	Summary string
	Href    templ.SafeURL
	// Rolling is true while a guarded rollout runs there; Title says
	// more about it.
	Rolling bool
	Title   string
}

// FlagProblem is one problem with submitted input, named by its JSON path
// such as rules[0].clauses[1].op.
type FlagProblem struct {
	Field   string
	Message string
}

// FlagDefinitionForm creates a flag or edits its definition, as stored or
// as typed.
type FlagDefinitionForm struct {
	Key            string
	Type           string
	Variants       string
	DefaultVariant string
	OffVariant     string
	Description    string
	// Version is the definition's version the form was based on; 0 on the
	// form that creates a flag.
	Version int64
	// Errors holds the problems per form field: key, type, variants,
	// default_variant, off_variant, description; Problems lists every one
	// with its full path, and Error is a problem with the form as a whole.
	Errors   map[string][]string
	Problems []FlagProblem
	Error    string
}

// FlagTypes are the types a flag can have, in the order the form offers.
var FlagTypes = []string{"boolean", "string", "number", "object"}

// SegmentRow is one segment of the app with its editor.
type SegmentRow struct {
	Key     string
	Name    string
	Summary string
	Form    SegmentForm
}

// SegmentForm is a segment's JSON editor, as stored or as typed. Key is
// empty and Version 0 on the form that creates one.
type SegmentForm struct {
	Key      string
	Version  int64
	Text     string
	Problems []FlagProblem
	Error    string
	// Open keeps the editor unfolded, as after a refused save.
	Open bool
}

// FlagView is the page of one flag: its definition, its state in every
// environment, the selected environment's editor, the evaluator and the
// history.
type FlagView struct {
	AppSlug     string
	AppName     string
	Key         string
	Type        string
	Description string
	Variants    []FlagVariantRow
	// DefinitionVersion is the stored definition's version.
	DefinitionVersion int64
	CanEditApp        bool
	AppRoleNote       string
	Definition        FlagDefinitionForm

	Environments []FlagEnvTab
	// Env is the selected environment, whose state the page edits.
	Env FlagEnvState

	Evaluate FlagEvaluateForm
	History  FlagHistory
	Now      time.Time
}

// FlagVariantRow is one variant with its JSON value.
type FlagVariantRow struct {
	Name    string
	Value   string
	Default bool
	Off     bool
}

// FlagEnvTab is one environment in the page's environment switcher.
type FlagEnvTab struct {
	Name       string
	Tier       string
	On         bool
	Configured bool
	Summary    string
	Selected   bool
	Href       templ.SafeURL
	// Rolling is true while a guarded rollout runs there.
	Rolling bool
}

// FlagEnvState is the flag in the selected environment, with what the
// member may do there.
type FlagEnvState struct {
	Name       string
	Tier       string
	Role       auth.Role
	CanEdit    bool
	Configured bool
	On         bool
	Version    int64
	UpdatedBy  string
	UpdatedAt  time.Time
	// OffVariant is what everyone gets while the flag is off.
	OffVariant string
	// Rules are the targeting rules in words, in order; Default is what
	// users matched by no rule get.
	Rules   []FlagRuleLine
	Default string
	// Rollout is the quick control of a boolean flag's default rollout;
	// nil for other flags.
	Rollout *FlagRolloutControl
	Editor  FlagStateEditor
	// Guarded is the guarded rollout of the flag in this environment.
	Guarded FlagGuardedRollout
}

// FlagGuardedRollout is the guarded rollout panel of the selected
// environment: the running rollout with its latest decision, or else the
// outcome of the latest one and the form that starts another.
type FlagGuardedRollout struct {
	AppSlug string
	FlagKey string
	Env     string
	// CanEdit is true for deployers on the environment; RoleNote says why
	// the member may not start or cancel one otherwise.
	CanEdit  bool
	RoleNote string
	// Running is the running rollout; nil when none runs.
	Running *FlagRolloutRunning
	// Last is the latest rollout when it has ended; nil otherwise.
	Last *FlagRolloutEnded
	Form FlagRolloutForm
	// Variants are the flag's variants, for the form's choices.
	Variants []string
	// MetricsPath is where applications push metrics by variant.
	MetricsPath string
	// Seen names what the panel shows (rollout, step, state, flag state
	// version); a refresh that sees something else also refreshes the
	// rest of the page.
	Seen string
	// Error says why the last action on the panel was refused.
	Error string
	Now   time.Time
}

// FlagRolloutRunning is a running guarded rollout.
type FlagRolloutRunning struct {
	ID             int64
	Variant        string
	ControlVariant string
	Steps          []FlagRolloutStep
	// Percent is the share served Variant now, such as "25%".
	Percent    string
	StepNumber int
	StepCount  int
	// StepBake is how long each step bakes ("10m"); Baked how long the
	// current one has, BakedPercent the same as a share of the bake.
	StepBake     string
	Baked        string
	BakedPercent int
	// BakeOver is true once the step has baked its whole time: it moves
	// on at the next check that says continue.
	BakeOver  bool
	NextCheck time.Time
	StartedBy string
	StartedAt time.Time
	// FlagOff is true when someone turned the flag off while it runs.
	FlagOff bool
	// Decision is the latest check's decision; nil before the first.
	Decision      *FlagRolloutDecision
	CancelConfirm string
}

// FlagRolloutStep is one step of a guarded rollout.
type FlagRolloutStep struct {
	Number  int
	Percent string
	// Status is done, current or next.
	Status string
}

// FlagRolloutDecision is the decision of a rollout's latest check.
type FlagRolloutDecision struct {
	Verdict      string
	VerdictLabel string
	Explanation  string
	At           time.Time
	// Earlier says the decision judged the step before this one (it moved
	// the rollout here); empty for a decision of the current step.
	Earlier string
	Metrics []RunMetricRow
}

// FlagRolloutEnded is a guarded rollout that has ended.
type FlagRolloutEnded struct {
	// State is completed, rolled_back or cancelled; Label words it and
	// Badge colours it.
	State string
	Label string
	Badge string
	// Outcome says in a sentence how it ended; Explanation is the
	// decision that rolled it back.
	Outcome     string
	Explanation string
	FinishedAt  time.Time
	// Summary says what it was: "true over false, 5% → 25% → 50% →
	// 100%, 10m per step, started by paul".
	Summary string
}

// FlagRolloutForm starts a guarded rollout, as offered or as typed.
type FlagRolloutForm struct {
	Variant        string
	ControlVariant string
	Steps          string
	StepBake       string
	// Errors holds the problems per field: variant, control_variant,
	// steps, step_bake; Problems lists those of no field of the form.
	Errors   map[string][]string
	Problems []FlagProblem
	Error    string
}

// fieldErrors returns the problems of one field of the form.
func (f FlagRolloutForm) fieldErrors(key string) []string { return f.Errors[key] }

// hasError reports whether a field of the form has a problem.
func (f FlagRolloutForm) hasError(key string) bool { return len(f.Errors[key]) > 0 }

// pollAttrs make a running rollout's panel refresh itself every five
// seconds; an ended one's panel stays as it is.
func (g FlagGuardedRollout) pollAttrs() templ.Attributes {
	if g.Running == nil {
		return templ.Attributes{}
	}
	return templ.Attributes{
		"hx-get":     string(FlagGuardedRolloutPath(g.AppSlug, g.FlagKey, g.Env)) + "?seen=" + url.QueryEscape(g.Seen),
		"hx-trigger": "every 5s",
		"hx-swap":    "outerHTML",
	}
}

// FlagGuardedRolloutPath is the guarded rollout of a flag in an
// environment: GET answers its panel, POST starts one.
func FlagGuardedRolloutPath(app, key, env string) templ.SafeURL {
	return flagEnvAction(app, key, env, "guarded-rollout")
}

// flagNextCheck says when a running rollout is judged next.
func flagNextCheck(at, now time.Time) string {
	if !at.After(now.Add(time.Second)) {
		return "due now"
	}
	return "in " + RunDuration(at.Sub(now))
}

// flagBakeStyle is the width of the bake's progress bar.
func flagBakeStyle(percent int) string {
	return runWidth(min(max(percent, 0), 100))
}

// FlagRuleLine is one targeting rule in words.
type FlagRuleLine struct {
	Number  int
	Name    string
	Matches string
	Serves  string
}

// FlagRolloutControl rolls a boolean flag's true variant out to a share of
// the users no rule matches.
type FlagRolloutControl struct {
	TrueVariant  string
	FalseVariant string
	Percent      string
	Error        string
}

// FlagStateEditor is the JSON editor of the selected environment's state,
// as stored or as typed.
type FlagStateEditor struct {
	Text     string
	Version  int64
	Problems []FlagProblem
	Error    string
}

// FlagEvaluateForm asks what a user would get, and shows the answer.
type FlagEvaluateForm struct {
	Env          string
	TargetingKey string
	Attributes   string
	Result       *FlagEvalResult
	Error        string
}

// FlagEvalResult is the answer of the evaluator.
type FlagEvalResult struct {
	Env       string
	Variant   string
	Value     string
	Reason    string
	Rule      string
	ErrorCode string
	// Explanation says in a sentence why the user gets this.
	Explanation string
}

// FlagHistory is one page of a flag's history, newest first.
type FlagHistory struct {
	Entries []FlagHistoryEntry
	// Older, when not zero, continues after the last entry; Newest is
	// false on later pages.
	Older  int64
	Newest bool
}

// FlagHistoryEntry is one change of the flag.
type FlagHistoryEntry struct {
	ID    int64
	At    time.Time
	Actor string
	Env   string
	Kind  string
	Text  string
}

// EnvTimelineEntry is one line of an environment's timeline: a run, or a
// change of a flag in the environment.
type EnvTimelineEntry struct {
	Run  *store.Run
	Flag *EnvFlagChange
}

// EnvFlagChange is a change of a flag in an environment.
type EnvFlagChange struct {
	ID      int64
	At      time.Time
	Actor   string
	FlagKey string
	// Kind is the event type, such as flag.killed; Text says what changed.
	Kind string
	Text string
	// On is the flag's kill switch after the change.
	On bool
}

// FlagsPath is an app's flag list.
func FlagsPath(app string) templ.SafeURL {
	return templ.SafeURL("/apps/" + url.PathEscape(app) + "/flags")
}

// segmentsPath is where an app's segment editors post.
func segmentsPath(app string) templ.SafeURL {
	return templ.SafeURL("/apps/" + url.PathEscape(app) + "/segments")
}

// FlagPath is a flag's page, with the environment selected when env is
// not empty.
func FlagPath(app, key, env string) templ.SafeURL {
	p := "/apps/" + url.PathEscape(app) + "/flags/" + url.PathEscape(key)
	if env != "" {
		p += "?env=" + url.QueryEscape(env)
	}
	return templ.SafeURL(p)
}

// flagEnvAction is where a form acting on the flag in an environment posts.
func flagEnvAction(app, key, env, action string) templ.SafeURL {
	return templ.SafeURL("/apps/" + url.PathEscape(app) + "/flags/" + url.PathEscape(key) +
		"/environments/" + url.PathEscape(env) + "/" + action)
}

// flagAction is where a form acting on the flag as a whole posts.
func flagAction(app, key, action string) templ.SafeURL {
	return templ.SafeURL("/apps/" + url.PathEscape(app) + "/flags/" + url.PathEscape(key) + "/" + action)
}

// flagKillConfirm is the question asked before the kill switch.
func (v FlagView) flagKillConfirm() string {
	return fmt.Sprintf("Turn %s off in %s/%s? Every user there gets %s at once.", v.Key, v.AppSlug, v.Env.Name, v.Env.OffVariant)
}

// flagHistoryOlder is the next page of the history.
func (v FlagView) flagHistoryOlder() templ.SafeURL {
	return templ.SafeURL(string(FlagPath(v.AppSlug, v.Key, v.Env.Name)) + "&before=" + strconv.FormatInt(v.History.Older, 10) + "#history")
}

// flagFieldErrors returns the problems of one field of a definition form.
func (f FlagDefinitionForm) flagFieldErrors(key string) []string { return f.Errors[key] }

// flagHasError reports whether a field of a definition form has a problem.
func (f FlagDefinitionForm) flagHasError(key string) bool { return len(f.Errors[key]) > 0 }

// flagOnClass colours an on/off state.
func flagOnClass(on, configured bool) string {
	switch {
	case !configured:
		return "flag-state flag-unset"
	case on:
		return "flag-state flag-on"
	}
	return "flag-state flag-off"
}

// envTimelineOlder is the next page of the environment's timeline.
func (v EnvironmentView) envTimelineOlder() templ.SafeURL {
	q := url.Values{}
	if v.Older != 0 {
		q.Set("before", strconv.FormatInt(v.Older, 10))
	}
	if v.OlderFlags != 0 {
		q.Set("flags_before", strconv.FormatInt(v.OlderFlags, 10))
	}
	return templ.SafeURL(string(envPath(v.AppSlug, v.Env.Name)) + "?" + q.Encode() + "#history")
}

// envFlagChangeClass colours a flag change on the timeline.
func envFlagChangeClass(ch *EnvFlagChange) string {
	if ch.Kind == store.FlagEventKilled || ch.Kind == store.FlagEventRolloutRolledBack {
		return "badge flag-badge flag-badge-off"
	}
	if ch.On {
		return "badge flag-badge flag-badge-on"
	}
	return "badge flag-badge"
}
