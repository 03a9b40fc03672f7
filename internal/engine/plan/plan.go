package plan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Limits on the input to Build. They keep a plan small enough to store as one
// record and to draw on a run page, and catch typos such as a bake of "300d".
const (
	// MaxInstances is the largest fleet a plan is built for.
	MaxInstances = 10_000
	// MaxDuration is the longest bake or test duration a parameter may ask for.
	MaxDuration = 30 * day
)

// Roles a version plays in a desired state. The engine compares the
// candidate against the baseline cohort named by a phase; the role tells a
// driver and a page which of the two versions is the one being released.
const (
	// RoleStable is the version running before the run started.
	RoleStable = "stable"
	// RoleCandidate is the version the run releases.
	RoleCandidate = "candidate"
)

// Phase kinds. A kind tells the engine and pages what a phase is for, so a
// timeline can draw a switch differently from a bake without parsing names.
const (
	// KindStopOld stops the old version (recreate); nothing serves until the
	// new version starts, which is the strategy's expected downtime.
	KindStopOld = "stop_old"
	// KindStartNew starts the new version at full size with all traffic.
	KindStartNew = "start_new"
	// KindHealthCheck watches the new version's own health, because no other
	// version serves users to compare it with.
	KindHealthCheck = "health_check"
	// KindBatch replaces one batch of instances in a rolling run.
	KindBatch = "batch"
	// KindStartGreen starts green beside blue, without user traffic.
	KindStartGreen = "start_green"
	// KindPreSwitch checks green with health and synthetic checks before it
	// gets user traffic, so a broken green is caught before anyone sees it.
	KindPreSwitch = "pre_switch"
	// KindSwitch moves all user traffic from blue to green at once.
	KindSwitch = "switch"
	// KindKeepWarm keeps blue running after the switch so flipping back
	// takes seconds rather than a restart.
	KindKeepWarm = "keep_warm"
	// KindRetire scales blue down once green has proven itself.
	KindRetire = "retire"
	// KindShift moves a canary step's share of traffic to the new version.
	KindShift = "shift"
	// KindStartShadow starts the shadow, which never serves users.
	KindStartShadow = "start_shadow"
	// KindMirror mirrors a copy of traffic to the shadow and compares its
	// latency and responses with the primary's.
	KindMirror = "mirror"
	// KindStartArm starts an A/B test's B arm before users are split.
	KindStartArm = "start_arm"
	// KindSplit splits users stickily between the arms of an A/B test.
	KindSplit = "split"
	// KindReport ends a shadow or A/B run with its findings and waits for a
	// person, because promoting on that evidence is a human decision.
	KindReport = "report"
	// KindRing routes one more ring of users to the new version.
	KindRing = "ring"
)

// PhaseKinds lists every phase kind, so the API and tests can check a kind
// against the closed set.
var PhaseKinds = []string{
	KindStopOld, KindStartNew, KindHealthCheck, KindBatch, KindStartGreen,
	KindPreSwitch, KindSwitch, KindKeepWarm, KindRetire, KindShift,
	KindStartShadow, KindMirror, KindStartArm, KindSplit, KindReport, KindRing,
}

// Baselines a phase's analysis compares the candidate against. An analysed
// phase with no baseline judges the candidate on its own health against
// absolute thresholds, which is all there is when no other version serves
// users (a recreate health check, the last step of a canary, a first deploy).
const (
	// BaselineStable is the old version serving the rest of the users.
	BaselineStable = "stable"
	// BaselineBlue is the blue environment, during and after the switch.
	BaselineBlue = "blue"
	// BaselinePrimary is the version whose traffic is mirrored to a shadow.
	BaselinePrimary = "primary"
	// BaselineArmA is the control arm of an A/B test.
	BaselineArmA = "arm_a"
)

// Match kinds of a cohort rule.
const (
	// MatchHash matches the Percent of keys whose hash falls in the first
	// Percent buckets, so the same user always lands in the same cohort and a
	// larger percent always includes a smaller one.
	MatchHash = "hash"
	// MatchHeader matches requests whose header Key has one of Values.
	MatchHeader = "header"
	// MatchCookie matches requests whose cookie Key has one of Values.
	MatchCookie = "cookie"
	// MatchAll matches every request; it ends a list of cohort rules.
	MatchAll = "all"
)

// Estimates of how long the steps of a rollback take, used for
// Rollback.ExpectedDuration so pages can tell an on-call engineer what to
// expect. They are estimates, not deadlines.
const (
	// trafficShiftTime is how long a driver takes to move weights or routes.
	trafficShiftTime = 10 * second
	// instanceStartTime is how long a driver takes to start a batch of
	// instances and see them ready.
	instanceStartTime = 30 * second
)

