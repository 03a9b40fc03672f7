package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// EnvironmentPages is what the environment page reads and changes.
type EnvironmentPages interface {
	App(ctx context.Context, slug string) (store.App, error)
	Environment(ctx context.Context, appID int64, name string) (store.Environment, error)
	UpdateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	LatestDecision(ctx context.Context, runID int64) (store.Decision, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
	ListEnvironmentFlagEvents(ctx context.Context, envID, beforeID int64, limit int) ([]store.EnvironmentFlagEvent, error)
	ListSchemaChanges(ctx context.Context, appID int64) ([]store.SchemaChange, error)
	SchemaChange(ctx context.Context, appID int64, key string) (store.SchemaChange, error)
	RecordSchemaPhase(ctx context.Context, c store.SchemaChange, envID int64, phase string, runID int64, actor string) (store.SchemaChange, error)
	CheckSchemaForVersion(ctx context.Context, appID int64, env store.Environment, version string) error
}

// historyPageSize is how many runs one page of an environment's history
// lists.
const historyPageSize = 20

// maxSettingsAttempts bounds how often a settings change is applied again
// after a run moved the environment's stable version underneath it.
const maxSettingsAttempts = 5

// inFlightStates are the states of a run that holds or waits for its
// environment.
var inFlightStates = []store.RunState{
	store.RunPending, store.RunRunning, store.RunAwaitingApproval, store.RunPaused, store.RunRollingBack,
}

type environmentHandlers struct {
	store    EnvironmentPages
	runs     RunService
	sessions *scs.SessionManager
}

func registerEnvironmentPages(g *echo.Group, cfg Config) {
	h := &environmentHandlers{store: cfg.Pages, runs: cfg.Runs, sessions: cfg.Sessions}
	g.GET("/apps/:app/environments/:env", h.show)
	g.POST("/apps/:app/environments/:env/settings", h.saveSettings)
	g.POST("/apps/:app/environments/:env/rollback", h.rollback)
	g.POST("/apps/:app/environments/:env/schema/:change", h.recordSchemaPhase)
}

// noticeKey holds a message for the next page a member opens, such as
// the result of a form they sent.
const noticeKey = "page_notice"

// keepNotice shows message on the next page the member opens.
func keepNotice(sm *scs.SessionManager, c echo.Context, message string) {
	if sm != nil {
		sm.Put(c.Request().Context(), noticeKey, message)
	}
}

// takeNotice returns the message kept for this page, once.
func takeNotice(sm *scs.SessionManager, c echo.Context) string {
	if sm == nil {
		return ""
	}
	return sm.PopString(c.Request().Context(), noticeKey)
}

// load reads the app and environment named in the path. When one does not
// exist it answers with a page saying which, and returns ok false.
func (h *environmentHandlers) load(c echo.Context) (app store.App, env store.Environment, ok bool, err error) {
	ctx := c.Request().Context()
	slug, name := c.Param("app"), c.Param("env")
	app, err = h.store.App(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return app, env, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no app %q.", slug))
	}
	if err != nil {
		return app, env, false, fmt.Errorf("reading app %s: %w", slug, err)
	}
	env, err = h.store.Environment(ctx, app.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return app, env, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("App %s has no environment %q.", slug, name))
	}
	if err != nil {
		return app, env, false, fmt.Errorf("reading environment %s of %s: %w", name, slug, err)
	}
	return app, env, true, nil
}

// show renders the environment page.
func (h *environmentHandlers) show(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	var before int64
	if raw := c.QueryParam("before"); raw != "" {
		before, err = strconv.ParseInt(raw, 10, 64)
		if err != nil || before < 1 {
			return refusePage(c, http.StatusBadRequest, fmt.Sprintf("before must be a run number such as 42, got %q.", raw))
		}
	}
	if _, ok := flagsBeforeParam(c); !ok {
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("flags_before must be the number of a flag change such as 42, got %q.", truncate(c.QueryParam("flags_before"), 40)))
	}
	v, err := h.view(c, app, env, before)
	if err != nil {
		return err
	}
	v.Settings = settingsFormFrom(env)
	if v.Schema, err = h.schemaChanges(c.Request().Context(), app, env); err != nil {
		return err
	}
	p := pageFor(c, app.Slug+"/"+env.Name, "overview")
	p.Flash = takeNotice(h.sessions, c)
	return render(c, http.StatusOK, templates.Environment(p, v))
}

