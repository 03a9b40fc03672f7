package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// SchemaChangeStore tracks expand–contract schema changes; *store.Store
// implements it.
type SchemaChangeStore interface {
	CreateSchemaChange(ctx context.Context, appID int64, key, description, actor string) (store.SchemaChange, error)
	ListSchemaChanges(ctx context.Context, appID int64) ([]store.SchemaChange, error)
	SchemaChange(ctx context.Context, appID int64, key string) (store.SchemaChange, error)
	RecordSchemaPhase(ctx context.Context, c store.SchemaChange, envID int64, phase string, runID int64, actor string) (store.SchemaChange, error)
	SetVersionNeeds(ctx context.Context, appID int64, version string, needs []store.VersionNeed, actor string) error
	VersionNeeds(ctx context.Context, appID int64, version string) ([]store.VersionNeed, error)
}

// Routes of the schema change endpoints that change something, for
// scopeFor: recording them is part of deploying.
const (
	schemaChangesRoute = "/api/v1/apps/:app/schema-changes"
	schemaPhaseRoute   = schemaChangesRoute + "/:change/environments/:env/phases"
	schemaNeedsRoute   = "/api/v1/apps/:app/versions/:version/schema-needs"
)

// isSchemaWriteRoute reports whether a route records schema changes.
func isSchemaWriteRoute(route string) bool {
	return route == schemaChangesRoute || route == schemaPhaseRoute || route == schemaNeedsRoute
}

// ListSchemaChanges handles GET /api/v1/apps/{app}/schema-changes.
func (h *restHandlers) ListSchemaChanges(c echo.Context, slug apigen.AppSlug) error {
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	changes, err := h.store.ListSchemaChanges(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("listing the schema changes of %s: %w", slug, err)
	}
	envs, err := h.store.ListEnvironments(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("listing the environments of %s: %w", slug, err)
	}
	out := apigen.SchemaChangeList{Items: make([]apigen.SchemaChange, 0, len(changes))}
	for _, sc := range changes {
		out.Items = append(out.Items, schemaChangeBody(sc, envs))
	}
	return c.JSON(http.StatusOK, out)
}

// CreateSchemaChange handles POST /api/v1/apps/{app}/schema-changes.
func (h *restHandlers) CreateSchemaChange(c echo.Context, slug apigen.AppSlug) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.required("key")
	key, _ := o.str("key")
	description, _ := o.str("description")
	if err := o.finish("key", "description"); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc, err := h.store.CreateSchemaChange(ctx, app.ID, key, description, actor)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "app %q tracks a schema change %q already", slug, key)
	case err != nil:
		return schemaStoreError(err, "creating schema change "+key)
	}
	if err := h.audit(c, store.AuditEvent{Action: "schema.change_created", App: slug, Detail: key + ": " + description}); err != nil {
		return err
	}
	return h.answerSchemaChange(c, http.StatusCreated, app, sc)
}

// RecordSchemaPhase handles POST .../schema-changes/{change}/environments/{env}/phases.
func (h *restHandlers) RecordSchemaPhase(c echo.Context, slug apigen.AppSlug, key string, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.required("phase")
	phase, _ := o.str("phase")
	runID, _ := readValue[int64](o, "run_id", "the id of the run that carried the phase")
	if err := o.finish("phase", "run_id"); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	app, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc, err := h.store.SchemaChange(ctx, app.ID, key)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("app %q tracks no schema change %q", slug, key)
	}
	if err != nil {
		return err
	}
	sc, err = h.store.RecordSchemaPhase(ctx, sc, env.ID, phase, runID, actor)
	if err != nil {
		return schemaStoreError(err, fmt.Sprintf("recording %s of %s in %s", phase, key, name))
	}
	if err := h.audit(c, store.AuditEvent{Action: "schema.phase_reached", App: slug, Environment: name, RunID: runID,
		Detail: fmt.Sprintf("%s reached %s", key, phase)}); err != nil {
		return err
	}
	return h.answerSchemaChange(c, http.StatusOK, app, sc)
}

