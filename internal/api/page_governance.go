package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/governance"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// GovernancePages is what the "stop the line" page and the deploy windows
// page of an environment read and change; *store.Store implements it.
type GovernancePages interface {
	GovernanceStore
	App(ctx context.Context, slug string) (store.App, error)
	Environment(ctx context.Context, appID int64, name string) (store.Environment, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	GovernanceHold(ctx context.Context, runID int64) (governance.Cause, bool, error)
	Gate(ctx context.Context, env store.Environment, now time.Time) (governance.Gate, error)
	ApprovalPolicy(ctx context.Context, envID int64) (store.ApprovalPolicy, error)
	SetApprovalPolicy(ctx context.Context, p store.ApprovalPolicy, actor string) (store.ApprovalPolicy, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

type governancePageHandlers struct {
	store    GovernancePages
	runs     RunService
	sessions *scs.SessionManager
}

// Who may stop the line from the browser: admins and anyone who is an
// approver somewhere. Stopping everything is a judgement like approving a
// ring; a deployer who sees trouble asks an approver (or the on-call admin).
func mayHalt(m *auth.Member) bool { return m.IsAdmin || m.CanAnywhere(auth.RoleApprover) }

func registerGovernancePages(g *echo.Group, cfg Config) {
	h := &governancePageHandlers{store: cfg.Pages, runs: cfg.Runs, sessions: cfg.Sessions}
	g.GET("/halt", h.haltPage)
	g.GET("/halt/banner", h.banner)
	g.POST("/halt", h.stop)
	g.POST("/halt/lift", h.lift)
	g.GET("/apps/:app/environments/:env/governance", h.envPage)
	g.POST("/apps/:app/environments/:env/governance/windows", h.saveWindows)
	g.POST("/apps/:app/environments/:env/governance/freezes", h.createFreeze)
	g.POST("/apps/:app/environments/:env/governance/freezes/:id/end", h.endFreeze)
	g.POST("/apps/:app/environments/:env/governance/runs/:id/override", h.override)
	g.POST("/apps/:app/environments/:env/governance/approvals", h.saveApprovals)
}

func (h *governancePageHandlers) service() (GovernanceService, bool) {
	g, ok := h.runs.(GovernanceService)
	return g, ok && h.runs != nil
}

// banner is the fragment every page loads into its halt banner slot.
func (h *governancePageHandlers) banner(c echo.Context) error {
	st, err := h.store.Halt(c.Request().Context())
	if err != nil {
		return fmt.Errorf("reading the halt: %w", err)
	}
	return render(c, http.StatusOK, templates.HaltBanner(st.Active, st.Reason, st.HaltedBy))
}

func (h *governancePageHandlers) haltView(ctx context.Context, m *auth.Member) (templates.HaltView, error) {
	st, err := h.store.Halt(ctx)
	if err != nil {
		return templates.HaltView{}, fmt.Errorf("reading the halt: %w", err)
	}
	v := templates.HaltView{Active: st.Active, Reason: st.Reason, HaltedBy: st.HaltedBy, CanHalt: mayHalt(m)}
	if st.HaltedAt != nil {
		v.Since = st.HaltedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	if !st.Active && st.LiftedAt != nil {
		v.LastLifted = fmt.Sprintf("Last stopped by %s (%s); restarted by %s at %s.", st.HaltedBy, st.Reason, st.LiftedBy, st.LiftedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return v, nil
}

func (h *governancePageHandlers) haltPage(c echo.Context) error {
	p := pageFor(c, "Stop the line", "halt")
	p.Flash = takeNotice(h.sessions, c)
	v, err := h.haltView(c.Request().Context(), memberFrom(c))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.HaltPage(p, v))
}

func (h *governancePageHandlers) stop(c echo.Context) error {
	m := memberFrom(c)
	if !mayHalt(m) {
		return refusePage(c, http.StatusForbidden, "Stopping the line needs the approver role on some environment, or admin. Nothing was changed.")
	}
	ctx := c.Request().Context()
	reason := strings.TrimSpace(c.FormValue("reason"))
	var problem string
	switch l := utf8.RuneCountInString(reason); {
	case reason == "":
		problem = "Say why the line is stopped; everybody sees it."
	case l > maxRunText:
		problem = fmt.Sprintf("At most %d characters, got %d.", maxRunText, l)
	}
	if problem != "" {
		v, err := h.haltView(ctx, m)
		if err != nil {
			return err
		}
		v.ReasonError, v.Reason0 = problem, reason
		p := pageFor(c, "Stop the line", "halt")
		p.Flash, p.FlashError = "The line was not stopped: "+problem, true
		return render(c, http.StatusUnprocessableEntity, templates.HaltPage(p, v))
	}
	g, ok := h.service()
	if !ok {
		return refusePage(c, http.StatusServiceUnavailable, "This server runs no engine, so it cannot pause runs. Nothing was changed.")
	}
	res, err := g.Halt(ctx, m.Actor(), reason)
	if errors.Is(err, store.ErrHalted) {
		return refusePage(c, http.StatusConflict, "The line is already stopped. Nothing was changed.")
	}
	if _, aerr := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "halt.stopped",
		Detail: fmt.Sprintf("stop the line: %s (%d runs paused)", reason, len(res.Runs))})); aerr != nil {
		return fmt.Errorf("recording the halt in the audit log: %w", aerr)
	}
	if err != nil {
		return fmt.Errorf("stopping the line: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("The line is stopped; %d runs paused.", len(res.Runs)))
	return c.Redirect(http.StatusSeeOther, "/halt")
}

func (h *governancePageHandlers) lift(c echo.Context) error {
	m := memberFrom(c)
	if !mayHalt(m) {
		return refusePage(c, http.StatusForbidden, "Restarting the line needs the approver role on some environment, or admin. Nothing was changed.")
	}
	g, ok := h.service()
	if !ok {
		return refusePage(c, http.StatusServiceUnavailable, "This server runs no engine, so it cannot resume runs. Nothing was changed.")
	}
	ctx := c.Request().Context()
	res, err := g.LiftHalt(ctx, m.Actor())
	if errors.Is(err, store.ErrNotHalted) {
		return refusePage(c, http.StatusConflict, "The line is not stopped. Nothing was changed.")
	}
	if _, aerr := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "halt.lifted",
		Detail: fmt.Sprintf("the line was restarted (%d runs resumed)", len(res.Runs))})); aerr != nil {
		return fmt.Errorf("recording the restart in the audit log: %w", aerr)
	}
	if err != nil {
		return fmt.Errorf("restarting the line: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("The line is running again; %d runs resumed.", len(res.Runs)))
	return c.Redirect(http.StatusSeeOther, "/halt")
}

// load reads the app and environment of the path.
func (h *governancePageHandlers) load(c echo.Context) (store.App, store.Environment, bool, error) {
	ctx := c.Request().Context()
	slug, name := c.Param("app"), c.Param("env")
	app, err := h.store.App(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return app, store.Environment{}, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no app %q.", slug))
	}
	if err != nil {
		return app, store.Environment{}, false, fmt.Errorf("reading app %s: %w", slug, err)
	}
	env, err := h.store.Environment(ctx, app.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return app, env, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("App %s has no environment %q.", slug, name))
	}
	if err != nil {
		return app, env, false, fmt.Errorf("reading environment %s of %s: %w", name, slug, err)
	}
	return app, env, true, nil
}

// envView builds the deploy windows page of an environment.
func (h *governancePageHandlers) envView(ctx context.Context, m *auth.Member, app store.App, env store.Environment) (templates.EnvGovernanceView, error) {
	v := templates.EnvGovernanceView{App: app.Slug, Env: env.Name, CanEdit: m.Can(app.Slug, env.Name, auth.RoleAdmin), Errors: map[string]string{}}
	set, err := h.store.DeployWindows(ctx, env.ID)
	if err != nil {
		return v, err
	}
	v.Windows, v.Outside, v.Summary = formatWindows(set), string(set.Outside), describeSettings(set)
	policy, err := h.store.ApprovalPolicy(ctx, env.ID)
	if err != nil {
		return v, err
	}
	v.Approvals = approvalPolicyForm(policy)
	now := time.Now()
	g, err := h.store.Gate(ctx, env, now)
	if err != nil {
		return v, err
	}
	if verdict := g.Check(now, false); verdict.Open {
		v.Status, v.StatusOpen = "Runs may start and move on now.", true
	} else {
		v.Status = verdict.Message(now)
	}
	fs, err := h.store.ListFreezes(ctx, env.ID, 20)
	if err != nil {
		return v, err
	}
	for _, f := range fs {
		row := templates.FreezeRow{ID: f.ID, Reason: f.Reason, By: f.CreatedBy,
			From: f.StartsAt.UTC().Format("2006-01-02 15:04 UTC"), Until: f.EndsAt.UTC().Format("2006-01-02 15:04 UTC")}
		switch {
		case f.EndedAt != nil:
			row.State = "ended early by " + f.EndedBy
		case f.ActiveAt(now):
			row.State, row.Endable = "active", true
		case f.Over(now):
			row.State = "over"
		default:
			row.State, row.Endable = "scheduled", true
		}
		v.Freezes = append(v.Freezes, row)
	}
	runs, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, States: []store.RunState{store.RunPending, store.RunPaused}, Limit: 50})
	if err != nil {
		return v, err
	}
	for _, r := range runs {
		if r.State == store.RunPaused {
			cause, held, err := h.store.GovernanceHold(ctx, r.ID)
			if err != nil {
				return v, err
			}
			if !held || cause == governance.CauseHalt {
				continue
			}
		} else if !strings.HasPrefix(r.Reason, "waiting: ") {
			continue
		}
		v.Waiting = append(v.Waiting, templates.WaitingRun{ID: r.ID, Version: r.ToVersion, Reason: r.Reason})
	}
	return v, nil
}

