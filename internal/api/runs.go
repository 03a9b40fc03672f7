package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// RunService starts runs and acts on them; *engine.Engine implements it.
// The REST API goes through the engine rather than the store so that a run
// is validated and woken exactly as the engine's own callers do it.
type RunService interface {
	CreateRun(ctx context.Context, n engine.NewRun) (store.Run, bool, error)
	Act(ctx context.Context, runID int64, req engine.ActionRequest) (engine.ActionResult, error)
}

// RunStore is what the run endpoints read, and where they keep the answers
// to idempotent requests; *store.Store implements it.
type RunStore interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	ListRunPhases(ctx context.Context, runID int64) ([]store.RunPhase, error)
	LatestDecision(ctx context.Context, runID int64) (store.Decision, error)
	ListDecisions(ctx context.Context, runID, afterID int64, limit int) ([]store.Decision, error)
	ListRunEvents(ctx context.Context, runID, afterID int64, limit int) ([]store.RunEvent, error)
	AppByID(ctx context.Context, id int64) (store.App, error)
	EnvironmentByID(ctx context.Context, id int64) (store.Environment, error)
	ClaimIdempotencyKey(ctx context.Context, k store.IdempotencyKey, requestHash []byte) (store.IdempotentResponse, bool, error)
	CompleteIdempotencyKey(ctx context.Context, k store.IdempotencyKey, status int, location string, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, k store.IdempotencyKey) error
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// Routes of the run endpoints that need more than the read scope.
const (
	createRunRoute = "/api/v1/apps/:app/environments/:env/runs"
	runActionRoute = "/api/v1/runs/:id/actions/:action"
)

// Bounds of the free text a run request carries; the same as the document's.
const (
	maxRunVersion = 128
	maxRunText    = 2000
)

// decisionPage is how many decisions are read per query when a run's
// decisions are listed whole.
const decisionPage = 500

// CreateRun handles POST /api/v1/apps/{app}/environments/{env}/runs.
func (h *restHandlers) CreateRun(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName, params apigen.CreateRunParams) error {
	return h.idempotent(c, params.IdempotencyKey, func() error {
		return h.createRun(c, slug, name, params)
	})
}

func (h *restHandlers) createRun(c echo.Context, slug, name string, params apigen.CreateRunParams) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	n := engine.NewRun{}
	o.required("version")
	if version, ok := o.str("version"); ok {
		switch l := utf8.RuneCountInString(version); {
		case strings.TrimSpace(version) == "":
			o.add("version", "must not be empty or only spaces")
		case l > maxRunVersion:
			o.add("version", "must be at most %d characters, got %d", maxRunVersion, l)
		}
		n.Version = version
	}
	if strategy, ok := o.str("strategy"); ok {
		n.Strategy = strategy
	}
	if raw, ok := o.object("params"); ok {
		n.Params = raw
	}
	if reason, ok := o.str("reason"); ok {
		if l := utf8.RuneCountInString(reason); l > maxRunText {
			o.add("reason", "must be at most %d characters, got %d", maxRunText, l)
		}
		n.Reason = reason
	}
	if raw, ok := o.object("schema_override"); ok {
		var so struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(raw, &so); err != nil || strings.TrimSpace(so.Reason) == "" {
			o.add("schema_override.reason", "say why deploying past the schema changes is safe; an override needs a reason")
		}
		n.SchemaOverride = so.Reason
	}
	readRunOverride(o, &n)
	if err := o.finish("version", "strategy", "params", "reason", "schema_override"); err != nil {
		return err
	}
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	if err := requireOverrideScope(p, n); err != nil {
		return err
	}
	if n.SchemaOverride != "" && !p.Allows(auth.ScopeAdmin) {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf(
			"The token %q may deploy, but overriding the schema changes needs the admin scope. Nothing was changed.", p.Name))
	}
	app, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	n.App, n.Environment, n.CreatedBy = app, env, p.Actor()
	if params.IdempotencyKey != nil {
		n.IdempotencyKey = *params.IdempotencyKey
	}

	ctx := c.Request().Context()
	run, created, err := h.runs.CreateRun(ctx, n)
	if vErr, ok := errors.AsType[*plan.ValidationError](err); ok {
		return validationFailed(runRequestFields(vErr.Errors))
	}
	if block, ok := errors.AsType[*store.SchemaBlock](err); ok {
		return conflict(nil, "%s; nothing was started", block.Message)
	}
	if closed, ok := errors.AsType[*governance.ClosedError](err); ok {
		return conflict(nil, "%s; nothing was started", closed.Message)
	}
	if err != nil {
		return fmt.Errorf("creating a run of %s in %s: %w", slug, name, err)
	}
	if created && n.Override != "" {
		if err := h.audit(c, store.AuditEvent{Action: "run.override", App: slug, Environment: name, RunID: run.ID,
			Detail: "deploy windows and freezes overridden: " + n.Override}); err != nil {
			return err
		}
	}
	body, err := h.runBody(ctx, run, app, env)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, runPath(run.ID))
	if !created {
		return c.JSON(http.StatusOK, body)
	}
	return c.JSON(http.StatusCreated, body)
}

