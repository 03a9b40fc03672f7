package flags_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

func TestFirstMatchingRuleWins(t *testing.T) {
	t.Parallel()
	st := flags.EnvState{
		Enabled: true,
		Rules: []flags.Rule{
			{Name: "staff", Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@ourcompany.com"}}}, Serve: flags.Serve{Variant: "green"}},
			{Name: "beta plan", Clauses: []flags.Clause{{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta"}}}, Serve: flags.Serve{Variant: "red"}},
			{Name: "eu beta", Clauses: []flags.Clause{
				{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta"}},
				{Attribute: "region", Op: flags.OpStartsWith, Values: []any{"eu-"}},
			}, Serve: flags.Serve{Variant: "blue"}},
		},
		DefaultRollout: flags.Serve{Variant: "blue"},
	}
	c := compile(t, colourFlag(), st)
	tests := []struct {
		ctx     flags.EvalContext
		variant string
		value   string
		reason  flags.Reason
		rule    string
	}{
		{flags.EvalContext{"email": "ana@ourcompany.com", "plan": "beta"}, "green", `"#2ea043"`, flags.ReasonTargetingMatch, "staff"},
		{flags.EvalContext{"email": "bo@example.com", "plan": "beta", "region": "eu-west-1"}, "red", `"#da3633"`, flags.ReasonTargetingMatch, "beta plan"},
		{flags.EvalContext{"email": "bo@example.com", "plan": "free"}, "blue", `"#1f6feb"`, flags.ReasonDefault, ""},
		{nil, "blue", `"#1f6feb"`, flags.ReasonDefault, ""},
	}
	for _, tc := range tests {
		r := c.Evaluate(tc.ctx)
		require.Equal(t, flags.Result{
			Key: "checkout-button-colour", Variant: tc.variant, Value: json.RawMessage(tc.value), Reason: tc.reason, RuleName: tc.rule,
		}, r, "context %v", tc.ctx)
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	seg := flags.Segment{
		Key:          "beta-testers",
		Clauses:      []flags.Clause{{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta"}}},
		IncludedKeys: []string{"user-7"},
		ExcludedKeys: []string{"user-9"},
	}
	list := flags.Segment{Key: "pilot-customers", IncludedKeys: []string{"acme", "globex"}}
	st := flags.EnvState{
		Enabled: true,
		Rules: []flags.Rule{
			{Name: "pilots", Segment: "pilot-customers", Serve: flags.Serve{Variant: "on"}},
			{Name: "beta", Segment: "beta-testers", Clauses: []flags.Clause{{Attribute: "country", Op: flags.OpNotIn, Values: []any{"KP"}}}, Serve: flags.Serve{Variant: "on"}},
		},
	}
	c := compile(t, boolFlag("new-checkout"), st, seg, list)
	tests := []struct {
		name string
		ctx  flags.EvalContext
		rule string
	}{
		{"included key without matching clauses", flags.EvalContext{"targetingKey": "user-7", "plan": "free", "country": "NL"}, "beta"},
		{"excluded key although clauses match", flags.EvalContext{"targetingKey": "user-9", "plan": "beta", "country": "NL"}, ""},
		{"clauses match", flags.EvalContext{"targetingKey": "user-1", "plan": "beta", "country": "NL"}, "beta"},
		{"segment matches but rule clause does not", flags.EvalContext{"targetingKey": "user-1", "plan": "beta", "country": "KP"}, ""},
		{"no targeting key, clauses match", flags.EvalContext{"plan": "beta", "country": "NL"}, "beta"},
		{"list-only segment member", flags.EvalContext{"targetingKey": "globex"}, "pilots"},
		{"list-only segment does not match others", flags.EvalContext{"targetingKey": "initech"}, ""},
	}
	for _, tc := range tests {
		r := c.Evaluate(tc.ctx)
		require.Empty(t, r.ErrorCode, tc.name)
		require.Equal(t, tc.rule, r.RuleName, tc.name)
		if tc.rule == "" {
			require.Equal(t, "off", r.Variant, tc.name)
			require.Equal(t, flags.ReasonDefault, r.Reason, tc.name)
		} else {
			require.Equal(t, "on", r.Variant, tc.name)
			require.Equal(t, flags.ReasonTargetingMatch, r.Reason, tc.name)
		}
	}
}

func TestKillSwitch(t *testing.T) {
	t.Parallel()
	st := flags.EnvState{
		Enabled:        false,
		Rules:          []flags.Rule{{Name: "everyone", Serve: flags.Serve{Variant: "green"}}},
		DefaultRollout: flags.Serve{Variant: "green"},
	}
	f := colourFlag()
	r := compile(t, f, st).Evaluate(flags.EvalContext{"targetingKey": "user-1"})
	require.Equal(t, flags.Result{Key: f.Key, Variant: "blue", Value: json.RawMessage(`"#1f6feb"`), Reason: flags.ReasonDisabled}, r,
		"without an off variant the default variant is served")

	f.OffVariant = "red"
	r = compile(t, f, st).Evaluate(nil)
	require.Equal(t, flags.Result{Key: f.Key, Variant: "red", Value: json.RawMessage(`"#da3633"`), Reason: flags.ReasonDisabled}, r)

	st.Enabled = true
	r = compile(t, f, st).Evaluate(nil)
	require.Equal(t, flags.Result{Key: f.Key, Variant: "green", Value: json.RawMessage(`"#2ea043"`), Reason: flags.ReasonTargetingMatch, RuleName: "everyone"}, r)
}

func TestReasons(t *testing.T) {
	t.Parallel()
	half := []flags.WeightedVariant{{Variant: "on", Weight: 50}, {Variant: "off", Weight: 50}}
	f := boolFlag("search-v2")

	r := compile(t, f, flags.EnvState{Enabled: true}).Evaluate(nil)
	require.Equal(t, flags.Result{Key: "search-v2", Variant: "off", Value: json.RawMessage(`false`), Reason: flags.ReasonStatic}, r)

	r = compile(t, f, flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "on"}}).Evaluate(nil)
	require.Equal(t, flags.Result{Key: "search-v2", Variant: "on", Value: json.RawMessage(`true`), Reason: flags.ReasonStatic}, r)

	c := compile(t, f, flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Rollout: half}})
	r = c.Evaluate(flags.EvalContext{"targetingKey": "user-1"})
	require.Equal(t, flags.ReasonSplit, r.Reason)
	require.Empty(t, r.RuleName)
	require.Contains(t, []string{"on", "off"}, r.Variant)

	c = compile(t, f, flags.EnvState{Enabled: true, Rules: []flags.Rule{{
		Name: "mobile", Clauses: []flags.Clause{{Attribute: "platform", Op: flags.OpEquals, Values: []any{"ios"}}}, Serve: flags.Serve{Rollout: half},
	}}})
	r = c.Evaluate(flags.EvalContext{"targetingKey": "user-1", "platform": "ios"})
	require.Equal(t, flags.ReasonSplit, r.Reason)
	require.Equal(t, "mobile", r.RuleName)
}

func TestRolloutWithoutTargetingKey(t *testing.T) {
	t.Parallel()
	half := []flags.WeightedVariant{{Variant: "on", Weight: 50}, {Variant: "off", Weight: 50}}
	c := compile(t, boolFlag("search-v2"), flags.EnvState{
		Enabled: true,
		Rules: []flags.Rule{
			{Name: "staff", Clauses: []flags.Clause{{Attribute: "staff", Op: flags.OpEquals, Values: []any{true}}}, Serve: flags.Serve{Variant: "on"}},
			{Name: "mobile", Clauses: []flags.Clause{{Attribute: "platform", Op: flags.OpEquals, Values: []any{"ios"}}}, Serve: flags.Serve{Rollout: half}},
		},
		DefaultRollout: flags.Serve{Rollout: half},
	})
	for _, ctx := range []flags.EvalContext{nil, {"platform": "web"}, {"targetingKey": ""}} {
		require.Equal(t, flags.Result{
			Key: "search-v2", Reason: flags.ReasonError, ErrorCode: flags.ErrorTargetingKeyMissing,
			ErrorMessage: "this flag serves a percentage rollout and needs a targetingKey in the context",
		}, c.Evaluate(ctx))
	}
	r := c.Evaluate(flags.EvalContext{"platform": "ios"})
	require.Equal(t, flags.ErrorTargetingKeyMissing, r.ErrorCode)
	require.Equal(t, "rule mobile serves a percentage rollout and needs a targetingKey in the context", r.ErrorMessage)

	r = c.Evaluate(flags.EvalContext{"staff": true})
	require.Equal(t, "on", r.Variant, "a fixed variant needs no targeting key")
	require.Equal(t, flags.ReasonTargetingMatch, r.Reason)
}

func TestInvalidContext(t *testing.T) {
	t.Parallel()
	c := compile(t, boolFlag("search-v2"), flags.EnvState{Enabled: true})
	require.Equal(t, flags.Result{
		Key: "search-v2", Reason: flags.ReasonError, ErrorCode: flags.ErrorInvalidContext,
		ErrorMessage: "targetingKey must be a string, not a number",
	}, c.Evaluate(flags.EvalContext{"targetingKey": 42.0}))

	for _, raw := range []string{`[1,2]`, `"user-1"`, `42`, `true`} {
		_, err := flags.ParseContext([]byte(raw))
		var ee *flags.EvalError
		require.ErrorAs(t, err, &ee, raw)
		require.Equal(t, flags.ErrorInvalidContext, ee.Code, raw)
		require.Equal(t, "the evaluation context must be a JSON object", ee.Message, raw)
	}
	_, err := flags.ParseContext([]byte(`{"targetingKey": {"id": 1}}`))
	require.EqualError(t, err, "INVALID_CONTEXT: targetingKey must be a string, not an object")
	_, err = flags.ParseContext([]byte(`{"targetingKey": "u1",`))
	require.ErrorContains(t, err, "INVALID_CONTEXT: the evaluation context is not valid JSON")

	ctx, err := flags.ParseContext([]byte(` {"targetingKey": "user-1", "age": 31, "groups": ["beta"]} `))
	require.NoError(t, err)
	require.Equal(t, flags.EvalContext{"targetingKey": "user-1", "age": 31.0, "groups": []any{"beta"}}, ctx)
	ctx, err = flags.ParseContext([]byte(`null`))
	require.NoError(t, err)
	require.Empty(t, ctx)
}

func TestObjectAndNumberValuesAreCompacted(t *testing.T) {
	t.Parallel()
	f := flags.Flag{
		Key:  "rate-limits",
		Type: flags.TypeObject,
		Variants: map[string]json.RawMessage{
			"strict":  json.RawMessage("{\n  \"per_minute\": 60,\n  \"burst\": 10\n}"),
			"relaxed": json.RawMessage(`{"per_minute": 600}`),
		},
		DefaultVariant: "strict",
	}
	r := compile(t, f, flags.EnvState{Enabled: true}).Evaluate(nil)
	require.Equal(t, `{"per_minute":60,"burst":10}`, string(r.Value))
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	f := colourFlag()
	f.OffVariant = "red"
	f.Salt = "2026-q1"
	f.Description = "Colour of the pay button on the checkout page."
	st := validState()
	seg := betaSegment()

	var f2 flags.Flag
	var st2 flags.EnvState
	var seg2 flags.Segment
	for _, pair := range []struct{ in, out any }{{f, &f2}, {st, &st2}, {seg, &seg2}} {
		b, err := json.Marshal(pair.in)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, pair.out))
	}
	require.Equal(t, f, f2)
	require.Equal(t, st, st2)
	require.Equal(t, seg, seg2)

	b, err := json.Marshal(st.Rules[1])
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"beta","segment":"beta-testers","rollout":[{"variant":"red","weight":12.5},{"variant":"blue","weight":87.5}]}`, string(b),
		"a rule's variant or rollout sits beside its name, as the field paths of errors say")

	var fromAPI flags.EnvState
	require.NoError(t, json.Unmarshal([]byte(`{
		"enabled": true,
		"rules": [{"name": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@ourcompany.com"]}], "variant": "green"}],
		"default_rollout": {"rollout": [{"variant": "blue", "weight": 95}, {"variant": "red", "weight": 5}]},
		"version": 7
	}`), &fromAPI))
	c := compile(t, f, fromAPI)
	require.Equal(t, int64(7), c.Version())
	require.Equal(t, "green", c.Evaluate(flags.EvalContext{"email": "ana@ourcompany.com"}).Variant)

	r := c.Evaluate(flags.EvalContext{"targetingKey": "user-1"})
	b, err = json.Marshal(r)
	require.NoError(t, err)
	var r2 flags.Result
	require.NoError(t, json.Unmarshal(b, &r2))
	require.Equal(t, r, r2)
}
