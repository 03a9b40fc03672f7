package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// FlagStore is what the REST endpoints for feature flags and segments need
// from the store; *store.Store implements it. The store validates every
// definition, state and segment with package flags and answers a
// *flags.ValidationError, a *store.ConflictError for a lost
// compare-and-swap, or store.ErrNotFound / store.ErrAlreadyExists.
type FlagStore interface {
	CreateFlag(ctx context.Context, appID int64, def flags.Flag, actor string) (store.Flag, error)
	UpdateFlag(ctx context.Context, f store.Flag, actor string) (store.Flag, error)
	Flag(ctx context.Context, appID int64, key string) (store.Flag, error)
	ListFlags(ctx context.Context, appID int64) ([]store.Flag, error)
	SetFlagState(ctx context.Context, flagID, envID int64, state flags.EnvState, expectedVersion int64, actor string) (store.FlagState, error)
	KillFlag(ctx context.Context, flagID, envID int64, actor string) (store.FlagState, error)
	ListFlagStates(ctx context.Context, appID, envID int64) ([]store.FlagState, error)
	UpsertSegment(ctx context.Context, appID int64, seg flags.Segment, expectedVersion int64, actor string) (store.Segment, error)
	ListSegments(ctx context.Context, appID int64) ([]store.Segment, error)
	ListFlagEventsBefore(ctx context.Context, flagID, beforeID int64, limit int) ([]store.FlagEvent, error)
}

// Routes of the flag endpoints that change something, for scopeFor.
// Evaluating a flag is a POST too, but it only reads.
const (
	flagsRoute        = "/api/v1/apps/:app/flags"
	flagRoute         = flagsRoute + "/:flag"
	flagStateRoute    = flagRoute + "/environments/:env"
	flagKillRoute     = flagStateRoute + "/kill"
	flagEvaluateRoute = flagStateRoute + "/evaluate"
	segmentRoute      = "/api/v1/apps/:app/segments/:segment"
)

// isFlagWriteRoute reports whether a route changes flags or segments,
// which is released by the people who deploy and so needs the deploy scope.
func isFlagWriteRoute(route string) bool {
	switch route {
	case flagsRoute, flagRoute, flagStateRoute, flagKillRoute, segmentRoute, flagRolloutRoute, flagRolloutCancelRoute:
		return true
	}
	return false
}

// featureKeyPattern is the syntax of flag keys, segment keys and variant
// names, the same as package flags checks; cursors over flags and segments
// are such keys.
var featureKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// The fields each flag request takes, for the message naming an unknown one.
var (
	createFlagFields = []string{"key", "type", "variants", "default_variant", "off_variant", "salt", "description"}
	updateFlagFields = append(slices.Clone(createFlagFields), "version")
	flagStateFields  = []string{"enabled", "rules", "default_rollout", "version"}
	segmentFields    = []string{"key", "name", "clauses", "included_keys", "excluded_keys", "version"}
)

// ListFlags handles GET /api/v1/apps/{app}/flags: the app's flags in key
// order, each with its state in every environment the token may see.
func (h *restHandlers) ListFlags(c echo.Context, slug apigen.AppSlug, params apigen.ListFlagsParams) error {
	p, err := readKeyPage(params.Cursor, params.Limit)
	if err != nil {
		return err
	}
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	all, err := h.store.ListFlags(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("listing flags of %s: %w", slug, err)
	}
	// Sorting by bytes, not by the database's collation, keeps the order
	// and the cursor's cut consistent with each other.
	slices.SortFunc(all, func(a, b store.Flag) int { return strings.Compare(a.Key(), b.Key()) })
	start, _ := slices.BinarySearchFunc(all, p.after, func(f store.Flag, key string) int { return strings.Compare(f.Key(), key) })
	if start < len(all) && all[start].Key() == p.after {
		start++
	}
	page := all[start:]
	list := apigen.FlagList{Items: make([]apigen.FlagListItem, 0, min(len(page), p.limit))}
	if len(page) > p.limit {
		page = page[:p.limit]
		list.NextCursor = cursorAfter(page[len(page)-1].Key())
	}
	envs, states, err := h.flagStates(c, app)
	if err != nil {
		return err
	}
	for _, f := range page {
		item := apigen.FlagListItem{
			Key: f.Key(), Type: apigen.FlagType(f.Definition.Type), Description: f.Definition.Description,
			DefaultVariant: f.Definition.DefaultVariant, Version: f.Version, UpdatedAt: f.UpdatedAt,
			Environments: make([]apigen.FlagEnvironmentSummary, 0, len(envs)),
		}
		for i, env := range envs {
			fs := stateOf(states[i], f)
			item.Environments = append(item.Environments, apigen.FlagEnvironmentSummary{
				Environment: env.Name, Configured: fs.Configured, Enabled: fs.State.Enabled,
				Version: fs.State.Version, Summary: describeFlagState(f.Definition, fs),
			})
		}
		list.Items = append(list.Items, item)
	}
	return c.JSON(http.StatusOK, list)
}

