package flags_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

func TestOperators(t *testing.T) {
	t.Parallel()
	type probe struct {
		attr any
		want bool
	}
	tests := []struct {
		op     flags.Operator
		values []any
		probes []probe
	}{
		{flags.OpEquals, []any{"beta"}, []probe{
			{"beta", true}, {"Beta", false}, {"", false}, {3.0, false}, {[]any{"alpha", "beta"}, true},
		}},
		{flags.OpEquals, []any{42.0}, []probe{{42.0, true}, {42, true}, {int64(42), true}, {json.Number("42"), true}, {41.5, false}, {"42", false}}},
		{flags.OpEquals, []any{true}, []probe{{true, true}, {false, false}, {"true", false}}},
		{flags.OpNotEquals, []any{"beta"}, []probe{
			{"beta", false}, {"free", true}, {3.0, false}, {[]any{"alpha"}, true}, {[]any{"alpha", "beta"}, false},
		}},
		{flags.OpIn, []any{"beta", "enterprise", 7.0}, []probe{
			{"beta", true}, {"enterprise", true}, {"free", false}, {7.0, true}, {8.0, false}, {true, false}, {[]string{"free", "beta"}, true},
		}},
		{flags.OpNotIn, []any{"beta", "enterprise"}, []probe{
			{"beta", false}, {"free", true}, {1.0, false}, {[]any{"free", "team"}, true}, {[]any{"free", "beta"}, false},
		}},
		{flags.OpStartsWith, []any{"eu-", "us-"}, []probe{{"eu-west-1", true}, {"us-east-1", true}, {"ap-south-1", false}, {12.0, false}}},
		{flags.OpEndsWith, []any{"@ourcompany.com"}, []probe{
			{"ana@ourcompany.com", true}, {"ana@ourcompany.com.evil.io", false}, {"ana@gmail.com", false}, {false, false},
		}},
		{flags.OpContains, []any{"Firefox"}, []probe{{"Mozilla/5.0 Firefox/132.0", true}, {"Chrome/130", false}, {[]any{"x", "Firefox 3"}, true}}},
		{flags.OpMatches, []any{`^[a-z]+\.(staging|qa)\.internal$`}, []probe{
			{"checkout.staging.internal", true}, {"checkout.prod.internal", false}, {"CHECKOUT.qa.internal", false}, {1.0, false},
		}},
		{flags.OpGT, []any{18.0}, []probe{{19.0, true}, {18.0, false}, {17, false}, {"19", false}}},
		{flags.OpGTE, []any{18.0}, []probe{{18.0, true}, {18, true}, {17.99, false}}},
		{flags.OpLT, []any{0.5}, []probe{{0.25, true}, {0.5, false}, {1, false}}},
		{flags.OpLTE, []any{100.0}, []probe{{100.0, true}, {uint8(100), true}, {100.01, false}}},
		{flags.OpSemverGT, []any{"2.4.0"}, []probe{
			{"2.4.1", true}, {"2.4.0", false}, {"2.10.0", true}, {"v3.0.0", true}, {"2.4.0+build.7", false}, {"2.5.0-beta.1", true}, {"not-a-version", false}, {2.5, false},
		}},
		{flags.OpSemverGTE, []any{"2.4.0"}, []probe{{"2.4.0", true}, {"2.4.0-rc.1", false}, {"2.3.99", false}, {"10.0.0", true}}},
		{flags.OpSemverLT, []any{"3.0.0-beta.2"}, []probe{
			{"3.0.0-beta.1", true}, {"3.0.0-beta", true}, {"3.0.0-beta.11", false}, {"3.0.0-alpha.9", true}, {"3.0.0", false}, {"2.99.0", true},
		}},
		{flags.OpSemverLTE, []any{"1.0.0-rc.1"}, []probe{{"1.0.0-rc.1", true}, {"1.0.0-1", true}, {"1.0.0", false}, {"1.0.0-rc.1.1", false}}},
	}
	for _, tc := range tests {
		for _, p := range tc.probes {
			clause := flags.Clause{Attribute: "attr", Op: tc.op, Values: tc.values}
			got := clauseMatches(t, clause, flags.EvalContext{"attr": p.attr})
			require.Equal(t, p.want, got, "%s %v with attribute %#v", tc.op, tc.values, p.attr)
		}
	}
}

