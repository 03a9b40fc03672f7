package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// GovernanceStore is what the deploy window, freeze and halt endpoints need
// from the store; *store.Store implements it.
type GovernanceStore interface {
	DeployWindows(ctx context.Context, environmentID int64) (governance.Settings, error)
	SetDeployWindows(ctx context.Context, environmentID int64, set governance.Settings, by string) (governance.Settings, error)
	CreateFreeze(ctx context.Context, f store.Freeze) (store.Freeze, error)
	FreezeByID(ctx context.Context, id int64) (store.Freeze, error)
	ListFreezes(ctx context.Context, environmentID int64, limit int) ([]store.Freeze, error)
	EndFreeze(ctx context.Context, id int64, by string) (store.Freeze, error)
	Halt(ctx context.Context) (store.HaltState, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// GovernanceService stops and restarts the line and overrides windows for
// one run; *engine.Engine implements it, and the server's RunService is
// asked for it.
type GovernanceService interface {
	Halt(ctx context.Context, actor, reason string) (engine.HaltResult, error)
	LiftHalt(ctx context.Context, actor string) (engine.HaltResult, error)
	Override(ctx context.Context, runID int64, actor, reason string) (store.Run, error)
}

// Routes of the halt, for scopeFor: stopping and restarting the line is an
// approver's call, like approving a phase.
const (
	haltRoute     = "/api/v1/halt"
	haltLiftRoute = "/api/v1/halt/lift"
)

// maxFreezes is how many freezes a listing returns.
const maxFreezes = 100

func (h *restHandlers) governance() (GovernanceService, error) {
	g, ok := h.runs.(GovernanceService)
	if !ok || h.runs == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, detail: "this server runs no engine, so it cannot stop or restart runs"}
	}
	return g, nil
}

// audit records a governance change; a failure to record it is logged by
// the caller's error path, not hidden.
func (h *restHandlers) audit(c echo.Context, e store.AuditEvent) error {
	p, _ := PrincipalFrom(c)
	e.Actor = p.Actor()
	if _, err := h.store.RecordAudit(c.Request().Context(), auditFrom(c, e)); err != nil {
		return fmt.Errorf("recording %s in the audit log: %w", e.Action, err)
	}
	return nil
}

// GetDeployWindows handles GET .../environments/{env}/deploy-windows.
func (h *restHandlers) GetDeployWindows(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	set, err := h.store.DeployWindows(c.Request().Context(), env.ID)
	if err != nil {
		return fmt.Errorf("reading the deploy windows of %s/%s: %w", slug, name, err)
	}
	return c.JSON(http.StatusOK, deployWindowsBody(set))
}

// PutDeployWindows handles PUT .../environments/{env}/deploy-windows.
func (h *restHandlers) PutDeployWindows(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	var set governance.Settings
	o.required("windows")
	o.required("outside")
	if raw, ok := o.raw("windows"); ok {
		if err := json.Unmarshal(raw, &set.Windows); err != nil || set.Windows == nil {
			o.add("windows", "must be a list of windows, each {days, start, end, time_zone}")
		}
	}
	if outside, ok := o.str("outside"); ok {
		set.Outside = governance.Outside(outside)
	}
	if err := o.finish("windows", "outside"); err != nil {
		return err
	}
	if _, err := set.Compile(); err != nil {
		return windowValidation(err)
	}
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	p, _ := PrincipalFrom(c)
	saved, err := h.store.SetDeployWindows(c.Request().Context(), env.ID, set, p.Actor())
	if err != nil {
		return fmt.Errorf("saving the deploy windows of %s/%s: %w", slug, name, err)
	}
	if err := h.audit(c, store.AuditEvent{Action: "environment.deploy_windows", App: slug, Environment: name,
		Detail: describeSettings(saved)}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deployWindowsBody(saved))
}