// view reads everything the environment page shows but the settings form.
func (h *environmentHandlers) view(c echo.Context, app store.App, env store.Environment, before int64) (templates.EnvironmentView, error) {
	ctx := c.Request().Context()
	m := memberFrom(c)
	role := m.RoleOn(app.Slug, env.Name)
	v := templates.EnvironmentView{
		AppSlug: app.Slug, AppName: app.Name, Env: env, Role: role, Now: time.Now(),
		CanRollback: role.Includes(auth.RoleDeployer),
		CanEdit:     role.Includes(auth.RoleAdmin),
		Newest:      before == 0,
	}
	inFlight, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, States: inFlightStates, Limit: 50})
	if err != nil {
		return v, fmt.Errorf("listing runs in flight in %s/%s: %w", app.Slug, env.Name, err)
	}
	// Newest first from the store; the queue reads oldest first.
	slices.Reverse(inFlight)
	for _, r := range inFlight {
		if r.State.Active() && v.Current == nil {
			cur, err := h.inFlight(ctx, r)
			if err != nil {
				return v, err
			}
			v.Current = &cur
		} else if r.State == store.RunPending {
			v.Queued = append(v.Queued, r)
		}
	}
	if v.Current == nil && len(v.Queued) > 0 {
		cur, err := h.inFlight(ctx, v.Queued[0])
		if err != nil {
			return v, err
		}
		v.Current, v.Queued = &cur, v.Queued[1:]
	}

	if err := h.timeline(ctx, c, app, env, before, &v); err != nil {
		return v, err
	}

	v.Rollback, _, err = h.rollbackTarget(ctx, app, env, inFlight)
	if err != nil {
		return v, err
	}
	if h.runs == nil && v.Rollback.To != "" && v.Rollback.Blocked == "" {
		v.Rollback.Blocked = "This Flightdeck server runs without its engine, so it cannot roll back."
	}
	return v, nil
}

// inFlight describes a run in flight: its phase and its latest decision.
func (h *environmentHandlers) inFlight(ctx context.Context, r store.Run) (templates.EnvRunInFlight, error) {
	cur := templates.EnvRunInFlight{Run: r, PhaseIndex: r.PhaseIndex}
	if len(r.Plan) > 0 {
		var p plan.Plan
		if err := json.Unmarshal(r.Plan, &p); err == nil && len(p.Phases) > 0 {
			cur.PhaseCount = len(p.Phases)
			cur.PhaseName = p.Phases[min(r.PhaseIndex, len(p.Phases)-1)].Name
		}
	}
	d, err := h.store.LatestDecision(ctx, r.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return cur, fmt.Errorf("reading the latest decision on run %d: %w", r.ID, err)
	default:
		cur.Verdict, cur.Explanation = d.Verdict, d.Explanation
	}
	return cur, nil
}

// rollbackTarget works out what "roll back to previous" would do: return
// to the version before the last succeeded run, as long as that run's
// version is still the stable one and nothing else is in flight. It
// returns the run to roll back (zero when none) and, in Blocked, why the
// rollback cannot be done now.
func (h *environmentHandlers) rollbackTarget(ctx context.Context, app store.App, env store.Environment, inFlight []store.Run) (templates.EnvRollback, store.Run, error) {
	where := app.Slug + "/" + env.Name
	last, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, States: []store.RunState{store.RunSucceeded}, Limit: 1})
	if err != nil {
		return templates.EnvRollback{}, store.Run{}, fmt.Errorf("finding the last succeeded run of %s: %w", where, err)
	}
	switch {
	case env.StableVersion == "":
		return templates.EnvRollback{Blocked: where + " has not been deployed yet, so there is nothing to roll back."}, store.Run{}, nil
	case len(last) == 0 || last[0].ToVersion != env.StableVersion:
		return templates.EnvRollback{Blocked: fmt.Sprintf("No run of Flightdeck put %s in place, so there is no earlier version it knows to return to.", env.StableVersion)}, store.Run{}, nil
	case last[0].FromVersion == "":
		return templates.EnvRollback{Blocked: fmt.Sprintf("%s was the first deployment of %s; there is no earlier version to return to.", env.StableVersion, where)}, store.Run{}, nil
	}
	rb := templates.EnvRollback{To: last[0].FromVersion}
	if err := h.store.CheckSchemaForVersion(ctx, app.ID, env, rb.To); err != nil {
		if block, ok := errors.AsType[*store.SchemaBlock](err); ok {
			rb.Blocked = fmt.Sprintf("Rolling back to %s is blocked: %s.", rb.To, block.Message)
			rb.SchemaBlocked = len(inFlight) == 0
			return rb, last[0], nil
		}
		return templates.EnvRollback{}, store.Run{}, err
	}
	if len(inFlight) > 0 {
		r := inFlight[0]
		for _, f := range inFlight {
			if f.State.Active() {
				r = f
			}
		}
		rb.Blocked = fmt.Sprintf("Rolling back to %s has to wait: run #%d (%s, %s) is in flight. To undo that run, roll it back or abort it on its page.",
			rb.To, r.ID, r.ToVersion, strings.ReplaceAll(string(r.State), "_", " "))
	}
	return rb, last[0], nil
}

