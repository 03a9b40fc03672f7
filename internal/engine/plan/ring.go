package plan

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxRings bounds the number of rings, each of which waits for a person.
const MaxRings = 10

// ringParams are the parameters of the ring strategy.
type ringParams struct {
	// Rings are released in order; the last reaches everyone.
	Rings []ringParam `json:"rings"`
}

// ringParam is one ring: an audience released together, watched for its
// bake, then held until a person approves the next ring.
type ringParam struct {
	// Name labels the ring on pages and in cohort routing.
	Name string `json:"name"`
	// Audience selects the ring's users.
	Audience Match `json:"audience"`
	// Bake is how long the ring is watched before the next may be approved.
	Bake Duration `json:"bake"`
	// ExpectedPercent is the share of all users expected to be on the new
	// version once this ring is in, counting earlier rings. It sizes the new
	// version's fleet and the traffic weights, since the size of a header
	// or cookie audience cannot be known from the rule. It defaults to the
	// hash percent for hash rings, one point more than the ring before for
	// header and cookie rings, and 100 for the last ring.
	ExpectedPercent int `json:"expected_percent"`
	// Approvers is how many different people must approve the next ring
	// after this one; 0 leaves it to the environment's approval policy.
	Approvers int `json:"approvers,omitempty"`
}

// restCohort names the cohort rule that keeps users outside the rings so far
// on the old version.
const restCohort = "rest"

// ringKinds are the audiences a ring can have.
var ringKinds = []string{MatchHeader, MatchCookie, MatchHash, MatchAll}

// ringName is the syntax of a ring name, which is also a cohort label in
// routing and metrics.
var ringName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// defaultRings are employees (by header), then 10% of users by hash of user
// id, then everyone, baking 24h and 3d before the approvals.
func defaultRings() []ringParam {
	return []ringParam{
		{
			Name:            "employees",
			Audience:        Match{Kind: MatchHeader, Key: "X-User-Group", Values: []string{"employees"}},
			Bake:            24 * hour,
			ExpectedPercent: 1,
		},
		{
			Name:            "early_adopters",
			Audience:        Match{Kind: MatchHash, Key: "user_id", Percent: 10},
			Bake:            3 * day,
			ExpectedPercent: 10,
		},
		{
			Name:            "everyone",
			Audience:        Match{Kind: MatchAll},
			Bake:            0,
			ExpectedPercent: 100,
		},
	}
}

// readRing reads ring parameters. Rings need unique names, the last one must
// be for everyone (kind "all") and only the last; a ring's bake defaults to
// 24h, and 0s for the last ring.
func readRing(o *object) strategyParams {
	items, ok := o.list("rings")
	if !ok {
		return ringParams{Rings: defaultRings()}
	}
	path := o.field("rings")
	switch {
	case len(items) == 0:
		o.errs.add(path, "must list at least one ring, the last for everyone")
		return ringParams{Rings: defaultRings()}
	case len(items) > MaxRings:
		o.errs.add(path, "must list at most %d rings, got %d", MaxRings, len(items))
		return ringParams{Rings: defaultRings()}
	}
	rings := make([]ringParam, len(items))
	seen := ringsSoFar{names: map[string]int{}, hashPercent: map[string]int{}}
	for i, raw := range items {
		ro := readObject(raw, indexPath(path, i), o.errs)
		if ro.valid {
			rings[i] = seen.read(ro, i, i == len(items)-1)
			ro.finish()
		}
	}
	return ringParams{Rings: rings}
}

// ringsSoFar is what reading a ring needs to know about the rings before it.
type ringsSoFar struct {
	// names maps each ring name to the index of the ring that took it.
	names map[string]int
	// hashPercent is the widest hash percent per hashed key.
	hashPercent map[string]int
	// expected is the expected percent of the ring before.
	expected int
}

