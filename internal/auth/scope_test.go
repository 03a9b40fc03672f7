package auth_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
)

func TestParseScopes(t *testing.T) {
	t.Parallel()
	got, err := auth.ParseScopes([]string{"read", " deploy", "read", "admin "})
	require.NoError(t, err)
	require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeDeploy, auth.ScopeAdmin}, got, "canonical order, no duplicates")

	_, err = auth.ParseScopes([]string{"deploy", "deplyo"})
	require.EqualError(t, err, `unknown scope "deplyo": want one or more of read, deploy, approve, metrics, flags, admin`)
	_, err = auth.ParseScopes([]string{"Deploy"})
	require.ErrorContains(t, err, `unknown scope "Deploy"`)
	_, err = auth.ParseScopes([]string{"deploy", ""})
	require.ErrorContains(t, err, `unknown scope ""`)
	_, err = auth.ParseScopes(nil)
	require.EqualError(t, err, "no scopes given: want one or more of read, deploy, approve, metrics, flags, admin")
}

func TestAllows(t *testing.T) {
	t.Parallel()
	all := auth.Scopes
	for granted, allowed := range map[auth.Scope][]auth.Scope{
		auth.ScopeRead:    {auth.ScopeRead},
		auth.ScopeDeploy:  {auth.ScopeDeploy, auth.ScopeRead},
		auth.ScopeApprove: {auth.ScopeApprove, auth.ScopeRead},
		auth.ScopeMetrics: {auth.ScopeMetrics},
		auth.ScopeAdmin:   all,
	} {
		for _, needed := range all {
			want := false
			for _, a := range allowed {
				want = want || a == needed
			}
			require.Equal(t, want, auth.Allows([]auth.Scope{granted}, needed), "%s grants %s", granted, needed)
		}
	}
	require.False(t, auth.Allows(nil, auth.ScopeRead))
	require.True(t, auth.Allows([]auth.Scope{auth.ScopeMetrics, auth.ScopeApprove}, auth.ScopeRead))
	require.False(t, auth.Allows([]auth.Scope{auth.ScopeDeploy}, auth.ScopeApprove), "deploying is not approving")
	require.False(t, auth.Allows([]auth.Scope{auth.ScopeDeploy, auth.ScopeApprove}, auth.ScopeAdmin))
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	p := auth.Principal{Name: "ci", Scopes: []auth.Scope{auth.ScopeDeploy}}
	require.Equal(t, "token:ci", p.Actor())
	require.True(t, p.Allows(auth.ScopeRead))
	require.False(t, p.Allows(auth.ScopeMetrics))
	require.False(t, p.Limited())
	require.True(t, p.CanAccess("checkout", "production"))

	limited := auth.Principal{Name: "ci", Apps: []string{"checkout"}, Environments: []string{"staging"}}
	require.True(t, limited.Limited())
	for _, tc := range []struct {
		app, env string
		want     bool
	}{
		{"checkout", "staging", true},
		{"checkout", "production", false},
		{"billing", "staging", false},
		{"checkout", "", true},
		{"billing", "", false},
		{"", "staging", true},
		{"", "production", false},
		{"", "", true},
	} {
		require.Equal(t, tc.want, limited.CanAccess(tc.app, tc.env), "%s/%s", tc.app, tc.env)
	}
	onlyStaging := auth.Principal{Environments: []string{"staging"}}
	require.True(t, onlyStaging.CanAccess("billing", "staging"), "environment limits apply to every app")
}

func TestCheckLimits(t *testing.T) {
	t.Parallel()
	require.NoError(t, auth.CheckLimits(nil, nil))
	require.NoError(t, auth.CheckLimits([]string{"checkout", "billing-v2"}, []string{"staging", "eu-1"}))
	require.EqualError(t, auth.CheckLimits([]string{"Checkout"}, nil),
		`app limit "Checkout": want a slug such as checkout or production (lowercase letters, digits and dashes)`)
	require.ErrorContains(t, auth.CheckLimits(nil, []string{""}), `environment limit ""`)
	require.ErrorContains(t, auth.CheckLimits(nil, []string{"prod-"}), `environment limit "prod-"`)
}