func (h *governancePageHandlers) envPage(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	p := pageFor(c, app.Slug+"/"+env.Name+" · deploy windows", "")
	p.Flash = takeNotice(h.sessions, c)
	v, err := h.envView(c.Request().Context(), memberFrom(c), app, env)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.EnvGovernancePage(p, v))
}

// refuseForm re-renders the page with the field errors of a refused form.
func (h *governancePageHandlers) refuseForm(c echo.Context, app store.App, env store.Environment, errs map[string]string, keep func(*templates.EnvGovernanceView)) error {
	v, err := h.envView(c.Request().Context(), memberFrom(c), app, env)
	if err != nil {
		return err
	}
	v.Errors = errs
	if keep != nil {
		keep(&v)
	}
	p := pageFor(c, app.Slug+"/"+env.Name+" · deploy windows", "")
	p.Flash, p.FlashError = "Nothing was changed: fix the marked fields.", true
	return render(c, http.StatusUnprocessableEntity, templates.EnvGovernancePage(p, v))
}

// requireAdmin answers with a refusal unless the member is an admin of the
// environment; allowed reports whether the handler may go on.
func (h *governancePageHandlers) requireAdmin(c echo.Context, app store.App, env store.Environment, what string) (allowed bool, err error) {
	m := memberFrom(c)
	if m.Can(app.Slug, env.Name, auth.RoleAdmin) {
		return true, nil
	}
	return false, refusePage(c, http.StatusForbidden, fmt.Sprintf("You are a %s on %s/%s; %s needs the admin role. Nothing was changed.",
		m.RoleOn(app.Slug, env.Name), app.Slug, env.Name, what))
}

