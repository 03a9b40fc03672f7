package flags_test

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

// TestBucketScheme pins the documented hash so that buckets, and with them
// every user's variant, never move between Flightdeck versions.
func TestBucketScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ flag, salt, key string }{
		{"new-checkout", "", "user-1"},
		{"new-checkout", "2026-q1", "user-1"},
		{"search-v2", "", "ana@ourcompany.com"},
	} {
		sum := sha1.Sum([]byte(tc.flag + "." + tc.salt + "." + tc.key))
		want := int(binary.BigEndian.Uint64(sum[:8]) % 10000)
		require.Equal(t, want, flags.Bucket(tc.flag, tc.salt, tc.key))
	}
	require.Equal(t, 4647, flags.Bucket("new-checkout", "", "user-1"), "a fixed vector, computed outside Go, guards the scheme itself")
}

func rollout(key string, onBasisPoints int) *flags.Compiled {
	st := flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{
		{Variant: "on", Weight: float64(onBasisPoints) / 100},
		{Variant: "off", Weight: float64(10000-onBasisPoints) / 100},
	}}}
	c, err := flags.Compile(boolFlag(key), st, nil)
	if err != nil {
		panic(err)
	}
	return c
}

// TestGrowingRolloutKeepsEveryone: a user who has the feature at a smaller
// percentage keeps it at every larger one (5% ⊂ 50% ⊂ 100%).
func TestGrowingRolloutKeepsEveryone(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		flag := rapid.StringMatching(`[a-z][a-z0-9-]{0,30}`).Draw(t, "flag")
		user := rapid.String().Draw(t, "user")
		if user == "" {
			user = "anonymous"
		}
		small := rapid.IntRange(0, 10000).Draw(t, "small")
		large := rapid.IntRange(small, 10000).Draw(t, "large")
		ctx := flags.EvalContext{"targetingKey": user}
		before := rollout(flag, small).Evaluate(ctx)
		after := rollout(flag, large).Evaluate(ctx)
		require.Equal(t, flags.ReasonSplit, before.Reason)
		if before.Variant == "on" {
			require.Equal(t, "on", after.Variant, "user %q had %s at %d bp but lost it at %d bp", user, flag, small, large)
		}
		want := "off"
		if flags.Bucket(flag, "", user) < small {
			want = "on"
		}
		require.Equal(t, want, before.Variant)
	})
}

func TestRolloutDistribution(t *testing.T) {
	t.Parallel()
	const users = 10000
	five := rollout("new-checkout", 500)
	otherFlag := rollout("search-v2", 5000)
	sameFlagHalf := rollout("new-checkout", 5000)
	var on5, onOther, onBoth int
	for i := range users {
		ctx := flags.EvalContext{"targetingKey": fmt.Sprintf("user-%d", i)}
		a := five.Evaluate(ctx).Variant == "on"
		b := otherFlag.Evaluate(ctx).Variant == "on"
		if a {
			on5++
			require.Equal(t, "on", sameFlagHalf.Evaluate(ctx).Variant)
		}
		if b {
			onOther++
		}
		if a && b {
			onBoth++
		}
	}
	require.InDelta(t, 0.05, float64(on5)/users, 0.007, "5%% rollout served %d of %d", on5, users)
	require.InDelta(t, 0.5, float64(onOther)/users, 0.02)
	// Flags bucket independently: about half of the 5% of one flag are in
	// the 50% of another, rather than all or none of them.
	require.InDelta(t, 0.5, float64(onBoth)/float64(on5), 0.1, "%d of %d", onBoth, on5)

	st := flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{
		{Variant: "red", Weight: 20}, {Variant: "green", Weight: 30}, {Variant: "blue", Weight: 50},
	}}}
	c, err := flags.Compile(colourFlag(), st, nil)
	require.NoError(t, err)
	counts := map[string]int{}
	for i := range users {
		counts[c.Evaluate(flags.EvalContext{"targetingKey": fmt.Sprintf("user-%d", i)}).Variant]++
	}
	require.InDelta(t, 2000, counts["red"], 150)
	require.InDelta(t, 3000, counts["green"], 150)
	require.InDelta(t, 5000, counts["blue"], 150)
}

func TestSaltReshuffles(t *testing.T) {
	t.Parallel()
	moved := 0
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i)
		if flags.Bucket("new-checkout", "", key) != flags.Bucket("new-checkout", "2026-q1", key) {
			moved++
		}
	}
	require.Greater(t, moved, 990)
}