// windowValidation answers bad window settings with their field errors.
func windowValidation(err error) error {
	var v *governance.ValidationError
	if !errors.As(err, &v) {
		return err
	}
	fields := make([]plan.FieldError, len(v.Errors))
	for i, fe := range v.Errors {
		fields[i] = plan.FieldError{Field: fe.Field, Message: fe.Message}
	}
	return validationFailed(fields)
}

// describeSettings says what the windows are, for the audit log and pages.
func describeSettings(set governance.Settings) string {
	sched, err := set.Compile()
	if err != nil || sched.Always() {
		return "deploys allowed at any time; outside policy " + string(set.Outside)
	}
	return fmt.Sprintf("deploys only %s; outside them runs %s", sched, set.Outside)
}

func deployWindowsBody(set governance.Settings) apigen.DeployWindows {
	out := apigen.DeployWindows{Outside: apigen.DeployWindowsOutside(set.Outside), Windows: []apigen.DeployWindow{}}
	for _, w := range set.Windows {
		days := make([]apigen.DeployWindowDays, len(w.Days))
		for i, d := range w.Days {
			days[i] = apigen.DeployWindowDays(d)
		}
		out.Windows = append(out.Windows, apigen.DeployWindow{Days: days, Start: w.Start, End: w.End, TimeZone: w.TimeZone})
	}
	return out
}

// ListFreezes handles GET .../environments/{env}/freezes.
func (h *restHandlers) ListFreezes(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	fs, err := h.store.ListFreezes(c.Request().Context(), env.ID, maxFreezes)
	if err != nil {
		return fmt.Errorf("listing the freezes of %s/%s: %w", slug, name, err)
	}
	now := time.Now()
	out := apigen.FreezeList{Items: make([]apigen.Freeze, len(fs))}
	for i, f := range fs {
		out.Items[i] = freezeBody(f, now)
	}
	return c.JSON(http.StatusOK, out)
}

// CreateFreeze handles POST .../environments/{env}/freezes.
func (h *restHandlers) CreateFreeze(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	f := store.Freeze{StartsAt: now}
	o.required("reason")
	o.required("ends_at")
	if reason, ok := o.str("reason"); ok {
		f.Reason = reason
	}
	readTime := func(field string, into *time.Time) {
		if s, ok := o.str(field); ok {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				o.add(field, "%q is not a date-time; write RFC 3339, e.g. 2026-12-24T18:00:00+01:00", s)
				return
			}
			*into = t.UTC()
		}
	}
	readTime("starts_at", &f.StartsAt)
	readTime("ends_at", &f.EndsAt)
	if o.has("reason") {
		o.addAll(validateFreeze(f, now))
	}
	if err := o.finish("reason", "starts_at", "ends_at"); err != nil {
		return err
	}
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	p, _ := PrincipalFrom(c)
	f.EnvironmentID, f.CreatedBy = env.ID, p.Actor()
	created, err := h.store.CreateFreeze(c.Request().Context(), f)
	if err != nil {
		return fmt.Errorf("freezing %s/%s: %w", slug, name, err)
	}
	if err := h.audit(c, store.AuditEvent{Action: "environment.freeze", App: slug, Environment: name,
		Detail: fmt.Sprintf("freeze %d from %s until %s: %s", created.ID, created.StartsAt.Format(time.RFC3339), created.EndsAt.Format(time.RFC3339), created.Reason)}); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/api/v1/apps/%s/environments/%s/freezes", slug, name))
	return c.JSON(http.StatusCreated, freezeBody(created, now))
}

// validateFreeze checks a new freeze; the pages use it too.
func validateFreeze(f store.Freeze, now time.Time) []plan.FieldError {
	var fields []plan.FieldError
	switch l := utf8.RuneCountInString(f.Reason); {
	case strings.TrimSpace(f.Reason) == "":
		fields = append(fields, plan.FieldError{Field: "reason", Message: "say why the environment is frozen"})
	case l > maxRunText:
		fields = append(fields, plan.FieldError{Field: "reason", Message: fmt.Sprintf("must be at most %d characters, got %d", maxRunText, l)})
	}
	switch {
	case f.EndsAt.IsZero():
	case !f.EndsAt.After(f.StartsAt):
		fields = append(fields, plan.FieldError{Field: "ends_at", Message: "must be after the start"})
	case !f.EndsAt.After(now):
		fields = append(fields, plan.FieldError{Field: "ends_at", Message: "is in the past; a freeze must end in the future"})
	}
	return fields
}

