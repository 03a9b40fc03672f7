package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestSchemaChangesThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	base := "/api/v1/apps/shop/schema-changes"

	for body, field := range map[string]string{
		`{}`:                          "key",
		`{"key": "Orders Currency"}`:  "key",
		`{"key": "x", "size": "big"}`: "size",
	} {
		rec := a.must(http.StatusUnprocessableEntity, http.MethodPost, base, body)
		require.Contains(t, rec.Body.String(), `"field":"`+field+`"`, body)
	}
	rec := a.as("reader", exchange{method: http.MethodPost, path: base, body: `{"key": "orders-currency"}`})
	require.Equal(t, http.StatusForbidden, rec.Code)

	created := decode[apigen.SchemaChange](t, a.must(http.StatusCreated, http.MethodPost, base,
		`{"key": "orders-currency", "description": "orders.currency replaces orders.currency_code"}`))
	require.Len(t, created.Environments, 2)
	a.must(http.StatusConflict, http.MethodPost, base, `{"key": "orders-currency"}`)

	phases := base + "/orders-currency/environments/prod/phases"
	rec = a.must(http.StatusUnprocessableEntity, http.MethodPost, phases, `{"phase": "contract"}`)
	require.Contains(t, rec.Body.String(), "comes after migrate, which this environment has not reached")
	a.must(http.StatusUnprocessableEntity, http.MethodPost, phases, `{"phase": "shrink"}`)
	a.must(http.StatusNotFound, http.MethodPost, base+"/nope/environments/prod/phases", `{"phase": "expand"}`)
	sc := decode[apigen.SchemaChange](t, a.must(http.StatusOK, http.MethodPost, phases, `{"phase": "expand"}`))
	for _, e := range sc.Environments {
		if e.Environment == "prod" {
			require.Equal(t, apigen.SchemaPhaseName("expand"), *e.Reached)
			require.Equal(t, "token:ci", e.Phases[0].ReachedBy)
		} else {
			require.Nil(t, e.Reached)
		}
	}

	needs := "/api/v1/apps/shop/versions/v2.0.0/schema-needs"
	a.must(http.StatusUnprocessableEntity, http.MethodPut, needs, `{"needs": [{"change": "nope", "phase": "migrate"}]}`)
	got := decode[apigen.VersionSchemaNeeds](t, a.must(http.StatusOK, http.MethodPut, needs, `{"needs": [{"change": "orders-currency", "phase": "migrate"}]}`))
	require.Len(t, got.Needs, 1)

}

func TestRunRefusedUntilTheSchemaIsReady(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	ctx := context.Background()
	sc, err := a.store.CreateSchemaChange(ctx, a.app.ID, "orders-currency", "", "user:dba")
	require.NoError(t, err)
	_, err = a.store.RecordSchemaPhase(ctx, sc, a.env.ID, "expand", 0, "user:dba")
	require.NoError(t, err)
	require.NoError(t, a.store.SetVersionNeeds(ctx, a.app.ID, "v2", []store.VersionNeed{{Change: "orders-currency", Phase: "migrate"}}, "user:ci"))

	runs := "/api/v1/apps/shop/environments/prod/runs"
	rec := a.as("ci", exchange{method: http.MethodPost, path: runs, body: `{"version": "v2"}`})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "v2 needs schema change orders-currency at migrate, and prod has reached expand; run its migrate phase there first")

	// Overriding needs the admin scope and a reason.
	rec = a.as("ci", exchange{method: http.MethodPost, path: runs, body: `{"version": "v2", "schema_override": {"reason": "the column exists already"}}`})
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	rec = a.as("ci", exchange{method: http.MethodPost, path: runs, body: `{"version": "v2", "schema_override": {"reason": " "}}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	list, err := a.store.ListRuns(ctx, store.RunFilter{EnvironmentID: a.env.ID, Limit: 10})
	require.NoError(t, err)
	require.Empty(t, list, "nothing was started")
}
