package demo

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestNextVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stable, last, want string
		ok                 bool
	}{
		{stable: "v3.8.0", want: "v3.9.0", ok: true},
		{stable: "v3.8.0", last: "v3.9.0", want: "v3.10.0", ok: true},
		// A rolled-back version is skipped, not retried.
		{stable: "v5.1.4", last: "v5.2.0", want: "v5.3.0", ok: true},
		// A rollback to an older version does not reuse numbers.
		{stable: "v2.3.1", last: "v2.3.1", want: "v2.4.0", ok: true},
		{stable: "v2.4.0", last: "v2.3.1", want: "v2.5.0", ok: true},
		{stable: "v0.9.9", last: "build-1234", want: "v0.10.0", ok: true},
		{stable: "main-abc123", ok: false},
		{stable: "", ok: false},
	} {
		var last *store.Run
		if tc.last != "" {
			last = &store.Run{ToVersion: tc.last}
		}
		got, ok := nextVersion(tc.stable, last)
		require.Equal(t, tc.ok, ok, "%+v", tc)
		require.Equal(t, tc.want, got, "%+v", tc)
	}
}

func TestNextStrategyCyclesTheRotation(t *testing.T) {
	t.Parallel()
	rotation := []plan.Strategy{plan.Canary, plan.Rolling, plan.BlueGreen}
	require.Equal(t, plan.Canary, nextStrategy(rotation, nil))
	require.Equal(t, plan.Rolling, nextStrategy(rotation, &store.Run{Strategy: "canary"}))
	require.Equal(t, plan.Canary, nextStrategy(rotation, &store.Run{Strategy: "blue_green"}))
	// A run someone started with another strategy restarts the rotation.
	require.Equal(t, plan.Canary, nextStrategy(rotation, &store.Run{Strategy: "ring"}))
}

func TestEveryFourthVersionIsFaulty(t *testing.T) {
	t.Parallel()
	var faulty []string
	for _, v := range []string{"v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0", "v1.6.0", "v1.7.0", "v1.8.0", "v1.9.0", "v1.12.0", "v1.16.0"} {
		f, ok := faultOf(v)
		if ok {
			faulty = append(faulty, v)
			require.GreaterOrEqual(t, f.ErrorRate, 0.05, "%s fails several points above the 1%% of a healthy version", v)
			require.NoError(t, f.Validate())
		}
	}
	require.Equal(t, []string{"v1.4.0", "v1.8.0", "v1.12.0", "v1.16.0"}, faulty)
	_, ok := faultOf("main-abc123")
	require.False(t, ok)
}

func TestCatalogIsValid(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, a := range catalog {
		for _, e := range a.envs {
			key := a.slug + "/" + e.name
			require.False(t, seen[key], "%s is listed twice", key)
			seen[key] = true
			require.NotEmpty(t, e.rotation, key)
			_, ok := parseVersion(e.stable)
			require.True(t, ok, "%s: the loop numbers versions after %s", key, e.stable)
			faults := map[string]simulator.Fault{}
			if e.run != nil && e.run.fault != nil {
				faults[e.run.version] = *e.run.fault
			}
			_, err := driverConfig(e, faults)
			require.NoError(t, err, key)
		}
	}
}