func (h *governancePageHandlers) saveWindows(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	if allowed, err := h.requireAdmin(c, app, env, "changing deploy windows"); !allowed {
		return err
	}
	text, outside := c.FormValue("windows"), c.FormValue("outside")
	keep := func(v *templates.EnvGovernanceView) { v.Windows, v.Outside = text, outside }
	specs, lineErr := parseWindowLines(text)
	if lineErr != "" {
		return h.refuseForm(c, app, env, map[string]string{"windows": lineErr}, keep)
	}
	set := governance.Settings{Windows: specs, Outside: governance.Outside(outside)}
	if _, err := set.Compile(); err != nil {
		var ve *governance.ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		errs := map[string]string{}
		for _, fe := range ve.Errors {
			key, msg := "windows", fe.Message
			if fe.Field == "outside" {
				key = "outside"
			} else if i, ok := windowLine(fe.Field); ok {
				msg = fmt.Sprintf("line %d: %s", i+1, fe.Message)
			}
			if errs[key] == "" {
				errs[key] = msg
			} else {
				errs[key] += "; " + msg
			}
		}
		return h.refuseForm(c, app, env, errs, keep)
	}
	m := memberFrom(c)
	ctx := c.Request().Context()
	saved, err := h.store.SetDeployWindows(ctx, env.ID, set, m.Actor())
	if err != nil {
		return fmt.Errorf("saving the deploy windows of %s/%s: %w", app.Slug, env.Name, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "environment.deploy_windows",
		App: app.Slug, Environment: env.Name, Detail: describeSettings(saved)})); err != nil {
		return fmt.Errorf("recording the deploy windows in the audit log: %w", err)
	}
	keepNotice(h.sessions, c, "Saved: "+describeSettings(saved)+".")
	return c.Redirect(http.StatusSeeOther, "/apps/"+app.Slug+"/environments/"+env.Name+"/governance")
}

