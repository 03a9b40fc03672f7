package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// maxUpdateAttempts bounds how often an update without If-Match is applied
// again after the engine changed the environment underneath it (a run
// recording a new stable version), before the client is told to retry.
const maxUpdateAttempts = 5

// environmentFields lists the fields a client may set on an environment,
// for the message that names an unknown one.
var environmentFields = []string{
	"tier", "driver", "metrics", "default_strategy", "strategy_defaults", "thresholds",
	"require_approval", "approver_not_starter", "failure_policy",
}

// environmentChange holds the settings a request gives, each checked; nil
// and empty fields were not given and keep their value.
type environmentChange struct {
	tier               *string
	driver             json.RawMessage
	metrics            json.RawMessage
	defaultStrategy    *string
	strategyDefaults   json.RawMessage
	thresholds         json.RawMessage
	requireApproval    *bool
	approverNotStarter *bool
	failurePolicy      *string
}

// ListEnvironments handles GET /api/v1/apps/{app}/environments: the app's
// environments in name order, a page at a time.
func (h *restHandlers) ListEnvironments(c echo.Context, slug apigen.AppSlug, params apigen.ListEnvironmentsParams) error {
	p, err := readPage(params.Cursor, params.Limit)
	if err != nil {
		return err
	}
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	envs, err := h.store.ListEnvironments(c.Request().Context(), app.ID)
	if err != nil {
		return fmt.Errorf("listing environments of %s: %w", slug, err)
	}
	// An app has a handful of environments, so the page is cut here; the
	// cursor is the same kind as for apps should the store page them later.
	// Sorting by bytes, not by the database's collation, keeps the order
	// and the cut consistent with each other.
	slices.SortFunc(envs, func(a, b store.Environment) int { return strings.Compare(a.Name, b.Name) })
	start, _ := slices.BinarySearchFunc(envs, p.after, func(e store.Environment, name string) int {
		return strings.Compare(e.Name, name)
	})
	if start < len(envs) && envs[start].Name == p.after {
		start++
	}
	envs = envs[start:]
	list := apigen.EnvironmentList{Items: make([]apigen.Environment, 0, min(len(envs), p.limit))}
	if len(envs) > p.limit {
		envs = envs[:p.limit]
		list.NextCursor = cursorAfter(envs[len(envs)-1].Name)
	}
	for _, e := range envs {
		list.Items = append(list.Items, environmentBody(app, e))
	}
	return c.JSON(http.StatusOK, list)
}

// CreateEnvironment handles POST /api/v1/apps/{app}/environments. Settings
// left out take the defaults; those given are checked as a run would use
// them, so a bad one is refused now instead of failing the first run.
func (h *restHandlers) CreateEnvironment(c echo.Context, slug apigen.AppSlug) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	env := store.Environment{
		Tier:             "development",
		Driver:           json.RawMessage(`{"type": "simulator"}`),
		Metrics:          json.RawMessage(`{"type": "simulator"}`),
		DefaultStrategy:  string(plan.Canary),
		StrategyDefaults: json.RawMessage(`{}`),
		Thresholds:       json.RawMessage(`{}`),
		FailurePolicy:    "rollback",
	}
	o.required("name")
	if name, ok := o.str("name"); ok {
		checkSlug(o, "name", name)
		env.Name = name
	}
	change := readEnvironmentChange(o)
	if err := o.finish(append([]string{"name"}, environmentFields...)...); err != nil {
		return err
	}

	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	env.AppID = app.ID
	change.apply(&env)
	created, err := h.store.CreateEnvironment(c.Request().Context(), env)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "app %q has an environment named %q already", slug, env.Name)
	case errors.Is(err, store.ErrNotFound):
		// The app was deleted since it was read.
		return notFound("there is no app with slug %q", slug)
	case err != nil:
		return fmt.Errorf("creating environment %s of %s: %w", env.Name, slug, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, environmentPath(slug, created.Name))
	setETag(c, created)
	return c.JSON(http.StatusCreated, environmentBody(app, created))
}

// GetEnvironment handles GET /api/v1/apps/{app}/environments/{env}.
func (h *restHandlers) GetEnvironment(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	app, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	setETag(c, env)
	return c.JSON(http.StatusOK, environmentBody(app, env))
}

