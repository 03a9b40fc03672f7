package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// firstDeployStrategies can deploy where nothing runs yet.
var firstDeployStrategies = []Strategy{Recreate, Rolling, BlueGreen, Canary, Ring}

// genTarget draws a target; first deploys only for strategies that allow them.
func genTarget(t *rapid.T, s Strategy) Target {
	target := Target{
		FromVersion: "v" + rapid.StringMatching(`[0-9]{1,3}\.[0-9]{1,2}`).Draw(t, "from"),
		Instances:   rapid.IntRange(1, 300).Draw(t, "instances"),
	}
	target.ToVersion = target.FromVersion + "-next"
	if slices.Contains(firstDeployStrategies, s) && rapid.IntRange(0, 4).Draw(t, "first_deploy") == 0 {
		target.FromVersion = ""
	}
	return target
}

// genDuration draws a duration between lo and hi, written in one of the
// forms people use.
func genDuration(t *rapid.T, name string, lo, hi Duration) string {
	d := Duration(rapid.Int64Range(int64(lo/second), int64(hi/second)).Draw(t, name)) * second
	if d%day == 0 && rapid.Bool().Draw(t, name+"_in_days") {
		return fmt.Sprintf("%dd", d/day)
	}
	if rapid.Bool().Draw(t, name+"_go_style") {
		return fmt.Sprint(int64(d/second)) + "s"
	}
	return d.String()
}

// maybe sets a parameter about half the time, so defaults are exercised too.
func maybe(t *rapid.T, params map[string]any, name string, draw func() any) {
	if rapid.Bool().Draw(t, "set_"+name) {
		params[name] = draw()
	}
}

// genParams draws valid parameters for a strategy.
func genParams(t *rapid.T, s Strategy) map[string]any {
	params := map[string]any{}
	switch s {
	case Recreate:
		maybe(t, params, "health_check_timeout", func() any { return genDuration(t, "timeout", second, MaxDuration) })
	case Rolling:
		switch rapid.IntRange(0, 2).Draw(t, "batch_form") {
		case 1:
			params["batch_size"] = rapid.IntRange(1, 400).Draw(t, "batch_size")
		case 2:
			params["batch_percent"] = rapid.IntRange(1, 100).Draw(t, "batch_percent")
		}
		maybe(t, params, "bake", func() any { return genDuration(t, "bake", 0, MaxDuration) })
		maybe(t, params, "analysis", func() any { return rapid.Bool().Draw(t, "analysis") })
	case BlueGreen:
		maybe(t, params, "pre_switch_checks", func() any { return genDuration(t, "checks", 0, MaxDuration) })
		maybe(t, params, "scale_down_delay", func() any { return genDuration(t, "delay", 0, MaxDuration) })
	case Canary:
		maybe(t, params, "steps", func() any {
			steps := rapid.SliceOfDistinct(rapid.IntRange(1, 99), rapid.ID[int]).Draw(t, "steps")
			slices.Sort(steps)
			return append(steps, 100)
		})
		maybe(t, params, "step_bake", func() any { return genDuration(t, "step_bake", 0, MaxDuration) })
	case Shadow:
		maybe(t, params, "mirror_percent", func() any { return rapid.IntRange(1, 100).Draw(t, "mirror_percent") })
		maybe(t, params, "duration", func() any { return genDuration(t, "duration", second, MaxDuration) })
	case ABTest:
		maybe(t, params, "split_percent", func() any { return rapid.IntRange(1, 99).Draw(t, "split_percent") })
		maybe(t, params, "split_by", func() any { return genMatch(t, "split_by", []string{MatchHash, MatchHeader, MatchCookie}) })
		minDuration := genDuration(t, "min_duration", 0, MaxDuration-second)
		parsed, err := ParseDuration(minDuration)
		require.NoError(t, err)
		params["min_duration"] = minDuration
		params["max_duration"] = genDuration(t, "max_duration", parsed+second, MaxDuration)
		maybe(t, params, "significance", func() any { return rapid.Float64Range(0.5, 0.9999).Draw(t, "significance") })
		maybe(t, params, "min_detectable_effect", func() any { return rapid.Float64Range(0.0001, 1).Draw(t, "mde") })
	case Ring:
		maybe(t, params, "rings", func() any { return genRings(t) })
	}
	return params
}