// runRequestFields names the engine's field errors by the request's fields:
// the plan's target is the request's version, and a first deploy refused by
// the strategy is the strategy's fault.
func runRequestFields(errs []plan.FieldError) []plan.FieldError {
	out := make([]plan.FieldError, len(errs))
	for i, fe := range errs {
		switch fe.Field {
		case "target.to_version":
			fe.Field = "version"
		case "target.from_version":
			fe.Field = "strategy"
		}
		out[i] = fe
	}
	return out
}

// ListRuns handles GET /api/v1/runs: runs newest first, a page at a time.
func (h *restHandlers) ListRuns(c echo.Context, params apigen.ListRunsParams) error {
	f, err := readRunFilter(params)
	if err != nil {
		return err
	}
	slug, name := deref(params.App), deref(params.Env)
	if err := requireListAccess(c, slug, name); err != nil {
		return err
	}
	apps := map[int64]store.App{}
	envs := map[int64]store.Environment{}
	switch {
	case name != "":
		app, env, err := h.environment(c, slug, name)
		if err != nil {
			return err
		}
		f.AppID, f.EnvironmentID = app.ID, env.ID
		apps[app.ID], envs[env.ID] = app, env
	case slug != "":
		app, err := h.app(c, slug)
		if err != nil {
			return err
		}
		f.AppID = app.ID
		apps[app.ID] = app
	}
	ctx := c.Request().Context()
	limit := f.Limit
	// One more than asked tells whether another page follows.
	f.Limit++
	runs, err := h.runStore.ListRuns(ctx, f)
	if err != nil {
		return fmt.Errorf("listing runs: %w", err)
	}
	list := apigen.RunList{Items: make([]apigen.Run, 0, min(len(runs), limit))}
	if len(runs) > limit {
		runs = runs[:limit]
		list.NextCursor = cursorAfter(strconv.FormatInt(runs[len(runs)-1].ID, 10))
	}
	for _, r := range runs {
		app, env, err := h.runPlace(ctx, r, apps, envs)
		if err != nil {
			return err
		}
		body, err := h.runBody(ctx, r, app, env)
		if err != nil {
			return err
		}
		list.Items = append(list.Items, body)
	}
	return c.JSON(http.StatusOK, list)
}

// readRunFilter checks the query parameters of the run list. The cursor is
// the base64 of the last id of the page before.
func readRunFilter(params apigen.ListRunsParams) (store.RunFilter, error) {
	var errs []plan.FieldError
	f := store.RunFilter{Limit: defaultPageSize}
	if params.Limit != nil {
		if *params.Limit < 1 || *params.Limit > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, got %d", maxPageSize, *params.Limit)})
		}
		f.Limit = *params.Limit
	}
	if params.Cursor != nil && *params.Cursor != "" {
		key, err := base64.RawURLEncoding.DecodeString(*params.Cursor)
		id, perr := strconv.ParseInt(string(key), 10, 64)
		if err != nil || perr != nil || id < 1 {
			errs = append(errs, plan.FieldError{Field: "cursor", Message: "is not a cursor this server handed out; pass next_cursor unchanged, or leave cursor out to start at the newest run"})
		}
		f.BeforeID = id
	}
	if params.Env != nil && params.App == nil {
		errs = append(errs, plan.FieldError{Field: "env", Message: "needs app: environments are named within an app"})
	}
	for _, field := range []struct {
		name  string
		value *string
	}{{"app", params.App}, {"env", params.Env}} {
		if field.value != nil && !slugPattern.MatchString(*field.value) {
			errs = append(errs, plan.FieldError{Field: field.name, Message: fmt.Sprintf("%s, got %q", slugRule, *field.value)})
		}
	}
	if params.State != nil {
		for _, st := range *params.State {
			if !st.Valid() {
				errs = append(errs, plan.FieldError{Field: "state", Message: fmt.Sprintf("has %q, which is not a run state", st)})
				continue
			}
			f.States = append(f.States, store.RunState(st))
		}
	}
	if len(errs) > 0 {
		return store.RunFilter{}, badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	return f, nil
}