// CreateFlag handles POST /api/v1/apps/{app}/flags. The new flag is off in
// every environment until its state is set there.
func (h *restHandlers) CreateFlag(c echo.Context, slug apigen.AppSlug) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	for _, field := range []string{"key", "type", "variants", "default_variant"} {
		o.required(field)
	}
	def := readFlagDefinition(o)
	if err := o.finish(createFlagFields...); err != nil {
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
	created, err := h.store.CreateFlag(c.Request().Context(), app.ID, def, actor)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "app %q has a flag %q already", slug, def.Key)
	case err != nil:
		return flagStoreError(err, fmt.Sprintf("creating flag %s of %s", def.Key, slug))
	}
	body, err := h.flagBody(c, app, created)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, flagPath(slug, created.Key()))
	return c.JSON(http.StatusCreated, body)
}

// GetFlag handles GET /api/v1/apps/{app}/flags/{flag}.
func (h *restHandlers) GetFlag(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey) error {
	app, f, err := h.flag(c, slug, key)
	if err != nil {
		return err
	}
	body, err := h.flagBody(c, app, f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}

// UpdateFlag handles PUT /api/v1/apps/{app}/flags/{flag}: the definition is
// replaced when version is still the flag's version.
func (h *restHandlers) UpdateFlag(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey) error {
	if err := requireEveryEnvironment(c, "a flag's definition is shared by every environment of the app, so changing it"); err != nil {
		return err
	}
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	for _, field := range []string{"type", "variants", "default_variant", "version"} {
		o.required(field)
	}
	def := readFlagDefinition(o)
	if o.has("key") && def.Key != key {
		o.add("key", "is %q, but the path names flag %q; a flag's key cannot change, so create a new flag instead", def.Key, key)
	}
	def.Key = key
	version, _ := readVersion(o, 1, "the flag's version as last read")
	if err := o.finish(updateFlagFields...); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	app, current, err := h.flag(c, slug, key)
	if err != nil {
		return err
	}
	if !o.has("salt") {
		// A new salt reshuffles every user of a percentage rollout, so only
		// a salt that is sent changes it.
		def.Salt = current.Definition.Salt
	}
	updated, err := h.store.UpdateFlag(c.Request().Context(), store.Flag{ID: current.ID, Definition: def, Version: version}, actor)
	if cErr, ok := errors.AsType[*store.ConflictError](err); ok {
		_, now, rerr := h.flag(c, slug, key)
		if rerr != nil {
			return rerr
		}
		body, rerr := h.flagBody(c, app, now)
		if rerr != nil {
			return rerr
		}
		return conflict(body, "flag %q of %q is at version %d, not %d; current shows it as it is now", key, slug, now.Version, cErr.Expected)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound("app %q has no flag %q", slug, key)
	}
	if err != nil {
		return flagStoreError(err, fmt.Sprintf("updating flag %s of %s", key, slug))
	}
	body, err := h.flagBody(c, app, updated)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}

// SetFlagState handles PUT /api/v1/apps/{app}/flags/{flag}/environments/{env}:
// the flag's state there is replaced when version is still its version
// (0 for a flag not configured there yet).
func (h *restHandlers) SetFlagState(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.required("enabled")
	o.required("version")
	var state flags.EnvState
	if enabled, ok := o.boolean("enabled"); ok {
		state.Enabled = enabled
	}
	if raw, ok := o.raw("rules"); ok && checkShape(o, "rules", raw, rulesShape) {
		decodeChecked(raw, &state.Rules)
	}
	if raw, ok := o.raw("default_rollout"); ok && checkShape(o, "default_rollout", raw, defaultRolloutShape) {
		decodeChecked(raw, &state.DefaultRollout)
	}
	version, _ := readVersion(o, 0, "the state's version as last read, 0 when the flag is not configured in the environment yet")
	if err := o.finish(flagStateFields...); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	app, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	saved, err := h.store.SetFlagState(ctx, f.ID, env.ID, state, version, actor)
	if cErr, ok := errors.AsType[*store.ConflictError](err); ok {
		now, rerr := h.flagState(ctx, app, env, f)
		if rerr != nil {
			return rerr
		}
		detail := fmt.Sprintf("flag %q in %s/%s is at version %d, not %d; current shows its state as it is now", key, slug, name, cErr.Actual, cErr.Expected)
		if cErr.Expected == 0 {
			detail = fmt.Sprintf("flag %q is configured in %s/%s already, at version %d; send that version to change it (current shows its state)", key, slug, name, cErr.Actual)
		} else if !now.Configured {
			detail = fmt.Sprintf("flag %q is not configured in %s/%s yet; send version 0 to configure it", key, slug, name)
		}
		return conflict(stateBody(env, f.Definition, now), "%s", detail)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound("app %q has no flag %q in environment %q", slug, key, name)
	}
	if err != nil {
		return flagStoreError(err, fmt.Sprintf("setting flag %s in %s/%s", key, slug, name))
	}
	return c.JSON(http.StatusOK, stateBody(env, saved.Flag.Definition, saved))
}

// KillFlag handles POST /api/v1/apps/{app}/flags/{flag}/environments/{env}/kill:
// the flag is off there at once, whatever else is being changed.
func (h *restHandlers) KillFlag(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	empty, err := bodyIsEmpty(c)
	if err != nil {
		return err
	}
	if !empty {
		o, err := readRequestObject(c)
		if err != nil {
			return err
		}
		for _, field := range slices.Sorted(maps.Keys(o.fields)) {
			o.add(field, "is not a field of this request; the kill switch takes no fields")
		}
		if len(o.errors) > 0 {
			return validationFailed(o.errors)
		}
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	_, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	killed, err := h.store.KillFlag(c.Request().Context(), f.ID, env.ID, actor)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("app %q has no flag %q in environment %q", slug, key, name)
	}
	if err != nil {
		return fmt.Errorf("killing flag %s in %s/%s: %w", key, slug, name, err)
	}
	return c.JSON(http.StatusOK, stateBody(env, killed.Flag.Definition, killed))
}

// EvaluateFlag handles POST /api/v1/apps/{app}/flags/{flag}/environments/{env}/evaluate.
// It compiles the flag from what the store holds now rather than from the
// evaluation cache, so a state saved a moment ago is already what the
// answer reflects.
func (h *restHandlers) EvaluateFlag(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	ectx := flags.EvalContext{}
	if raw, ok := o.object("context"); ok {
		var attrs map[string]json.RawMessage
		_ = json.Unmarshal(raw, &attrs)
		tk, has := attrs[flags.TargetingKeyAttribute]
		if parsed, err := flags.ParseContext(raw); err == nil {
			ectx = parsed
		} else if has && !isString(tk) {
			o.add("context."+flags.TargetingKeyAttribute, "must be a string that identifies the user, got %s", jsonKind(tk))
		} else {
			o.add("context", "%s", evalErrorMessage(err))
		}
	}
	if err := o.finish("context"); err != nil {
		return err
	}
	app, env, f, err := h.flagInEnvironment(c, slug, key, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	fs, err := h.flagState(ctx, app, env, f)
	if err != nil {
		return err
	}
	segs, err := h.store.ListSegments(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("reading the segments of %s: %w", slug, err)
	}
	defs := make([]flags.Segment, len(segs))
	for i, s := range segs {
		defs[i] = s.Definition
	}
	result := apigen.FlagEvaluation{Flag: key, Environment: env.Name, Configured: fs.Configured, StateVersion: fs.State.Version}
	compiled, err := flags.Compile(f.Definition, fs.State, defs)
	if err != nil {
		// What is stored no longer compiles (a segment it names changed,
		// say); OFREP answers such a flag with PARSE_ERROR, and so does this.
		code := apigen.FlagEvaluationErrorCode(flags.ErrorParse)
		msg := "the flag's stored configuration is invalid: " + err.Error()
		result.Reason, result.ErrorCode, result.ErrorMessage = apigen.FlagEvaluationReason(flags.ReasonError), &code, &msg
		return c.JSON(http.StatusOK, result)
	}
	r := compiled.Evaluate(ectx)
	result.Reason = apigen.FlagEvaluationReason(r.Reason)
	if r.ErrorCode != "" {
		code := apigen.FlagEvaluationErrorCode(r.ErrorCode)
		result.ErrorCode, result.ErrorMessage = &code, &r.ErrorMessage
	} else {
		result.Variant, result.Value = &r.Variant, r.Value
	}
	if r.RuleName != "" {
		result.Rule = &r.RuleName
	}
	return c.JSON(http.StatusOK, result)
}

// ListFlagHistory handles GET /api/v1/apps/{app}/flags/{flag}/history: the
// flag's events newest first, a page at a time. The cursor is the base64
// of the last event id of the page before.
func (h *restHandlers) ListFlagHistory(c echo.Context, slug apigen.AppSlug, key apigen.FlagKey, params apigen.ListFlagHistoryParams) error {
	before, limit, err := readHistoryPage(params.Cursor, params.Limit)
	if err != nil {
		return err
	}
	app, f, err := h.flag(c, slug, key)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	envs, err := h.store.ListEnvironments(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("listing environments of %s: %w", slug, err)
	}
	names := make(map[int64]string, len(envs))
	for _, e := range envs {
		names[e.ID] = e.Name
	}
	// One more than asked tells whether another page follows.
	events, err := h.store.ListFlagEventsBefore(ctx, f.ID, before, limit+1)
	if err != nil {
		return fmt.Errorf("listing the history of flag %s of %s: %w", key, slug, err)
	}
	list := apigen.FlagEventList{Items: make([]apigen.FlagEvent, 0, min(len(events), limit))}
	if len(events) > limit {
		events = events[:limit]
		list.NextCursor = cursorAfter(strconv.FormatInt(events[len(events)-1].ID, 10))
	}
	p, authenticated := PrincipalFrom(c)
	for _, ev := range events {
		item := apigen.FlagEvent{Id: ev.ID, At: ev.At, Actor: ev.Actor, Type: ev.Type, Payload: map[string]any{}}
		if ev.EnvironmentID != 0 {
			name, ok := names[ev.EnvironmentID]
			switch {
			case ok && authenticated && !p.CanAccess(app.Slug, name):
				continue
			case !ok && authenticated && len(p.Environments) > 0:
				// An environment that is gone is none the token may see.
				continue
			case ok:
				item.Environment = &name
			}
		}
		if len(ev.Payload) > 0 && !isNull(ev.Payload) {
			if err := json.Unmarshal(ev.Payload, &item.Payload); err != nil {
				return fmt.Errorf("reading the payload of flag event %d: %w", ev.ID, err)
			}
		}
		list.Items = append(list.Items, item)
	}
	return c.JSON(http.StatusOK, list)
}

// ListSegments handles GET /api/v1/apps/{app}/segments: the app's segments
// in key order, a page at a time.
func (h *restHandlers) ListSegments(c echo.Context, slug apigen.AppSlug, params apigen.ListSegmentsParams) error {
	p, err := readKeyPage(params.Cursor, params.Limit)
	if err != nil {
		return err
	}
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	segs, err := h.store.ListSegments(c.Request().Context(), app.ID)
	if err != nil {
		return fmt.Errorf("listing segments of %s: %w", slug, err)
	}
	key := func(s store.Segment) string { return s.Definition.Key }
	slices.SortFunc(segs, func(a, b store.Segment) int { return strings.Compare(key(a), key(b)) })
	start, _ := slices.BinarySearchFunc(segs, p.after, func(s store.Segment, k string) int { return strings.Compare(key(s), k) })
	if start < len(segs) && key(segs[start]) == p.after {
		start++
	}
	segs = segs[start:]
	list := apigen.SegmentList{Items: make([]apigen.Segment, 0, min(len(segs), p.limit))}
	if len(segs) > p.limit {
		segs = segs[:p.limit]
		list.NextCursor = cursorAfter(key(segs[len(segs)-1]))
	}
	for _, s := range segs {
		list.Items = append(list.Items, segmentBody(s))
	}
	return c.JSON(http.StatusOK, list)
}

// PutSegment handles PUT /api/v1/apps/{app}/segments/{segment}: version 0
// creates the segment, its current version replaces it.
func (h *restHandlers) PutSegment(c echo.Context, slug apigen.AppSlug, key apigen.SegmentKey) error {
	if err := requireEveryEnvironment(c, "a segment applies to the rules of every environment of the app, so changing it"); err != nil {
		return err
	}
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.required("version")
	seg := flags.Segment{Key: key}
	if k, ok := o.str("key"); ok && k != key {
		o.add("key", "is %q, but the path names segment %q; a segment's key is the one in its path", k, key)
	}
	if name, ok := o.str("name"); ok {
		seg.Name = name
	}
	if raw, ok := o.raw("clauses"); ok && checkShape(o, "clauses", raw, clausesShape) {
		decodeChecked(raw, &seg.Clauses)
	}
	if raw, ok := o.raw("included_keys"); ok && checkShape(o, "included_keys", raw, keyListShape) {
		decodeChecked(raw, &seg.IncludedKeys)
	}
	if raw, ok := o.raw("excluded_keys"); ok && checkShape(o, "excluded_keys", raw, keyListShape) {
		decodeChecked(raw, &seg.ExcludedKeys)
	}
	version, _ := readVersion(o, 0, "the segment's version as last read, 0 to create it")
	if err := o.finish(segmentFields...); err != nil {
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
	saved, err := h.store.UpsertSegment(ctx, app.ID, seg, version, actor)
	if cErr, ok := errors.AsType[*store.ConflictError](err); ok {
		return h.segmentConflict(ctx, app, key, cErr)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound("there is no app with slug %q", slug)
	}
	if err != nil {
		return flagStoreError(err, fmt.Sprintf("saving segment %s of %s", key, slug))
	}
	if version == 0 {
		c.Response().Header().Set(echo.HeaderLocation, appPath(slug)+"/segments/"+url.PathEscape(key))
		return c.JSON(http.StatusCreated, segmentBody(saved))
	}
	return c.JSON(http.StatusOK, segmentBody(saved))
}

// segmentConflict refuses a segment write based on a version the segment
// does not have, with the segment as it is now when there is one.
func (h *restHandlers) segmentConflict(ctx context.Context, app store.App, key string, cErr *store.ConflictError) error {
	segs, err := h.store.ListSegments(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("reading segment %s of %s after a lost update: %w", key, app.Slug, err)
	}
	for _, s := range segs {
		if s.Definition.Key != key {
			continue
		}
		body := segmentBody(s)
		if cErr.Expected == 0 {
			return conflict(body, "app %q has a segment %q already, at version %d; send that version to replace it (current shows it)", app.Slug, key, s.Version)
		}
		return conflict(body, "segment %q of %q is at version %d, not %d; current shows it as it is now", key, app.Slug, s.Version, cErr.Expected)
	}
	return conflict(nil, "app %q has no segment %q; send version 0 to create it", app.Slug, key)
}

// flag reads the app and the flag named in the path, or refuses with 404
// naming which one is missing.
func (h *restHandlers) flag(c echo.Context, slug, key string) (store.App, store.Flag, error) {
	app, err := h.app(c, slug)
	if err != nil {
		return store.App{}, store.Flag{}, err
	}
	f, err := h.store.Flag(c.Request().Context(), app.ID, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.App{}, store.Flag{}, notFound("app %q has no flag %q", slug, key)
	case err != nil:
		return store.App{}, store.Flag{}, fmt.Errorf("reading flag %s of %s: %w", key, slug, err)
	}
	return app, f, nil
}

// flagInEnvironment reads the app, environment and flag named in the path,
// or refuses with 404 naming which one is missing.
func (h *restHandlers) flagInEnvironment(c echo.Context, slug, key, name string) (store.App, store.Environment, store.Flag, error) {
	app, env, err := h.environment(c, slug, name)
	if err != nil {
		return store.App{}, store.Environment{}, store.Flag{}, err
	}
	_, f, err := h.flag(c, slug, key)
	if err != nil {
		return store.App{}, store.Environment{}, store.Flag{}, err
	}
	return app, env, f, nil
}

// flagState reads a flag's state in one environment; a flag never
// configured there comes back with Configured false.
func (h *restHandlers) flagState(ctx context.Context, app store.App, env store.Environment, f store.Flag) (store.FlagState, error) {
	states, err := h.store.ListFlagStates(ctx, app.ID, env.ID)
	if err != nil {
		return store.FlagState{}, fmt.Errorf("reading the flags of %s/%s: %w", app.Slug, env.Name, err)
	}
	return stateOf(states, f), nil
}

// flagStates reads the environments of the app the request may see, in
// name order, and the state of every flag in each.
func (h *restHandlers) flagStates(c echo.Context, app store.App) ([]store.Environment, [][]store.FlagState, error) {
	ctx := c.Request().Context()
	all, err := h.store.ListEnvironments(ctx, app.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("listing environments of %s: %w", app.Slug, err)
	}
	p, authenticated := PrincipalFrom(c)
	envs := make([]store.Environment, 0, len(all))
	for _, e := range all {
		if !authenticated || p.CanAccess(app.Slug, e.Name) {
			envs = append(envs, e)
		}
	}
	slices.SortFunc(envs, func(a, b store.Environment) int { return strings.Compare(a.Name, b.Name) })
	states := make([][]store.FlagState, len(envs))
	for i, e := range envs {
		if states[i], err = h.store.ListFlagStates(ctx, app.ID, e.ID); err != nil {
			return nil, nil, fmt.Errorf("reading the flags of %s/%s: %w", app.Slug, e.Name, err)
		}
	}
	return envs, states, nil
}

// flagBody is the flag as the API shows it, with its state in every
// environment the request may see.
func (h *restHandlers) flagBody(c echo.Context, app store.App, f store.Flag) (apigen.Flag, error) {
	envs, states, err := h.flagStates(c, app)
	if err != nil {
		return apigen.Flag{}, err
	}
	def := f.Definition
	body := apigen.Flag{
		Key: def.Key, Type: apigen.FlagType(def.Type), Variants: apigen.FlagVariants{},
		DefaultVariant: def.DefaultVariant, OffVariant: def.OffVariant, Salt: def.Salt, Description: def.Description,
		Version: f.Version, CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt,
		Environments: make([]apigen.FlagEnvironment, 0, len(envs)),
	}
	for name, value := range def.Variants {
		body.Variants[name] = value
	}
	for i, env := range envs {
		body.Environments = append(body.Environments, stateBody(env, def, stateOf(states[i], f)))
	}
	return body, nil
}

// stateOf picks the flag's state out of an environment's states; a flag
// created after they were read is not configured there.
func stateOf(states []store.FlagState, f store.Flag) store.FlagState {
	for _, fs := range states {
		if fs.Flag.ID == f.ID {
			return fs
		}
	}
	return store.FlagState{Flag: f}
}

// stateBody is a flag's state in one environment as the API shows it.
func stateBody(env store.Environment, def flags.Flag, fs store.FlagState) apigen.FlagEnvironment {
	body := apigen.FlagEnvironment{
		Environment: env.Name, Configured: fs.Configured, Enabled: fs.State.Enabled,
		Rules: make([]apigen.FlagRule, 0, len(fs.State.Rules)), DefaultRollout: serveBody(fs.State.DefaultRollout),
		Version: fs.State.Version, Summary: describeFlagState(def, fs),
	}
	if fs.Configured {
		at, by := fs.UpdatedAt, fs.UpdatedBy
		body.UpdatedAt, body.UpdatedBy = &at, &by
	}
	for _, r := range fs.State.Rules {
		rule := apigen.FlagRule{Name: r.Name}
		if r.Segment != "" {
			rule.Segment = &r.Segment
		}
		if len(r.Clauses) > 0 {
			clauses := clausesBody(r.Clauses)
			rule.Clauses = &clauses
		}
		serve := serveBody(r.Serve)
		rule.Variant, rule.Rollout = serve.Variant, serve.Rollout
		body.Rules = append(body.Rules, rule)
	}
	return body
}

// serveBody is a fixed variant or a rollout as the API shows it.
func serveBody(s flags.Serve) apigen.FlagServe {
	var body apigen.FlagServe
	if s.Variant != "" {
		v := s.Variant
		body.Variant = &v
	}
	if len(s.Rollout) > 0 {
		arms := make([]apigen.WeightedVariant, len(s.Rollout))
		for i, wv := range s.Rollout {
			arms[i] = apigen.WeightedVariant{Variant: wv.Variant, Weight: wv.Weight}
		}
		body.Rollout = &arms
	}
	return body
}

// clausesBody is a list of clauses as the API shows it.
func clausesBody(cs []flags.Clause) []apigen.FlagClause {
	out := make([]apigen.FlagClause, len(cs))
	for i, cl := range cs {
		values := cl.Values
		if values == nil {
			values = []any{}
		}
		out[i] = apigen.FlagClause{Attribute: cl.Attribute, Op: apigen.FlagOperator(cl.Op), Values: values}
	}
	return out
}

// segmentBody is the segment as the API shows it.
func segmentBody(s store.Segment) apigen.Segment {
	d := s.Definition
	body := apigen.Segment{
		Key: d.Key, Name: d.Name, Clauses: clausesBody(d.Clauses),
		IncludedKeys: d.IncludedKeys, ExcludedKeys: d.ExcludedKeys,
		Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
	if body.IncludedKeys == nil {
		body.IncludedKeys = []string{}
	}
	if body.ExcludedKeys == nil {
		body.ExcludedKeys = []string{}
	}
	return body
}

// describeFlagState says in one line what a flag serves in an environment:
// "off, serving false to everyone", "on, 2 rules, default 5% true / 95% false".
func describeFlagState(def flags.Flag, fs store.FlagState) string {
	off := def.OffVariant
	if off == "" {
		off = def.DefaultVariant
	}
	switch {
	case !fs.Configured:
		return "not configured; off, serving " + off + " to everyone"
	case !fs.State.Enabled:
		return "off, serving " + off + " to everyone"
	}
	return "on, " + store.Plural(len(fs.State.Rules), "rule", "rules") + ", default " + store.DescribeServe(fs.State.DefaultRollout, def.DefaultVariant)
}

// flagPath is where the flag is found in the API.
func flagPath(slug, key string) string {
	return appPath(slug) + "/flags/" + url.PathEscape(key)
}

// requestActor is who a change is recorded as: the token's actor.
func requestActor(c echo.Context) (string, error) {
	p, ok := PrincipalFrom(c)
	if !ok {
		return "", unauthorized(c, "", "This endpoint needs an API token.")
	}
	return p.Actor(), nil
}

// requireEveryEnvironment refuses a change that reaches every environment
// of the app to a token limited to some environments, which must not
// change what the others serve. why completes "... needs a token without
// environment limits".
func requireEveryEnvironment(c echo.Context, why string) error {
	p, ok := PrincipalFrom(c)
	if !ok || len(p.Environments) == 0 {
		return nil
	}
	return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("The token %q is limited to environments %s; %s needs a token without environment limits. Nothing was changed.",
		p.Name, strings.Join(p.Environments, ", "), why))
}

// flagStoreError turns the store's refusal of a flag, state or segment
// into the API's: validation problems become field errors under the
// request's own paths, such as rules[0].clauses[1].op.
func flagStoreError(err error, what string) error {
	if vErr, ok := errors.AsType[*flags.ValidationError](err); ok {
		fields := make([]plan.FieldError, len(vErr.Errors))
		for i, fe := range vErr.Errors {
			fields[i] = plan.FieldError{Field: fe.Field, Message: fe.Message}
		}
		return validationFailed(fields)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readFlagDefinition reads the fields of a flag's definition, recording a
// wrong type under the field's name. The fields are decoded together as
// package flags decodes a flag, so that a variant named twice is reported
// rather than one of them silently dropped.
func readFlagDefinition(o *requestObject) flags.Flag {
	present := map[string]json.RawMessage{}
	for _, field := range createFlagFields {
		raw, ok := o.raw(field)
		if !ok {
			continue
		}
		if checkShape(o, field, raw, flagDefinitionShape.fields[field]) {
			present[field] = raw
		}
	}
	var def flags.Flag
	if b, err := json.Marshal(present); err == nil {
		decodeChecked(b, &def)
	}
	return def
}

// readVersion reads the version a write is based on; below min it is
// recorded as a problem, what saying which version is meant.
func readVersion(o *requestObject, minimum int64, what string) (int64, bool) {
	v, ok := readValue[int64](o, "version", "a whole number, "+what)
	if ok && v < minimum {
		o.add("version", "must be %s, at least %d; got %d", what, minimum, v)
		return v, false
	}
	return v, ok
}

// decodeChecked decodes JSON whose shape checkShape has accepted, which
// therefore fits dst.
func decodeChecked(raw json.RawMessage, dst any) {
	_ = json.Unmarshal(raw, dst)
}

// evalErrorMessage is what a context flags.ParseContext refused is wrong
// with.
func evalErrorMessage(err error) string {
	if eErr, ok := errors.AsType[*flags.EvalError](err); ok {
		return eErr.Message
	}
	return err.Error()
}

// isString reports whether raw is a JSON string.
func isString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}

// keyPage is where a list over flag or segment keys starts and how long it
// may be.
type keyPage struct {
	after string
	limit int
}

// readKeyPage checks the cursor and limit of a list of flags or segments;
// the cursor is the base64 of the last key of the page before.
func readKeyPage(cursor *string, limit *int) (keyPage, error) {
	p := keyPage{limit: defaultPageSize}
	var errs []plan.FieldError
	if limit != nil {
		if *limit < 1 || *limit > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, got %d", maxPageSize, *limit)})
		}
		p.limit = *limit
	}
	if cursor != nil && *cursor != "" {
		key, err := base64.RawURLEncoding.DecodeString(*cursor)
		if err != nil || !featureKeyPattern.Match(key) {
			errs = append(errs, plan.FieldError{Field: "cursor", Message: "is not a cursor this server handed out; pass next_cursor unchanged, or leave cursor out to start at the beginning"})
		}
		p.after = string(key)
	}
	if len(errs) > 0 {
		return keyPage{}, badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	return p, nil
}

// readHistoryPage checks the cursor and limit of a flag's history; the
// cursor is the base64 of the last event id of the page before, and 0 for
// before means from the newest event.
func readHistoryPage(cursor *string, limit *int) (before int64, size int, err error) {
	size = defaultPageSize
	var errs []plan.FieldError
	if limit != nil {
		if *limit < 1 || *limit > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, got %d", maxPageSize, *limit)})
		}
		size = *limit
	}
	if cursor != nil && *cursor != "" {
		key, derr := base64.RawURLEncoding.DecodeString(*cursor)
		id, perr := strconv.ParseInt(string(key), 10, 64)
		if derr != nil || perr != nil || id < 1 {
			errs = append(errs, plan.FieldError{Field: "cursor", Message: "is not a cursor this server handed out; pass next_cursor unchanged, or leave cursor out to start at the newest event"})
		}
		before = id
	}
	if len(errs) > 0 {
		return 0, 0, badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	return before, size, nil
}

// jsonShape is the JSON a request field must have. Nested objects of flag
// requests (rules, clauses, rollout arms) are checked against their shape
// before they are decoded, so that a misspelt field deep inside a rule is
// refused by its path instead of silently dropped: a rule whose "segment"
// were lost to a typo would target everyone.
type jsonShape struct {
	// kind is "object", "array", "string", "number", "boolean", or "any".
	kind string
	// what names an object for messages, such as "a rule".
	what string
	// fields are an object's fields in the order messages list them; an
	// object without fields takes any.
	fields map[string]*jsonShape
	order  []string
	// elem is the shape of an array's elements, or of an object's values
	// when it has no fields.
	elem *jsonShape
}

var (
	anyShape     = &jsonShape{kind: "any"}
	stringShape  = &jsonShape{kind: "string"}
	numberShape  = &jsonShape{kind: "number"}
	keyListShape = arrayOf(stringShape)

	clausesShape = arrayOf(objectOf("a clause",
		"attribute", stringShape, "op", stringShape, "values", arrayOf(anyShape)))
	rolloutShape = arrayOf(objectOf("a rollout arm", "variant", stringShape, "weight", numberShape))
	rulesShape   = arrayOf(objectOf("a rule",
		"name", stringShape, "segment", stringShape, "clauses", clausesShape, "variant", stringShape, "rollout", rolloutShape))
	defaultRolloutShape = objectOf("a default rollout", "variant", stringShape, "rollout", rolloutShape)
	flagDefinitionShape = objectOf("a flag",
		"key", stringShape, "type", stringShape, "variants", &jsonShape{kind: "object", elem: anyShape},
		"default_variant", stringShape, "off_variant", stringShape, "salt", stringShape, "description", stringShape)
)

// objectOf returns the shape of an object with the fields, given as pairs
// of name and shape.
func objectOf(what string, pairs ...any) *jsonShape {
	s := &jsonShape{kind: "object", what: what, fields: map[string]*jsonShape{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		name := pairs[i].(string)
		s.order = append(s.order, name)
		s.fields[name] = pairs[i+1].(*jsonShape)
	}
	return s
}

// arrayOf returns the shape of an array of elem.
func arrayOf(elem *jsonShape) *jsonShape { return &jsonShape{kind: "array", elem: elem} }

// checkShape records every place where raw differs from the shape under
// the path and reports whether it fits. A null array or object stands for
// an empty one, as Go clients send for a list they leave empty.
func checkShape(o *requestObject, path string, raw json.RawMessage, s *jsonShape) bool {
	before := len(o.errors)
	walkShape(o, path, raw, s)
	return len(o.errors) == before
}

func walkShape(o *requestObject, path string, raw json.RawMessage, s *jsonShape) {
	if s.kind == "any" {
		return
	}
	if isNull(raw) && (s.kind == "array" || s.kind == "object") {
		return
	}
	switch s.kind {
	case "object":
		var fields map[string]json.RawMessage
		if !isObject(raw) || json.Unmarshal(raw, &fields) != nil {
			o.add(path, "must be an object, got %s", jsonKind(raw))
			return
		}
		if s.fields == nil {
			for _, name := range slices.Sorted(maps.Keys(fields)) {
				walkShape(o, path+"["+strconv.Quote(name)+"]", fields[name], s.elem)
			}
			return
		}
		for _, name := range s.order {
			if v, ok := fields[name]; ok {
				walkShape(o, path+"."+name, v, s.fields[name])
			}
		}
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if _, ok := s.fields[name]; !ok {
				o.add(path+"."+name, "is not a field of %s; it takes %s", s.what, strings.Join(s.order, ", "))
			}
		}
	case "array":
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			o.add(path, "must be an array, got %s", jsonKind(raw))
			return
		}
		for i, item := range items {
			walkShape(o, path+"["+strconv.Itoa(i)+"]", item, s.elem)
		}
	case "string":
		if !isString(raw) || isNull(raw) {
			o.add(path, "must be a string, got %s", jsonKind(raw))
		}
	case "number":
		var f float64
		if isNull(raw) || json.Unmarshal(raw, &f) != nil {
			o.add(path, "must be a number, got %s", jsonKind(raw))
		}
	}
}