// genMatch draws a valid split_by or ring audience of one of kinds.
func genMatch(t *rapid.T, name string, kinds []string) map[string]any {
	kind := rapid.SampledFrom(kinds).Draw(t, name+"_kind")
	m := map[string]any{"kind": kind}
	switch kind {
	case MatchHash:
		if rapid.Bool().Draw(t, name+"_has_key") {
			m["key"] = rapid.SampledFrom([]string{"user_id", "account", "X-Device-Id"}).Draw(t, name+"_key")
		}
	case MatchHeader, MatchCookie:
		m["key"] = rapid.StringMatching(`[A-Za-z][A-Za-z0-9-]{0,20}`).Draw(t, name+"_key")
		m["values"] = rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z0-9]{1,8}`), 1, 4, rapid.ID[string]).Draw(t, name+"_values")
	}
	return m
}

// genRings draws valid rings: unique names, hash percents that widen, the
// last for everyone, and either every expected_percent or none.
func genRings(t *rapid.T) []map[string]any {
	count := rapid.IntRange(1, MaxRings).Draw(t, "ring_count")
	names := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z][a-z0-9_-]{0,12}`), count, count, rapid.ID[string]).
		Filter(func(names []string) bool { return !slices.Contains(names, restCohort) }).Draw(t, "ring_names")
	explicit := rapid.Bool().Draw(t, "explicit_expected")
	expected := 0
	hashPercent := 0
	rings := make([]map[string]any, count)
	for i := range count {
		r := map[string]any{"name": names[i]}
		last := i == count-1
		if last {
			r["audience"] = map[string]any{"kind": MatchAll}
		} else {
			kinds := []string{MatchHeader, MatchCookie}
			if hashPercent < 99 {
				kinds = append(kinds, MatchHash)
			}
			kind := rapid.SampledFrom(kinds).Draw(t, fmt.Sprintf("ring_%d_kind", i))
			if kind == MatchHash {
				hashPercent = rapid.IntRange(hashPercent+1, 99).Draw(t, fmt.Sprintf("ring_%d_percent", i))
				r["audience"] = map[string]any{"kind": MatchHash, "percent": hashPercent}
			} else {
				r["audience"] = genMatch(t, fmt.Sprintf("ring_%d", i), []string{kind})
			}
		}
		if rapid.Bool().Draw(t, fmt.Sprintf("ring_%d_has_bake", i)) {
			r["bake"] = genDuration(t, fmt.Sprintf("ring_%d_bake", i), 0, MaxDuration)
		}
		if explicit {
			if last {
				r["expected_percent"] = 100
			} else {
				expected = rapid.IntRange(max(expected, 1), 99).Draw(t, fmt.Sprintf("ring_%d_expected", i))
				r["expected_percent"] = expected
			}
		}
		rings[i] = r
	}
	return rings
}

// genCase draws a strategy, valid parameters and a target.
func genCase(t *rapid.T) (Strategy, json.RawMessage, Target) {
	s := rapid.SampledFrom(Strategies).Draw(t, "strategy")
	params, err := json.Marshal(genParams(t, s))
	require.NoError(t, err)
	return s, params, genTarget(t, s)
}

func TestPropertyValidParamsBuildSoundPlans(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s, params, target := genCase(t)
		p, err := Build(s, params, target)
		require.NoError(t, err, "params %s", params)
		checkInvariants(t, s, target, p)
	})
}

