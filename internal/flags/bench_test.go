package flags_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

func benchmarkSegments() []flags.Segment {
	return []flags.Segment{
		{Key: "staff", Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@ourcompany.com"}}}},
		{Key: "beta", Clauses: []flags.Clause{{Attribute: "plan", Op: flags.OpIn, Values: []any{"beta", "enterprise-beta"}}},
			IncludedKeys: []string{"user-1", "user-2", "user-3"}, ExcludedKeys: []string{"user-13"}},
	}
}

// benchmarkEntries builds n flags mixing the shapes seen in practice:
// boolean releases with staff rules and percentage rollouts, multi-variant
// string experiments behind segments, numeric limits by plan and version, and
// static configuration objects.
func benchmarkEntries(n int) []flags.Entry {
	var entries []flags.Entry
	for i := range n {
		key := fmt.Sprintf("flag-%03d", i)
		switch i % 4 {
		case 0:
			f := boolFlag(key)
			entries = append(entries, flags.Entry{Flag: f, State: flags.EnvState{
				Enabled: true,
				Rules: []flags.Rule{
					{Name: "staff", Segment: "staff", Serve: flags.Serve{Variant: "on"}},
					{Name: "blocked countries", Clauses: []flags.Clause{{Attribute: "country", Op: flags.OpIn, Values: []any{"KP", "IR", "SY"}}}, Serve: flags.Serve{Variant: "off"}},
				},
				DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "on", Weight: 25}, {Variant: "off", Weight: 75}}},
			}})
		case 1:
			f := colourFlag()
			f.Key = key
			entries = append(entries, flags.Entry{Flag: f, State: flags.EnvState{
				Enabled: true,
				Rules: []flags.Rule{
					{Name: "beta", Segment: "beta", Serve: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "red", Weight: 50}, {Variant: "green", Weight: 50}}}},
					{Name: "internal hosts", Clauses: []flags.Clause{{Attribute: "host", Op: flags.OpMatches, Values: []any{`\.internal$`}}}, Serve: flags.Serve{Variant: "green"}},
				},
				DefaultRollout: flags.Serve{Variant: "blue"},
			}})
		case 2:
			f := flags.Flag{Key: key, Type: flags.TypeNumber, DefaultVariant: "low",
				Variants: map[string]json.RawMessage{"low": json.RawMessage(`10`), "high": json.RawMessage(`1000`)}}
			entries = append(entries, flags.Entry{Flag: f, State: flags.EnvState{
				Enabled: true,
				Rules: []flags.Rule{
					{Name: "new app", Clauses: []flags.Clause{
						{Attribute: "app_version", Op: flags.OpSemverGTE, Values: []any{"4.2.0"}},
						{Attribute: "seats", Op: flags.OpGT, Values: []any{50.0}},
					}, Serve: flags.Serve{Variant: "high"}},
				},
			}})
		default:
			f := flags.Flag{Key: key, Type: flags.TypeObject, DefaultVariant: "v1",
				Variants: map[string]json.RawMessage{"v1": json.RawMessage(`{"timeout_ms": 800, "retries": 2}`)}}
			entries = append(entries, flags.Entry{Flag: f, State: flags.EnvState{Enabled: i%8 != 3}})
		}
	}
	return entries
}

func benchmarkContext(i int) flags.EvalContext {
	return flags.EvalContext{
		"targetingKey": fmt.Sprintf("user-%d", i),
		"email":        fmt.Sprintf("user-%d@example.com", i),
		"plan":         "beta",
		"country":      "NL",
		"host":         "checkout.eu.internal",
		"app_version":  "4.3.1",
		"seats":        120.0,
	}
}

// BenchmarkEvaluateAll measures OFREP bulk evaluation of 100 flags for one
// context.
func BenchmarkEvaluateAll(b *testing.B) {
	s := flags.NewSnapshot(benchmarkEntries(100), benchmarkSegments())
	if errs := s.Errors(); len(errs) > 0 {
		b.Fatal(errs)
	}
	ctx := benchmarkContext(42)
	b.ReportAllocs()
	for b.Loop() {
		if len(s.EvaluateAll(ctx)) != 100 {
			b.Fatal("missing results")
		}
	}
}

// BenchmarkAppendEvaluateAll is bulk evaluation into a reused slice.
func BenchmarkAppendEvaluateAll(b *testing.B) {
	s := flags.NewSnapshot(benchmarkEntries(100), benchmarkSegments())
	ctx := benchmarkContext(42)
	dst := make([]flags.Result, 0, 100)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.AppendEvaluateAll(dst[:0], ctx)
	}
}