// requireListAccess refuses a list a limited token could see too much of:
// such a token must name an app, or an environment, it may reach, so the
// page it gets holds only runs it may see and stays a full page.
func requireListAccess(c echo.Context, slug, name string) error {
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	if (len(p.Apps) > 0 && slug == "") || (len(p.Environments) > 0 && name == "") {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf(
			"The token %q is limited to some apps or environments; name them with the app and env parameters.", p.Name))
	}
	return RequireAccess(c, slug, name)
}

// GetRun handles GET /api/v1/runs/{id}.
func (h *restHandlers) GetRun(c echo.Context, id apigen.RunID) error {
	run, app, env, err := h.run(c, id)
	if err != nil {
		return err
	}
	body, err := h.runBody(c.Request().Context(), run, app, env)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}

// ActOnRun handles POST /api/v1/runs/{id}/actions/{action}.
func (h *restHandlers) ActOnRun(c echo.Context, id apigen.RunID, action apigen.RunAction, params apigen.ActOnRunParams) error {
	// An action that does not exist names no resource, whatever the body.
	if !action.Valid() {
		names := make([]string, len(engine.Actions))
		for i, a := range engine.Actions {
			names[i] = string(a)
		}
		return notFound("there is no action %q; the actions are %s", action, strings.Join(names, ", "))
	}
	return h.idempotent(c, params.IdempotencyKey, func() error {
		return h.actOnRun(c, id, engine.Action(action))
	})
}

func (h *restHandlers) actOnRun(c echo.Context, id int64, action engine.Action) error {
	req := engine.ActionRequest{Action: action}
	empty, err := bodyIsEmpty(c)
	if err != nil {
		return err
	}
	if !empty {
		o, err := readRequestObject(c)
		if err != nil {
			return err
		}
		if comment, ok := o.str("comment"); ok {
			if l := utf8.RuneCountInString(comment); l > maxRunText {
				o.add("comment", "must be at most %d characters, got %d", maxRunText, l)
			}
			req.Comment = comment
		}
		if toEnd, ok := o.boolean("to_end"); ok {
			if toEnd && action != engine.ActionPromote {
				o.add("to_end", "only applies to promote")
			}
			req.ToEnd = toEnd
		}
		if raw, ok := o.object("schema_override"); ok {
			var so struct {
				Reason string `json:"reason"`
			}
			switch {
			case json.Unmarshal(raw, &so) != nil || strings.TrimSpace(so.Reason) == "":
				o.add("schema_override.reason", "say why returning past the schema changes is safe; an override needs a reason")
			case action != engine.ActionRollback:
				o.add("schema_override", "only applies to rollback")
			}
			req.SchemaOverride = so.Reason
		}
		if err := o.finish("comment", "to_end", "schema_override"); err != nil {
			return err
		}
	}
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	req.Actor = p.Actor()
	if req.SchemaOverride != "" && !p.Allows(auth.ScopeAdmin) {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf(
			"The token %q may roll back, but overriding the schema changes needs the admin scope. Nothing was changed.", p.Name))
	}
	_, app, env, err := h.run(c, id)
	if err != nil {
		return err
	}

	ctx := c.Request().Context()
	res, err := h.runs.Act(ctx, id, req)
	if aErr, ok := errors.AsType[*engine.ActionError](err); ok && (action == engine.ActionApprove || action == engine.ActionReject) {
		// Every approval attempt is kept, refused ones with why.
		if _, rerr := h.runStore.RecordAudit(ctx, store.AuditEvent{
			Actor: req.Actor, Action: "run." + string(action) + "_refused", App: app.Slug, Environment: env.Name, RunID: id, Detail: aErr.Detail,
			RemoteAddr: c.RealIP(), UserAgent: c.Request().UserAgent(),
		}); rerr != nil {
			return fmt.Errorf("recording the refused %s of run %d: %w", action, id, rerr)
		}
	}
	if aErr, ok := errors.AsType[*engine.ActionError](err); ok {
		current, rerr := h.runStore.Run(ctx, id)
		if rerr != nil {
			return fmt.Errorf("reading run %d after a refused %s: %w", id, action, rerr)
		}
		body, rerr := h.runBody(ctx, current, app, env)
		if rerr != nil {
			return rerr
		}
		return conflict(body, "cannot %s run %d while it is %s: %s", action, id, aErr.State, aErr.Detail)
	}
	if block, ok := errors.AsType[*store.SchemaBlock](err); ok {
		return conflict(nil, "cannot %s run %d: %s; nothing was changed", action, id, block.Message)
	}
	if vErr, ok := errors.AsType[*plan.ValidationError](err); ok {
		return validationFailed(runRequestFields(vErr.Errors))
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound("there is no run %d", id)
	}
	if err != nil {
		return fmt.Errorf("%s run %d: %w", action, id, err)
	}
	result := apigen.RunActionResult{}
	if result.Run, err = h.runBody(ctx, res.Run, app, env); err != nil {
		return err
	}
	if res.Created != nil {
		created, err := h.runBody(ctx, *res.Created, app, env)
		if err != nil {
			return err
		}
		result.Created = &created
	}
	return c.JSON(http.StatusOK, result)
}