func TestPropertyNormalizedParamsRebuildTheSamePlan(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s, params, target := genCase(t)
		p, err := Build(s, params, target)
		require.NoError(t, err)

		again, err := Build(s, p.Params, target)
		require.NoError(t, err)
		require.Equal(t, p, again)

		normalized, err := NormalizeParams(s, params)
		require.NoError(t, err)
		require.Equal(t, p.Params, normalized)
	})
}

func TestPropertyPlanJSONRoundTrips(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s, params, target := genCase(t)
		p, err := Build(s, params, target)
		require.NoError(t, err)

		encoded, err := json.Marshal(p)
		require.NoError(t, err)
		var decoded Plan
		require.NoError(t, json.Unmarshal(encoded, &decoded))
		require.Equal(t, p, decoded)
	})
}

func TestPropertyDurationRoundTrips(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		d := Duration(rapid.Int64().Draw(t, "nanoseconds"))
		parsed, err := ParseDuration(d.String())
		require.NoError(t, err, d.String())
		require.Equal(t, d, parsed)
	})
}

func TestPropertyArbitraryInputNeverPanics(t *testing.T) {
	t.Parallel()
	fields := []string{
		"health_check_timeout", "batch_size", "batch_percent", "bake", "analysis", "pre_switch_checks",
		"scale_down_delay", "steps", "step_bake", "mirror_percent", "duration", "split_percent", "split_by",
		"min_duration", "max_duration", "significance", "min_detectable_effect", "rings", "other",
	}
	values := []any{
		nil, true, 0, -1, 1, 50, 99, 100, 101, 1.5, "", "5m", "-5m", "3d", "99d", "x",
		[]any{}, []any{5, 100}, []any{100, 5}, []any{"a"}, map[string]any{},
		map[string]any{"kind": "header", "key": "X", "values": []any{"a"}},
		map[string]any{"kind": "hash", "percent": 10},
		[]any{map[string]any{"name": "a", "audience": map[string]any{"kind": "all"}}},
		[]any{map[string]any{"name": "a"}, 3, nil},
	}
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.SampledFrom(append(slices.Clone(Strategies), "", "nope")).Draw(t, "strategy")
		var params json.RawMessage
		if rapid.Bool().Draw(t, "raw_bytes") {
			params = rapid.SliceOf(rapid.Byte()).Draw(t, "bytes")
		} else {
			object := map[string]any{}
			for _, name := range rapid.SliceOfN(rapid.SampledFrom(fields), 0, 6).Draw(t, "fields") {
				object[name] = rapid.SampledFrom(values).Draw(t, name)
			}
			var err error
			params, err = json.Marshal(object)
			require.NoError(t, err)
		}
		target := Target{
			FromVersion: rapid.SampledFrom([]string{"", "v1", " "}).Draw(t, "from"),
			ToVersion:   rapid.SampledFrom([]string{"", "v1", "v2"}).Draw(t, "to"),
			Instances:   rapid.IntRange(-1, 20).Draw(t, "instances"),
		}
		p, err := Build(s, params, target)
		if err != nil {
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			require.NotEmpty(t, verr.Errors)
			for _, fe := range verr.Errors {
				require.NotEmpty(t, fe.Field)
				require.NotEmpty(t, fe.Message)
			}
			require.Zero(t, p)
			return
		}
		checkInvariants(t, s, target, p)
	})
}

