package engine

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// deploy creates a run of the version and drives it to the end.
func deploy(t *testing.T, h *harness, env store.Environment, version string) store.Run {
	t.Helper()
	run, _, err := h.engine.CreateRun(context.Background(), NewRun{App: h.app, Environment: h.envByID(env.ID), Version: version, Strategy: "recreate", CreatedBy: "user:ci"})
	require.NoError(t, err)
	return h.driveUntilState(run.ID, store.RunSucceeded)
}

func (h *harness) envByID(id int64) store.Environment {
	h.t.Helper()
	e, err := h.store.EnvironmentByID(context.Background(), id)
	require.NoError(h.t, err)
	return e
}

func TestSchemaChangesGateVersions(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	env := h.env("prod", nil) // v1 stable
	change, err := h.store.CreateSchemaChange(ctx, h.app.ID, "orders-currency", "orders.currency replaces orders.currency_code", "user:dba")
	require.NoError(t, err)
	require.NoError(t, h.store.SetVersionNeeds(ctx, h.app.ID, "v3", []store.VersionNeed{{Change: "orders-currency", Phase: store.SchemaMigrate}}, "user:ci"))

	// v3 reads the new column: it may not run before migrate.
	_, _, err = h.engine.CreateRun(ctx, NewRun{App: h.app, Environment: h.envByID(env.ID), Version: "v3", Strategy: "recreate", CreatedBy: "user:ci"})
	var block *store.SchemaBlock
	require.ErrorAs(t, err, &block)
	require.Contains(t, block.Message, "v3 needs schema change orders-currency at migrate, and prod has not started it; run its expand phase there first")

	// Phases go in order.
	_, err = h.store.RecordSchemaPhase(ctx, change, env.ID, store.SchemaMigrate, 0, "user:dba")
	var serr *store.SchemaError
	require.ErrorAs(t, err, &serr)
	change, err = h.store.RecordSchemaPhase(ctx, change, env.ID, store.SchemaExpand, 0, "user:dba")
	require.NoError(t, err)
	deploy(t, h, env, "v2") // v2 writes both columns: the migrate deployment
	change, err = h.store.RecordSchemaPhase(ctx, change, env.ID, store.SchemaMigrate, 0, "user:dba")
	require.NoError(t, err)
	deploy(t, h, env, "v3")
	change, err = h.store.RecordSchemaPhase(ctx, change, env.ID, store.SchemaContract, 0, "user:dba")
	require.NoError(t, err)
	require.Equal(t, store.SchemaContract, change.Latest(env.ID))

	// v1 served prod before migrate and reads the dropped column: rolling
	// back to it is blocked, unless an administrator overrides with a reason.
	_, _, err = h.engine.CreateRun(ctx, NewRun{App: h.app, Environment: h.envByID(env.ID), Version: "v1", Strategy: "recreate", CreatedBy: "user:ci"})
	require.ErrorAs(t, err, &block)
	require.Contains(t, block.Message, "v1 served prod before schema change orders-currency reached migrate there, and prod has contracted it")
	run, _, err := h.engine.CreateRun(ctx, NewRun{App: h.app, Environment: h.envByID(env.ID), Version: "v1", Strategy: "recreate",
		CreatedBy: "user:admin", SchemaOverride: "the old column was restored by hand"})
	require.NoError(t, err)
	found := false
	for _, e := range h.events(run.ID) {
		if e.Type == "schema.override" {
			found = true
			require.Contains(t, string(e.Payload), "the old column was restored by hand")
		}
	}
	require.True(t, found, "the override is recorded on the run")

	// A version never deployed there (a fix on top of v3) is not held back.
	_, err = h.engine.Act(ctx, run.ID, ActionRequest{Action: ActionAbort, Actor: "user:admin"})
	require.NoError(t, err)
	deploy(t, h, env, "v4")
}