// UpdateEnvironment handles PATCH /api/v1/apps/{app}/environments/{env}.
// The fields given replace the stored ones whole; the others keep their
// value. With If-Match the change applies only to that version, and a
// mismatch is 409 with the environment as it is now. Without it, the change
// is applied to the latest version, again if the engine moved the
// environment on meanwhile.
func (h *restHandlers) UpdateEnvironment(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName, params apigen.UpdateEnvironmentParams) error {
	expected, err := readIfMatch(params.IfMatch)
	if err != nil {
		return err
	}
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.readOnly("name", "it identifies the environment; create a new environment for a new name")
	o.readOnly("app", "an environment belongs to its app for good")
	o.readOnly("version", "the server counts it; send it as If-Match to update only that version")
	o.readOnly("stable_version", "it follows the runs that succeed")
	o.readOnly("previous_stable_version", "it follows the runs that succeed")
	o.readOnly("created_at", "the server keeps it")
	o.readOnly("updated_at", "the server keeps it")
	change := readEnvironmentChange(o)
	if err := o.finish(environmentFields...); err != nil {
		return err
	}

	app, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if expected != nil && env.Version != *expected {
			return versionConflict(app, env, *expected)
		}
		if change.empty() {
			setETag(c, env)
			return c.JSON(http.StatusOK, environmentBody(app, env))
		}
		next := env
		change.apply(&next)
		updated, err := h.store.UpdateEnvironment(c.Request().Context(), next)
		if err == nil {
			setETag(c, updated)
			return c.JSON(http.StatusOK, environmentBody(app, updated))
		}
		if _, ok := errors.AsType[*store.ConflictError](err); !ok {
			return fmt.Errorf("updating environment %s of %s: %w", name, slug, err)
		}
		// Somebody changed the environment after it was read: read it again
		// and decide on what it is now.
		if _, env, err = h.environment(c, slug, name); err != nil {
			return err
		}
		if expected == nil && attempt >= maxUpdateAttempts {
			return conflict(environmentBody(app, env), "environment %q of %q keeps changing; send the change again", name, slug)
		}
	}
}

// environment reads the app and environment named in the path, or refuses
// with 404 naming which one is missing.
func (h *restHandlers) environment(c echo.Context, slug, name string) (store.App, store.Environment, error) {
	app, err := h.app(c, slug)
	if err != nil {
		return store.App{}, store.Environment{}, err
	}
	env, err := h.store.Environment(c.Request().Context(), app.ID, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.App{}, store.Environment{}, notFound("app %q has no environment named %q", slug, name)
	case err != nil:
		return store.App{}, store.Environment{}, fmt.Errorf("reading environment %s of %s: %w", name, slug, err)
	}
	return app, env, nil
}

// readEnvironmentChange reads and checks the settings an environment
// request may give, recording every problem in o.
func readEnvironmentChange(o *requestObject) environmentChange {
	var ch environmentChange
	if tier, ok := o.str("tier"); ok {
		if slices.Contains(tiers, tier) {
			ch.tier = &tier
		} else {
			o.add("tier", "must be one of %s, got %q", quoteAll(tiers), tier)
		}
	}
	if raw, ok := o.object("driver"); ok {
		o.addAll(checkDriver(raw))
		ch.driver = raw
	}
	if raw, ok := o.object("metrics"); ok {
		o.addAll(checkMetrics(raw))
		ch.metrics = raw
	}
	if strategy, ok := o.str("default_strategy"); ok {
		if plan.Strategy(strategy).Valid() {
			ch.defaultStrategy = &strategy
		} else {
			o.add("default_strategy", "must be one of %s, got %q", strategyNames(), strategy)
		}
	}
	if raw, ok := o.object("strategy_defaults"); ok {
		o.addAll(checkStrategyDefaults(raw))
		ch.strategyDefaults = raw
	}
	if raw, ok := o.object("thresholds"); ok {
		o.addAll(checkThresholds(raw))
		ch.thresholds = raw
	}
	if v, ok := o.boolean("require_approval"); ok {
		ch.requireApproval = &v
	}
	if v, ok := o.boolean("approver_not_starter"); ok {
		ch.approverNotStarter = &v
	}
	if policy, ok := o.str("failure_policy"); ok {
		if slices.Contains(failurePolicies, policy) {
			ch.failurePolicy = &policy
		} else {
			o.add("failure_policy", "must be one of %s, got %q", quoteAll(failurePolicies), policy)
		}
	}
	return ch
}

// empty reports whether the change gives no setting at all.
func (ch environmentChange) empty() bool {
	return ch.tier == nil && ch.driver == nil && ch.metrics == nil && ch.defaultStrategy == nil &&
		ch.strategyDefaults == nil && ch.thresholds == nil && ch.requireApproval == nil &&
		ch.approverNotStarter == nil && ch.failurePolicy == nil
}

