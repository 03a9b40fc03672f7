package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TestReleaseInStages ships a feature dark and releases it the way a team
// does, against the server binary: to employees, then 5%, 50% and 100% of
// users, then kills it. Every change goes through the REST API, and the
// application side is the OpenFeature Go SDK with its OFREP provider,
// reading what the server's flag cache serves.
func TestReleaseInStages(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	admin, _, _, err := auth.Generate()
	require.NoError(t, err)
	s := startServer(t, []string{"DATABASE_URL=" + url, "FLIGHTDECK_ADMIN_TOKEN=" + admin, "FLIGHTDECK_DEMO=off"})
	rest := &benchREST{t: t, base: s.url, token: admin}

	rest.must(http.MethodPost, "/api/v1/apps", `{"slug": "storefront", "name": "Storefront"}`, http.StatusCreated)
	rest.must(http.MethodPost, "/api/v1/apps/storefront/environments", `{"name": "production", "tier": "production"}`, http.StatusCreated)
	// Shipped dark: the code is deployed with the flag, which is off.
	rest.must(http.MethodPost, "/api/v1/apps/storefront/flags", `{"key": "checkout-redesign", "type": "boolean",
		"variants": {"true": true, "false": false}, "default_variant": "false"}`, http.StatusCreated)

	// The application's token may only evaluate storefront's production flags.
	st := storeAt(t, url)
	owner, err := st.UserByUsername(context.Background(), "admin")
	require.NoError(t, err)
	sdkToken, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = st.CreateToken(context.Background(), store.NewToken{Name: "storefront-app", Hash: hash, Prefix: prefix,
		Scopes: []auth.Scope{auth.ScopeFlags}, UserID: owner.ID, Apps: []string{"storefront"}, Environments: []string{"production"}})
	require.NoError(t, err)
	require.NoError(t, openfeature.SetNamedProviderAndWait(t.Name(),
		ofrep.NewProvider(s.url, ofrep.WithBearerToken(sdkToken), ofrep.WithTimeout(5*time.Second))))
	client := openfeature.NewClient(t.Name())
	ctx := context.Background()
	redesign := func(user, email string) openfeature.BooleanEvaluationDetails {
		t.Helper()
		d, err := client.BooleanValueDetails(ctx, "checkout-redesign", false, openfeature.NewEvaluationContext(user, map[string]any{"email": email}))
		require.NoError(t, err)
		return d
	}
	customers := func() map[string]bool {
		t.Helper()
		on := map[string]bool{}
		for i := range 1000 {
			user := fmt.Sprintf("customer-%d", i)
			if redesign(user, user+"@mail.example").Value {
				on[user] = true
			}
		}
		return on
	}
	// waitFor polls until a probe sees the change the server just took.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 2*time.Second, 5*time.Millisecond, "every replica serves a change within a second: %s", what)
	}

	dark := redesign("kim", "kim@acme.example")
	require.False(t, dark.Value, "a flag never turned on is off")
	require.Empty(t, customers())

	state := func(version int, defaultRollout string) string {
		return fmt.Sprintf(`{"enabled": true, "version": %d, "rules": [{"name": "employees",
			"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.example"]}], "variant": "true"}],
			"default_rollout": %s}`, version, defaultRollout)
	}
	path := "/api/v1/apps/storefront/flags/checkout-redesign/environments/production"

	// Employees first.
	rest.must(http.MethodPut, path, state(0, `{"variant": "false"}`), http.StatusOK)
	waitFor("employees", func() bool { return redesign("kim", "kim@acme.example").Value })
	employee := redesign("kim", "kim@acme.example")
	require.Equal(t, openfeature.TargetingMatchReason, employee.Reason)
	require.Empty(t, customers(), "customers do not see it yet")

	// 5%, 50%, 100% of everyone: a user once in keeps it as the share grows.
	rest.must(http.MethodPut, path, state(1, `{"rollout": [{"variant": "true", "weight": 5}, {"variant": "false", "weight": 95}]}`), http.StatusOK)
	waitFor("5%", func() bool { return len(customers()) > 0 })
	five := customers()
	require.InDelta(t, 50, len(five), 25, "about 5%% of 1,000 customers, got %d", len(five))

	rest.must(http.MethodPut, path, state(2, `{"rollout": [{"variant": "true", "weight": 50}, {"variant": "false", "weight": 50}]}`), http.StatusOK)
	waitFor("50%", func() bool { return len(customers()) > 200 })
	fifty := customers()
	require.InDelta(t, 500, len(fifty), 60, "about half of 1,000 customers, got %d", len(fifty))
	for user := range five {
		require.True(t, fifty[user], "%s had it at 5%% and must keep it at 50%%", user)
	}

	rest.must(http.MethodPut, path, state(3, `{"variant": "true"}`), http.StatusOK)
	waitFor("100%", func() bool { return len(customers()) == 1000 })

	// Something breaks: the kill switch turns it off for everyone at once.
	killedAt := time.Now()
	rest.must(http.MethodPost, path+"/kill", "", http.StatusOK)
	waitFor("kill", func() bool { return !redesign("kim", "kim@acme.example").Value })
	t.Logf("kill switch to the SDK seeing it: %s", time.Since(killedAt))
	off := redesign("customer-1", "customer-1@mail.example")
	require.False(t, off.Value)
	require.Equal(t, openfeature.DisabledReason, off.Reason)
	require.Empty(t, customers())
}