// Target is what a run deploys: from which version, to which version, on a
// fleet of what size.
type Target struct {
	// FromVersion is the version running now, or "" on the first deploy to
	// an environment.
	FromVersion string `json:"from_version"`
	// ToVersion is the version the run releases.
	ToVersion string `json:"to_version"`
	// Instances is the fleet size of the environment, at least 1.
	Instances int `json:"instances"`
}

// Plan is what a strategy compiles to: the ordered phases the engine steps a
// run through and how to undo it. A plan is stored with the run, so it
// records the parameters as they actually ran.
type Plan struct {
	// Strategy is the strategy the plan was built from.
	Strategy Strategy `json:"strategy"`
	// Params are the strategy's parameters with every default filled in, so
	// the record shows what actually ran. Building again from them gives the
	// same plan.
	Params json.RawMessage `json:"params"`
	// FirstDeploy is true when there was no running version. Every strategy
	// that allows it then compiles to "start new version → health check",
	// because there is no old version to share traffic with, to compare
	// against or to return to.
	FirstDeploy bool `json:"first_deploy,omitempty"`
	// Phases are executed in order.
	Phases []Phase `json:"phases"`
	// Rollback is how the engine undoes the run from any phase.
	Rollback Rollback `json:"rollback"`
	// ExtraInfraShare is the most extra capacity the run needs while it is
	// active, as a share of the fleet: the largest number of instances in
	// any phase, minus the fleet, divided by the fleet. Blue-green needs 1.0,
	// rolling and recreate 0. Budget-minded teams choose strategies by it.
	ExtraInfraShare float64 `json:"extra_infra_share"`
	// Downtime is true when some phase has no version serving users, as in
	// recreate. The downtime is expected and recorded rather than treated as
	// a failure.
	Downtime bool `json:"downtime"`
}

// Phase is one step of a plan: a desired state for the driver to make true,
// then a bake during which the candidate may be analysed.
type Phase struct {
	// Name is shown to people, e.g. "canary 5%" or "ring 1: early adopters".
	Name string `json:"name"`
	// Kind is one of PhaseKinds.
	Kind string `json:"kind"`
	// Desired is what the driver must make true when the phase starts.
	Desired DesiredState `json:"desired"`
	// Bake is how long the phase holds before it may complete.
	Bake Duration `json:"bake"`
	// Analysis is whether the candidate is judged during the bake; the
	// decision logic may then extend the bake or roll back.
	Analysis bool `json:"analysis"`
	// Baseline names the cohort the candidate is compared against (one of
	// the Baseline constants). It is empty when the phase is not analysed,
	// or when the candidate is judged on its own health because no other
	// version serves users.
	Baseline string `json:"baseline,omitempty"`
	// ApprovalRequired means a person must approve before the next phase
	// starts, as between rings.
	ApprovalRequired bool `json:"approval_required"`
	// MinApprovers is how many different people must approve; 0 leaves it
	// to the environment's approval policy, and the larger of the two
	// applies.
	MinApprovers int `json:"min_approvers,omitempty"`
	// ManualPromote means the plan stops here until a person promotes the
	// candidate or closes the run, because the evidence (a shadow
	// comparison, an experiment's winner) needs a human decision.
	ManualPromote bool `json:"manual_promote,omitempty"`
	// ExposedShare is the share of users served by the candidate in this
	// phase, from 0 to 1. The decision logic weighs how many users a
	// degradation hurts by it.
	ExposedShare float64 `json:"exposed_share"`
	// Experiment is the stopping rule of an A/B split; nil elsewhere.
	Experiment *Experiment `json:"experiment,omitempty"`
}

// Experiment tells the engine when an A/B split may stop before its bake
// (the test's max duration) runs out: after MinDuration, once the difference
// between the arms is significant at Significance for an effect of at least
// MinDetectableEffect. The engine decides significance; the plan records the
// rule so the run shows what it was held to.
type Experiment struct {
	// MinDuration is the earliest the split may stop, so weekly patterns and
	// early noise do not decide the test.
	MinDuration Duration `json:"min_duration"`
	// Significance is the confidence level at which a difference counts.
	Significance float64 `json:"significance"`
	// MinDetectableEffect is the smallest difference in conversion, as a
	// fraction, the test is meant to detect.
	MinDetectableEffect float64 `json:"min_detectable_effect"`
}

