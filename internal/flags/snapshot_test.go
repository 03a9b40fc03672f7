package flags_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

func snapshotEntries() []flags.Entry {
	return []flags.Entry{
		{Flag: colourFlag(), State: validState()},
		{Flag: boolFlag("new-checkout"), State: flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "on"}, Version: 4}},
		{Flag: boolFlag("dark-mode"), State: flags.EnvState{Enabled: false, Version: 1}},
	}
}

func TestSnapshotEvaluatesEveryFlagInKeyOrder(t *testing.T) {
	t.Parallel()
	s := flags.NewSnapshot(snapshotEntries(), []flags.Segment{betaSegment()})
	require.Empty(t, s.Errors())
	require.Equal(t, 3, s.Len())
	require.Equal(t, []string{"checkout-button-colour", "dark-mode", "new-checkout"}, s.Keys())

	results := s.EvaluateAll(flags.EvalContext{"targetingKey": "user-1", "email": "ana@ourcompany.com"})
	require.Equal(t, []flags.Result{
		{Key: "checkout-button-colour", Variant: "green", Value: json.RawMessage(`"#2ea043"`), Reason: flags.ReasonTargetingMatch, RuleName: "staff"},
		{Key: "dark-mode", Variant: "off", Value: json.RawMessage(`false`), Reason: flags.ReasonDisabled},
		{Key: "new-checkout", Variant: "on", Value: json.RawMessage(`true`), Reason: flags.ReasonStatic},
	}, results)

	require.Equal(t, results[2], s.Evaluate("new-checkout", nil))
	require.Equal(t, flags.Result{
		Key: "old-checkout", Reason: flags.ReasonError, ErrorCode: flags.ErrorFlagNotFound,
		ErrorMessage: "there is no flag old-checkout in this environment",
	}, s.Evaluate("old-checkout", nil))

	c, ok := s.Flag("new-checkout")
	require.True(t, ok)
	require.Equal(t, flags.TypeBoolean, c.Type())
	require.Equal(t, "new-checkout", c.Key())
	require.Equal(t, int64(4), c.Version())
}

func TestSnapshotETag(t *testing.T) {
	t.Parallel()
	segs := []flags.Segment{betaSegment()}
	base := flags.NewSnapshot(snapshotEntries(), segs).ETag()
	require.Regexp(t, `^"[0-9a-f]{32}"$`, base)

	reversed := snapshotEntries()
	reversed[0], reversed[2] = reversed[2], reversed[0]
	require.Equal(t, base, flags.NewSnapshot(reversed, segs).ETag(), "the order flags are loaded in does not matter")

	bumped := snapshotEntries()
	bumped[1].State.Version++
	require.NotEqual(t, base, flags.NewSnapshot(bumped, segs).ETag(), "a new state version changes the tag")

	edited := snapshotEntries()
	edited[2].Flag.Variants["on"] = json.RawMessage(`true`)
	edited[2].Flag.OffVariant = "on"
	require.NotEqual(t, base, flags.NewSnapshot(edited, segs).ETag(), "a changed flag definition changes the tag")

	seg := betaSegment()
	seg.IncludedKeys = append(seg.IncludedKeys, "user-8")
	require.NotEqual(t, base, flags.NewSnapshot(snapshotEntries(), []flags.Segment{seg}).ETag(), "a changed segment changes the tag")

	require.NotEqual(t, base, flags.NewSnapshot(snapshotEntries()[:2], segs).ETag(), "a removed flag changes the tag")
}

// TestSnapshotIsolatesBrokenFlags: one flag whose stored configuration no
// longer validates answers PARSE_ERROR while the others keep working.
func TestSnapshotIsolatesBrokenFlags(t *testing.T) {
	t.Parallel()
	entries := snapshotEntries()
	entries[1].State.DefaultRollout.Variant = "maybe"
	entries = append(entries, flags.Entry{Flag: boolFlag("dark-mode"), State: flags.EnvState{Enabled: true}})
	s := flags.NewSnapshot(entries, nil)

	errs := s.Errors()
	require.Len(t, errs, 3)
	require.EqualError(t, errs["new-checkout"], `invalid flag configuration: default_rollout.variant: there is no variant named "maybe"`)
	require.EqualError(t, errs["checkout-button-colour"], `invalid flag configuration: rules[1].segment: unknown segment "beta-testers"`)
	require.EqualError(t, errs["dark-mode"], `flag "dark-mode" appears more than once in the snapshot`)

	r := s.Evaluate("new-checkout", nil)
	require.Equal(t, flags.ReasonError, r.Reason)
	require.Equal(t, flags.ErrorParse, r.ErrorCode)
	require.Equal(t, `the flag's stored configuration is invalid: invalid flag configuration: default_rollout.variant: there is no variant named "maybe"`, r.ErrorMessage)
	require.Equal(t, 3, s.Len())
}

func TestSnapshotIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	s := flags.NewSnapshot(benchmarkEntries(40), benchmarkSegments())
	require.Empty(t, s.Errors())
	want := s.EvaluateAll(benchmarkContext(0))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				ctx := benchmarkContext(g*1000 + i)
				got := s.EvaluateAll(ctx)
				if len(got) != len(want) {
					t.Errorf("got %d results, want %d", len(got), len(want))
					return
				}
			}
			if got := s.EvaluateAll(benchmarkContext(0)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("results changed under concurrent evaluation")
			}
		}()
	}
	wg.Wait()
}