// checkInvariants asserts what every plan must satisfy.
func checkInvariants(t *rapid.T, s Strategy, target Target, p Plan) {
	n := target.Instances
	first := target.FromVersion == ""
	require.Equal(t, s, p.Strategy)
	require.Equal(t, first, p.FirstDeploy)
	require.NotEmpty(t, p.Phases)
	require.True(t, json.Valid(p.Params))

	for i, ph := range p.Phases {
		checkState(t, target, ph.Desired)
		require.NotEmpty(t, ph.Name)
		require.Contains(t, PhaseKinds, ph.Kind)
		require.GreaterOrEqual(t, ph.Bake, Duration(0))
		require.LessOrEqual(t, ph.Bake, MaxDuration)
		if ph.Baseline != "" {
			require.True(t, ph.Analysis, "phase %q has a baseline but no analysis", ph.Name)
		}
		require.InDelta(t, share(weightOf(ph.Desired, target.ToVersion)), ph.ExposedShare, 1e-12, ph.Name)
		if ph.ManualPromote {
			require.Equal(t, len(p.Phases)-1, i, "only the last phase waits for promotion")
		}
		if ph.ApprovalRequired {
			require.Less(t, i, len(p.Phases)-1, "the last phase has no next phase to approve")
		}
		if ph.Desired.Mirror != nil {
			require.Equal(t, Shadow, s)
		}
		if ph.Desired.Cohorts != nil {
			require.Contains(t, []Strategy{ABTest, Ring}, s)
		}
	}

	last := p.Phases[len(p.Phases)-1]
	if first {
		require.Len(t, p.Phases, 2)
		require.Len(t, p.Rollback.Steps, 1)
		require.Equal(t, []VersionState{{Version: target.ToVersion, Role: RoleCandidate}}, p.Rollback.Steps[0].Versions)
		require.Contains(t, p.Rollback.Description, "no previous version")
	} else {
		final := p.Rollback.Steps[len(p.Rollback.Steps)-1]
		require.Equal(t, 100, weightOf(final, target.FromVersion))
		require.Equal(t, n, instancesOf(final, target.FromVersion))
		require.Zero(t, instancesOf(final, target.ToVersion))
		require.Nil(t, final.Cohorts)
		require.Nil(t, final.Mirror)
	}
	for _, step := range p.Rollback.Steps {
		checkState(t, target, step)
	}
	require.NotEmpty(t, p.Rollback.Description)
	require.Positive(t, p.Rollback.ExpectedDuration)

	switch s {
	case Recreate, Rolling, BlueGreen, Canary, Ring:
		require.Equal(t, 100, weightOf(last.Desired, target.ToVersion))
		require.Equal(t, n, instancesOf(last.Desired, target.ToVersion))
		require.Zero(t, instancesOf(last.Desired, target.FromVersion))
	case Shadow:
		for _, ph := range p.Phases {
			require.Zero(t, weightOf(ph.Desired, target.ToVersion), ph.Name)
			require.Zero(t, ph.ExposedShare)
		}
		require.Equal(t, KindMirror, p.Phases[1].Kind)
		require.NotNil(t, p.Phases[1].Desired.Mirror)
		require.Equal(t, KindReport, last.Kind)
		require.True(t, last.ManualPromote)
	case ABTest:
		var params struct {
			MaxDuration Duration `json:"max_duration"`
			MinDuration Duration `json:"min_duration"`
		}
		require.NoError(t, json.Unmarshal(p.Params, &params))
		split := p.Phases[1]
		require.Equal(t, KindSplit, split.Kind)
		require.Equal(t, params.MaxDuration, split.Bake)
		require.NotNil(t, split.Experiment)
		require.Equal(t, params.MinDuration, split.Experiment.MinDuration)
		require.Less(t, split.Experiment.MinDuration, split.Bake)
		require.Equal(t, BaselineArmA, split.Baseline)
		require.Equal(t, KindReport, last.Kind)
	}

	if !first {
		switch s {
		case Rolling:
			previous := 0
			for _, ph := range p.Phases {
				c := instancesOf(ph.Desired, target.ToVersion)
				require.Greater(t, c, previous)
				require.Equal(t, n, c+instancesOf(ph.Desired, target.FromVersion))
				previous = c
			}
			require.Len(t, p.Rollback.Steps, len(p.Phases))
			previous = n
			for _, step := range p.Rollback.Steps {
				c := instancesOf(step, target.ToVersion)
				require.Less(t, c, previous)
				previous = c
			}
		case Canary:
			for _, ph := range p.Phases[:len(p.Phases)-1] {
				require.Equal(t, n, instancesOf(ph.Desired, target.FromVersion))
				require.Equal(t, BaselineStable, ph.Baseline)
			}
		case Ring:
			for i, ph := range p.Phases {
				require.Equal(t, KindRing, ph.Kind)
				require.Equal(t, i < len(p.Phases)-1, ph.ApprovalRequired)
				require.True(t, ph.Analysis)
				require.Equal(t, MatchAll, ph.Desired.Cohorts[len(ph.Desired.Cohorts)-1].Match.Kind)
			}
		case BlueGreen:
			require.Equal(t, 1.0, p.ExtraInfraShare)
		}
	}

	extra, downtime := 0, false
	for _, ph := range p.Phases {
		total, weights := 0, 0
		for _, v := range ph.Desired.Versions {
			total += v.Instances
			weights += v.Weight
		}
		extra = max(extra, total-n)
		downtime = downtime || weights == 0
	}
	require.InDelta(t, float64(extra)/float64(n), p.ExtraInfraShare, 1e-12)
	require.Equal(t, downtime, p.Downtime)
	require.Equal(t, s == Recreate && !first, p.Downtime)
	if s == Recreate || s == Rolling {
		require.Zero(t, p.ExtraInfraShare)
	}
}

