package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

func TestAdviseStrategy(t *testing.T) {
	t.Parallel()
	// webService is a production web service of a small team with some
	// headroom: the answers that lead to a canary.
	webService := advisorAnswers{Downtime: downtimeNone, Budget: budgetHeadroom, Org: orgSmall}
	with := func(change func(*advisorAnswers)) advisorAnswers {
		a := webService
		change(&a)
		return a
	}
	for _, tc := range []struct {
		name    string
		answers advisorAnswers
		want    plan.Strategy
		// reason is a phrase one of the reasons must contain.
		reason string
	}{
		{"default production web service", webService, plan.Canary, "comparing the new version against stable"},
		{"batch job", with(func(a *advisorAnswers) { a.BatchJob = true }), plan.Recreate, "batch job or worker"},
		{"batch job outranks everything else", with(func(a *advisorAnswers) {
			a.BatchJob, a.Behaviour, a.RealLoad, a.Org = true, true, true, orgLarge
		}), plan.Recreate, "no traffic to shift"},
		{"zero downtime on a tight budget", with(func(a *advisorAnswers) { a.Budget = budgetTight }), plan.Rolling, "within the fleet you have"},
		{"seconds of downtime on a tight budget", with(func(a *advisorAnswers) { a.Downtime, a.Budget = downtimeSeconds, budgetTight }), plan.Rolling, "a few seconds of disruption"},
		{"zero downtime, schema change, budget for double", with(func(a *advisorAnswers) {
			a.SchemaChange, a.Budget = true, budgetDouble
		}), plan.BlueGreen, "backward compatible"},
		{"schema change without the budget for double", with(func(a *advisorAnswers) { a.SchemaChange = true }), plan.Canary, "backward compatible"},
		{"double budget without schema change", with(func(a *advisorAnswers) { a.Budget = budgetDouble }), plan.Canary, "stable at every step"},
		{"measuring behaviour", with(func(a *advisorAnswers) { a.Behaviour = true }), plan.ABTest, "conversion per arm"},
		{"measuring behaviour outranks real load", with(func(a *advisorAnswers) { a.Behaviour, a.RealLoad = true, true }), plan.ABTest, "significant"},
		{"real load without exposure", with(func(a *advisorAnswers) { a.RealLoad = true }), plan.Shadow, "never served"},
		{"real load with a schema change warns of double writes", with(func(a *advisorAnswers) { a.RealLoad, a.SchemaChange = true, true }), plan.Shadow, "write twice"},
		{"large organisation", with(func(a *advisorAnswers) { a.Org = orgLarge }), plan.Ring, "employees first"},
		{"large organisation outranks minutes of downtime", with(func(a *advisorAnswers) { a.Org, a.Downtime = orgLarge, downtimeMinutes }), plan.Ring, "approving each next ring"},
		{"minutes of downtime", with(func(a *advisorAnswers) { a.Downtime = downtimeMinutes }), plan.Recreate, "Minutes of downtime are acceptable"},
		{"minutes of downtime with a schema change", with(func(a *advisorAnswers) { a.Downtime, a.SchemaChange = downtimeMinutes, true }), plan.Recreate, "nothing runs the old version"},
		{"several teams", with(func(a *advisorAnswers) { a.Org = orgSeveral }), plan.Canary, "several teams"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := adviseStrategy(tc.answers)
			require.Equal(t, tc.want, got.Strategy)
			require.NotEmpty(t, got.Reasons)
			require.True(t, strings.Contains(strings.Join(got.Reasons, " "), tc.reason), "reasons %q should say %q", got.Reasons, tc.reason)
			require.NotEmpty(t, got.Alternatives, "there is always a runner-up")
			seen := map[plan.Strategy]bool{got.Strategy: true}
			for _, alt := range got.Alternatives {
				require.True(t, alt.Strategy.Valid(), "alternative %q", alt.Strategy)
				require.False(t, seen[alt.Strategy], "alternative %s is listed once and is not the recommendation", alt.Strategy)
				seen[alt.Strategy] = true
				require.NotEmpty(t, alt.Why)
			}
		})
	}
}

func TestEveryStrategyHasARollbackSpeed(t *testing.T) {
	t.Parallel()
	for _, s := range plan.Strategies {
		require.NotEmpty(t, rollbackSpeed[s], "%s", s)
	}
}