// rollback returns the environment to its previous version: the last
// succeeded run is rolled back, which the engine does as a new blue-green
// run to the version before it.
func (h *environmentHandlers) rollback(c echo.Context) error {
	ctx := c.Request().Context()
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	where := app.Slug + "/" + env.Name
	if !m.Can(app.Slug, env.Name, auth.RoleDeployer) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are a %s on %s; rolling it back needs the deployer role. Nothing was changed.", m.RoleOn(app.Slug, env.Name), where))
	}
	if h.runs == nil {
		return refusePage(c, http.StatusServiceUnavailable, "This Flightdeck server runs without its engine, so it cannot start a rollback. Nothing was changed.")
	}
	to := strings.TrimSpace(c.FormValue("to"))
	if to == "" {
		return refusePage(c, http.StatusBadRequest, "Say which version to roll back to (the form's \"to\" field is empty). Nothing was changed.")
	}
	inFlight, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, States: inFlightStates, Limit: 50})
	if err != nil {
		return fmt.Errorf("listing runs in flight in %s: %w", where, err)
	}
	target, run, err := h.rollbackTarget(ctx, app, env, inFlight)
	if err != nil {
		return err
	}
	override := strings.TrimSpace(c.FormValue("schema_override"))
	if override != "" && !m.IsAdmin && !m.Can(app.Slug, env.Name, auth.RoleAdmin) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"Overriding the schema changes of %s needs the admin role. Nothing was changed.", where))
	}
	switch {
	case target.To == "":
		return refusePage(c, http.StatusConflict, target.Blocked+" Nothing was changed.")
	case target.SchemaBlocked && override != "":
		// An administrator returns past the schema changes, with a reason.
	case target.Blocked != "":
		return refusePage(c, http.StatusConflict, target.Blocked+" Nothing was changed.")
	case target.To != to:
		return refusePage(c, http.StatusConflict, fmt.Sprintf(
			"The previous version of %s is now %s, not %s as your page showed; reload it and confirm again. Nothing was changed.", where, target.To, to))
	}
	res, err := h.runs.Act(ctx, run.ID, engine.ActionRequest{
		Action: engine.ActionRollback, Actor: m.Actor(),
		Comment:        fmt.Sprintf("roll back %s to %s from its environment page", where, to),
		SchemaOverride: override,
	})
	if actionErr, ok := errors.AsType[*engine.ActionError](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Flightdeck cannot roll back %s now: %s. Nothing was changed.", where, actionErr.Detail))
	}
	if vErr, ok := errors.AsType[*plan.ValidationError](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Flightdeck cannot roll back %s to %s: %s. Nothing was changed.", where, to, vErr.Error()))
	}
	if block, ok := errors.AsType[*store.SchemaBlock](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Flightdeck cannot roll back %s to %s: %s. Nothing was changed.", where, to, block.Message))
	}
	if err != nil {
		return fmt.Errorf("rolling back %s: %w", where, err)
	}
	if res.Created == nil {
		keepNotice(h.sessions, c, fmt.Sprintf("Rolling back %s to %s.", where, to))
		return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name))
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/runs/%d", res.Created.ID))
}

// envPagePath is the environment page's path.
func envPagePath(app, env string) string {
	return "/apps/" + app + "/environments/" + env
}

