package plan

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// setup returns the target most tests deploy: an upgrade on a fleet of ten.
func setup(t *testing.T) Target {
	t.Helper()
	t.Parallel()
	return Target{FromVersion: "v1", ToVersion: "v2", Instances: 10}
}

// summarize writes each phase on one line so a table test can show a whole
// plan at a glance.
func summarize(p Plan) []string {
	lines := make([]string, len(p.Phases))
	for i, ph := range p.Phases {
		var b strings.Builder
		fmt.Fprintf(&b, "%s | %s | %s | bake %s", ph.Name, ph.Kind, versions(ph.Desired), ph.Bake)
		if ph.Analysis {
			fmt.Fprintf(&b, " | analysis %s", cmp.Or(ph.Baseline, "health"))
		}
		if ph.ApprovalRequired {
			b.WriteString(" | approval")
		}
		if ph.ManualPromote {
			b.WriteString(" | manual promote")
		}
		fmt.Fprintf(&b, " | exposed %v", ph.ExposedShare)
		lines[i] = b.String()
	}
	return lines
}

// versions writes a desired state as "v1:10@95 v2:1@5", instances before
// the at sign and weight after, followed by cohorts and mirroring.
func versions(d DesiredState) string {
	parts := make([]string, 0, len(d.Versions))
	for _, v := range d.Versions {
		parts = append(parts, fmt.Sprintf("%s:%d@%d", v.Version, v.Instances, v.Weight))
	}
	for _, c := range d.Cohorts {
		m := c.Match
		rule := m.Kind
		switch m.Kind {
		case MatchHash:
			rule = fmt.Sprintf("hash(%s)<%d", m.Key, m.Percent)
		case MatchHeader, MatchCookie:
			rule = fmt.Sprintf("%s(%s)=%s", m.Kind, m.Key, strings.Join(m.Values, ","))
		}
		parts = append(parts, fmt.Sprintf("[%s %s→%s]", c.Name, rule, c.Version))
	}
	if d.Mirror != nil {
		parts = append(parts, fmt.Sprintf("mirror %s→%s %d%%", d.Mirror.From, d.Mirror.To, d.Mirror.Percent))
	}
	return strings.Join(parts, " ")
}

// steps writes each rollback step on one line.
func steps(r Rollback) []string {
	lines := make([]string, len(r.Steps))
	for i, s := range r.Steps {
		lines[i] = versions(s)
	}
	return lines
}

func TestBuildDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		strategy Strategy
		params   string
		phases   []string
		rollback []string
		duration string
		extra    float64
		downtime bool
	}{
		{
			strategy: Recreate,
			params:   `{"health_check_timeout":"2m"}`,
			phases: []string{
				"stop old version | stop_old | v1:0@0 | bake 0s | exposed 0",
				"start new version | start_new | v1:0@0 v2:10@100 | bake 0s | exposed 1",
				"health check | health_check | v1:0@0 v2:10@100 | bake 2m | analysis health | exposed 1",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "2m",
			downtime: true,
		},
		{
			strategy: Rolling,
			params:   `{"batch_size":1,"bake":"2m","analysis":true}`,
			phases: []string{
				"batch 1 of 10: 1 of 10 instances | batch | v1:9@90 v2:1@10 | bake 2m | analysis stable | exposed 0.1",
				"batch 2 of 10: 2 of 10 instances | batch | v1:8@80 v2:2@20 | bake 2m | analysis stable | exposed 0.2",
				"batch 3 of 10: 3 of 10 instances | batch | v1:7@70 v2:3@30 | bake 2m | analysis stable | exposed 0.3",
				"batch 4 of 10: 4 of 10 instances | batch | v1:6@60 v2:4@40 | bake 2m | analysis stable | exposed 0.4",
				"batch 5 of 10: 5 of 10 instances | batch | v1:5@50 v2:5@50 | bake 2m | analysis stable | exposed 0.5",
				"batch 6 of 10: 6 of 10 instances | batch | v1:4@40 v2:6@60 | bake 2m | analysis stable | exposed 0.6",
				"batch 7 of 10: 7 of 10 instances | batch | v1:3@30 v2:7@70 | bake 2m | analysis stable | exposed 0.7",
				"batch 8 of 10: 8 of 10 instances | batch | v1:2@20 v2:8@80 | bake 2m | analysis stable | exposed 0.8",
				"batch 9 of 10: 9 of 10 instances | batch | v1:1@10 v2:9@90 | bake 2m | analysis stable | exposed 0.9",
				"batch 10 of 10: 10 of 10 instances | batch | v1:0@0 v2:10@100 | bake 2m | analysis stable | exposed 1",
			},
			rollback: []string{
				"v1:1@10 v2:9@90", "v1:2@20 v2:8@80", "v1:3@30 v2:7@70", "v1:4@40 v2:6@60", "v1:5@50 v2:5@50",
				"v1:6@60 v2:4@40", "v1:7@70 v2:3@30", "v1:8@80 v2:2@20", "v1:9@90 v2:1@10", "v1:10@100 v2:0@0",
			},
			duration: "5m",
		},
		{
			strategy: BlueGreen,
			params:   `{"pre_switch_checks":"1m","scale_down_delay":"30m"}`,
			phases: []string{
				"start green beside blue | start_green | v1:10@100 v2:10@0 | bake 0s | exposed 0",
				"pre-switch checks on green | pre_switch | v1:10@100 v2:10@0 | bake 1m | analysis health | exposed 0",
				"switch traffic to green | switch | v1:10@0 v2:10@100 | bake 0s | exposed 1",
				"keep blue warm | keep_warm | v1:10@0 v2:10@100 | bake 30m | analysis blue | exposed 1",
				"retire blue | retire | v1:0@0 v2:10@100 | bake 0s | exposed 1",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "10s",
			extra:    1,
		},
		{
			strategy: Canary,
			params:   `{"steps":[5,25,50,100],"step_bake":"5m"}`,
			phases: []string{
				"canary 5% | shift | v1:10@95 v2:1@5 | bake 5m | analysis stable | exposed 0.05",
				"canary 25% | shift | v1:10@75 v2:3@25 | bake 5m | analysis stable | exposed 0.25",
				"canary 50% | shift | v1:10@50 v2:5@50 | bake 5m | analysis stable | exposed 0.5",
				"canary 100% | shift | v1:0@0 v2:10@100 | bake 5m | analysis health | exposed 1",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "10s",
			extra:    0.5,
		},
		{
			strategy: Shadow,
			params:   `{"mirror_percent":100,"duration":"30m"}`,
			phases: []string{
				"start shadow | start_shadow | v1:10@100 v2:10@0 | bake 0s | exposed 0",
				"mirror 100% of traffic to shadow | mirror | v1:10@100 v2:10@0 mirror v1→v2 100% | bake 30m | analysis primary | exposed 0",
				"shadow report | report | v1:10@100 v2:0@0 | bake 0s | manual promote | exposed 0",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "10s",
			extra:    1,
		},
		{
			strategy: ABTest,
			params:   `{"split_percent":50,"split_by":{"kind":"hash","key":"user_id"},"min_duration":"1h","max_duration":"14d","significance":0.95,"min_detectable_effect":0.01}`,
			phases: []string{
				"start B arm | start_arm | v1:10@100 v2:5@0 | bake 0s | exposed 0",
				"split 50% of users to B | split | v1:10@50 v2:5@50 [arm_b hash(user_id)<50→v2] [arm_a all→v1] | bake 14d | analysis arm_a | exposed 0.5",
				"report winner | report | v1:10@100 v2:0@0 | bake 0s | manual promote | exposed 0",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "10s",
			extra:    0.5,
		},
		{
			strategy: Ring,
			params: `{"rings":[` +
				`{"name":"employees","audience":{"kind":"header","key":"X-User-Group","values":["employees"]},"bake":"24h","expected_percent":1},` +
				`{"name":"early_adopters","audience":{"kind":"hash","key":"user_id","percent":10},"bake":"3d","expected_percent":10},` +
				`{"name":"everyone","audience":{"kind":"all"},"bake":"0s","expected_percent":100}]}`,
			phases: []string{
				"ring 0: employees | ring | v1:9@99 v2:1@1 [employees header(X-User-Group)=employees→v2] [rest all→v1] | bake 24h | analysis stable | approval | exposed 0.01",
				"ring 1: early adopters | ring | v1:9@90 v2:1@10 [employees header(X-User-Group)=employees→v2] [early_adopters hash(user_id)<10→v2] [rest all→v1] | bake 3d | analysis stable | approval | exposed 0.1",
				"ring 2: everyone | ring | v1:0@0 v2:10@100 [employees header(X-User-Group)=employees→v2] [early_adopters hash(user_id)<10→v2] [everyone all→v2] | bake 0s | analysis health | exposed 1",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			duration: "40s",
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.strategy), func(t *testing.T) {
			target := setup(t)
			for _, params := range []string{"", "{}", "null", " { } "} {
				p, err := Build(tt.strategy, json.RawMessage(params), target)
				require.NoError(t, err)
				require.Equal(t, tt.strategy, p.Strategy)
				require.JSONEq(t, tt.params, string(p.Params))
				require.Equal(t, tt.phases, summarize(p))
				require.Equal(t, tt.rollback, steps(p.Rollback))
				require.Equal(t, tt.duration, p.Rollback.ExpectedDuration.String())
				require.NotEmpty(t, p.Rollback.Description)
				require.InDelta(t, tt.extra, p.ExtraInfraShare, 1e-9)
				require.Equal(t, tt.downtime, p.Downtime)
				require.False(t, p.FirstDeploy)
			}
			// The normalized parameters of the defaults build the same plan.
			want, err := Build(tt.strategy, nil, target)
			require.NoError(t, err)
			got, err := Build(tt.strategy, json.RawMessage(tt.params), target)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestBuildCustomParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy Strategy
		params   string
		target   Target
		phases   []string
		rollback []string
		extra    float64
		check    func(t *testing.T, p Plan)
	}{
		{
			name:     "recreate with a longer health check",
			strategy: Recreate,
			params:   `{"health_check_timeout":"10m"}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 3},
			phases: []string{
				"stop old version | stop_old | v1:0@0 | bake 0s | exposed 0",
				"start new version | start_new | v1:0@0 v2:3@100 | bake 0s | exposed 1",
				"health check | health_check | v1:0@0 v2:3@100 | bake 10m | analysis health | exposed 1",
			},
			rollback: []string{"v1:3@100 v2:0@0"},
			check: func(t *testing.T, p Plan) {
				require.Equal(t, Duration(10*minute), p.Rollback.ExpectedDuration)
			},
		},
		{
			name:     "rolling by batch size, last batch short",
			strategy: Rolling,
			params:   `{"batch_size":4,"bake":"90s","analysis":false}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 10},
			phases: []string{
				"batch 1 of 3: 4 of 10 instances | batch | v1:6@60 v2:4@40 | bake 1m30s | exposed 0.4",
				"batch 2 of 3: 8 of 10 instances | batch | v1:2@20 v2:8@80 | bake 1m30s | exposed 0.8",
				"batch 3 of 3: 10 of 10 instances | batch | v1:0@0 v2:10@100 | bake 1m30s | exposed 1",
			},
			rollback: []string{"v1:2@20 v2:8@80", "v1:6@60 v2:4@40", "v1:10@100 v2:0@0"},
			check: func(t *testing.T, p Plan) {
				require.JSONEq(t, `{"batch_size":4,"bake":"1m30s","analysis":false}`, string(p.Params))
				require.Equal(t, Duration(90*second), p.Rollback.ExpectedDuration)
			},
		},
		{
			name:     "rolling by batch percent rounds up",
			strategy: Rolling,
			params:   `{"batch_percent":30}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 5},
			phases: []string{
				"batch 1 of 3: 2 of 5 instances | batch | v1:3@60 v2:2@40 | bake 2m | analysis stable | exposed 0.4",
				"batch 2 of 3: 4 of 5 instances | batch | v1:1@20 v2:4@80 | bake 2m | analysis stable | exposed 0.8",
				"batch 3 of 3: 5 of 5 instances | batch | v1:0@0 v2:5@100 | bake 2m | analysis stable | exposed 1",
			},
			rollback: []string{"v1:1@20 v2:4@80", "v1:3@60 v2:2@40", "v1:5@100 v2:0@0"},
			check: func(t *testing.T, p Plan) {
				require.JSONEq(t, `{"batch_percent":30,"bake":"2m","analysis":true}`, string(p.Params))
			},
		},
		{
			name:     "rolling batch larger than the fleet replaces it at once",
			strategy: Rolling,
			params:   `{"batch_size":50}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 4},
			phases: []string{
				"batch 1 of 1: 4 of 4 instances | batch | v1:0@0 v2:4@100 | bake 2m | analysis stable | exposed 1",
			},
			rollback: []string{"v1:4@100 v2:0@0"},
		},
		{
			name:     "rolling keeps every serving version at 1% or more",
			strategy: Rolling,
			params:   `{"batch_size":999}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 1000},
			phases: []string{
				"batch 1 of 2: 999 of 1000 instances | batch | v1:1@1 v2:999@99 | bake 2m | analysis stable | exposed 0.99",
				"batch 2 of 2: 1000 of 1000 instances | batch | v1:0@0 v2:1000@100 | bake 2m | analysis stable | exposed 1",
			},
			rollback: []string{"v1:1@1 v2:999@99", "v1:1000@100 v2:0@0"},
		},
		{
			name:     "blue-green without checks or delay",
			strategy: BlueGreen,
			params:   `{"pre_switch_checks":"0s","scale_down_delay":"2h"}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 2},
			phases: []string{
				"start green beside blue | start_green | v1:2@100 v2:2@0 | bake 0s | exposed 0",
				"pre-switch checks on green | pre_switch | v1:2@100 v2:2@0 | bake 0s | analysis health | exposed 0",
				"switch traffic to green | switch | v1:2@0 v2:2@100 | bake 0s | exposed 1",
				"keep blue warm | keep_warm | v1:2@0 v2:2@100 | bake 2h | analysis blue | exposed 1",
				"retire blue | retire | v1:0@0 v2:2@100 | bake 0s | exposed 1",
			},
			rollback: []string{"v1:2@100 v2:0@0"},
			extra:    1,
		},
		{
			name:     "canary with custom steps on a large fleet",
			strategy: Canary,
			params:   `{"steps":[1,10,100],"step_bake":"1d"}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 250},
			phases: []string{
				"canary 1% | shift | v1:250@99 v2:3@1 | bake 24h | analysis stable | exposed 0.01",
				"canary 10% | shift | v1:250@90 v2:25@10 | bake 24h | analysis stable | exposed 0.1",
				"canary 100% | shift | v1:0@0 v2:250@100 | bake 24h | analysis health | exposed 1",
			},
			rollback: []string{"v1:250@100 v2:0@0"},
			extra:    0.1,
			check: func(t *testing.T, p Plan) {
				require.JSONEq(t, `{"steps":[1,10,100],"step_bake":"24h"}`, string(p.Params))
			},
		},
		{
			name:     "canary of a single instance runs one canary beside it",
			strategy: Canary,
			params:   `{"steps":[100]}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 1},
			phases: []string{
				"canary 100% | shift | v1:0@0 v2:1@100 | bake 5m | analysis health | exposed 1",
			},
			rollback: []string{"v1:1@100 v2:0@0"},
		},
		{
			name:     "shadow mirroring a quarter of traffic",
			strategy: Shadow,
			params:   `{"mirror_percent":25,"duration":"2h"}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 10},
			phases: []string{
				"start shadow | start_shadow | v1:10@100 v2:3@0 | bake 0s | exposed 0",
				"mirror 25% of traffic to shadow | mirror | v1:10@100 v2:3@0 mirror v1→v2 25% | bake 2h | analysis primary | exposed 0",
				"shadow report | report | v1:10@100 v2:0@0 | bake 0s | manual promote | exposed 0",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			extra:    0.3,
		},
		{
			name:     "A/B test split by header",
			strategy: ABTest,
			params:   `{"split_percent":20,"split_by":{"kind":"header","key":"X-Experiment","values":["b","beta"]},"min_duration":"2d","max_duration":"7d","significance":0.99,"min_detectable_effect":0.05}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 10},
			phases: []string{
				"start B arm | start_arm | v1:10@100 v2:2@0 | bake 0s | exposed 0",
				"split 20% of users to B | split | v1:10@80 v2:2@20 [arm_b header(X-Experiment)=b,beta→v2] [arm_a all→v1] | bake 7d | analysis arm_a | exposed 0.2",
				"report winner | report | v1:10@100 v2:0@0 | bake 0s | manual promote | exposed 0",
			},
			rollback: []string{"v1:10@100 v2:0@0"},
			extra:    0.2,
			check: func(t *testing.T, p Plan) {
				require.Equal(t, &Experiment{MinDuration: 2 * day, Significance: 0.99, MinDetectableEffect: 0.05}, p.Phases[1].Experiment)
			},
		},
		{
			name:     "A/B test split by hashed cookie key",
			strategy: ABTest,
			params:   `{"split_percent":10,"split_by":{"key":"session"}}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 4},
			phases: []string{
				"start B arm | start_arm | v1:4@100 v2:1@0 | bake 0s | exposed 0",
				"split 10% of users to B | split | v1:4@90 v2:1@10 [arm_b hash(session)<10→v2] [arm_a all→v1] | bake 14d | analysis arm_a | exposed 0.1",
				"report winner | report | v1:4@100 v2:0@0 | bake 0s | manual promote | exposed 0",
			},
			rollback: []string{"v1:4@100 v2:0@0"},
			extra:    0.25,
		},
		{
			name:     "two rings, cookie then everyone",
			strategy: Ring,
			params:   `{"rings":[{"name":"beta","audience":{"kind":"cookie","key":"beta","values":["1"]},"expected_percent":5},{"name":"all-users","audience":{"kind":"all"},"bake":"1h"}]}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 20},
			phases: []string{
				"ring 0: beta | ring | v1:19@95 v2:1@5 [beta cookie(beta)=1→v2] [rest all→v1] | bake 24h | analysis stable | approval | exposed 0.05",
				"ring 1: all-users | ring | v1:0@0 v2:20@100 [beta cookie(beta)=1→v2] [all-users all→v2] | bake 1h | analysis health | exposed 1",
			},
			rollback: []string{"v1:20@100 v2:0@0"},
			check: func(t *testing.T, p Plan) {
				require.JSONEq(t, `{"rings":[{"name":"beta","audience":{"kind":"cookie","key":"beta","values":["1"]},"bake":"24h","expected_percent":5},{"name":"all-users","audience":{"kind":"all"},"bake":"1h","expected_percent":100}]}`, string(p.Params))
			},
		},
		{
			name:     "rings widen a hash of the same key",
			strategy: Ring,
			params:   `{"rings":[{"name":"one","audience":{"kind":"hash","percent":1}},{"name":"ten","audience":{"kind":"hash","percent":10}},{"name":"all","audience":{"kind":"all"}}]}`,
			target:   Target{FromVersion: "v1", ToVersion: "v2", Instances: 1},
			phases: []string{
				"ring 0: one | ring | v1:1@99 v2:1@1 [one hash(user_id)<1→v2] [rest all→v1] | bake 24h | analysis stable | approval | exposed 0.01",
				"ring 1: ten | ring | v1:1@90 v2:1@10 [one hash(user_id)<1→v2] [ten hash(user_id)<10→v2] [rest all→v1] | bake 24h | analysis stable | approval | exposed 0.1",
				"ring 2: all | ring | v1:0@0 v2:1@100 [one hash(user_id)<1→v2] [ten hash(user_id)<10→v2] [all all→v2] | bake 0s | analysis health | exposed 1",
			},
			rollback: []string{"v1:1@100 v2:0@0"},
			extra:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Build(tt.strategy, json.RawMessage(tt.params), tt.target)
			require.NoError(t, err)
			require.Equal(t, tt.phases, summarize(p))
			require.Equal(t, tt.rollback, steps(p.Rollback))
			require.InDelta(t, tt.extra, p.ExtraInfraShare, 1e-9)
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestBuildFirstDeploy(t *testing.T) {
	t.Parallel()
	bakes := map[Strategy]string{Recreate: "2m", Rolling: "2m", BlueGreen: "1m", Canary: "5m", Ring: "24h"}
	for _, s := range Strategies {
		t.Run(string(s), func(t *testing.T) {
			target := setup(t)
			target.FromVersion = ""
			p, err := Build(s, nil, target)
			bake, ok := bakes[s]
			if !ok {
				var verr *ValidationError
				require.ErrorAs(t, err, &verr)
				require.Len(t, verr.Errors, 1)
				require.Equal(t, "target.from_version", verr.Errors[0].Field)
				require.Contains(t, verr.Errors[0].Message, "first deploy")
				return
			}
			require.NoError(t, err)
			require.True(t, p.FirstDeploy)
			require.False(t, p.Downtime)
			require.Zero(t, p.ExtraInfraShare)
			require.Equal(t, []string{
				"start new version | start_new | v2:10@100 | bake 0s | exposed 1",
				"health check | health_check | v2:10@100 | bake " + bake + " | analysis health | exposed 1",
			}, summarize(p))
			require.Equal(t, []string{"v2:0@0"}, steps(p.Rollback))
			require.Contains(t, p.Rollback.Description, "no previous version")
		})
	}
}

func TestBuildInvalid(t *testing.T) {
	t.Parallel()
	upgrade := Target{FromVersion: "v1", ToVersion: "v2", Instances: 10}
	tests := []struct {
		name     string
		strategy Strategy
		params   string
		target   Target
		want     []FieldError // Message holds a part of the expected message.
	}{
		{"unknown strategy", "big_bang", `{}`, upgrade, []FieldError{
			{"strategy", `must be one of recreate, rolling, blue_green, canary, shadow, ab_test, ring, got "big_bang"`},
		}},
		{"empty strategy", "", `{}`, upgrade, []FieldError{{"strategy", "must be one of"}}},
		{"missing version", Canary, ``, Target{FromVersion: "v1", Instances: 10}, []FieldError{
			{"target.to_version", "must not be empty"},
		}},
		{"blank version", Canary, ``, Target{FromVersion: "v1", ToVersion: "  ", Instances: 10}, []FieldError{
			{"target.to_version", "must not be empty"},
		}},
		{"same version", Canary, ``, Target{FromVersion: "v1", ToVersion: "v1", Instances: 10}, []FieldError{
			{"target.to_version", `must differ from the running version "v1"`},
		}},
		{"blank running version", Canary, ``, Target{FromVersion: " ", ToVersion: "v2", Instances: 10}, []FieldError{
			{"target.from_version", "must be empty on a first deploy"},
		}},
		{"no instances", Canary, ``, Target{FromVersion: "v1", ToVersion: "v2"}, []FieldError{
			{"target.instances", "must be at least 1, got 0"},
		}},
		{"too many instances", Canary, ``, Target{FromVersion: "v1", ToVersion: "v2", Instances: MaxInstances + 1}, []FieldError{
			{"target.instances", "must be at most 10000, got 10001"},
		}},
		{"everything wrong at once", "nope", `{"x":1}`, Target{ToVersion: "", Instances: -1}, []FieldError{
			{"strategy", "must be one of"},
			{"target.to_version", "must not be empty"},
			{"target.instances", "must be at least 1, got -1"},
		}},
		{"bad JSON", Canary, `{"steps":[5,`, upgrade, []FieldError{
			{"params", "is not valid JSON: unexpected end of JSON input"},
		}},
		{"trailing JSON", Canary, `{} {}`, upgrade, []FieldError{{"params", "is not valid JSON"}}},
		{"params not an object", Canary, `[5,100]`, upgrade, []FieldError{
			{"params", "must be a JSON object, got an array"},
		}},
		{"unknown field", Canary, `{"steps":[100],"stepbake":"5m","Steps":[1]}`, upgrade, []FieldError{
			{"params.Steps", "is not a known field; known fields are step_bake, steps"},
			{"params.stepbake", "is not a known field; known fields are step_bake, steps"},
		}},
		{"unknown field of a nested object", ABTest, `{"split_by":{"kind":"hash","percent":10}}`, upgrade, []FieldError{
			{"params.split_by.percent", "is not a known field; known fields are key, kind, values"},
		}},
		{"wrong types", ABTest, `{"split_percent":"50","significance":true,"min_duration":60}`, upgrade, []FieldError{
			{"params.split_percent", "must be an integer, got a string"},
			{"params.min_duration", `must be a duration such as "90s", "5m", "24h" or "3d", got 60`},
			{"params.significance", "must be a number, got a boolean"},
		}},
		{"fractional integer", Shadow, `{"mirror_percent":12.5}`, upgrade, []FieldError{
			{"params.mirror_percent", "must be an integer, got 12.5"},
		}},
		{"unknown duration", Recreate, `{"health_check_timeout":"2 minutes"}`, upgrade, []FieldError{
			{"params.health_check_timeout", `must be a duration such as "90s", "5m", "24h" or "3d", got "2 minutes"`},
		}},
		{"zero health check", Recreate, `{"health_check_timeout":"0s"}`, upgrade, []FieldError{
			{"params.health_check_timeout", "must be longer than 0s"},
		}},
		{"negative bake", Rolling, `{"bake":"-2m"}`, upgrade, []FieldError{
			{"params.bake", `must not be negative, got "-2m"`},
		}},
		{"bake too long", Rolling, `{"bake":"31d"}`, upgrade, []FieldError{
			{"params.bake", `must be at most 30d, got "31d"`},
		}},
		{"batch size and percent together", Rolling, `{"batch_size":2,"batch_percent":20}`, upgrade, []FieldError{
			{"params.batch_percent", "cannot be combined with batch_size"},
		}},
		{"batch size zero", Rolling, `{"batch_size":0}`, upgrade, []FieldError{
			{"params.batch_size", "must be between 1 and 10000, got 0"},
		}},
		{"batch percent out of range", Rolling, `{"batch_percent":101}`, upgrade, []FieldError{
			{"params.batch_percent", "must be between 1 and 100, got 101"},
		}},
		{"analysis not a boolean", Rolling, `{"analysis":"yes"}`, upgrade, []FieldError{
			{"params.analysis", "must be true or false, got a string"},
		}},
		{"negative blue-green delays", BlueGreen, `{"pre_switch_checks":"-1s","scale_down_delay":"-1h"}`, upgrade, []FieldError{
			{"params.pre_switch_checks", "must not be negative"},
			{"params.scale_down_delay", "must not be negative"},
		}},
		{"steps not increasing", Canary, `{"steps":[5,25,20,100]}`, upgrade, []FieldError{
			{"params.steps[2]", "must be greater than the step before it (25), got 20"},
		}},
		{"steps repeated", Canary, `{"steps":[5,5,100]}`, upgrade, []FieldError{
			{"params.steps[1]", "must be greater than the step before it (5), got 5"},
		}},
		{"last step not 100", Canary, `{"steps":[5,25,50]}`, upgrade, []FieldError{
			{"params.steps[2]", "the last step must be 100 so the canary ends serving everyone, got 50"},
		}},
		{"steps out of range", Canary, `{"steps":[0,101]}`, upgrade, []FieldError{
			{"params.steps[0]", "must be between 1 and 100, got 0"},
			{"params.steps[1]", "must be between 1 and 100, got 101"},
		}},
		{"steps empty", Canary, `{"steps":[]}`, upgrade, []FieldError{
			{"params.steps", "must list at least one step"},
		}},
		{"steps not a list", Canary, `{"steps":"5,100"}`, upgrade, []FieldError{
			{"params.steps", "must be an array, got a string"},
		}},
		{"step not a number", Canary, `{"steps":[5,"x",100]}`, upgrade, []FieldError{
			{"params.steps[1]", "must be an integer, got a string"},
		}},
		{"mirror percent zero", Shadow, `{"mirror_percent":0}`, upgrade, []FieldError{
			{"params.mirror_percent", "must be between 1 and 100, got 0"},
		}},
		{"shadow duration zero", Shadow, `{"duration":"0"}`, upgrade, []FieldError{
			{"params.duration", "must be longer than 0s"},
		}},
		{"shadow on first deploy", Shadow, ``, Target{ToVersion: "v2", Instances: 1}, []FieldError{
			{"target.from_version", "shadow compares the new version with the running one, and a first deploy has none"},
		}},
		{"split percent zero", ABTest, `{"split_percent":0}`, upgrade, []FieldError{
			{"params.split_percent", "must be between 1 and 99, got 0"},
		}},
		{"split percent everyone", ABTest, `{"split_percent":100}`, upgrade, []FieldError{
			{"params.split_percent", "must be between 1 and 99, got 100"},
		}},
		{"split by unknown kind", ABTest, `{"split_by":{"kind":"geo"}}`, upgrade, []FieldError{
			{"params.split_by.kind", `must be one of "hash", "header", "cookie", got "geo"`},
		}},
		{"split by header without key or values", ABTest, `{"split_by":{"kind":"header"}}`, upgrade, []FieldError{
			{"params.split_by.key", "is required: the header name to match"},
			{"params.split_by.values", "is required: the header values to match"},
		}},
		{"split by cookie with bad values", ABTest, `{"split_by":{"kind":"cookie","key":"my cookie","values":["a","","a"]}}`, upgrade, []FieldError{
			{"params.split_by.values[1]", "must not be empty"},
			{"params.split_by.values[2]", `repeats "a"`},
			{"params.split_by.key", `must be a header, cookie or key name`},
		}},
		{"split by hash with values", ABTest, `{"split_by":{"kind":"hash","values":["x"]}}`, upgrade, []FieldError{
			{"params.split_by.values", "only header and cookie rules take values"},
		}},
		{"split by not an object", ABTest, `{"split_by":"user_id"}`, upgrade, []FieldError{
			{"params.split_by", "must be a JSON object, got a string"},
		}},
		{"max duration not above min", ABTest, `{"min_duration":"2d","max_duration":"1d"}`, upgrade, []FieldError{
			{"params.max_duration", "must be longer than min_duration (2d), got 24h"},
		}},
		{"significance out of range", ABTest, `{"significance":0.99999,"min_detectable_effect":0}`, upgrade, []FieldError{
			{"params.significance", "must be between 0.5 and 0.9999, got 0.99999"},
			{"params.min_detectable_effect", "must be greater than 0 and at most 1, got 0"},
		}},
		{"A/B test on first deploy", ABTest, ``, Target{ToVersion: "v2", Instances: 1}, []FieldError{
			{"target.from_version", "ab_test compares the new version with the running one"},
		}},
		{"ring names duplicate", Ring, `{"rings":[{"name":"a","audience":{"kind":"header","key":"X","values":["1"]}},{"name":"a","audience":{"kind":"all"}}]}`, upgrade, []FieldError{
			{"params.rings[1].name", `repeats the name of ring 0, "a"`},
		}},
		{"ring name empty, missing and reserved", Ring, `{"rings":[{"name":"","audience":{"kind":"hash","percent":5}},{"audience":{"kind":"hash","percent":6}},{"name":"rest","audience":{"kind":"all"}}]}`, upgrade, []FieldError{
			{"params.rings[0].name", `must be 1 to 64 letters, digits, '_' or '-'`},
			{"params.rings[1].name", "is required"},
			{"params.rings[2].name", `"rest" is reserved`},
		}},
		{"no rings", Ring, `{"rings":[]}`, upgrade, []FieldError{
			{"params.rings", "must list at least one ring"},
		}},
		{"too many rings", Ring, `{"rings":[` + strings.Repeat(`{},`, MaxRings) + `{}]}`, upgrade, []FieldError{
			{"params.rings", "must list at most 10 rings, got 11"},
		}},
		{"last ring not for everyone", Ring, `{"rings":[{"name":"a","audience":{"kind":"hash","percent":50}}]}`, upgrade, []FieldError{
			{"params.rings[0].audience.kind", `the last ring must reach everyone, so its kind must be "all", got "hash"`},
		}},
		{"everyone before the last ring", Ring, `{"rings":[{"name":"a","audience":{"kind":"all"}},{"name":"b","audience":{"kind":"all"}}]}`, upgrade, []FieldError{
			{"params.rings[0].audience.kind", "only the last ring can be for everyone"},
		}},
		{"ring audience problems", Ring, `{"rings":[{"name":"a","audience":{"kind":"hash","key":"user_id","percent":100,"values":["x"]}},{"name":"b","audience":{"kind":"header","key":"X","values":["1"],"percent":3}},{"name":"c","audience":{}},{"name":"d"},{"name":"e","audience":{"kind":"all","key":"x"}}]}`, upgrade, []FieldError{
			{"params.rings[0].audience.values", "only header and cookie rules take values"},
			{"params.rings[0].audience.percent", `must be between 1 and 99, got 100; use kind "all" for everyone`},
			{"params.rings[1].audience.percent", "only hash rules take a percent"},
			{"params.rings[2].audience.kind", `is required; one of "header", "cookie", "hash", "all"`},
			{"params.rings[3].audience", "is required"},
			{"params.rings[4].audience.key", "a rule for everyone takes no key"},
		}},
		{"hash rings must widen", Ring, `{"rings":[{"name":"a","audience":{"kind":"hash","percent":10}},{"name":"b","audience":{"kind":"hash","percent":10}},{"name":"c","audience":{"kind":"all"}}]}`, upgrade, []FieldError{
			{"params.rings[1].audience.percent", "must be greater than an earlier ring's 10% of the same key"},
		}},
		{"hash ring without percent", Ring, `{"rings":[{"name":"a","audience":{"kind":"hash"}},{"name":"c","audience":{"kind":"all"}}]}`, upgrade, []FieldError{
			{"params.rings[0].audience.percent", "is required for a hash rule"},
		}},
		{"ring expected percent", Ring, `{"rings":[{"name":"a","audience":{"kind":"hash","percent":10},"expected_percent":50},{"name":"b","audience":{"kind":"hash","percent":20},"expected_percent":30},{"name":"c","audience":{"kind":"all"},"expected_percent":99}]}`, upgrade, []FieldError{
			{"params.rings[1].expected_percent", "must not be less than the ring before it (50), got 30"},
			{"params.rings[2].expected_percent", "must be 100 for the last ring"},
		}},
		{"ring bake and unknown field", Ring, `{"rings":[{"name":"a","audience":{"kind":"all"},"bake":"-1h","approval":false}]}`, upgrade, []FieldError{
			{"params.rings[0].bake", `must not be negative, got "-1h"`},
			{"params.rings[0].approval", "is not a known field; known fields are approvers, audience, bake, expected_percent, name"},
		}},
		{"ring not an object", Ring, `{"rings":[5]}`, upgrade, []FieldError{
			{"params.rings[0]", "must be a JSON object, got 5"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Build(tt.strategy, json.RawMessage(tt.params), tt.target)
			require.Error(t, err)
			require.Zero(t, p)
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			fields := make([]string, len(verr.Errors))
			for i, fe := range verr.Errors {
				fields[i] = fe.Field
			}
			wantFields := make([]string, len(tt.want))
			for i, fe := range tt.want {
				wantFields[i] = fe.Field
			}
			require.Equal(t, wantFields, fields, "errors: %v", verr.Errors)
			for i, fe := range tt.want {
				require.Contains(t, verr.Errors[i].Message, fe.Message)
				require.Contains(t, err.Error(), fe.Field+": "+verr.Errors[i].Message)
			}
		})
	}
}

func TestValidationErrorJoinsEveryField(t *testing.T) {
	t.Parallel()
	err := &ValidationError{Errors: []FieldError{
		{Field: "params.steps[2]", Message: "must be greater than the step before it (25), got 20"},
		{Field: "target.instances", Message: "must be at least 1, got 0"},
	}}
	require.Equal(t, "invalid deployment plan: params.steps[2]: must be greater than the step before it (25), got 20; target.instances: must be at least 1, got 0", err.Error())
	var target *ValidationError
	require.True(t, errors.As(fmt.Errorf("starting run: %w", err), &target))
}

func TestNormalizeParams(t *testing.T) {
	t.Parallel()
	got, err := NormalizeParams(Canary, json.RawMessage(`{"steps":[10,100]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"steps":[10,100],"step_bake":"5m"}`, string(got))

	_, err = NormalizeParams("nope", nil)
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, "strategy", verr.Errors[0].Field)

	_, err = NormalizeParams(Rolling, json.RawMessage(`{"batch_size":-1}`))
	require.ErrorAs(t, err, &verr)
	require.Equal(t, []FieldError{{Field: "params.batch_size", Message: "must be between 1 and 10000, got -1"}}, verr.Errors)
}

func TestStrategies(t *testing.T) {
	t.Parallel()
	require.Equal(t, []Strategy{"recreate", "rolling", "blue_green", "canary", "shadow", "ab_test", "ring"}, Strategies)
	for _, s := range Strategies {
		require.True(t, s.Valid(), s)
		info := Describe(s)
		require.Equal(t, s, info.Strategy)
		require.NotEmpty(t, info.Title)
		require.NotEmpty(t, info.Phases)
		require.NotEmpty(t, info.Rollback)
		require.NotEmpty(t, info.InfraCost)
		require.Equal(t, s == Recreate, info.Downtime)
		require.Equal(t, s != Shadow && s != ABTest, info.FirstDeploy)
		p, err := Build(s, nil, Target{FromVersion: "v1", ToVersion: "v2", Instances: 3})
		require.NoError(t, err)
		require.Equal(t, p.Params, info.Defaults)
	}
	require.False(t, Strategy("blue-green").Valid())
	require.False(t, Strategy("").Valid())
	require.Zero(t, Describe("blue-green"))
	require.Equal(t, "flip traffic back", Describe(BlueGreen).Rollback)
}

func TestDuration(t *testing.T) {
	t.Parallel()
	t.Run("parse", func(t *testing.T) {
		t.Parallel()
		for text, want := range map[string]Duration{
			"0":      0,
			"0s":     0,
			"90s":    90 * second,
			"5m":     5 * minute,
			"1h30m":  90 * minute,
			"24h":    day,
			"3d":     3 * day,
			"1d12h":  36 * hour,
			"0d":     0,
			" 2m ":   2 * minute,
			"-1d":    -day,
			"1.5h":   90 * minute,
			"250ms":  Duration(250_000_000),
			"14d":    14 * day,
			"30d0s":  30 * day,
			"1d1h1m": day + hour + minute,
		} {
			got, err := ParseDuration(text)
			require.NoError(t, err, text)
			require.Equal(t, want, got, text)
		}
		for _, text := range []string{"", "d", "1.5d", "3 days", "1y", "5", "xd", "1d-5m", "1d+5m", "--1m", "99999999d", "1d9223372036s"} {
			_, err := ParseDuration(text)
			require.Error(t, err, text)
		}
	})
	t.Run("format", func(t *testing.T) {
		t.Parallel()
		for d, want := range map[Duration]string{
			0:                    "0s",
			90 * second:          "1m30s",
			2 * minute:           "2m",
			90 * minute:          "1h30m",
			day:                  "24h",
			36 * hour:            "36h",
			3 * day:              "3d",
			14 * day:             "14d",
			-5 * minute:          "-5m",
			Duration(1_500_000):  "1.5ms",
			hour + 5*second:      "1h5s",
			2*day + 30*minute:    "48h30m",
			Duration(1<<63 - 1):  "2562047h47m16.854775807s",
			Duration(-1 << 63):   "-2562047h47m16.854775808s",
			Duration(2500000000): "2.5s",
		} {
			require.Equal(t, want, d.String(), int64(d))
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		var got struct{ Bake Duration }
		require.NoError(t, json.Unmarshal([]byte(`{"Bake":"3d"}`), &got))
		require.Equal(t, 3*day, got.Bake)
		b, err := json.Marshal(got)
		require.NoError(t, err)
		require.JSONEq(t, `{"Bake":"3d"}`, string(b))
		require.Error(t, json.Unmarshal([]byte(`{"Bake":"soon"}`), &got))
		require.Error(t, json.Unmarshal([]byte(`{"Bake":60}`), &got))
	})
}