// apply writes the settings the change gives onto env.
func (ch environmentChange) apply(env *store.Environment) {
	if ch.tier != nil {
		env.Tier = *ch.tier
	}
	if ch.driver != nil {
		env.Driver = keepHiddenSecret(ch.driver, env.Driver)
	}
	if ch.metrics != nil {
		env.Metrics = ch.metrics
	}
	if ch.defaultStrategy != nil {
		env.DefaultStrategy = *ch.defaultStrategy
	}
	if ch.strategyDefaults != nil {
		env.StrategyDefaults = ch.strategyDefaults
	}
	if ch.thresholds != nil {
		env.Thresholds = ch.thresholds
	}
	if ch.requireApproval != nil {
		env.RequireApproval = *ch.requireApproval
	}
	if ch.approverNotStarter != nil {
		env.ApproverNotStarter = *ch.approverNotStarter
	}
	if ch.failurePolicy != nil {
		env.FailurePolicy = *ch.failurePolicy
	}
}

// readIfMatch reads the version an update is conditional on: nil without
// If-Match or with "*", which any existing environment matches.
func readIfMatch(header *string) (*int64, error) {
	if header == nil || strings.TrimSpace(*header) == "*" {
		return nil, nil
	}
	tag := strings.TrimSpace(*header)
	digits := tag
	if len(tag) >= 2 && strings.HasPrefix(tag, `"`) && strings.HasSuffix(tag, `"`) {
		digits = tag[1 : len(tag)-1]
	}
	version, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || version < 1 {
		return nil, badRequest(`If-Match must be the ETag of the environment, such as "7", or *`,
			plan.FieldError{Field: "If-Match", Message: fmt.Sprintf(`must be an ETag this server handed out, such as "7", or *; got %q`, tag)})
	}
	return &version, nil
}

// versionConflict refuses an update based on a version the environment no
// longer has, sending the environment as it is now.
func versionConflict(app store.App, env store.Environment, expected int64) error {
	return conflict(environmentBody(app, env),
		"environment %q of %q is at version %d, not %d; current shows it as it is now", env.Name, app.Slug, env.Version, expected)
}

// setETag tells the client the version it read, for If-Match.
func setETag(c echo.Context, env store.Environment) {
	c.Response().Header().Set("ETag", strconv.Quote(strconv.FormatInt(env.Version, 10)))
}

// environmentPath is where the environment is found in the API.
func environmentPath(slug, name string) string {
	return appPath(slug) + "/environments/" + url.PathEscape(name)
}

// environmentBody is the environment as the API shows it.
func environmentBody(app store.App, e store.Environment) apigen.Environment {
	return apigen.Environment{
		App:                   app.Slug,
		Name:                  e.Name,
		Tier:                  apigen.Tier(e.Tier),
		Driver:                hideDriverSecret(e.Driver),
		Metrics:               e.Metrics,
		DefaultStrategy:       apigen.Strategy(e.DefaultStrategy),
		StrategyDefaults:      e.StrategyDefaults,
		Thresholds:            e.Thresholds,
		StableVersion:         optional(e.StableVersion),
		PreviousStableVersion: optional(e.PreviousStableVersion),
		RequireApproval:       e.RequireApproval,
		ApproverNotStarter:    e.ApproverNotStarter,
		FailurePolicy:         apigen.FailurePolicy(e.FailurePolicy),
		Version:               e.Version,
		CreatedAt:             e.CreatedAt,
		UpdatedAt:             e.UpdatedAt,
	}
}

// optional turns an empty string into null.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// hiddenSecret stands in for a driver's "secret" wherever an environment is
// shown: the secret signs deliveries and never leaves the server. Sending
// the placeholder back keeps the stored secret, so a configuration read,
// edited and sent again does not lose it.
const hiddenSecret = "(hidden; send a new secret to change it)"

// hideDriverSecret returns the driver configuration with its "secret"
// replaced by hiddenSecret.
func hideDriverSecret(driver json.RawMessage) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(driver, &fields) != nil {
		return driver
	}
	if _, ok := fields["secret"]; !ok {
		return driver
	}
	fields["secret"], _ = json.Marshal(hiddenSecret)
	hidden, err := json.Marshal(fields)
	if err != nil {
		return driver
	}
	return hidden
}

// keepHiddenSecret returns the new driver configuration with the stored
// secret in place of hiddenSecret. A placeholder with no stored secret to
// stand for is left as sent, and the driver's validation refuses it.
func keepHiddenSecret(next, stored json.RawMessage) json.RawMessage {
	var fields, old map[string]json.RawMessage
	if json.Unmarshal(next, &fields) != nil || json.Unmarshal(stored, &old) != nil {
		return next
	}
	var secret string
	if json.Unmarshal(fields["secret"], &secret) != nil || secret != hiddenSecret {
		return next
	}
	previous, ok := old["secret"]
	if !ok {
		return next
	}
	fields["secret"] = previous
	kept, err := json.Marshal(fields)
	if err != nil {
		return next
	}
	return kept
}