// checkState asserts what every desired state must satisfy: one entry per
// version of the target in its role, no negative counts, weights only on
// running versions adding up to 100 (or to 0 when nothing runs), cohorts
// ending with a rule for everyone and routing only to serving versions, and
// mirroring only to a version users do not see.
func checkState(t *rapid.T, target Target, d DesiredState) {
	require.NotEmpty(t, d.Versions)
	total, weights := 0, 0
	seen := map[string]bool{}
	for _, v := range d.Versions {
		require.False(t, seen[v.Version], "version %q listed twice", v.Version)
		seen[v.Version] = true
		switch v.Role {
		case RoleStable:
			require.NotEmpty(t, target.FromVersion)
			require.Equal(t, target.FromVersion, v.Version)
		case RoleCandidate:
			require.Equal(t, target.ToVersion, v.Version)
		default:
			t.Fatalf("unknown role %q", v.Role)
		}
		require.GreaterOrEqual(t, v.Instances, 0)
		require.LessOrEqual(t, v.Instances, target.Instances)
		require.GreaterOrEqual(t, v.Weight, 0)
		require.LessOrEqual(t, v.Weight, 100)
		if v.Weight > 0 {
			require.Positive(t, v.Instances, "version %q has weight but no instances", v.Version)
		}
		total += v.Instances
		weights += v.Weight
	}
	if weights == 0 {
		require.Zero(t, total, "instances run but serve nobody")
	} else {
		require.Equal(t, 100, weights)
	}
	if len(d.Cohorts) > 0 {
		require.Equal(t, MatchAll, d.Cohorts[len(d.Cohorts)-1].Match.Kind)
		names := map[string]bool{}
		for _, c := range d.Cohorts {
			require.False(t, names[c.Name], "cohort %q twice", c.Name)
			names[c.Name] = true
			require.Positive(t, weightOf(d, c.Version), "cohort %q routes to a version without weight", c.Name)
		}
	}
	if m := d.Mirror; m != nil {
		require.Equal(t, target.FromVersion, m.From)
		require.Equal(t, target.ToVersion, m.To)
		require.Positive(t, weightOf(d, m.From))
		require.Zero(t, weightOf(d, m.To))
		require.Positive(t, instancesOf(d, m.To))
		require.GreaterOrEqual(t, m.Percent, 1)
		require.LessOrEqual(t, m.Percent, 100)
	}
}

// weightOf is the traffic weight of a version in a desired state.
func weightOf(d DesiredState, version string) int {
	for _, v := range d.Versions {
		if v.Version == version {
			return v.Weight
		}
	}
	return 0
}

// instancesOf is the instance count of a version in a desired state.
func instancesOf(d DesiredState, version string) int {
	for _, v := range d.Versions {
		if v.Version == version {
			return v.Instances
		}
	}
	return 0
}
