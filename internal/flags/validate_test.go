package flags_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

func betaSegment() flags.Segment {
	return flags.Segment{
		Key:          "beta-testers",
		Name:         "Beta testers",
		Clauses:      []flags.Clause{{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta"}}},
		IncludedKeys: []string{"user-7"},
		ExcludedKeys: []string{"user-9"},
	}
}

// validState is a state of colourFlag using every feature once.
func validState() flags.EnvState {
	return flags.EnvState{
		Enabled: true,
		Rules: []flags.Rule{
			{Name: "staff", Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@ourcompany.com"}}}, Serve: flags.Serve{Variant: "green"}},
			{Name: "beta", Segment: "beta-testers", Serve: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "red", Weight: 12.5}, {Variant: "blue", Weight: 87.5}}}},
		},
		DefaultRollout: flags.Serve{Variant: "blue"},
		Version:        3,
	}
}

func TestValidStateIsAccepted(t *testing.T) {
	t.Parallel()
	require.NoError(t, flags.Validate(colourFlag(), validState(), []flags.Segment{betaSegment()}))
	require.NoError(t, flags.ValidateSegment(betaSegment()))
}

func TestValidationNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(f *flags.Flag, st *flags.EnvState, segs *[]flags.Segment)
		field   string
		message string
	}{
		{"missing key", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.Key = "" },
			"key", "a flag needs a key; use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"},
		{"key with spaces", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.Key = "new checkout" },
			"key", `"new checkout" is not a valid flag key; use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit`},
		{"unknown type", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.Type = "colour" },
			"type", `unknown type "colour"; use boolean, string, number or object`},
		{"variant of the wrong type", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.Variants["blue"] = json.RawMessage(`7`) },
			`variants["blue"]`, "the value 7 is a number; every variant of a string flag must be a string"},
		{"variant that is not JSON", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) {
			f.Variants["blue"] = json.RawMessage(`blue`)
		},
			`variants["blue"]`, "the value is not valid JSON"},
		{"variant name with a space", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) {
			f.Variants["dark blue"] = json.RawMessage(`"#000"`)
		},
			`variants["dark blue"]`, `"dark blue" is not a valid variant name; use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit`},
		{"default variant missing", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.DefaultVariant = "" },
			"default_variant", "choose the variant served by default"},
		{"default variant unknown", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.DefaultVariant = "purple" },
			"default_variant", `there is no variant named "purple"`},
		{"off variant unknown", func(f *flags.Flag, _ *flags.EnvState, _ *[]flags.Segment) { f.OffVariant = "grey" },
			"off_variant", `there is no variant named "grey"`},
		{"negative version", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Version = -1 },
			"version", "must not be negative"},
		{"rule without name", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Name = " " },
			"rules[1].name", "name the rule; evaluation results report which rule matched"},
		{"duplicate rule name", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Name = "staff" },
			"rules[1].name", `rule 0 is already named "staff"; rule names must be unique`},
		{"unknown segment", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Segment = "vips" },
			"rules[1].segment", `unknown segment "vips"`},
		{"invalid referenced segment", func(_ *flags.Flag, _ *flags.EnvState, segs *[]flags.Segment) {
			(*segs)[0].Clauses[0].Op = "one_of"
		}, `segments["beta-testers"].clauses[0].op`, `unknown operator "one_of"; use one of equals, not_equals, in, not_in, starts_with, ends_with, contains, matches, gt, gte, lt, lte, semver_gt, semver_gte, semver_lt, semver_lte`},
		{"unknown operator", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Clauses[0].Op = "endswith" },
			"rules[0].clauses[0].op", `unknown operator "endswith"; use one of equals, not_equals, in, not_in, starts_with, ends_with, contains, matches, gt, gte, lt, lte, semver_gt, semver_gte, semver_lt, semver_lte`},
		{"missing attribute", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Clauses[0].Attribute = "" },
			"rules[0].clauses[0].attribute", "name the context attribute to compare, such as email or plan"},
		{"no values", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Clauses[0].Values = nil },
			"rules[0].clauses[0].values", "ends_with needs at least one value to compare with"},
		{"text operator with a number", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0].Values = []any{"@ourcompany.com", 3.0}
		}, "rules[0].clauses[0].values[1]", "ends_with compares text; 3 is a number"},
		{"empty text", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Clauses[0].Values = []any{""} },
			"rules[0].clauses[0].values[0]", "an empty text would match everyone; give the text to compare with"},
		{"bad regular expression", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0] = flags.Clause{Attribute: "email", Op: flags.OpMatches, Values: []any{"(unclosed"}}
		}, "rules[0].clauses[0].values[0]", "is not a valid RE2 regular expression: error parsing regexp: missing closing ): `(unclosed`"},
		{"numeric operator with two values", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0] = flags.Clause{Attribute: "age", Op: flags.OpGT, Values: []any{1.0, 2.0}}
		}, "rules[0].clauses[0].values", "gt compares with exactly one value, not 2"},
		{"numeric operator with text", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0] = flags.Clause{Attribute: "age", Op: flags.OpLTE, Values: []any{"18"}}
		}, "rules[0].clauses[0].values[0]", `lte compares numbers; "18" is text`},
		{"equality with an object", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0] = flags.Clause{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta", map[string]any{"a": 1.0}}}
		}, "rules[0].clauses[0].values[1]", `in compares text, numbers or booleans; {"a":1} is an object`},
		{"bad semantic version", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[0].Clauses[0] = flags.Clause{Attribute: "app_version", Op: flags.OpSemverGTE, Values: []any{"2.4"}}
		}, "rules[0].clauses[0].values[0]", `"2.4" is not a semantic version such as 2.4.0 or 3.0.0-beta.1`},
		{"rule serves nothing", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Serve = flags.Serve{} },
			"rules[0].variant", "choose the variant or the rollout this rule serves"},
		{"rule serves an unknown variant", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[0].Variant = "purple" },
			"rules[0].variant", `there is no variant named "purple"`},
		{"rule serves both", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Variant = "green" },
			"rules[1].rollout", `serve either the variant "green" or a rollout, not both`},
		{"weights below 100", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Rollout[1].Weight = 80 },
			"rules[1].rollout", "the weights add up to 92.5%; they must total 100%"},
		{"weights above 100", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Rollout[0].Weight = 20.05 },
			"rules[1].rollout", "the weights add up to 107.55%; they must total 100%"},
		{"negative weight", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Rollout[0].Weight = -5 },
			"rules[1].rollout[0].weight", "-5 is not a percentage between 0 and 100"},
		{"weight finer than a basis point", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.Rules[1].Rollout = []flags.WeightedVariant{{Variant: "red", Weight: 33.333}, {Variant: "blue", Weight: 66.67}}
		}, "rules[1].rollout[0].weight", "33.333 has more than two decimals; weights are in steps of 0.01%"},
		{"rollout of an unknown variant", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Rollout[0].Variant = "purple" },
			"rules[1].rollout[0].variant", `there is no variant named "purple"`},
		{"variant twice in a rollout", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.Rules[1].Rollout[1].Variant = "red" },
			"rules[1].rollout[1].variant", `"red" is already in this rollout; list each variant once`},
		{"default rollout off by one", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) {
			st.DefaultRollout = flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "blue", Weight: 50}, {Variant: "green", Weight: 49.99}}}
		}, "default_rollout.rollout", "the weights add up to 99.99%; they must total 100%"},
		{"default rollout of an unknown variant", func(_ *flags.Flag, st *flags.EnvState, _ *[]flags.Segment) { st.DefaultRollout.Variant = "teal" },
			"default_rollout.variant", `there is no variant named "teal"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, st, segs := colourFlag(), validState(), []flags.Segment{betaSegment()}
			tc.edit(&f, &st, &segs)
			errs := fieldErrors(t, flags.Validate(f, st, segs))
			require.Equal(t, map[string]string{tc.field: tc.message}, errs)
			_, err := flags.Compile(f, st, segs)
			require.Equal(t, errs, fieldErrors(t, err), "Compile rejects what Validate rejects")
		})
	}
}

// TestValidationListsEveryProblem: a release manager fixes all mistakes in
// one round instead of one per submission.
func TestValidationListsEveryProblem(t *testing.T) {
	t.Parallel()
	f := colourFlag()
	f.DefaultVariant = "purple"
	st := validState()
	st.Rules[0].Clauses[0].Op = "like"
	st.Rules[1].Rollout[0].Weight = 10
	err := flags.Validate(f, st, []flags.Segment{betaSegment()})
	require.Equal(t, map[string]string{
		"default_variant":        `there is no variant named "purple"`,
		"rules[0].clauses[0].op": `unknown operator "like"; use one of equals, not_equals, in, not_in, starts_with, ends_with, contains, matches, gt, gte, lt, lte, semver_gt, semver_gte, semver_lt, semver_lte`,
		"rules[1].rollout":       "the weights add up to 97.5%; they must total 100%",
	}, fieldErrors(t, err))
	require.Contains(t, err.Error(), `default_variant: there is no variant named "purple"`)
}

func TestFlagWithoutVariants(t *testing.T) {
	t.Parallel()
	f := colourFlag()
	f.Variants = nil
	f.DefaultVariant = ""
	require.Equal(t, map[string]string{
		"variants":        "a flag needs at least one variant",
		"default_variant": "choose the variant served by default",
	}, fieldErrors(t, flags.Validate(f, flags.EnvState{}, nil)))
}

func TestVariantTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ     flags.Type
		value   string
		message string
	}{
		{flags.TypeBoolean, `true`, ""},
		{flags.TypeBoolean, `"on"`, `the value "on" is a string; every variant of a boolean flag must be a boolean`},
		{flags.TypeBoolean, `1`, "the value 1 is a number; every variant of a boolean flag must be a boolean"},
		{flags.TypeString, `"dark"`, ""},
		{flags.TypeString, `null`, "the value null is null; every variant of a string flag must be a string"},
		{flags.TypeNumber, `-12.5e3`, ""},
		{flags.TypeNumber, `"12"`, `the value "12" is a string; every variant of a number flag must be a number`},
		{flags.TypeNumber, `1e999`, "the value 1e999 is out of the range of a number"},
		{flags.TypeObject, `{"limit": 10, "tiers": ["a"]}`, ""},
		{flags.TypeObject, `[1, 2]`, "the value [1, 2] is a list; every variant of a object flag must be an object"},
		{flags.TypeObject, ``, "the variant has no value"},
	}
	for _, tc := range tests {
		f := flags.Flag{Key: "limits", Type: tc.typ, Variants: map[string]json.RawMessage{"a": json.RawMessage(tc.value)}, DefaultVariant: "a"}
		err := flags.Validate(f, flags.EnvState{Enabled: true}, nil)
		if tc.message == "" {
			require.NoError(t, err, "%s flag with %s", tc.typ, tc.value)
			continue
		}
		require.Equal(t, map[string]string{`variants["a"]`: tc.message}, fieldErrors(t, err), "%s flag with %s", tc.typ, tc.value)
	}
}

func TestDuplicateVariantNamesInJSON(t *testing.T) {
	t.Parallel()
	var f flags.Flag
	require.NoError(t, json.Unmarshal([]byte(`{
		"key": "checkout-button-colour", "type": "string",
		"variants": {"blue": "#1f6feb", "green": "#2ea043", "blue": "#0000ff"},
		"default_variant": "blue"
	}`), &f))
	require.Equal(t, map[string]string{
		`variants["blue"]`: `the variant name "blue" is used twice; variant names must be unique`,
	}, fieldErrors(t, flags.Validate(f, flags.EnvState{Enabled: true}, nil)))
}

func TestSegmentValidation(t *testing.T) {
	t.Parallel()
	s := betaSegment()
	s.Key = "beta testers"
	s.Clauses = append(s.Clauses, flags.Clause{Attribute: "age", Op: flags.OpGTE})
	s.IncludedKeys = append(s.IncludedKeys, "")
	s.ExcludedKeys = []string{""}
	require.Equal(t, map[string]string{
		"key":               `"beta testers" is not a valid segment key; use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit`,
		"clauses[1].values": "gte needs at least one value to compare with",
		"included_keys[1]":  "a user key must not be empty",
		"excluded_keys[0]":  "a user key must not be empty",
	}, fieldErrors(t, flags.ValidateSegment(s)))
}