// DesiredState is what a driver must make true: which versions run at what
// size, how user traffic is weighted between them, and any sticky cohort
// routing or mirroring. Drivers are declarative: a version listed with zero
// instances is scaled down, and the driver orders its own changes so that
// capacity exists before traffic moves to it.
type DesiredState struct {
	// Versions has one entry per version that should exist. Their weights
	// add up to 100 whenever any instance runs, and to 0 when none does.
	Versions []VersionState `json:"versions"`
	// Cohorts route users stickily (A/B arms, rings). They are evaluated in
	// order, the first match wins, and the last rule matches everyone.
	Cohorts []CohortRule `json:"cohorts,omitempty"`
	// Mirror copies traffic to a version whose responses users never see.
	Mirror *Mirror `json:"mirror,omitempty"`
}

// VersionState is one version in a desired state.
type VersionState struct {
	// Version is the version string, as given in the Target.
	Version string `json:"version"`
	// Role is RoleStable or RoleCandidate.
	Role string `json:"role"`
	// Instances is how many instances of the version should run.
	Instances int `json:"instances"`
	// Weight is the percent of user traffic, 0 to 100, the version serves.
	Weight int `json:"weight"`
}

// CohortRule routes the users it matches to one version.
type CohortRule struct {
	// Name labels the cohort in routing and metrics, e.g. "arm_b" or a
	// ring's name.
	Name string `json:"name"`
	// Version is the version the cohort is routed to.
	Version string `json:"version"`
	// Match says which users belong to the cohort.
	Match Match `json:"match"`
}

// Match selects users for a cohort. It is also the shape of an A/B split_by
// parameter and of a ring's audience.
type Match struct {
	// Kind is one of MatchHash, MatchHeader, MatchCookie and MatchAll.
	Kind string `json:"kind"`
	// Key is the header or cookie name, or the key hashed ("user_id").
	Key string `json:"key,omitempty"`
	// Values are the header or cookie values that match.
	Values []string `json:"values,omitempty"`
	// Percent is the share of hash buckets that match, for hash rules.
	Percent int `json:"percent,omitempty"`
}

// Mirror copies a share of the traffic served by one version to another,
// whose responses are compared and then discarded.
type Mirror struct {
	// From is the version whose traffic is copied.
	From string `json:"from"`
	// To is the version receiving the copy.
	To string `json:"to"`
	// Percent is the share of requests copied, 1 to 100.
	Percent int `json:"percent"`
}

// Rollback is how the engine undoes a run: a sequence of desired states
// whose last one returns users to the previous version at full size.
type Rollback struct {
	// Description says in a sentence what a rollback does, for the button
	// an on-call engineer is about to press.
	Description string `json:"description"`
	// Steps are applied in order. For rolling they walk the batches back,
	// and the engine starts at the first step with fewer candidate instances
	// than the current phase; other strategies have a single step.
	Steps []DesiredState `json:"steps"`
	// ExpectedDuration estimates how long the whole rollback takes.
	ExpectedDuration Duration `json:"expected_duration"`
}

// strategyParams are one strategy's parameters after validation, with every
// default filled in. They marshal to the normalized Plan.Params.
type strategyParams interface {
	// phases compiles the plan's phases for a run with a running version.
	phases(t Target) []Phase
	// rollback describes how to undo a run with a running version.
	rollback(t Target) Rollback
	// firstDeployBake is how long a first deploy's health check lasts.
	firstDeployBake() Duration
}

// Build compiles a strategy and its parameters into the plan for one run.
// params is a JSON object of the strategy's parameters; nil, empty or {}
// means every default. Bad input yields a *ValidationError listing every
// problem, so nothing is half-built and the caller can report each field.
func Build(s Strategy, params json.RawMessage, t Target) (Plan, error) {
	var errs fieldErrors
	known := checkStrategy(s, &errs)
	validateTarget(t, &errs)
	var p strategyParams
	if known {
		p = readParams(s, params, &errs)
	}
	if known && t.FromVersion == "" && !definitions[s].firstDeploy {
		errs.add("target.from_version", "%s compares the new version with the running one, and a first deploy has none; use recreate or rolling for the first deploy", s)
	}
	if err := errs.err(); err != nil {
		return Plan{}, err
	}
	normalized, err := json.Marshal(p)
	if err != nil {
		return Plan{}, fmt.Errorf("encoding normalized %s parameters: %w", s, err)
	}
	plan := Plan{Strategy: s, Params: normalized}
	if t.FromVersion == "" {
		plan.FirstDeploy = true
		plan.Phases = firstDeployPhases(t, p.firstDeployBake())
		plan.Rollback = firstDeployRollback(t)
	} else {
		plan.Phases = p.phases(t)
		plan.Rollback = p.rollback(t)
	}
	plan.ExtraInfraShare, plan.Downtime = footprint(plan.Phases, t.Instances)
	return plan, nil
}