// bodyIsEmpty reports whether a request has no body, or only white space,
// for endpoints whose body is optional; the body stays readable.
func bodyIsEmpty(c echo.Context) (bool, error) {
	req := c.Request()
	if req.Body == nil || req.Body == http.NoBody {
		return true, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, MaxRequestBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return false, &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the body is larger than %d KB", MaxRequestBody>>10)}
	}
	if err != nil {
		return false, badRequest("reading the body: " + err.Error())
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return len(bytes.TrimSpace(body)) == 0, nil
}

// ListRunDecisions handles GET /api/v1/runs/{id}/decisions: every decision
// on the run with its record, oldest first.
func (h *restHandlers) ListRunDecisions(c echo.Context, id apigen.RunID) error {
	if _, _, _, err := h.run(c, id); err != nil {
		return err
	}
	ctx := c.Request().Context()
	list := apigen.DecisionList{Items: []apigen.Decision{}}
	var after int64
	for {
		page, err := h.runStore.ListDecisions(ctx, id, after, decisionPage)
		if err != nil {
			return fmt.Errorf("listing decisions of run %d: %w", id, err)
		}
		for _, d := range page {
			item := apigen.Decision{Id: d.ID, PhaseIndex: d.PhaseIndex, At: d.At,
				Verdict: apigen.DecisionVerdict(d.Verdict), Explanation: d.Explanation}
			if err := json.Unmarshal(d.Record, &item.Record); err != nil {
				return fmt.Errorf("reading the record of decision %d: %w", d.ID, err)
			}
			list.Items = append(list.Items, item)
			after = d.ID
		}
		if len(page) < decisionPage {
			return c.JSON(http.StatusOK, list)
		}
	}
}

// run reads the run with the id together with its app and environment,
// and checks that the token may reach them; a run the token may not see is
// refused the same way as elsewhere, with 403.
func (h *restHandlers) run(c echo.Context, id int64) (store.Run, store.App, store.Environment, error) {
	ctx := c.Request().Context()
	run, err := h.runStore.Run(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Run{}, store.App{}, store.Environment{}, notFound("there is no run %d", id)
	case err != nil:
		return store.Run{}, store.App{}, store.Environment{}, fmt.Errorf("reading run %d: %w", id, err)
	}
	app, env, err := h.runPlace(ctx, run, nil, nil)
	if err != nil {
		return store.Run{}, store.App{}, store.Environment{}, err
	}
	if err := RequireAccess(c, app.Slug, env.Name); err != nil {
		return store.Run{}, store.App{}, store.Environment{}, err
	}
	return run, app, env, nil
}

// runPlace reads a run's app and environment, from the maps when they hold
// them, and adds what it read to the maps (when not nil), so a list reads
// each app and environment once.
func (h *restHandlers) runPlace(ctx context.Context, run store.Run, apps map[int64]store.App, envs map[int64]store.Environment) (store.App, store.Environment, error) {
	app, ok := apps[run.AppID]
	if !ok {
		var err error
		if app, err = h.runStore.AppByID(ctx, run.AppID); err != nil {
			return store.App{}, store.Environment{}, fmt.Errorf("reading the app of run %d: %w", run.ID, err)
		}
		if apps != nil {
			apps[app.ID] = app
		}
	}
	env, ok := envs[run.EnvironmentID]
	if !ok {
		var err error
		if env, err = h.runStore.EnvironmentByID(ctx, run.EnvironmentID); err != nil {
			return store.App{}, store.Environment{}, fmt.Errorf("reading the environment of run %d: %w", run.ID, err)
		}
		if envs != nil {
			envs[env.ID] = env
		}
	}
	return app, env, nil
}

// runBody is the run as the API shows it: its record, plus what its plan,
// phases and latest decision say about where it is.
func (h *restHandlers) runBody(ctx context.Context, run store.Run, app store.App, env store.Environment) (apigen.Run, error) {
	body := apigen.Run{
		Id: run.ID, App: app.Slug, Environment: env.Name, ToVersion: run.ToVersion,
		Strategy: apigen.Strategy(run.Strategy), State: apigen.RunState(run.State), PhaseIndex: run.PhaseIndex,
		Reason: run.Reason, CreatedBy: run.CreatedBy, Version: run.Version,
		CreatedAt: run.CreatedAt, UpdatedAt: run.UpdatedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt,
		Phases: []apigen.RunPhase{}, Weights: []apigen.VersionWeight{}, Params: map[string]any{},
	}
	if run.FromVersion != "" {
		body.FromVersion = &run.FromVersion
	}
	if len(run.Params) > 0 {
		if err := json.Unmarshal(run.Params, &body.Params); err != nil {
			return apigen.Run{}, fmt.Errorf("reading the params of run %d: %w", run.ID, err)
		}
	}
	var p plan.Plan
	if len(run.Plan) > 0 && !isNull(run.Plan) {
		if err := json.Unmarshal(run.Plan, &body.Plan); err != nil {
			return apigen.Run{}, fmt.Errorf("reading the plan of run %d: %w", run.ID, err)
		}
		if err := json.Unmarshal(run.Plan, &p); err != nil {
			return apigen.Run{}, fmt.Errorf("reading the plan of run %d: %w", run.ID, err)
		}
		rollback := p.Rollback.ExpectedDuration.String()
		body.ExpectedRollbackTime = &rollback
		body.ExtraInfraShare = p.ExtraInfraShare
		if run.PhaseIndex < len(p.Phases) {
			phase := p.Phases[run.PhaseIndex]
			body.Phase = &phase.Name
			// Once a run has been rolled back, aborted or has failed, its
			// traffic is back on the stable version.
			if !run.State.Terminal() || run.State == store.RunSucceeded {
				body.UsersExposed = phase.ExposedShare
			}
		}
	}
	if len(run.Desired) > 0 && !isNull(run.Desired) {
		var desired plan.DesiredState
		if err := json.Unmarshal(run.Desired, &desired); err != nil {
			return apigen.Run{}, fmt.Errorf("reading the desired state of run %d: %w", run.ID, err)
		}
		for _, v := range desired.Versions {
			body.Weights = append(body.Weights, apigen.VersionWeight{Version: v.Version, Role: v.Role, Instances: v.Instances, Weight: v.Weight})
		}
	}
	phases, err := h.runStore.ListRunPhases(ctx, run.ID)
	if err != nil {
		return apigen.Run{}, fmt.Errorf("reading the phases of run %d: %w", run.ID, err)
	}
	for _, ph := range phases {
		item := apigen.RunPhase{
			Index: ph.Index, Name: ph.Name, Kind: ph.Kind, Status: apigen.RunPhaseStatus(ph.Status),
			Bake: plan.Duration(ph.Bake).String(), StartedAt: ph.StartedAt, FinishedAt: ph.FinishedAt,
		}
		if ph.Index < len(p.Phases) {
			item.ExposedShare = p.Phases[ph.Index].ExposedShare
		}
		body.Phases = append(body.Phases, item)
	}
	d, err := h.runStore.LatestDecision(ctx, run.ID)
	switch {
	case err == nil:
		body.LatestDecision = &apigen.DecisionSummary{Id: d.ID, PhaseIndex: d.PhaseIndex, At: d.At,
			Verdict: apigen.DecisionSummaryVerdict(d.Verdict), Explanation: d.Explanation}
	case !errors.Is(err, store.ErrNotFound):
		return apigen.Run{}, fmt.Errorf("reading the latest decision on run %d: %w", run.ID, err)
	}
	return body, nil
}

// runPath is where the run is found in the API.
func runPath(id int64) string {
	return "/api/v1/runs/" + strconv.FormatInt(id, 10)
}

// deref returns what p points at, or "" for nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
