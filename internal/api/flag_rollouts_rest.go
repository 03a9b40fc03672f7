package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// FlagRolloutStore is what the guarded rollout endpoints need from the
// store; *store.Store implements it.
type FlagRolloutStore interface {
	StartFlagRollout(ctx context.Context, n store.NewFlagRollout) (store.FlagRollout, store.FlagState, error)
	CurrentFlagRollout(ctx context.Context, flagID, envID int64) (store.FlagRollout, error)
	CancelFlagRollout(ctx context.Context, id int64, actor string) (store.FlagRollout, error)
	InsertFlagRolloutWindows(ctx context.Context, windows []store.MetricWindow) (int64, error)
}

// Routes of the guarded rollout endpoints, for scopeFor.
const (
	flagRolloutRoute        = flagStateRoute + "/rollout"
	flagRolloutCancelRoute  = flagRolloutRoute + "/cancel"
	flagRolloutMetricsRoute = flagRolloutRoute + "/metrics"
)

var startFlagRolloutFields = []string{"variant", "control_variant", "steps", "step_bake"}

// GetFlagRollout handles GET .../flags/{flag}/environments/{env}/rollout.
func (h *restHandlers) GetFlagRollout(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	_, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	r, err := h.currentRollout(c.Request().Context(), f, env, slug, "never had a guarded rollout in %q")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rolloutBody(r, key, env.Name))
}

// currentRollout reads the running or latest rollout of the flag in the
// environment; missing completes "flag X of app ..." in the 404 when it
// never had one, with the environment's name for its %q.
func (h *restHandlers) currentRollout(ctx context.Context, f store.Flag, env store.Environment, slug, missing string) (store.FlagRollout, error) {
	r, err := h.store.CurrentFlagRollout(ctx, f.ID, env.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.FlagRollout{}, notFound("flag %q of %q "+missing, f.Key(), slug, env.Name)
	case err != nil:
		return store.FlagRollout{}, fmt.Errorf("reading the rollout of %s in %s/%s: %w", f.Key(), slug, env.Name, err)
	}
	return r, nil
}

// StartFlagRollout handles POST .../flags/{flag}/environments/{env}/rollout.
func (h *restHandlers) StartFlagRollout(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	var n store.NewFlagRollout
	if v, ok := o.str("variant"); ok {
		n.Variant = v
	}
	if v, ok := o.str("control_variant"); ok {
		n.ControlVariant = v
	}
	if o.has("steps") {
		if steps, ok := readValue[[]float64](o, "steps", "a list of percentages such as [5, 25, 50, 100]"); ok {
			if len(steps) == 0 {
				o.add("steps", "is empty; leave it out for 5, 25, 50, 100")
			}
			n.Steps = steps
		}
	}
	o.required("step_bake")
	if text, ok := o.str("step_bake"); ok {
		d, err := plan.ParseDuration(text)
		if err != nil {
			o.add("step_bake", "%v", err)
		}
		n.StepBake = time.Duration(d)
	}
	if err := o.finish(startFlagRolloutFields...); err != nil {
		return err
	}
	if n.Actor, err = requestActor(c); err != nil {
		return err
	}
	_, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	n.FlagID, n.EnvironmentID = f.ID, env.ID
	ctx := c.Request().Context()
	r, _, err := h.store.StartFlagRollout(ctx, n)
	if errors.Is(err, store.ErrRolloutRunning) {
		cur, cerr := h.store.CurrentFlagRollout(ctx, f.ID, env.ID)
		if cerr != nil {
			return fmt.Errorf("reading the running rollout of %s in %s/%s: %w", key, slug, name, cerr)
		}
		return conflict(rolloutBody(cur, key, env.Name),
			"a guarded rollout of %q is running in %q already (rollout %d, at %s%%); cancel it first. Nothing was changed",
			key, name, cur.ID, strconv.FormatFloat(cur.Percent(), 'g', -1, 64))
	}
	if err != nil {
		return flagStoreError(err, fmt.Sprintf("starting a rollout of %s in %s/%s", key, slug, name))
	}
	c.Response().Header().Set(echo.HeaderLocation, flagPath(slug, key)+"/environments/"+env.Name+"/rollout")
	return c.JSON(http.StatusCreated, rolloutBody(r, key, env.Name))
}