// NormalizeParams validates a strategy's parameters without a target and
// returns them with every default filled in. The API uses it for the
// defaults stored with an environment, which must be checked before any run
// exists.
func NormalizeParams(s Strategy, params json.RawMessage) (json.RawMessage, error) {
	var errs fieldErrors
	if !checkStrategy(s, &errs) {
		return nil, errs.err()
	}
	p := readParams(s, params, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	normalized, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding normalized %s parameters: %w", s, err)
	}
	return normalized, nil
}

// checkStrategy records an error naming the valid strategies when s is not
// one of them.
func checkStrategy(s Strategy, errs *fieldErrors) bool {
	if s.Valid() {
		return true
	}
	names := make([]string, len(Strategies))
	for i, known := range Strategies {
		names[i] = string(known)
	}
	errs.add("strategy", "must be one of %s, got %q", strings.Join(names, ", "), s)
	return false
}

// readParams reads a known strategy's parameters, recording every problem.
func readParams(s Strategy, params json.RawMessage, errs *fieldErrors) strategyParams {
	o := readObject(params, "params", errs)
	p := definitions[s].read(o)
	o.finish()
	return p
}

// validateTarget checks what the run deploys.
func validateTarget(t Target, errs *fieldErrors) {
	switch {
	case strings.TrimSpace(t.ToVersion) == "":
		errs.add("target.to_version", "must not be empty")
	case t.ToVersion == t.FromVersion:
		errs.add("target.to_version", "must differ from the running version %q", t.FromVersion)
	}
	if t.FromVersion != "" && strings.TrimSpace(t.FromVersion) == "" {
		errs.add("target.from_version", "must be empty on a first deploy or name the running version")
	}
	switch {
	case t.Instances < 1:
		errs.add("target.instances", "must be at least 1, got %d", t.Instances)
	case t.Instances > MaxInstances:
		errs.add("target.instances", "must be at most %d, got %d", MaxInstances, t.Instances)
	}
}

// firstDeployPhases is the plan of every strategy on a first deploy: with no
// old version there is nobody to keep serving, nothing to compare against
// and nothing to return to, so the new version starts at full size and is
// watched on its own health for the strategy's first bake.
func firstDeployPhases(t Target, bake Duration) []Phase {
	return []Phase{
		{
			Name:         "start new version",
			Kind:         KindStartNew,
			Desired:      state(candidate(t, t.Instances, 100)),
			ExposedShare: 1,
		},
		{
			Name:         "health check",
			Kind:         KindHealthCheck,
			Desired:      state(candidate(t, t.Instances, 100)),
			Bake:         bake,
			Analysis:     true,
			ExposedShare: 1,
		},
	}
}

// firstDeployRollback undoes a first deploy. There is no previous version to
// return to, so rolling back scales the new version to zero and leaves the
// environment serving nothing, as it was before the run.
func firstDeployRollback(t Target) Rollback {
	return Rollback{
		Description:      "First deploy: there is no previous version to return to, so rolling back stops the new version and leaves nothing serving, as before the run.",
		Steps:            []DesiredState{state(candidate(t, 0, 0))},
		ExpectedDuration: trafficShiftTime,
	}
}

// footprint derives the plan's extra capacity and downtime from its phases,
// so both always agree with what the phases ask drivers to do.
func footprint(phases []Phase, fleet int) (extra float64, downtime bool) {
	most := fleet
	for _, ph := range phases {
		instances, weight := 0, 0
		for _, v := range ph.Desired.Versions {
			instances += v.Instances
			weight += v.Weight
		}
		most = max(most, instances)
		if weight == 0 {
			downtime = true
		}
	}
	return float64(most-fleet) / float64(fleet), downtime
}

// backToStable is the usual last rollback step: all users on the old
// version at full size, the new version scaled to zero.
func backToStable(t Target) DesiredState {
	return state(stable(t, t.Instances, 100), candidate(t, 0, 0))
}

// state builds a desired state from versions.
func state(versions ...VersionState) DesiredState {
	return DesiredState{Versions: versions}
}

// stable is the old version's entry in a desired state.
func stable(t Target, instances, weight int) VersionState {
	return VersionState{Version: t.FromVersion, Role: RoleStable, Instances: instances, Weight: weight}
}

// candidate is the new version's entry in a desired state.
func candidate(t Target, instances, weight int) VersionState {
	return VersionState{Version: t.ToVersion, Role: RoleCandidate, Instances: instances, Weight: weight}
}

// ceilShare is percent of n rounded up and at least 1, the number of
// instances that serve percent of the traffic without running short.
func ceilShare(n, percent int) int {
	return max(1, (n*percent+99)/100)
}

// share converts a weight to the share of users it exposes.
func share(weight int) float64 {
	return float64(weight) / 100
}
