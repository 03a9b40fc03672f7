package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
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

// faultyFlags are the demo flags whose released variant misbehaves, so a
// guarded rollout of them shows a rollback.
var faultyFlags = map[string]float64{"recommendations-v2": 0.06}

// FeedFlagRollouts reports ten seconds of simulated traffic, split by
// variant, for every guarded rollout running on a demo flag, the way an
// application's metrics hook would: the released variant as healthy as the
// other one, except on flags listed as faulty. It returns how many
// rollouts it fed.
func FeedFlagRollouts(ctx context.Context, cfg Config) (int, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return 0, err
	}
	app, err := cfg.Store.App(ctx, flagsApp)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var spec appSpec
	for _, a := range catalog {
		if a.slug == flagsApp {
			spec = a
		}
	}
	now := cfg.Now()
	fed := 0
	var errs []error
	for _, f := range demoFlags {
		flag, err := cfg.Store.Flag(ctx, app.ID, f.def.Key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fed, err
		}
		for _, e := range spec.envs {
			env, err := cfg.Store.Environment(ctx, app.ID, e.name)
			if err != nil {
				continue
			}
			r, err := cfg.Store.CurrentFlagRollout(ctx, flag.ID, env.ID)
			if err != nil || !r.Running() {
				continue
			}
			b := simulatedTraffic(r, e.rps, faultyFlags[f.def.Key], now)
			if _, err := rollout.Ingest(ctx, cfg.Store, r, flag.Key(), env.Name, b, now); err != nil {
				errs = append(errs, fmt.Errorf("feeding the rollout of %s in %s: %w", flag.Key(), env.Name, err))
				continue
			}
			fed++
		}
	}
	return fed, errors.Join(errs...)
}

// simulatedTraffic is ten seconds of requests ending at now: rps shared
// between the variants by the rollout's percentage, 0.4% errors (plus
// extraErrors for the released variant), latency around 60 ms.
func simulatedTraffic(r store.FlagRollout, rps, extraErrors float64, now time.Time) push.Batch {
	at := now.Add(-5 * time.Second).UTC().Format(time.RFC3339)
	total := rps * 10
	var samples []push.Sample
	for _, arm := range []struct {
		variant string
		share   float64
		errors  float64
	}{
		{r.Variant, r.Percent() / 100, 0.004 + extraErrors},
		{r.ControlVariant, 1 - r.Percent()/100, 0.004},
	} {
		n := math.Round(total * arm.share * (0.9 + 0.2*rand.Float64()))
		if n < 1 {
			continue
		}
		failed := math.Round(n * arm.errors * (0.5 + rand.Float64()))
		fast := math.Round(n * 0.7)
		slow := math.Round(n * 0.29)
		samples = append(samples,
			push.Sample{Variant: arm.variant, Metric: analysis.MetricErrorRate, Timestamp: at, Count: push.Num(n), Sum: push.Num(min(failed, n))},
			push.Sample{Variant: arm.variant, Metric: analysis.MetricLatency, Timestamp: at, Buckets: map[string]push.Number{
				"50": push.Num(fast), "100": push.Num(slow), "250": push.Num(n - fast - slow),
			}},
		)
	}
	return push.Batch{Samples: samples}
}