// answerSchemaChange answers with the change as seen from every
// environment of the app.
func (h *restHandlers) answerSchemaChange(c echo.Context, status int, app store.App, sc store.SchemaChange) error {
	envs, err := h.store.ListEnvironments(c.Request().Context(), app.ID)
	if err != nil {
		return fmt.Errorf("listing the environments of %s: %w", app.Slug, err)
	}
	return c.JSON(status, schemaChangeBody(sc, envs))
}

// GetVersionSchemaNeeds handles GET .../versions/{version}/schema-needs.
func (h *restHandlers) GetVersionSchemaNeeds(c echo.Context, slug apigen.AppSlug, version string) error {
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	needs, err := h.store.VersionNeeds(c.Request().Context(), app.ID, version)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, needsBody(needs))
}

// SetVersionSchemaNeeds handles PUT .../versions/{version}/schema-needs.
func (h *restHandlers) SetVersionSchemaNeeds(c echo.Context, slug apigen.AppSlug, version string) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.required("needs")
	var needs []store.VersionNeed
	if raw, ok := o.raw("needs"); ok {
		var body []apigen.VersionSchemaNeed
		if err := json.Unmarshal(raw, &body); err != nil {
			o.add("needs", "must be a list of {\"change\": ..., \"phase\": ...}")
		}
		for _, n := range body {
			needs = append(needs, store.VersionNeed{Change: n.Change, Phase: string(n.Phase)})
		}
	}
	if err := o.finish("needs"); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.store.SetVersionNeeds(ctx, app.ID, version, needs, actor); err != nil {
		return schemaStoreError(err, "recording what "+version+" needs")
	}
	var said []string
	for _, n := range needs {
		said = append(said, n.Change+" at "+n.Phase)
	}
	if err := h.audit(c, store.AuditEvent{Action: "schema.version_needs_set", App: slug,
		Detail: fmt.Sprintf("%s needs %s", version, strings.Join(said, ", "))}); err != nil {
		return err
	}
	stored, err := h.store.VersionNeeds(ctx, app.ID, version)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, needsBody(stored))
}

func schemaStoreError(err error, what string) error {
	if serr, ok := errors.AsType[*store.SchemaError](err); ok {
		return validationFailed([]plan.FieldError{{Field: serr.Field, Message: serr.Message}})
	}
	return fmt.Errorf("%s: %w", what, err)
}

func needsBody(needs []store.VersionNeed) apigen.VersionSchemaNeeds {
	out := apigen.VersionSchemaNeeds{Needs: make([]apigen.VersionSchemaNeed, len(needs))}
	for i, n := range needs {
		out.Needs[i] = apigen.VersionSchemaNeed{Change: n.Change, Phase: apigen.SchemaPhaseName(n.Phase)}
	}
	return out
}

func schemaChangeBody(sc store.SchemaChange, envs []store.Environment) apigen.SchemaChange {
	out := apigen.SchemaChange{Key: sc.Key, Description: sc.Description, CreatedAt: sc.CreatedAt, CreatedBy: sc.CreatedBy,
		Environments: make([]apigen.SchemaChangeEnvironment, 0, len(envs))}
	for _, env := range envs {
		e := apigen.SchemaChangeEnvironment{Environment: env.Name, Phases: []apigen.SchemaPhaseReached{}}
		for _, p := range sc.Reached[env.ID] {
			r := apigen.SchemaPhaseReached{Phase: apigen.SchemaPhaseName(p.Phase), ReachedAt: p.ReachedAt, ReachedBy: p.ReachedBy}
			if p.RunID != 0 {
				id := p.RunID
				r.RunId = &id
			}
			e.Phases = append(e.Phases, r)
		}
		if latest := sc.Latest(env.ID); latest != "" {
			reached := apigen.SchemaPhaseName(latest)
			e.Reached = &reached
		}
		out.Environments = append(out.Environments, e)
	}
	return out
}