// saveSettings changes an environment's settings from the settings form.
// Every field is checked as the REST API checks it; a form with problems
// is shown again as typed, with each problem next to its field, and
// nothing is saved.
func (h *environmentHandlers) saveSettings(c echo.Context) error {
	ctx := c.Request().Context()
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	where := app.Slug + "/" + env.Name
	if !m.Can(app.Slug, env.Name, auth.RoleAdmin) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are a %s on %s; changing its settings needs the admin role. Nothing was changed.", m.RoleOn(app.Slug, env.Name), where))
	}
	form, change := readSettingsForm(c)
	if form.Digest == "" {
		form.Digest = settingsDigest(env)
		form.Error = "The form did not say which settings it was based on, so nothing was saved; it now shows what you sent against the current settings. Save again to apply it."
		return h.showForm(c, app, env, form, http.StatusBadRequest)
	}
	if len(form.Errors) > 0 {
		form.Error = "Some settings are not right; each problem is shown next to its field. Nothing was saved."
		return h.showForm(c, app, env, form, http.StatusBadRequest)
	}

	for attempt := 1; ; attempt++ {
		if settingsDigest(env) != form.Digest {
			// Someone else changed the settings since the form was opened:
			// show what was typed again, based on the settings as they are
			// now, so sending it again is a deliberate choice.
			form.Digest = settingsDigest(env)
			next := env
			change.apply(&next)
			form.Error = fmt.Sprintf("Someone changed the settings of %s while you were editing them, so nothing was saved. "+
				"Compared with the settings as they are now, this form changes %s; check it and save again.",
				where, orNothing(strings.Join(changedSettings(env, next), "; ")))
			return h.showForm(c, app, env, form, http.StatusConflict)
		}
		next := env
		change.apply(&next)
		changed := changedSettings(env, next)
		if len(changed) == 0 {
			keepNotice(h.sessions, c, "Nothing to save: the settings were already as sent.")
			return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name))
		}
		_, err := h.store.UpdateEnvironment(ctx, next)
		if _, conflict := errors.AsType[*store.ConflictError](err); conflict && attempt < maxSettingsAttempts {
			// A run recorded a new stable version meanwhile; the settings
			// may still be as the form saw them, so decide again.
			if env, err = h.store.Environment(ctx, app.ID, env.Name); err != nil {
				return fmt.Errorf("reading environment %s again: %w", where, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("saving the settings of %s: %w", where, err)
		}
		if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
			Actor: m.Actor(), Action: "environment.settings_changed", App: app.Slug, Environment: env.Name,
			Detail: strings.Join(changed, "; "),
		})); err != nil {
			return fmt.Errorf("recording the settings change of %s: %w", where, err)
		}
		keepNotice(h.sessions, c, "Settings saved: "+strings.Join(changed, "; ")+".")
		return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name))
	}
}

// showForm renders the environment page with the settings form as typed.
func (h *environmentHandlers) showForm(c echo.Context, app store.App, env store.Environment, form templates.EnvSettingsForm, status int) error {
	v, err := h.view(c, app, env, 0)
	if err != nil {
		return err
	}
	v.Settings = form
	p := pageFor(c, app.Slug+"/"+env.Name, "overview")
	p.Flash, p.FlashError = "The settings were not saved; the settings form below says why.", true
	return render(c, status, templates.Environment(p, v))
}