// CancelFlagRollout handles POST .../rollout/cancel.
func (h *restHandlers) CancelFlagRollout(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	_, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := h.currentRollout(ctx, f, env, slug, "has no guarded rollout in %q to cancel")
	if err != nil {
		return err
	}
	r, err := h.store.CancelFlagRollout(ctx, cur.ID, actor)
	if errors.Is(err, store.ErrTerminal) {
		cur, _ = h.store.CurrentFlagRollout(ctx, f.ID, env.ID)
		return conflict(rolloutBody(cur, key, env.Name), "the latest rollout of %q in %q has ended (%s); nothing was changed",
			key, name, describeRolloutState(cur.State))
	}
	if err != nil {
		return fmt.Errorf("cancelling the rollout of %s in %s/%s: %w", key, slug, name, err)
	}
	return c.JSON(http.StatusOK, rolloutBody(r, key, env.Name))
}

// IngestFlagRolloutMetrics handles POST .../rollout/metrics: samples of the
// running rollout split by variant, kept as windows for its checks.
func (h *restHandlers) IngestFlagRolloutMetrics(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	batch, err := readMetricBatch(c)
	if err != nil {
		return err
	}
	_, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	const notRunning = "has no guarded rollout running in %q; samples are taken only while one runs"
	r, err := h.currentRollout(ctx, f, env, slug, notRunning)
	if err != nil {
		return err
	}
	if !r.Running() {
		return notFound("flag %q of %q "+notRunning, key, slug, name)
	}
	res, err := rollout.Ingest(ctx, h.store, r, key, env.Name, batch, time.Now())
	if err != nil {
		return err
	}
	return answerIngest(c, res)
}

// rolloutBody is a rollout as the API shows it.
func rolloutBody(r store.FlagRollout, key, env string) apigen.FlagRollout {
	out := apigen.FlagRollout{
		Id: r.ID, Flag: key, Environment: env, Variant: r.Variant, ControlVariant: r.ControlVariant,
		Steps: r.Steps, StepBake: plan.Duration(r.StepBake).String(), State: apigen.FlagRolloutState(r.State),
		Step: r.StepIndex, Percent: r.Percent(), StepStartedAt: r.StepStartedAt, NextCheckAt: r.NextCheckAt,
		StartedBy: r.StartedBy, CreatedAt: r.CreatedAt,
	}
	if !r.FinishedAt.IsZero() {
		out.FinishedAt = &r.FinishedAt
		out.Outcome = &r.Outcome
	}
	if len(r.LastDecision) > 0 {
		var d map[string]any
		if json.Unmarshal(r.LastDecision, &d) == nil {
			out.Decision = &d
		}
	}
	return out
}

func describeRolloutState(s store.FlagRolloutState) string {
	switch s {
	case store.FlagRolloutCompleted:
		return "completed"
	case store.FlagRolloutRolledBack:
		return "rolled back"
	case store.FlagRolloutCancelled:
		return "cancelled"
	}
	return string(s)
}

// readMetricBatch reads a pushed batch of samples from the request body.
func readMetricBatch(c echo.Context) (push.Batch, error) {
	if !isJSON(c.Request().Header.Get(echo.HeaderContentType)) {
		return push.Batch{}, echo.NewHTTPError(http.StatusUnsupportedMediaType, "send the samples as application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxMetricsBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return push.Batch{}, echo.NewHTTPError(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the body is larger than %d MB; send the samples in smaller batches", MaxMetricsBody>>20))
	}
	if err != nil {
		return push.Batch{}, echo.NewHTTPError(http.StatusBadRequest, "reading the body: "+err.Error())
	}
	batch, err := push.DecodeBatch(body)
	if err != nil {
		return push.Batch{}, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	return batch, nil
}