func freezeBody(f store.Freeze, now time.Time) apigen.Freeze {
	out := apigen.Freeze{Id: f.ID, Reason: f.Reason, StartsAt: f.StartsAt, EndsAt: f.EndsAt, CreatedBy: f.CreatedBy,
		CreatedAt: f.CreatedAt, EndedAt: f.EndedAt, Active: f.ActiveAt(now)}
	if f.EndedBy != "" {
		out.EndedBy = &f.EndedBy
	}
	return out
}

// EndFreeze handles POST .../environments/{env}/freezes/{freeze}/end.
func (h *restHandlers) EndFreeze(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName, id int64) error {
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	f, err := h.store.FreezeByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.EnvironmentID != env.ID) {
		return notFound("%s/%s has no freeze %d", slug, name, id)
	}
	if err != nil {
		return fmt.Errorf("reading freeze %d: %w", id, err)
	}
	now := time.Now()
	if f.Over(now) {
		return conflict(freezeBody(f, now), "freeze %d of %s/%s is over already", id, slug, name)
	}
	p, _ := PrincipalFrom(c)
	ended, err := h.store.EndFreeze(ctx, id, p.Actor())
	if errors.Is(err, store.ErrNotFound) {
		return conflict(nil, "freeze %d of %s/%s is over already", id, slug, name)
	}
	if err != nil {
		return fmt.Errorf("ending freeze %d: %w", id, err)
	}
	if err := h.audit(c, store.AuditEvent{Action: "environment.freeze_ended", App: slug, Environment: name,
		Detail: fmt.Sprintf("freeze %d ended early: %s", id, f.Reason)}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, freezeBody(ended, now))
}

// OverrideRun handles POST /api/v1/runs/{id}/override.
func (h *restHandlers) OverrideRun(c echo.Context, id apigen.RunID) error {
	reason, err := readReason(c, "why the run may go despite the deploy windows and freezes")
	if err != nil {
		return err
	}
	g, err := h.governance()
	if err != nil {
		return err
	}
	_, app, env, err := h.run(c, id)
	if err != nil {
		return err
	}
	p, _ := PrincipalFrom(c)
	ctx := c.Request().Context()
	run, err := g.Override(ctx, id, p.Actor(), reason)
	if aErr, ok := errors.AsType[*engine.ActionError](err); ok {
		return conflict(nil, "cannot override run %d while it is %s: %s", id, aErr.State, aErr.Detail)
	}
	if err != nil {
		return fmt.Errorf("overriding run %d: %w", id, err)
	}
	if err := h.audit(c, store.AuditEvent{Action: "run.override", App: app.Slug, Environment: env.Name, RunID: id,
		Detail: "deploy windows and freezes overridden: " + reason}); err != nil {
		return err
	}
	body, err := h.runBody(ctx, run, app, env)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}

// readReason reads a body {"reason": "..."} whose reason is required.
func readReason(c echo.Context, what string) (string, error) {
	o, err := readRequestObject(c)
	if err != nil {
		return "", err
	}
	o.required("reason")
	reason, ok := o.str("reason")
	if ok {
		switch l := utf8.RuneCountInString(reason); {
		case strings.TrimSpace(reason) == "":
			o.add("reason", "say %s", what)
		case l > maxRunText:
			o.add("reason", "must be at most %d characters, got %d", maxRunText, l)
		}
	}
	if err := o.finish("reason"); err != nil {
		return "", err
	}
	return strings.TrimSpace(reason), nil
}