// orNothing is s, or "nothing" when s is empty.
func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// readSettingsForm reads the settings form: the form as typed, for showing
// it again, with every problem found keyed by field, and the change it
// asks for when there is none.
func readSettingsForm(c echo.Context) (templates.EnvSettingsForm, environmentChange) {
	form := templates.EnvSettingsForm{
		Digest:             c.FormValue("digest"),
		Tier:               c.FormValue("tier"),
		DefaultStrategy:    c.FormValue("default_strategy"),
		StrategyDefaults:   c.FormValue("strategy_defaults"),
		Driver:             c.FormValue("driver"),
		Metrics:            c.FormValue("metrics"),
		FailurePolicy:      c.FormValue("failure_policy"),
		RequireApproval:    formBool(c.FormValue("require_approval")),
		ApproverNotStarter: formBool(c.FormValue("approver_not_starter")),
	}
	fillChoices(&form)
	var errs []plan.FieldError
	var ch environmentChange
	if slices.Contains(tiers, form.Tier) {
		ch.tier = &form.Tier
	} else {
		errs = append(errs, plan.FieldError{Field: "tier", Message: fmt.Sprintf("must be one of %s, got %q", quoteAll(tiers), form.Tier)})
	}
	if plan.Strategy(form.DefaultStrategy).Valid() {
		ch.defaultStrategy = &form.DefaultStrategy
	} else {
		errs = append(errs, plan.FieldError{Field: "default_strategy", Message: fmt.Sprintf("must be one of %s, got %q", strategyNames(), form.DefaultStrategy)})
	}
	if slices.Contains(failurePolicies, form.FailurePolicy) {
		ch.failurePolicy = &form.FailurePolicy
	} else {
		errs = append(errs, plan.FieldError{Field: "failure_policy", Message: fmt.Sprintf("must be one of %s, got %q", quoteAll(failurePolicies), form.FailurePolicy)})
	}
	ch.requireApproval = &form.RequireApproval
	ch.approverNotStarter = &form.ApproverNotStarter

	if raw, fe := formObject("strategy_defaults", form.StrategyDefaults, `{}`); fe != nil {
		errs = append(errs, *fe)
	} else {
		errs = append(errs, checkStrategyDefaults(raw)...)
		ch.strategyDefaults = raw
	}
	if raw, fe := formObject("driver", form.Driver, ""); fe != nil {
		errs = append(errs, *fe)
	} else {
		errs = append(errs, checkDriver(raw)...)
		ch.driver = raw
	}
	if raw, fe := formObject("metrics", form.Metrics, ""); fe != nil {
		errs = append(errs, *fe)
	} else {
		errs = append(errs, checkMetrics(raw)...)
		ch.metrics = raw
	}

	values := map[string]string{}
	for name := range thresholdKinds() {
		values[name] = strings.TrimSpace(c.FormValue("t." + name))
	}
	form.Thresholds = thresholdFields(values)
	// Values that are not even numbers are named here; the rest are
	// checked as the REST API checks them, so every problem shows at once.
	raw, parseErrs := thresholdsFromForm(values)
	checked := checkThresholds(raw)
	errs = append(append(errs, parseErrs...), checked...)
	if len(parseErrs) == 0 && len(checked) == 0 {
		ch.thresholds = raw
	}
	form.Errors = fieldErrorMap(errs)
	return form, ch
}

// formBool reads a checkbox.
func formBool(v string) bool { return v == "true" || v == "on" }