var windowField = regexp.MustCompile(`^windows\[(\d+)\]`)

func windowLine(field string) (int, bool) {
	m := windowField.FindStringSubmatch(field)
	if m == nil {
		return 0, false
	}
	i, err := strconv.Atoi(m[1])
	return i, err == nil
}

// parseWindowLines reads the form's windows, one per line: "mon-thu
// 09:00-16:00 Europe/Berlin" or "mon,wed,fri 22:00-02:00 UTC". It returns
// a message naming the first line that is not written that way.
func parseWindowLines(text string) ([]governance.WindowSpec, string) {
	specs := []governance.WindowSpec{}
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			return nil, fmt.Sprintf("line %d: write days, hours and a time zone, such as mon-thu 09:00-16:00 Europe/Berlin; got %q", i+1, line)
		}
		start, end, ok := strings.Cut(parts[1], "-")
		if !ok {
			return nil, fmt.Sprintf("line %d: write the hours as start-end, such as 09:00-16:00; got %q", i+1, parts[1])
		}
		var days []string
		for _, d := range strings.Split(parts[0], ",") {
			from, to, isRange := strings.Cut(d, "-")
			if !isRange {
				days = append(days, d)
				continue
			}
			a, err1 := governance.ParseDay(from)
			b, err2 := governance.ParseDay(to)
			if err1 != nil || err2 != nil {
				return nil, fmt.Sprintf("line %d: %q is not a range of weekdays such as mon-thu", i+1, d)
			}
			for wd := a; ; wd = (wd + 1) % 7 {
				days = append(days, governance.DayName(wd))
				if wd == b {
					break
				}
			}
		}
		specs = append(specs, governance.WindowSpec{Days: days, Start: start, End: end, TimeZone: parts[2]})
	}
	return specs, ""
}

// formatWindows writes windows the way the form reads them.
func formatWindows(set governance.Settings) string {
	lines := make([]string, len(set.Windows))
	for i, w := range set.Windows {
		lines[i] = fmt.Sprintf("%s %s-%s %s", compactDays(w.Days), w.Start, w.End, w.TimeZone)
	}
	return strings.Join(lines, "\n")
}