// GetHalt handles GET /api/v1/halt.
func (h *restHandlers) GetHalt(c echo.Context) error {
	st, err := h.store.Halt(c.Request().Context())
	if err != nil {
		return fmt.Errorf("reading the halt: %w", err)
	}
	return c.JSON(http.StatusOK, haltBody(st, nil))
}

// StopLine handles POST /api/v1/halt.
func (h *restHandlers) StopLine(c echo.Context) error {
	reason, err := readReason(c, "why the line is stopped")
	if err != nil {
		return err
	}
	p, _ := PrincipalFrom(c)
	if p.Limited() {
		return &apiError{status: http.StatusForbidden, detail: "this token is limited to some apps or environments; stopping the line halts every one of them"}
	}
	g, err := h.governance()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	res, err := g.Halt(ctx, p.Actor(), reason)
	if errors.Is(err, store.ErrHalted) {
		st, rerr := h.store.Halt(ctx)
		if rerr != nil {
			return rerr
		}
		return conflict(haltBody(st, nil), "the line is already stopped by %s: %s", st.HaltedBy, st.Reason)
	}
	if aerr := h.audit(c, store.AuditEvent{Action: "halt.stopped", Detail: fmt.Sprintf("stop the line: %s (%d runs paused)", reason, len(res.Runs))}); aerr != nil {
		return aerr
	}
	if err != nil {
		return fmt.Errorf("stopping the line: %w", err)
	}
	return c.JSON(http.StatusOK, haltBody(res.Halt, res.Runs))
}

// LiftHalt handles POST /api/v1/halt/lift.
func (h *restHandlers) LiftHalt(c echo.Context) error {
	p, _ := PrincipalFrom(c)
	if p.Limited() {
		return &apiError{status: http.StatusForbidden, detail: "this token is limited to some apps or environments; restarting the line resumes every one of them"}
	}
	g, err := h.governance()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	res, err := g.LiftHalt(ctx, p.Actor())
	if errors.Is(err, store.ErrNotHalted) {
		return conflict(nil, "the line is not stopped")
	}
	if aerr := h.audit(c, store.AuditEvent{Action: "halt.lifted", Detail: fmt.Sprintf("the line was restarted (%d runs resumed)", len(res.Runs))}); aerr != nil {
		return aerr
	}
	if err != nil {
		return fmt.Errorf("restarting the line: %w", err)
	}
	return c.JSON(http.StatusOK, haltBody(res.Halt, res.Runs))
}

func haltBody(st store.HaltState, runs []int64) apigen.Halt {
	out := apigen.Halt{Active: st.Active, HaltedAt: st.HaltedAt, LiftedAt: st.LiftedAt}
	if st.Reason != "" {
		out.Reason = &st.Reason
	}
	if st.HaltedBy != "" {
		out.HaltedBy = &st.HaltedBy
	}
	if st.LiftedBy != "" {
		out.LiftedBy = &st.LiftedBy
	}
	if runs != nil {
		out.Runs = &runs
	}
	return out
}

// readRunOverride reads the optional "override": {"reason": "..."} of a
// run request: an admin starting the run despite closed deploy windows
// and freezes.
func readRunOverride(o *requestObject, n *engine.NewRun) {
	raw, ok := o.object("override")
	if !ok {
		return
	}
	var ov struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &ov); err != nil || strings.TrimSpace(ov.Reason) == "" {
		o.add("override.reason", "say why the run may go despite the deploy windows and freezes; an override needs a reason")
		return
	}
	if l := utf8.RuneCountInString(ov.Reason); l > maxRunText {
		o.add("override.reason", "must be at most %d characters, got %d", maxRunText, l)
	}
	n.Override = strings.TrimSpace(ov.Reason)
}

// requireOverrideScope refuses an override from a token without the admin
// scope.
func requireOverrideScope(p auth.Principal, n engine.NewRun) error {
	if n.Override == "" || p.Allows(auth.ScopeAdmin) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, detail: fmt.Sprintf(
		"the token %q may deploy, but overriding deploy windows and freezes needs the admin scope; nothing was changed", p.Name)}
}
