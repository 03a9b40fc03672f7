package plan

import "fmt"

// abTestParams are the parameters of the A/B test strategy. Arm A is the
// running version, arm B the new one.
type abTestParams struct {
	// SplitPercent is the share of users sent to arm B. For header and
	// cookie splits, routing follows the rule and SplitPercent is the share
	// of users expected to match it, used to size arm B and weigh results.
	SplitPercent int `json:"split_percent"`
	// SplitBy says how users are assigned to arm B.
	SplitBy Match `json:"split_by"`
	// MinDuration is the earliest the test may stop at significance.
	MinDuration Duration `json:"min_duration"`
	// MaxDuration is when the test stops even without significance.
	MaxDuration Duration `json:"max_duration"`
	// Significance is the confidence level at which a difference counts.
	Significance float64 `json:"significance"`
	// MinDetectableEffect is the smallest difference in conversion, as a
	// fraction, the test is meant to detect.
	MinDetectableEffect float64 `json:"min_detectable_effect"`
}

// splitKinds are the ways an A/B test can assign users to arms.
var splitKinds = []string{MatchHash, MatchHeader, MatchCookie}

// readABTest reads A/B test parameters: split_percent 50 (1 to 99),
// split_by a hash of user_id, min_duration 1h, max_duration 14d (longer
// than min_duration), significance 0.95 (0.5 to 0.9999) and
// min_detectable_effect 0.01 (above 0, at most 1).
func readABTest(o *object) strategyParams {
	p := abTestParams{
		SplitPercent:        intParam(o, "split_percent", 50, 1, 99),
		SplitBy:             Match{Kind: MatchHash, Key: "user_id"},
		MinDuration:         durationParam(o, "min_duration", hour, false),
		MaxDuration:         durationParam(o, "max_duration", 14*day, true),
		Significance:        0.95,
		MinDetectableEffect: 0.01,
	}
	if split := o.child("split_by"); split != nil && split.valid {
		p.SplitBy = readMatch(split, splitKinds, MatchHash, false)
	}
	if p.MaxDuration <= p.MinDuration {
		o.errs.add(o.field("max_duration"), "must be longer than min_duration (%s), got %s", p.MinDuration, p.MaxDuration)
	}
	if v, ok := value[float64](o, "significance"); ok {
		if v < 0.5 || v > 0.9999 {
			o.errs.add(o.field("significance"), "must be between 0.5 and 0.9999, got %v", v)
		} else {
			p.Significance = v
		}
	}
	if v, ok := value[float64](o, "min_detectable_effect"); ok {
		if v <= 0 || v > 1 {
			o.errs.add(o.field("min_detectable_effect"), "must be greater than 0 and at most 1, got %v", v)
		} else {
			p.MinDetectableEffect = v
		}
	}
	return p
}

// phases starts arm B without traffic, splits users stickily between the
// arms until the test is significant or reaches max_duration, then returns
// everyone to arm A and reports the winner. Arm A keeps its full size so
// the split never runs it short. Shipping the winner is a decision for a
// person, so the run waits at the report.
func (p abTestParams) phases(t Target) []Phase {
	n := t.Instances
	b := ceilShare(n, p.SplitPercent)
	armB := p.SplitBy
	armB.Values = append([]string(nil), p.SplitBy.Values...)
	if armB.Kind == MatchHash {
		armB.Percent = p.SplitPercent
	}
	split := state(stable(t, n, 100-p.SplitPercent), candidate(t, b, p.SplitPercent))
	split.Cohorts = []CohortRule{
		{Name: "arm_b", Version: t.ToVersion, Match: armB},
		{Name: "arm_a", Version: t.FromVersion, Match: Match{Kind: MatchAll}},
	}
	return []Phase{
		{
			Name:    "start B arm",
			Kind:    KindStartArm,
			Desired: state(stable(t, n, 100), candidate(t, b, 0)),
		},
		{
			Name:         fmt.Sprintf("split %d%% of users to B", p.SplitPercent),
			Kind:         KindSplit,
			Desired:      split,
			Bake:         p.MaxDuration,
			Analysis:     true,
			Baseline:     BaselineArmA,
			ExposedShare: share(p.SplitPercent),
			Experiment: &Experiment{
				MinDuration:         p.MinDuration,
				Significance:        p.Significance,
				MinDetectableEffect: p.MinDetectableEffect,
			},
		},
		{
			Name:          "report winner",
			Kind:          KindReport,
			Desired:       backToStable(t),
			ManualPromote: true,
		},
	}
}

// rollback removes the split, returning every user to arm A, and stops arm B.
func (p abTestParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Remove the split so every user is back on arm A, and stop arm B.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: trafficShiftTime,
	}
}

// firstDeployBake is never used: an A/B test needs a running version.
func (p abTestParams) firstDeployBake() Duration {
	return p.MaxDuration
}