// read reads ring i, recording its name, hash percent and expected percent
// for the rings after it.
func (seen *ringsSoFar) read(ro *object, i int, last bool) ringParam {
	var r ringParam
	name, hasName := value[string](ro, "name")
	switch {
	case !hasName && !ro.has("name"):
		ro.errs.add(ro.field("name"), "is required")
	case !hasName:
	case !ringName.MatchString(name):
		ro.errs.add(ro.field("name"), "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit, got %q", name)
	case name == restCohort:
		ro.errs.add(ro.field("name"), "%q is reserved for the users not yet in any ring", name)
	default:
		if first, taken := seen.names[name]; taken {
			ro.errs.add(ro.field("name"), "repeats the name of ring %d, %q", first, name)
		} else {
			seen.names[name] = i
		}
	}
	r.Name = name

	if audience := ro.child("audience"); audience == nil {
		ro.errs.add(ro.field("audience"), "is required")
	} else if audience.valid {
		r.Audience = readMatch(audience, ringKinds, "", true)
	}
	switch {
	case last && r.Audience.Kind != "" && r.Audience.Kind != MatchAll:
		ro.errs.add(ro.field("audience.kind"), "the last ring must reach everyone, so its kind must be \"all\", got %q", r.Audience.Kind)
	case !last && r.Audience.Kind == MatchAll:
		ro.errs.add(ro.field("audience.kind"), "only the last ring can be for everyone, so later rings would have nobody left")
	}
	if key, percent := r.Audience.Key, r.Audience.Percent; r.Audience.Kind == MatchHash && percent > 0 {
		if before, ok := seen.hashPercent[key]; ok && percent <= before {
			ro.errs.add(ro.field("audience.percent"), "must be greater than an earlier ring's %d%% of the same key, or this ring adds nobody, got %d", before, percent)
		}
		seen.hashPercent[key] = max(seen.hashPercent[key], percent)
	}

	defaultBake := 24 * hour
	if last {
		defaultBake = 0
	}
	r.Bake = durationParam(ro, "bake", defaultBake, false)

	r.ExpectedPercent = defaultExpected(r.Audience, seen.expected, last)
	if expected, ok := value[int](ro, "expected_percent"); ok {
		switch {
		case last && expected != 100:
			ro.errs.add(ro.field("expected_percent"), "must be 100 for the last ring, which reaches everyone, got %d", expected)
		case !last && (expected < 1 || expected > 99):
			ro.errs.add(ro.field("expected_percent"), "must be between 1 and 99 before the last ring, got %d", expected)
		case expected < seen.expected:
			ro.errs.add(ro.field("expected_percent"), "must not be less than the ring before it (%d), got %d", seen.expected, expected)
		default:
			r.ExpectedPercent = expected
		}
	}
	seen.expected = max(seen.expected, r.ExpectedPercent)

	if approvers, ok := value[int](ro, "approvers"); ok {
		switch {
		case last:
			ro.errs.add(ro.field("approvers"), "the last ring reaches everyone, so no approval follows it")
		case approvers < 1 || approvers > MaxApprovers:
			ro.errs.add(ro.field("approvers"), "must be 1 to %d different people, got %d", MaxApprovers, approvers)
		default:
			r.Approvers = approvers
		}
	}
	return r
}

// MaxApprovers bounds how many different people a gate may ask for.
const MaxApprovers = 10

// defaultExpected estimates the share of users on the new version once a
// ring is in, given the estimate for the rings before it.
func defaultExpected(audience Match, previous int, last bool) int {
	switch {
	case last:
		return 100
	case audience.Kind == MatchHash:
		return min(max(previous, audience.Percent), 99)
	default:
		return min(previous+1, 99)
	}
}

// phases routes one more ring to the new version per phase: the cohort
// rules of every ring so far send their users to the new version and a
// final rule keeps everyone else on the old one. The new version's fleet
// grows with the ring's expected share as the old one shrinks. Each ring is
// compared with the users still on the old version, and a person approves
// every next ring. The last ring reaches everyone and retires the old
// version, so it is watched on its own health.
func (p ringParams) phases(t Target) []Phase {
	n := t.Instances
	phases := make([]Phase, len(p.Rings))
	var cohorts []CohortRule
	for i, r := range p.Rings {
		cohorts = append(cohorts, CohortRule{Name: r.Name, Version: t.ToVersion, Match: cloneMatch(r.Audience)})
		ph := Phase{
			Name:     fmt.Sprintf("ring %d: %s", i, strings.ReplaceAll(r.Name, "_", " ")),
			Kind:     KindRing,
			Bake:     r.Bake,
			Analysis: true,
		}
		if i == len(p.Rings)-1 {
			ph.Desired = state(stable(t, 0, 0), candidate(t, n, 100))
			ph.Desired.Cohorts = cloneCohorts(cohorts, nil)
			ph.ExposedShare = 1
		} else {
			w := r.ExpectedPercent
			c := ceilShare(n, w)
			ph.Desired = state(stable(t, max(n-c, 1), 100-w), candidate(t, c, w))
			ph.Desired.Cohorts = cloneCohorts(cohorts, &CohortRule{Name: restCohort, Version: t.FromVersion, Match: Match{Kind: MatchAll}})
			ph.Baseline = BaselineStable
			ph.ApprovalRequired = true
			ph.MinApprovers = r.Approvers
			ph.ExposedShare = share(w)
		}
		phases[i] = ph
	}
	return phases
}

// cloneMatch copies a match so phases never share slices.
func cloneMatch(m Match) Match {
	m.Values = append([]string(nil), m.Values...)
	return m
}

// cloneCohorts copies the cohort rules so far, followed by rest when given.
func cloneCohorts(cohorts []CohortRule, rest *CohortRule) []CohortRule {
	out := make([]CohortRule, 0, len(cohorts)+1)
	for _, c := range cohorts {
		c.Match = cloneMatch(c.Match)
		out = append(out, c)
	}
	if rest != nil {
		out = append(out, *rest)
	}
	return out
}

// rollback stops the progression and routes every ring back to the old
// version, which first grows back to full size.
func (p ringParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Stop the progression and route every ring back to the old version at full size, then stop the new version.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: instanceStartTime + trafficShiftTime,
	}
}

// firstDeployBake is the first ring's bake.
func (p ringParams) firstDeployBake() Duration {
	return p.Rings[0].Bake
}
