package demo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// flagSpec is a demo feature flag of the storefront with its state per
// environment (environments it does not name start unconfigured, so off).
type flagSpec struct {
	def    flags.Flag
	states map[string]flags.EnvState
}

// flagsApp is the app whose flags the demo shows.
const flagsApp = "storefront"

// demoSegments are the storefront's segments.
var demoSegments = []flags.Segment{
	{
		Key: "employees", Name: "Our own people",
		Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@storefront.example"}}},
	},
	{
		Key: "beta-testers", Name: "Customers in the beta programme",
		Clauses: []flags.Clause{{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta"}}},
	},
}

func boolFlag(key, description string) flags.Flag {
	return flags.Flag{
		Key: key, Type: flags.TypeBoolean, Description: description, DefaultVariant: "false",
		Variants: map[string]json.RawMessage{"true": json.RawMessage(`true`), "false": json.RawMessage(`false`)},
	}
}

// demoFlags shows a release in its stages: the redesign dark in production
// but on for employees and beta testers and 5% of everyone, fully on in
// staging; an A/B-style string flag; a number tuned per environment; one
// flag killed in production.
var demoFlags = []flagSpec{
	{
		def: boolFlag("checkout-redesign", "The new one-page checkout."),
		states: map[string]flags.EnvState{
			"production": {
				Enabled: true,
				Rules: []flags.Rule{
					{Name: "employees", Segment: "employees", Serve: flags.Serve{Variant: "true"}},
					{Name: "beta", Segment: "beta-testers", Serve: flags.Serve{Variant: "true"}},
				},
				DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "true", Weight: 5}, {Variant: "false", Weight: 95}}},
			},
			"staging": {Enabled: true, DefaultRollout: flags.Serve{Variant: "true"}},
		},
	},
	{
		def: flags.Flag{
			Key: "search-ranking", Type: flags.TypeString, Description: "Which ranking orders search results.",
			DefaultVariant: "classic",
			Variants:       map[string]json.RawMessage{"classic": json.RawMessage(`"classic"`), "semantic": json.RawMessage(`"semantic"`)},
		},
		states: map[string]flags.EnvState{
			"production": {Enabled: true, DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "classic", Weight: 50}, {Variant: "semantic", Weight: 50}}}},
			"staging":    {Enabled: true, DefaultRollout: flags.Serve{Variant: "semantic"}},
		},
	},
	{
		def: flags.Flag{
			Key: "free-shipping-threshold", Type: flags.TypeNumber, Description: "Order total (EUR) from which shipping is free.",
			DefaultVariant: "standard",
			Variants:       map[string]json.RawMessage{"standard": json.RawMessage(`50`), "promo": json.RawMessage(`25`)},
		},
		states: map[string]flags.EnvState{
			"production": {Enabled: true, Rules: []flags.Rule{{Name: "beta", Segment: "beta-testers", Serve: flags.Serve{Variant: "promo"}}}},
			"staging":    {Enabled: true, DefaultRollout: flags.Serve{Variant: "promo"}},
		},
	},
	{
		def: boolFlag("recommendations-v2", "Recommendations from the new model; killed in production after a latency spike."),
		states: map[string]flags.EnvState{
			"production": {Enabled: false, DefaultRollout: flags.Serve{Variant: "true"}},
			"staging":    {Enabled: true, DefaultRollout: flags.Serve{Variant: "true"}},
		},
	},
}

// seedFlags creates the storefront's demo segments and flags.
func seedFlags(ctx context.Context, tx *store.Store, app store.App, envs map[string]store.Environment) error {
	for _, seg := range demoSegments {
		if _, err := tx.UpsertSegment(ctx, app.ID, seg, 0, Actor); err != nil {
			return fmt.Errorf("creating segment %s: %w", seg.Key, err)
		}
	}
	for _, f := range demoFlags {
		flag, err := tx.CreateFlag(ctx, app.ID, f.def, Actor)
		if err != nil {
			return fmt.Errorf("creating flag %s: %w", f.def.Key, err)
		}
		for name, state := range f.states {
			env, ok := envs[name]
			if !ok {
				return fmt.Errorf("flag %s names environment %s, which %s does not have", f.def.Key, name, app.Slug)
			}
			if _, err := tx.SetFlagState(ctx, flag.ID, env.ID, state, 0, Actor); err != nil {
				return fmt.Errorf("setting flag %s in %s: %w", f.def.Key, name, err)
			}
		}
	}
	return nil
}