// compactDays writes consecutive days as a range: mon-thu.
func compactDays(days []string) string {
	order := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	var idx []int
	for _, d := range days {
		if i := slices.Index(order, d); i >= 0 {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j-i >= 2 {
			parts = append(parts, order[idx[i]]+"-"+order[idx[j]])
		} else {
			for k := i; k <= j; k++ {
				parts = append(parts, order[idx[k]])
			}
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func (h *governancePageHandlers) createFreeze(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	if allowed, err := h.requireAdmin(c, app, env, "freezing an environment"); !allowed {
		return err
	}
	reason, endsRaw := strings.TrimSpace(c.FormValue("reason")), strings.TrimSpace(c.FormValue("ends_at"))
	keep := func(v *templates.EnvGovernanceView) { v.FreezeReason, v.FreezeEnds = reason, endsRaw }
	now := time.Now().UTC()
	m := memberFrom(c)
	f := store.Freeze{EnvironmentID: env.ID, Reason: reason, StartsAt: now, CreatedBy: m.Actor()}
	errs := map[string]string{}
	if endsRaw == "" {
		errs["ends_at"] = "Say when the freeze ends."
	} else if t, err := time.Parse("2006-01-02T15:04", endsRaw); err != nil {
		errs["ends_at"] = fmt.Sprintf("%q is not a date and time such as 2026-12-24T18:00.", endsRaw)
	} else {
		f.EndsAt = t.UTC()
	}
	for _, fe := range validateFreeze(f, now) {
		errs[fe.Field] = fe.Message
	}
	if len(errs) > 0 {
		return h.refuseForm(c, app, env, errs, keep)
	}
	ctx := c.Request().Context()
	created, err := h.store.CreateFreeze(ctx, f)
	if err != nil {
		return fmt.Errorf("freezing %s/%s: %w", app.Slug, env.Name, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "environment.freeze", App: app.Slug, Environment: env.Name,
		Detail: fmt.Sprintf("freeze %d until %s: %s", created.ID, created.EndsAt.Format(time.RFC3339), created.Reason)})); err != nil {
		return fmt.Errorf("recording the freeze in the audit log: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("%s/%s is frozen until %s.", app.Slug, env.Name, created.EndsAt.Format("2006-01-02 15:04 UTC")))
	return c.Redirect(http.StatusSeeOther, "/apps/"+app.Slug+"/environments/"+env.Name+"/governance")
}

func (h *governancePageHandlers) endFreeze(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	if allowed, err := h.requireAdmin(c, app, env, "ending a freeze"); !allowed {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no freeze %q.", c.Param("id")))
	}
	ctx := c.Request().Context()
	f, err := h.store.FreezeByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.EnvironmentID != env.ID) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("%s/%s has no freeze %d.", app.Slug, env.Name, id))
	}
	if err != nil {
		return err
	}
	m := memberFrom(c)
	if _, err := h.store.EndFreeze(ctx, id, m.Actor()); errors.Is(err, store.ErrNotFound) {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Freeze %d is over already. Nothing was changed.", id))
	} else if err != nil {
		return fmt.Errorf("ending freeze %d: %w", id, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "environment.freeze_ended", App: app.Slug, Environment: env.Name,
		Detail: fmt.Sprintf("freeze %d ended early: %s", id, f.Reason)})); err != nil {
		return fmt.Errorf("recording the end of the freeze in the audit log: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Freeze %d ended.", id))
	return c.Redirect(http.StatusSeeOther, "/apps/"+app.Slug+"/environments/"+env.Name+"/governance")
}

func (h *governancePageHandlers) override(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	if allowed, err := h.requireAdmin(c, app, env, "overriding deploy windows and freezes"); !allowed {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no run %q.", c.Param("id")))
	}
	ctx := c.Request().Context()
	run, err := h.store.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && run.EnvironmentID != env.ID) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("%s/%s has no run %d.", app.Slug, env.Name, id))
	}
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(c.FormValue("reason"))
	if reason == "" || utf8.RuneCountInString(reason) > maxRunText {
		return h.refuseForm(c, app, env, map[string]string{"override": fmt.Sprintf("Run %d: say why it must go now (at most %d characters).", id, maxRunText)}, nil)
	}
	g, ok := h.service()
	if !ok {
		return refusePage(c, http.StatusServiceUnavailable, "This server runs no engine. Nothing was changed.")
	}
	m := memberFrom(c)
	_, err = g.Override(ctx, id, m.Actor(), reason)
	if aErr, ok := errors.AsType[*engine.ActionError](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Run %d cannot be overridden: %s. Nothing was changed.", id, aErr.Detail))
	}
	if err != nil {
		return fmt.Errorf("overriding run %d: %w", id, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "run.override", App: app.Slug, Environment: env.Name, RunID: id,
		Detail: "deploy windows and freezes overridden: " + reason})); err != nil {
		return fmt.Errorf("recording the override in the audit log: %w", err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Run %d may go now.", id))
	return c.Redirect(http.StatusSeeOther, "/apps/"+app.Slug+"/environments/"+env.Name+"/governance")
}

// approvalPolicyForm shows a policy in the form's fields, with a sentence.
func approvalPolicyForm(p store.ApprovalPolicy) templates.ApprovalPolicyForm {
	f := templates.ApprovalPolicyForm{MinApprovers: strconv.Itoa(p.MinApprovers), OnTimeout: p.OnTimeout, InWindowOnly: p.InWindowOnly}
	people := "one approver"
	if p.MinApprovers > 1 {
		people = fmt.Sprintf("%d different approvers", p.MinApprovers)
	}
	f.Summary = "Each gate needs " + people
	if p.Timeout > 0 {
		f.Timeout = plan.Duration(p.Timeout).String()
		what := "is rejected"
		if p.OnTimeout == store.OnTimeoutEscalate {
			what = "is escalated"
		}
		f.Summary += fmt.Sprintf("; a gate nobody answers within %s %s", f.Timeout, what)
	} else {
		f.Summary += " and waits as long as it takes"
	}
	if p.InWindowOnly {
		f.Summary += "; approvals are taken only inside the deploy window"
	}
	f.Summary += "."
	return f
}

// saveApprovals sets the environment's approval policy (admins).
func (h *governancePageHandlers) saveApprovals(c echo.Context) error {
	app, env, ok, err := h.load(c)
	if !ok {
		return err
	}
	if allowed, err := h.requireAdmin(c, app, env, "changing the approval policy"); !allowed {
		return err
	}
	form := templates.ApprovalPolicyForm{
		MinApprovers: strings.TrimSpace(c.FormValue("min_approvers")), Timeout: strings.TrimSpace(c.FormValue("timeout")),
		OnTimeout: c.FormValue("on_timeout"), InWindowOnly: c.FormValue("in_window_only") == "true",
	}
	errs := map[string]string{}
	p := store.ApprovalPolicy{EnvironmentID: env.ID, OnTimeout: form.OnTimeout, InWindowOnly: form.InWindowOnly}
	if n, err := strconv.Atoi(form.MinApprovers); err != nil {
		errs["min_approvers"] = fmt.Sprintf("%q is not a whole number of people", form.MinApprovers)
	} else {
		p.MinApprovers = n
	}
	if form.Timeout != "" {
		d, err := plan.ParseDuration(form.Timeout)
		if err != nil {
			errs["timeout"] = err.Error()
		}
		p.Timeout = time.Duration(d)
	}
	keep := func(v *templates.EnvGovernanceView) {
		form.Summary = v.Approvals.Summary
		v.Approvals = form
	}
	if len(errs) > 0 {
		return h.refuseForm(c, app, env, errs, keep)
	}
	m := memberFrom(c)
	stored, err := h.store.SetApprovalPolicy(c.Request().Context(), p, m.Actor())
	if perr, ok := errors.AsType[*store.PolicyError](err); ok {
		for _, fe := range perr.Errors {
			errs[fe.Field] = fe.Message
		}
		return h.refuseForm(c, app, env, errs, keep)
	}
	if err != nil {
		return fmt.Errorf("setting the approval policy of %s/%s: %w", app.Slug, env.Name, err)
	}
	summary := approvalPolicyForm(stored).Summary
	if _, err := h.store.RecordAudit(c.Request().Context(), auditFrom(c, store.AuditEvent{
		Actor: m.Actor(), Action: "environment.approval_policy_set", App: app.Slug, Environment: env.Name, Detail: summary,
	})); err != nil {
		return fmt.Errorf("recording the approval policy change: %w", err)
	}
	keepNotice(h.sessions, c, "Approval policy saved: "+summary)
	return c.Redirect(http.StatusSeeOther, "/apps/"+app.Slug+"/environments/"+env.Name+"/governance")
}
