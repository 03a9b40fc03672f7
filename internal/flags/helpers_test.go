package flags_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

// boolFlag is a boolean flag with variants on and off, off by default.
func boolFlag(key string) flags.Flag {
	return flags.Flag{
		Key:            key,
		Type:           flags.TypeBoolean,
		Variants:       map[string]json.RawMessage{"on": json.RawMessage(`true`), "off": json.RawMessage(`false`)},
		DefaultVariant: "off",
	}
}

// colourFlag is a string flag with three variants, blue by default.
func colourFlag() flags.Flag {
	return flags.Flag{
		Key:  "checkout-button-colour",
		Type: flags.TypeString,
		Variants: map[string]json.RawMessage{
			"blue":  json.RawMessage(`"#1f6feb"`),
			"green": json.RawMessage(`"#2ea043"`),
			"red":   json.RawMessage(`"#da3633"`),
		},
		DefaultVariant: "blue",
	}
}

func compile(t *testing.T, f flags.Flag, st flags.EnvState, segments ...flags.Segment) *flags.Compiled {
	t.Helper()
	c, err := flags.Compile(f, st, segments)
	require.NoError(t, err)
	return c
}

// clauseMatches compiles a flag whose only rule holds clause and reports
// whether the rule matched ctx.
func clauseMatches(t *testing.T, clause flags.Clause, ctx flags.EvalContext) bool {
	t.Helper()
	c := compile(t, boolFlag("clause-probe"), flags.EnvState{
		Enabled: true,
		Rules:   []flags.Rule{{Name: "probe", Clauses: []flags.Clause{clause}, Serve: flags.Serve{Variant: "on"}}},
	})
	r := c.Evaluate(ctx)
	require.Empty(t, r.ErrorCode, r.ErrorMessage)
	return r.Variant == "on"
}

// fieldErrors returns the field errors of err by field.
func fieldErrors(t *testing.T, err error) map[string]string {
	t.Helper()
	require.Error(t, err)
	var ve *flags.ValidationError
	require.ErrorAs(t, err, &ve)
	out := map[string]string{}
	for _, fe := range ve.Errors {
		out[fe.Field] = fe.Message
	}
	return out
}