// TestMissingAttributeNeverMatches: a clause about an attribute the context
// does not carry says nothing about the user, even when negated.
func TestMissingAttributeNeverMatches(t *testing.T) {
	t.Parallel()
	for _, op := range flags.Operators {
		values := []any{"beta"}
		switch op {
		case flags.OpGT, flags.OpGTE, flags.OpLT, flags.OpLTE:
			values = []any{1.0}
		case flags.OpSemverGT, flags.OpSemverGTE, flags.OpSemverLT, flags.OpSemverLTE:
			values = []any{"1.0.0"}
		}
		clause := flags.Clause{Attribute: "plan", Op: op, Values: values}
		require.False(t, clauseMatches(t, clause, flags.EvalContext{"targetingKey": "u1"}), "%s on a missing attribute", op)
		require.False(t, clauseMatches(t, clause, flags.EvalContext{"plan": nil}), "%s on a null attribute", op)
		require.False(t, clauseMatches(t, clause, flags.EvalContext{"plan": map[string]any{"name": "beta"}}), "%s on an object attribute", op)
	}
}

func TestLongKeyListsMatch(t *testing.T) {
	t.Parallel()
	var keys []any
	for _, k := range []string{"u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09", "u10", "u11", "u12", "u13", "u14", "u15", "u16", "u17", "u18", "u19", "u20"} {
		keys = append(keys, k)
	}
	in := flags.Clause{Attribute: "targetingKey", Op: flags.OpIn, Values: keys}
	require.True(t, clauseMatches(t, in, flags.EvalContext{"targetingKey": "u17"}))
	require.False(t, clauseMatches(t, in, flags.EvalContext{"targetingKey": "u21"}))
	notIn := flags.Clause{Attribute: "targetingKey", Op: flags.OpNotIn, Values: keys}
	require.False(t, clauseMatches(t, notIn, flags.EvalContext{"targetingKey": "u17"}))
	require.True(t, clauseMatches(t, notIn, flags.EvalContext{"targetingKey": "u21"}))
}

func TestSemanticVersionSyntax(t *testing.T) {
	t.Parallel()
	for v, valid := range map[string]bool{
		"1.2.3": true, "v1.2.3": true, "0.0.0": true, "1.2.3-rc.1": true, "1.2.3-x-y.7+build.2026-03-01": true, "1.2.3+sha.5114f85": true,
		"1.2": false, "1.2.3.4": false, "01.2.3": false, "1.2.3-": false, "1.2.3-rc..1": false, "1.2.3-01": false,
		"1.2.3+": false, "1.2.3-rc_1": false, "one.two.three": false, "": false, "1.2.-3": false,
	} {
		clause := flags.Clause{Attribute: "app_version", Op: flags.OpSemverGTE, Values: []any{v}}
		err := flags.Validate(boolFlag("semver-probe"), flags.EnvState{Enabled: true, Rules: []flags.Rule{
			{Name: "probe", Clauses: []flags.Clause{clause}, Serve: flags.Serve{Variant: "on"}},
		}}, nil)
		if valid {
			require.NoError(t, err, v)
			continue
		}
		var ve *flags.ValidationError
		require.ErrorAs(t, err, &ve, v)
		require.Equal(t, fmt.Sprintf("%q is not a semantic version such as 2.4.0 or 3.0.0-beta.1", v), ve.Field("rules[0].clauses[0].values[0]"), v)
		require.Empty(t, ve.Field("rules[0].name"))
	}
}