// formObject reads a JSON object typed into a textarea; empty is empty,
// or is refused when empty has no meaning for the field.
func formObject(field, text, empty string) (json.RawMessage, *plan.FieldError) {
	text = strings.TrimSpace(text)
	if text == "" {
		if empty != "" {
			return json.RawMessage(empty), nil
		}
		return nil, &plan.FieldError{Field: field, Message: `is required: a JSON object with a "type", such as {"type": "simulator"}`}
	}
	if !json.Valid([]byte(text)) {
		var probe any
		err := json.Unmarshal([]byte(text), &probe)
		return nil, &plan.FieldError{Field: field, Message: "is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if !isObject(json.RawMessage(text)) {
		return nil, &plan.FieldError{Field: field, Message: "must be a JSON object, got " + jsonKind(json.RawMessage(text))}
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, []byte(text))
	return json.RawMessage(compact.Bytes()), nil
}

// Kinds of threshold values, as thresholdKinds names them.
const (
	thresholdKindBool = "true or false"
)

// thresholdsFromForm builds the thresholds object from the form's fields:
// empty fields are left out so their defaults apply. A value that is not
// even of the right kind is reported here; ranges are checked by
// checkThresholds, as for the REST API.
func thresholdsFromForm(values map[string]string) (json.RawMessage, []plan.FieldError) {
	kinds := thresholdKinds()
	out := map[string]json.RawMessage{}
	var errs []plan.FieldError
	for _, name := range slices.Sorted(maps.Keys(values)) {
		text, kind := values[name], kinds[name]
		switch {
		case text == "":
			continue
		case kind == thresholdKindBool:
			if formBool(text) {
				out[name] = json.RawMessage("true")
			}
		case strings.HasPrefix(kind, "a duration"):
			quoted, _ := json.Marshal(text)
			out[name] = quoted
		default:
			var n float64
			if json.Unmarshal([]byte(text), &n) != nil {
				errs = append(errs, plan.FieldError{Field: "thresholds." + name, Message: fmt.Sprintf("must be %s, got %q", kind, text)})
				continue
			}
			out[name] = json.RawMessage(text)
		}
	}
	raw, _ := json.Marshal(out)
	return raw, errs
}

// thresholdFields lists the thresholds for the form with the values given
// (by name; missing is empty) and their defaults.
func thresholdFields(values map[string]string) []templates.EnvThresholdField {
	kinds := thresholdKinds()
	defaults := map[string]json.RawMessage{}
	raw, _ := json.Marshal(analysis.DefaultThresholds())
	_ = json.Unmarshal(raw, &defaults)
	var names []string
	for _, name := range templates.EnvThresholdOrder() {
		if _, ok := kinds[name]; ok {
			names = append(names, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	fields := make([]templates.EnvThresholdField, 0, len(names))
	for _, name := range names {
		label, hint := templates.EnvThresholdLabel(name)
		f := templates.EnvThresholdField{
			Name: name, Label: label, Hint: hint, Default: jsonText(defaults[name]),
			Value: values[name], Bool: kinds[name] == thresholdKindBool,
		}
		if f.Bool && formBool(f.Value) {
			f.Value = "true"
		} else if f.Bool {
			f.Value = ""
		}
		fields = append(fields, f)
	}
	return fields
}

// jsonText is a JSON scalar as typed into a form: strings unquoted.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

// fieldErrorMap groups problems by the form field they belong to; a
// problem deep inside a JSON field names its place within the field.
func fieldErrorMap(errs []plan.FieldError) map[string][]string {
	if len(errs) == 0 {
		return nil
	}
	out := map[string][]string{}
	for _, fe := range errs {
		key, rest := fe.Field, ""
		if strings.HasPrefix(key, "thresholds.") {
			name, deeper, _ := strings.Cut(strings.TrimPrefix(key, "thresholds."), ".")
			key, rest = "thresholds."+name, deeper
		} else if i := strings.IndexAny(key, ".["); i > 0 {
			key, rest = key[:i], strings.TrimPrefix(key[i:], ".")
		}
		msg := fe.Message
		if rest != "" {
			msg = rest + ": " + msg
		}
		out[key] = append(out[key], msg)
	}
	return out
}

// fillChoices sets the options of the form's selects.
func fillChoices(f *templates.EnvSettingsForm) {
	f.Tiers = tiers
	f.FailurePolicies = failurePolicies
	f.Strategies = make([]string, len(plan.Strategies))
	for i, s := range plan.Strategies {
		f.Strategies[i] = string(s)
	}
}

// settingsFormFrom fills the settings form with the stored settings.
func settingsFormFrom(env store.Environment) templates.EnvSettingsForm {
	f := templates.EnvSettingsForm{
		Digest: settingsDigest(env), Tier: env.Tier, DefaultStrategy: env.DefaultStrategy,
		StrategyDefaults: prettyJSON(env.StrategyDefaults), Driver: prettyJSON(hideDriverSecret(env.Driver)), Metrics: prettyJSON(env.Metrics),
		FailurePolicy: env.FailurePolicy, RequireApproval: env.RequireApproval, ApproverNotStarter: env.ApproverNotStarter,
	}
	fillChoices(&f)
	stored := map[string]json.RawMessage{}
	_ = json.Unmarshal(env.Thresholds, &stored)
	values := map[string]string{}
	for name, raw := range stored {
		values[name] = jsonText(raw)
	}
	f.Thresholds = thresholdFields(values)
	return f
}

// prettyJSON indents a JSON object for a textarea.
func prettyJSON(raw json.RawMessage) string {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return string(raw)
	}
	return out.String()
}

// environmentSettings are the settings of an environment the settings form
// edits, as comparable values.
type environmentSettings struct {
	Tier               string
	Driver             any
	Metrics            any
	DefaultStrategy    string
	StrategyDefaults   any
	Thresholds         any
	RequireApproval    bool
	ApproverNotStarter bool
	FailurePolicy      string
}

// settingsOf returns an environment's settings with JSON decoded, so that
// two spellings of the same object compare equal.
func settingsOf(env store.Environment) environmentSettings {
	decode := func(raw json.RawMessage) any {
		var v any
		_ = json.Unmarshal(raw, &v)
		return v
	}
	return environmentSettings{
		Tier: env.Tier, Driver: decode(env.Driver), Metrics: decode(env.Metrics),
		DefaultStrategy: env.DefaultStrategy, StrategyDefaults: decode(env.StrategyDefaults),
		Thresholds: decode(env.Thresholds), RequireApproval: env.RequireApproval,
		ApproverNotStarter: env.ApproverNotStarter, FailurePolicy: env.FailurePolicy,
	}
}

// settingsDigest identifies an environment's settings (not its stable
// versions, which runs change), so the form can tell whether they changed
// since it was opened.
func settingsDigest(env store.Environment) string {
	raw, _ := json.Marshal(settingsOf(env))
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// changedSettings names each setting that differs between before and
// after, with the old and new value for the plain ones, for the audit log.
func changedSettings(before, after store.Environment) []string {
	a, b := settingsOf(before), settingsOf(after)
	var out []string
	plain := func(name string, old, new any) {
		if old != new {
			out = append(out, fmt.Sprintf("%s: %v → %v", name, old, new))
		}
	}
	object := func(name string, old, new any) {
		if !reflect.DeepEqual(old, new) {
			out = append(out, name+changedKeys(old, new))
		}
	}
	plain("tier", a.Tier, b.Tier)
	plain("default_strategy", a.DefaultStrategy, b.DefaultStrategy)
	object("strategy_defaults", a.StrategyDefaults, b.StrategyDefaults)
	object("thresholds", a.Thresholds, b.Thresholds)
	object("driver", a.Driver, b.Driver)
	object("metrics", a.Metrics, b.Metrics)
	plain("failure_policy", a.FailurePolicy, b.FailurePolicy)
	plain("require_approval", a.RequireApproval, b.RequireApproval)
	plain("approver_not_starter", a.ApproverNotStarter, b.ApproverNotStarter)
	return out
}

// changedKeys names the top-level keys of two JSON objects that differ:
// " (error_rate_pp, warmup)".
func changedKeys(old, new any) string {
	a, _ := old.(map[string]any)
	b, _ := new.(map[string]any)
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if !reflect.DeepEqual(a[k], b[k]) {
			keys = append(keys, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	return " (" + strings.Join(keys, ", ") + ")"
}

// schemaChanges describes how far the environment is in each of the app's
// expand–contract schema changes.
func (h *environmentHandlers) schemaChanges(ctx context.Context, app store.App, env store.Environment) ([]templates.EnvSchemaChange, error) {
	changes, err := h.store.ListSchemaChanges(ctx, app.ID)
	if err != nil {
		return nil, fmt.Errorf("listing the schema changes of %s: %w", app.Slug, err)
	}
	out := make([]templates.EnvSchemaChange, 0, len(changes))
	for _, sc := range changes {
		row := templates.EnvSchemaChange{Key: sc.Key, Description: sc.Description, Reached: sc.Latest(env.ID)}
		if i := slices.Index(store.SchemaPhases, row.Reached) + 1; i < len(store.SchemaPhases) {
			row.Next = store.SchemaPhases[i]
		}
		for _, name := range store.SchemaPhases {
			ph := templates.EnvSchemaPhase{Name: name}
			for _, r := range sc.Reached[env.ID] {
				if r.Phase == name {
					ph.Done, ph.ReachedAt, ph.ReachedBy = true, r.ReachedAt, r.ReachedBy
				}
			}
			row.Phases = append(row.Phases, ph)
		}
		out = append(out, row)
	}
	return out, nil
}

// recordSchemaPhase records that the environment reached the next phase of
// a schema change (deployers: it is part of deploying).
func (h *environmentHandlers) recordSchemaPhase(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	where := app.Slug + "/" + env.Name
	if !m.Can(app.Slug, env.Name, auth.RoleDeployer) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf("You are a %s on %s; recording a schema change's phase needs the deployer role. Nothing was changed.", m.RoleOn(app.Slug, env.Name), where))
	}
	ctx := c.Request().Context()
	key, phase := c.Param("change"), c.FormValue("phase")
	sc, err := h.store.SchemaChange(ctx, app.ID, key)
	if errors.Is(err, store.ErrNotFound) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("%s tracks no schema change %q. Nothing was changed.", app.Slug, key))
	}
	if err != nil {
		return err
	}
	if _, err := h.store.RecordSchemaPhase(ctx, sc, env.ID, phase, 0, m.Actor()); err != nil {
		if serr, ok := errors.AsType[*store.SchemaError](err); ok {
			return refusePage(c, http.StatusUnprocessableEntity, fmt.Sprintf("%s was not recorded: %s. Nothing was changed.", phase, serr.Message))
		}
		return err
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "schema.phase_reached",
		App: app.Slug, Environment: env.Name, Detail: fmt.Sprintf("%s reached %s", key, phase)})); err != nil {
		return fmt.Errorf("recording the schema phase in the audit log: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("%s reached %s of schema change %s.", where, phase, key))
	return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name)+"#schema")
}
