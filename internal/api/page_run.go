package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// RunPageStore is what the run page and the run's live feed read.
type RunPageStore interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	AppByID(ctx context.Context, id int64) (store.App, error)
	EnvironmentByID(ctx context.Context, id int64) (store.Environment, error)
	ListRunPhases(ctx context.Context, runID int64) ([]store.RunPhase, error)
	LatestDecision(ctx context.Context, runID int64) (store.Decision, error)
	ListRunEvents(ctx context.Context, runID, afterID int64, limit int) ([]store.RunEvent, error)
	ListMetricWindows(ctx context.Context, runID int64, cohort, metric string, from, to time.Time) ([]store.MetricWindow, error)
}

// Limits of the run page.
const (
	// maxRunComment is the longest comment an action may carry, the same
	// as the REST API's.
	maxRunComment = 2000
	// runPageEvents is how many of the newest events the page shows; the
	// log grows live from there.
	runPageEvents = 300
	// runEventBatch is how many events one query reads.
	runEventBatch = 1000
	// runChartSpan is how far back the charts start: the whole run, or
	// its last three hours when it has been going longer.
	runChartSpan = 3 * time.Hour
)

type runPageHandlers struct {
	store    RunPageStore
	runs     RunService
	sessions *scs.SessionManager
	now      func() time.Time
}

// registerRunPages installs the run page and its actions.
func registerRunPages(g *echo.Group, cfg Config) {
	h := &runPageHandlers{store: cfg.Pages, runs: cfg.Runs, sessions: cfg.Sessions, now: time.Now}
	g.GET("/runs/:id", h.show)
	g.POST("/runs/:id/actions/:action", h.act)
}

// show renders GET /runs/:id.
func (h *runPageHandlers) show(c echo.Context) error {
	ctx := c.Request().Context()
	d, ok, err := h.load(c)
	if !ok || err != nil {
		return err
	}
	m := memberFrom(c)
	now := h.now()
	p := pageFor(c, fmt.Sprintf("Run %d · %s/%s", d.run.ID, d.app.Slug, d.env.Name), "")
	p.Flash = takeNotice(h.sessions, c)
	v := d.view(m.RoleOn(d.app.Slug, d.env.Name), h.runs != nil, now)
	v.Actions.CSRF = p.CSRF

	events, total, err := runLatestEvents(ctx, h.store, d.run.ID, runPageEvents)
	if err != nil {
		return err
	}
	v.Events = runEventViews(events, d, now)
	if total > len(events) {
		v.EventsNote = fmt.Sprintf("Showing the newest %d of %d events.", len(events), total)
	}
	from, to := d.chartRange(now)
	points, _, err := runPoints(ctx, h.store, d.run.ID, from, to, time.Time{})
	if err != nil {
		return err
	}
	v.Charts, v.ChartData = d.charts(points, from, now)
	return render(c, http.StatusOK, templates.RunPage(p, v))
}

// act performs POST /runs/:id/actions/:action for the signed-in member.
func (h *runPageHandlers) act(c echo.Context) error {
	ctx := c.Request().Context()
	d, ok, err := h.load(c)
	if !ok || err != nil {
		return err
	}
	m := memberFrom(c)
	action := engine.Action(c.Param("action"))
	if !slices.Contains(engine.Actions, action) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf(
			"There is no action %q; the actions on a run are %s. Nothing was changed.", action, runActionList()))
	}
	where := d.app.Slug + "/" + d.env.Name
	if h.runs == nil {
		return refusePage(c, http.StatusServiceUnavailable,
			"This Flightdeck server runs without its engine, so runs cannot be acted on here. Nothing was changed.")
	}
	need := runActionRole(action)
	if have := m.RoleOn(d.app.Slug, d.env.Name); !have.Includes(need) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are %s on %s; %s a run needs the %s role. Nothing was changed.", runRoleArticle(have), where, runActionGerund(action), need))
	}
	comment := strings.TrimSpace(c.FormValue("comment"))
	if problem := runCommentProblem(comment); problem != "" {
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("Run %d was not %s: %s Nothing was changed.", d.run.ID, runActionPast(action), problem))
	}
	if (action == engine.ActionApprove || action == engine.ActionReject) && d.env.ApproverNotStarter && d.run.CreatedBy == m.Actor() {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You started run %d, and %s needs someone other than the person who started a run to approve or reject it. Nothing was changed.", d.run.ID, where))
	}

	res, err := h.runs.Act(ctx, d.run.ID, engine.ActionRequest{Action: action, Actor: m.Actor(), Comment: comment})
	if aErr, isAction := errors.AsType[*engine.ActionError](err); isAction {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("Run %d cannot be %s while it is %s: %s. Nothing was changed.",
			d.run.ID, runActionPast(action), strings.ToLower(runStateLabel(string(aErr.State))), aErr.Detail))
	}
	if vErr, invalid := errors.AsType[*plan.ValidationError](err); invalid {
		var msgs []string
		for _, fe := range vErr.Errors {
			msgs = append(msgs, fe.Message)
		}
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("Run %d was not %s: %s. Nothing was changed.", d.run.ID, runActionPast(action), strings.Join(msgs, "; ")))
	}
	if errors.Is(err, store.ErrNotFound) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no run %d. Nothing was changed.", d.run.ID))
	}
	if err != nil {
		return fmt.Errorf("%s run %d: %w", action, d.run.ID, err)
	}

	message := runActedMessage(action, d, res)
	isHTMX := c.Request().Header.Get("HX-Request") == "true"
	if res.Created != nil {
		// A rollback of a finished run is a new run: its page is where the
		// rollback can be followed.
		keepNotice(h.sessions, c, message)
		target := fmt.Sprintf("/runs/%d", res.Created.ID)
		if isHTMX {
			c.Response().Header().Set("HX-Redirect", target)
			return c.NoContent(http.StatusOK)
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
	if !isHTMX {
		keepNotice(h.sessions, c, message)
		return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/runs/%d", d.run.ID))
	}

	fresh, err := runLoad(ctx, h.store, d.run.ID)
	if err != nil {
		return err
	}
	now := h.now()
	v := fresh.view(m.RoleOn(fresh.app.Slug, fresh.env.Name), true, now)
	token, _ := c.Get("csrf").(string)
	v.Actions.CSRF = token
	var events []store.RunEvent
	if seen, err := strconv.ParseInt(c.FormValue("seen_event"), 10, 64); err == nil && seen > 0 {
		if events, err = runEventsAfter(ctx, h.store, d.run.ID, seen, runPageEvents); err != nil {
			return err
		}
	}
	return render(c, http.StatusOK, templates.RunActionAnswer(v, runEventViews(events, fresh, now), message))
}

// load reads the run named in the path. When there is none it answers
// with a page saying so and returns ok false.
func (h *runPageHandlers) load(c echo.Context) (runData, bool, error) {
	unchanged := ""
	if c.Request().Method != http.MethodGet {
		unchanged = " Nothing was changed."
	}
	raw := c.Param("id")
	id, valid := runParseID(raw)
	if !valid {
		return runData{}, false, refusePage(c, http.StatusNotFound, fmt.Sprintf(
			"There is no run %q: runs are numbered, as in /runs/42.%s", raw, unchanged))
	}
	d, err := runLoad(c.Request().Context(), h.store, id)
	if errors.Is(err, store.ErrNotFound) {
		return runData{}, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no run %d.%s", id, unchanged))
	}
	if err != nil {
		return runData{}, false, err
	}
	return d, true, nil
}

// runParseID reads a run id from a path or topic.
func runParseID(raw string) (int64, bool) {
	id, err := strconv.ParseInt(raw, 10, 64)
	return id, err == nil && id > 0
}

// runCommentProblem says what is wrong with an action's comment, or "".
func runCommentProblem(comment string) string {
	if !utf8.ValidString(comment) {
		return "the comment is not valid text."
	}
	if n := utf8.RuneCountInString(comment); n > maxRunComment {
		return fmt.Sprintf("the comment has %d characters, and a comment can have at most %d.", n, maxRunComment)
	}
	for _, r := range comment {
		if r < ' ' && r != '\n' && r != '\r' && r != '\t' {
			return "the comment contains control characters; write plain text."
		}
	}
	return ""
}

// runActionRole is the role an action needs on the run's environment.
func runActionRole(a engine.Action) auth.Role {
	if a == engine.ActionApprove || a == engine.ActionReject {
		return auth.RoleApprover
	}
	return auth.RoleDeployer
}

// runActionList names every action, for a refusal of an unknown one.
func runActionList() string {
	names := make([]string, len(engine.Actions))
	for i, a := range engine.Actions {
		names[i] = string(a)
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// runActionGerund names an action as in "pausing a run".
func runActionGerund(a engine.Action) string {
	switch a {
	case engine.ActionPause:
		return "pausing"
	case engine.ActionResume:
		return "resuming"
	case engine.ActionPromote:
		return "promoting"
	case engine.ActionApprove:
		return "approving"
	case engine.ActionReject:
		return "rejecting"
	case engine.ActionAbort:
		return "aborting"
	}
	return "rolling back"
}

// runActionPast names an action as in "run 42 was not paused".
func runActionPast(a engine.Action) string {
	switch a {
	case engine.ActionPause:
		return "paused"
	case engine.ActionResume:
		return "resumed"
	case engine.ActionPromote:
		return "promoted"
	case engine.ActionApprove:
		return "approved"
	case engine.ActionReject:
		return "rejected"
	case engine.ActionAbort:
		return "aborted"
	}
	return "rolled back"
}

// runActedMessage says what an action did, for the flash area.
func runActedMessage(a engine.Action, d runData, res engine.ActionResult) string {
	where := d.app.Slug + "/" + d.env.Name
	stable := cmp.Or(d.run.FromVersion, "the previous version")
	switch a {
	case engine.ActionPause:
		return fmt.Sprintf("Paused run %d: traffic stays as it is until someone resumes it.", d.run.ID)
	case engine.ActionResume:
		return fmt.Sprintf("Resumed run %d: the plan goes on, and the bake does not count the time it was paused.", d.run.ID)
	case engine.ActionPromote:
		return fmt.Sprintf("Promoted run %d: the current phase ends after one last check.", d.run.ID)
	case engine.ActionApprove:
		if res.Run.State == store.RunSucceeded {
			return fmt.Sprintf("Approved run %d: it has finished and %s is the stable version of %s.", d.run.ID, d.run.ToVersion, where)
		}
		return fmt.Sprintf("Approved run %d: the next phase starts now.", d.run.ID)
	case engine.ActionReject:
		return fmt.Sprintf("Rejected run %d: %s is returning to %s.", d.run.ID, where, stable)
	case engine.ActionAbort:
		if d.run.State == store.RunPending {
			return fmt.Sprintf("Aborted run %d before it started.", d.run.ID)
		}
		return fmt.Sprintf("Aborting run %d: %s is returning to %s.", d.run.ID, where, stable)
	}
	if res.Created != nil {
		return fmt.Sprintf("Started run %d to roll %s back from %s to %s.", res.Created.ID, where, d.run.ToVersion, res.Created.ToVersion)
	}
	return fmt.Sprintf("Rolling back run %d: %s is returning to %s.", d.run.ID, where, stable)
}

// runData is what the run page is built from.
type runData struct {
	run  store.Run
	app  store.App
	env  store.Environment
	plan plan.Plan
	// preview is true when the plan was compiled for the page because the
	// run has not started; planErr says why there is no plan.
	preview    bool
	planErr    error
	phases     map[int]store.RunPhase
	decision   *store.Decision
	record     analysis.Decision
	thresholds analysis.Thresholds
}

// runLoad reads a run with its app, environment, phases and latest
// decision: five queries.
func runLoad(ctx context.Context, st RunPageStore, id int64) (runData, error) {
	var d runData
	var err error
	if d.run, err = st.Run(ctx, id); err != nil {
		return d, err
	}
	if d.app, err = st.AppByID(ctx, d.run.AppID); err != nil {
		return d, fmt.Errorf("reading the app of run %d: %w", id, err)
	}
	if d.env, err = st.EnvironmentByID(ctx, d.run.EnvironmentID); err != nil {
		return d, fmt.Errorf("reading the environment of run %d: %w", id, err)
	}
	phases, err := st.ListRunPhases(ctx, id)
	if err != nil {
		return d, fmt.Errorf("reading the phases of run %d: %w", id, err)
	}
	d.phases = make(map[int]store.RunPhase, len(phases))
	for _, ph := range phases {
		d.phases[ph.Index] = ph
	}
	switch dec, err := st.LatestDecision(ctx, id); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return d, fmt.Errorf("reading the latest decision of run %d: %w", id, err)
	default:
		d.decision = &dec
		// A record another analyzer wrote may not have every field; what
		// is there is shown.
		_ = json.Unmarshal(dec.Record, &d.record)
	}
	if len(d.run.Plan) > 0 && string(d.run.Plan) != "null" {
		if err := json.Unmarshal(d.run.Plan, &d.plan); err != nil {
			d.planErr = fmt.Errorf("the stored plan cannot be read: %w", err)
		}
	} else if d.run.State == store.RunPending {
		d.preview = true
		d.plan, d.planErr = engine.BuildPlan(d.run.Strategy, d.run.Params, d.env, d.env.StableVersion, d.run.ToVersion)
	}
	d.thresholds = analysis.DefaultThresholds()
	if overrides, err := analysis.RunThresholds(d.run.Params); err == nil {
		if th, err := analysis.ParseThresholds("thresholds", d.env.Thresholds, overrides); err == nil {
			d.thresholds = th
		}
	}
	return d, nil
}

// current is the phase the run is at, if the plan has it.
func (d runData) current() (plan.Phase, bool) {
	if d.run.PhaseIndex < 0 || d.run.PhaseIndex >= len(d.plan.Phases) {
		return plan.Phase{}, false
	}
	return d.plan.Phases[d.run.PhaseIndex], true
}

// view words everything the page shows for a viewer with the role.
func (d runData) view(role auth.Role, canAct bool, now time.Time) templates.RunView {
	r := d.run
	v := templates.RunView{
		ID: r.ID, App: d.app.Slug, AppName: cmp.Or(d.app.Name, d.app.Slug), Environment: d.env.Name, Tier: d.env.Tier,
		FromVersion: r.FromVersion, ToVersion: r.ToVersion, Strategy: runStrategyLabel(r.Strategy),
		State: string(r.State), StateLabel: runStateLabel(string(r.State)),
		CreatedBy: r.CreatedBy, Created: templates.NewRunTime(r.CreatedAt, now),
		LiveURL: fmt.Sprintf("/ws/runs/%d", r.ID),
	}
	v.Summary = d.summary()
	if r.Reason != "" && !strings.Contains(v.Summary, r.Reason) {
		v.Reason = runSentence(r.Reason)
	}
	if r.StartedAt != nil {
		t := templates.NewRunTime(*r.StartedAt, now)
		v.Started = &t
	}
	if r.FinishedAt != nil {
		t := templates.NewRunTime(*r.FinishedAt, now)
		v.Finished = &t
	}
	v.Timeline = d.timeline(now)
	v.Traffic = d.traffic()
	v.Decision = d.decisionView(now)
	v.Impact = d.impact()
	v.Actions = d.actions(role, canAct)
	return v
}

// runStateLabel words a run state.
func runStateLabel(state string) string {
	switch store.RunState(state) {
	case store.RunPending:
		return "Pending"
	case store.RunRunning:
		return "Running"
	case store.RunAwaitingApproval:
		return "Awaiting approval"
	case store.RunPaused:
		return "Paused"
	case store.RunRollingBack:
		return "Rolling back"
	case store.RunSucceeded:
		return "Succeeded"
	case store.RunRolledBack:
		return "Rolled back"
	case store.RunAborted:
		return "Aborted"
	case store.RunFailed:
		return "Failed"
	}
	return state
}

// runStrategyLabel names a strategy as the strategy table does.
func runStrategyLabel(s string) string {
	if info := plan.Describe(plan.Strategy(s)); info.Title != "" {
		return info.Title
	}
	return s
}

// runSentence makes a reason read as a sentence.
// trimLabel drops a label a reason already starts with, so that the event
// log does not say "Rolled back: Rolled back: …".
func trimLabel(reason, label string) string {
	if rest, ok := strings.CutPrefix(reason, label); ok {
		return strings.TrimSpace(rest)
	}
	return reason
}

func runSentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	s = strings.ToUpper(string(r)) + s[size:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}

// summary says in a sentence where the run is.
func (d runData) summary() string {
	r := d.run
	n := len(d.plan.Phases)
	ph, ok := d.current()
	at := ""
	if ok {
		at = fmt.Sprintf("phase %d of %d (%s)", r.PhaseIndex+1, n, ph.Name)
	}
	switch r.State {
	case store.RunPending:
		if r.Reason != "" {
			return runSentence("Waiting to start: " + r.Reason)
		}
		return "Waiting for the engine to start it."
	case store.RunRunning:
		if !ok {
			return "Running."
		}
		return fmt.Sprintf("In %s; %s of users are on %s.", at, templates.Share(ph.ExposedShare), r.ToVersion)
	case store.RunAwaitingApproval:
		if ok && ph.ManualPromote {
			return fmt.Sprintf("Finished %s and waits for a person to promote %s or close the run.", at, r.ToVersion)
		}
		if ok && r.PhaseIndex+1 < n {
			return fmt.Sprintf("Baked %s and waits for an approver before %s.", at, d.plan.Phases[r.PhaseIndex+1].Name)
		}
		return "Waits for an approver."
	case store.RunPaused:
		return fmt.Sprintf("Paused in %s; traffic stays as it is until someone resumes the run.", cmp.Or(at, "its current phase"))
	case store.RunRollingBack:
		return fmt.Sprintf("Rolling back: returning users to %s.", cmp.Or(r.FromVersion, "where they were before the run"))
	case store.RunSucceeded:
		if !runReleases(d.plan.Strategy) {
			return fmt.Sprintf("Finished with its report; users stayed on %s.", cmp.Or(r.FromVersion, "the stable version"))
		}
		return fmt.Sprintf("%s serves everyone in %s.", r.ToVersion, d.env.Name)
	case store.RunRolledBack:
		if r.FromVersion == "" {
			return "Rolled back: the new version was stopped."
		}
		return fmt.Sprintf("Rolled back: %s serves everyone again.", r.FromVersion)
	case store.RunAborted:
		if r.StartedAt == nil {
			return "Aborted before it started."
		}
		return fmt.Sprintf("Aborted: %s serves everyone again.", cmp.Or(r.FromVersion, "the previous state"))
	case store.RunFailed:
		return "Failed."
	}
	return ""
}

// runReleases reports whether a successful run of the strategy makes its
// version the stable one; shadow and A/B runs end in a report instead.
func runReleases(s plan.Strategy) bool {
	return s != plan.Shadow && s != plan.ABTest
}

// runWeights words a desired state's traffic weights.
func runWeights(s plan.DesiredState) string {
	var parts []string
	total := 0
	for _, vs := range s.Versions {
		total += vs.Weight
		if vs.Weight > 0 {
			parts = append(parts, fmt.Sprintf("%s %d%%", vs.Role, vs.Weight))
		}
	}
	if total == 0 {
		return "no traffic served"
	}
	if s.Mirror != nil {
		parts = append(parts, fmt.Sprintf("%d%% mirrored", s.Mirror.Percent))
	}
	return strings.Join(parts, " · ")
}

// runExposed words a phase's exposed share.
func runExposed(share float64) string {
	switch {
	case share <= 0:
		return "no users exposed"
	case share >= 1:
		return "all users exposed"
	}
	return templates.Share(share) + " of users exposed"
}

// runPhaseStatusLabel words a phase status.
func runPhaseStatusLabel(s store.PhaseStatus) string {
	switch s {
	case store.PhasePending:
		return "pending"
	case store.PhaseApplying:
		return "applying"
	case store.PhaseBaking:
		return "baking"
	case store.PhaseAwaitingApproval:
		return "awaiting approval"
	case store.PhaseSucceeded:
		return "done"
	case store.PhaseFailed:
		return "failed"
	case store.PhaseSkipped:
		return "skipped"
	case store.PhaseRolledBack:
		return "rolled back"
	}
	return string(s)
}

// timeline is the plan with each phase's progress.
func (d runData) timeline(now time.Time) templates.RunTimeline {
	r := d.run
	var t templates.RunTimeline
	switch {
	case d.planErr != nil && d.preview:
		t.Note = "The plan cannot be compiled with the environment's settings: " + d.planErr.Error()
		return t
	case d.planErr != nil:
		t.Note = runSentence(d.planErr.Error())
		return t
	case d.preview:
		t.Note = "The run has not started: this is the plan it would follow now. It is compiled again when the run starts."
	}
	active := r.State.Active()
	for i, ph := range d.plan.Phases {
		row, stored := d.phases[i]
		status := store.PhasePending
		if stored {
			status = row.Status
		}
		pv := templates.RunPhaseView{
			Index: i, Name: ph.Name, Kind: ph.Kind, Status: string(status), StatusLabel: runPhaseStatusLabel(status),
			Current: active && i == r.PhaseIndex,
			Weights: runWeights(ph.Desired), Exposed: runExposed(ph.ExposedShare),
			Bake: "no bake",
		}
		if ph.Bake > 0 {
			pv.Bake = "bake " + ph.Bake.String()
		}
		switch {
		case ph.ApprovalRequired:
			pv.Gate = "approval"
		case ph.ManualPromote:
			pv.Gate = "a person's decision"
		}
		if stored && row.StartedAt != nil {
			st := templates.NewRunTime(*row.StartedAt, now)
			pv.Started = &st
		}
		if stored && row.FinishedAt != nil {
			ft := templates.NewRunTime(*row.FinishedAt, now)
			pv.Finished = &ft
		}
		if pv.Current {
			d.describeCurrent(&pv, ph, status, now)
		}
		t.Phases = append(t.Phases, pv)
	}
	return t
}

// describeCurrent adds the bake countdown and what the current phase waits
// for.
func (d runData) describeCurrent(pv *templates.RunPhaseView, ph plan.Phase, status store.PhaseStatus, now time.Time) {
	r := d.run
	bake := time.Duration(ph.Bake) + r.BakeExtension
	if r.BakeExtension > 0 {
		pv.Bake = fmt.Sprintf("bake %s + %s (monitoring longer, %d×)", ph.Bake, templates.RunDuration(r.BakeExtension), r.Extensions)
	}
	var end time.Time
	if r.PhaseStartedAt != nil {
		end = r.PhaseStartedAt.Add(bake)
	}
	switch {
	case r.State == store.RunPaused && r.PausedAt != nil && !end.IsZero() && end.After(*r.PausedAt):
		pv.Note = fmt.Sprintf("Paused with %s of the bake left.", templates.RunDuration(end.Sub(*r.PausedAt)))
	case r.State == store.RunPaused:
		pv.Note = "Paused."
	case r.State == store.RunRollingBack:
		pv.Note = "Rolling back from this phase."
	case status == store.PhaseApplying || r.AppliedGeneration < r.Generation:
		pv.Note = "The driver is applying this phase's state; the bake starts once it is confirmed."
	case r.State == store.RunAwaitingApproval && ph.ManualPromote:
		pv.Note = "Done; waiting for a person to promote the candidate or close the run."
	case r.State == store.RunAwaitingApproval:
		pv.Note = "Baked and healthy; waiting for an approver."
	case r.State == store.RunRunning && !end.IsZero() && bake > 0 && end.After(now):
		pv.CountdownTo = end.UTC().Format(time.RFC3339)
		pv.Remaining = templates.RunDuration(end.Sub(now))
	case r.State == store.RunRunning && bake > 0:
		pv.Note = "The bake is complete; the next check decides how the run goes on."
	}
	if ph.Analysis && pv.Note == "" {
		if ph.Baseline != "" {
			pv.Note = fmt.Sprintf("Judged against %s throughout the bake.", runBaselineLabel(ph.Baseline, r.FromVersion))
		} else {
			pv.Note = "Judged on its own health throughout the bake, as no other version serves users to compare with."
		}
	}
}

// runBaselineLabel words a phase's baseline cohort.
func runBaselineLabel(baseline, from string) string {
	name := map[string]string{plan.BaselineStable: "stable", plan.BaselineBlue: "blue", plan.BaselinePrimary: "the primary", plan.BaselineArmA: "arm A"}[baseline]
	if name == "" {
		name = baseline
	}
	if from != "" {
		return name + " (" + from + ")"
	}
	return name
}

// runDesired is the desired state the run asked its driver for last.
func (d runData) runDesired() (plan.DesiredState, bool) {
	var s plan.DesiredState
	raw := strings.TrimSpace(string(d.run.Desired))
	if raw == "" || raw == "null" || raw == "{}" {
		return s, false
	}
	if err := json.Unmarshal(d.run.Desired, &s); err != nil || len(s.Versions) == 0 {
		return s, false
	}
	return s, true
}

// traffic is who serves users now, from the run's last desired state.
func (d runData) traffic() templates.RunTraffic {
	r := d.run
	t := templates.RunTraffic{StableVersion: cmp.Or(r.FromVersion, "none"), CandidateVersion: r.ToVersion}
	s, ok := d.runDesired()
	if !ok {
		if r.FromVersion == "" {
			t.Note = "Nothing serves users yet: this is the first deploy to " + d.env.Name + "."
			return t
		}
		t.Serving, t.StablePercent = true, 100
		t.Note = "No traffic has moved: " + r.FromVersion + " serves everyone."
		return t
	}
	var stable, candidate, weight int
	for _, vs := range s.Versions {
		weight += vs.Weight
		switch vs.Role {
		case plan.RoleCandidate:
			t.CandidatePercent += vs.Weight
			candidate += vs.Instances
		default:
			t.StablePercent += vs.Weight
			stable += vs.Instances
		}
	}
	t.Serving = weight > 0
	if !t.Serving {
		t.Note = "No version serves users in this step; the plan expects this downtime."
	}
	t.Instances = fmt.Sprintf("%s of %s · %s of %s", runInstances(stable), cmp.Or(r.FromVersion, "the old version"), runInstances(candidate), r.ToVersion)
	if m := s.Mirror; m != nil {
		t.Mirror = fmt.Sprintf("A copy of %d%% of the requests to %s is mirrored to %s; users only see %s's answers.", m.Percent, m.From, m.To, m.From)
	}
	for _, c := range s.Cohorts {
		t.Cohorts = append(t.Cohorts, fmt.Sprintf("%s: %s → %s", strings.ReplaceAll(c.Name, "_", " "), runMatch(c.Match), c.Version))
	}
	if r.State.Active() && r.AppliedGeneration < r.Generation {
		t.Note = "The driver is moving traffic to this split now."
	}
	return t
}

func runInstances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return strconv.Itoa(n) + " instances"
}

// runMatch words a cohort rule's match.
func runMatch(m plan.Match) string {
	switch m.Kind {
	case plan.MatchHeader:
		return fmt.Sprintf("header %s is %s", m.Key, strings.Join(m.Values, " or "))
	case plan.MatchCookie:
		return fmt.Sprintf("cookie %s is %s", m.Key, strings.Join(m.Values, " or "))
	case plan.MatchHash:
		return fmt.Sprintf("%d%% of users by %s", m.Percent, m.Key)
	}
	return "everyone else"
}

// decisionView words the latest decision and the branch it took.
func (d runData) decisionView(now time.Time) *templates.RunDecision {
	if d.decision == nil {
		return nil
	}
	dec, rec := d.decision, d.record
	th := rec.Thresholds
	if th.Window == 0 {
		th = d.thresholds
	}
	out := &templates.RunDecision{
		Verdict: dec.Verdict, VerdictLabel: runVerdictLabel(dec.Verdict),
		Explanation: dec.Explanation, At: templates.NewRunTime(dec.At, now),
		WarmupLabel:   fmt.Sprintf("first %s after a traffic change", th.Warmup),
		ExposureLabel: fmt.Sprintf("Affecting > %s of users?", templates.Share(th.ExposureLimit)),
		Errors:        rec.Errors,
	}
	if dec.PhaseIndex >= 0 && dec.PhaseIndex < len(d.plan.Phases) {
		out.Phase = fmt.Sprintf("phase %d, %s", dec.PhaseIndex+1, d.plan.Phases[dec.PhaseIndex].Name)
	}
	out.Lit, out.Ended = runDecisionPath(engine.Verdict(dec.Verdict), rec.Path)
	for _, m := range rec.Metrics {
		out.Metrics = append(out.Metrics, runMetricRow(m))
	}
	if n := len(rec.Trend.Differences); n > 0 {
		diffs := make([]string, n)
		for i, x := range rec.Trend.Differences {
			diffs[i] = fmt.Sprintf("%+.2f pp", 100*x)
		}
		trend := "not getting worse"
		if rec.Trend.Worsening {
			trend = "getting worse"
		}
		out.Trend = fmt.Sprintf("Candidate error rate above the baseline over the last %d windows: %s (%s).", n, strings.Join(diffs, ", "), trend)
	}
	return out
}

// runVerdictLabel words a verdict.
func runVerdictLabel(v string) string {
	switch engine.Verdict(v) {
	case engine.VerdictWarmingUp:
		return "Warming up"
	case engine.VerdictContinue:
		return "Continue"
	case engine.VerdictMonitorLonger:
		return "Monitor longer"
	case engine.VerdictRollback:
		return "Roll back"
	case engine.VerdictInconclusive:
		return "Inconclusive"
	}
	return v
}

// runDecisionPath is the branch of the 5-minute framework a decision took:
// the nodes and edges to light, and the node where it ended.
func runDecisionPath(v engine.Verdict, p analysis.Path) (map[string]bool, string) {
	lit := map[string]bool{"warm_up": true}
	on := func(names ...string) {
		for _, n := range names {
			lit[n] = true
		}
	}
	switch {
	case p.FastFail:
		on("warm_up-fast_fail", "fast_fail", "fast_fail-rollback", "rollback")
		return lit, "rollback"
	case v == engine.VerdictWarmingUp:
		return lit, "warm_up"
	case p.Inconclusive || v == engine.VerdictInconclusive:
		on("warm_up-inconclusive", "inconclusive")
		return lit, "inconclusive"
	case p.Degraded && p.ExposureOverLimit:
		on("warm_up-degraded", "degraded", "degraded-exposure", "exposure", "exposure-rollback", "rollback")
		return lit, "rollback"
	case p.Degraded && p.Worsening:
		on("warm_up-degraded", "degraded", "degraded-worsening", "worsening", "worsening-rollback", "rollback")
		return lit, "rollback"
	case p.Degraded || v == engine.VerdictMonitorLonger:
		on("warm_up-degraded", "degraded", "degraded-stable", "stable", "stable-monitor_longer", "monitor_longer")
		return lit, "monitor_longer"
	case v == engine.VerdictRollback:
		// A verdict without the record of its branch: only its end is known.
		on("warm_up-degraded", "degraded", "rollback")
		return lit, "rollback"
	case v == engine.VerdictContinue:
		on("warm_up-degraded", "degraded", "degraded-continue", "continue")
		return lit, "continue"
	}
	return lit, ""
}

// runMetricLabel names a metric of a decision.
func runMetricLabel(name string) string {
	switch name {
	case analysis.MetricErrorRate:
		return "error rate"
	case "latency_p99":
		return "p99 latency"
	case "latency_p95":
		return "p95 latency"
	case "latency_p50":
		return "p50 latency"
	case analysis.MetricHealthChecks:
		return "failed health checks"
	case analysis.MetricCPU:
		return "CPU"
	case analysis.MetricMemory:
		return "memory"
	case "error_signatures":
		return "new error signatures"
	}
	return strings.ReplaceAll(name, "_", " ")
}

// runMetricRow words one metric of a decision.
func runMetricRow(m analysis.MetricResult) templates.RunMetricRow {
	row := templates.RunMetricRow{Name: runMetricLabel(m.Metric), Detail: m.Detail, Baseline: "—", Delta: "—"}
	hasBaseline := m.BaselineN > 0
	value := func(x float64) string {
		switch m.Unit {
		case "ratio":
			return templates.Rate(x)
		case "ms":
			return strconv.FormatFloat(x, 'f', 0, 64) + " ms"
		}
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	row.Candidate = value(m.Candidate)
	if hasBaseline {
		row.Baseline = value(m.Baseline)
		switch m.Unit {
		case "ratio":
			row.Delta = fmt.Sprintf("%+.2f pp", 100*m.Delta)
		case "ms":
			row.Delta = fmt.Sprintf("%+.0f ms", m.Delta)
		default:
			row.Delta = fmt.Sprintf("%+.0f", m.Delta)
		}
	}
	row.Threshold = "≤ " + value(m.Threshold)
	if m.Outcome == analysis.OutcomeNoData {
		row.Candidate, row.Threshold = "—", "—"
	}
	row.Samples = templates.Count(m.CandidateN)
	if hasBaseline {
		row.Samples += " / " + templates.Count(m.BaselineN)
	}
	if m.Confidence > 0 {
		row.Confidence = templates.Share(m.Confidence)
	} else {
		row.Confidence = "—"
	}
	switch m.Outcome {
	case analysis.OutcomeOK:
		row.Outcome, row.Tone = "ok", "ok"
	case analysis.OutcomeDegraded:
		row.Outcome, row.Tone = "degraded", "bad"
	case analysis.OutcomeInsufficient:
		row.Outcome, row.Tone = "too little data", "warn"
	case analysis.OutcomeNoData:
		row.Outcome, row.Tone = "no data", "warn"
	default:
		row.Outcome = strings.ReplaceAll(m.Outcome, "_", " ")
	}
	return row
}

// impact is what the run means for users and the fleet now.
func (d runData) impact() templates.RunImpact {
	r := d.run
	var im templates.RunImpact
	ph, ok := d.current()
	switch {
	case r.State == store.RunSucceeded && runReleases(d.plan.Strategy):
		im.Exposed, im.ExposedNote = "100%", r.ToVersion+" is the stable version now."
	case r.State.Terminal():
		im.Exposed, im.ExposedNote = "0%", "Users are on "+cmp.Or(r.FromVersion, "no version of the run")+"."
	case r.State == store.RunPending:
		im.Exposed, im.ExposedNote = "0%", "No user sees "+r.ToVersion+" until the run starts."
	case r.State == store.RunRollingBack:
		t := d.traffic()
		im.Exposed = strconv.Itoa(t.CandidatePercent) + "%"
		im.ExposedNote = "once the rollback is applied; users are returning to " + cmp.Or(r.FromVersion, "where they were") + "."
	case ok:
		im.Exposed = templates.Share(ph.ExposedShare)
		im.ExposedNote = "of users are served " + r.ToVersion + " in " + ph.Name + "."
		if ph.ExposedShare == 0 && ph.Desired.Mirror != nil {
			im.ExposedNote = "Users only see " + r.FromVersion + "; " + r.ToVersion + " gets mirrored copies of requests."
		}
	default:
		im.Exposed = "unknown"
	}
	im.RollbackTime, im.RollbackNote = d.rollbackEstimate()
	if d.planErr == nil && len(d.plan.Phases) > 0 {
		fleet := engine.Instances(d.env)
		if d.plan.ExtraInfraShare > 0 {
			im.ExtraInfra = "+" + templates.Share(d.plan.ExtraInfraShare)
			im.ExtraInfraNote = fmt.Sprintf("up to %s beside the fleet of %d while the run is active.",
				runInstances(int(math.Round(d.plan.ExtraInfraShare*float64(fleet)))), fleet)
		} else {
			im.ExtraInfra = "none"
			im.ExtraInfraNote = fmt.Sprintf("the run stays within the fleet of %d instances.", fleet)
		}
		if d.plan.Downtime {
			im.Downtime = "Expected: a phase of this plan has no version serving users."
		}
	} else {
		im.ExtraInfra = "unknown"
	}
	return im
}

// rollbackEstimate says how long a rollback would take now, and how that
// is known. The plan estimates its own rollback from what it must do (move
// traffic, start instances); when the old version has been scaled down
// since, starting it again comes first and takes longer.
func (d runData) rollbackEstimate() (string, string) {
	r := d.run
	rb := d.plan.Rollback
	switch {
	case r.State == store.RunRollingBack:
		return "in progress", runSentence(rb.Description)
	case r.State == store.RunSucceeded && r.FromVersion == "":
		return "not possible", "This was the first deploy; there is no earlier version to return to."
	case r.State == store.RunSucceeded && d.env.StableVersion != r.ToVersion:
		return "not possible", fmt.Sprintf("%s is no longer the stable version of %s.", r.ToVersion, d.env.Name)
	case r.State == store.RunSucceeded:
		return "a new run", fmt.Sprintf("The run has finished, so rolling back starts a new blue-green run: %s starts beside %s and takes all traffic at once once it is ready.", r.FromVersion, r.ToVersion)
	case r.State.Terminal():
		return "not needed", "Nothing of this run serves users."
	case d.planErr != nil || len(rb.Steps) == 0:
		return "unknown", "The plan is not available."
	}
	estimate := "about " + templates.RunDuration(time.Duration(rb.ExpectedDuration))
	note := runSentence(rb.Description) + " The plan estimates this from what the rollback must do: moving traffic takes seconds, starting instances takes longer."
	last := rb.Steps[len(rb.Steps)-1]
	need := 0
	for _, vs := range last.Versions {
		if vs.Role == plan.RoleStable {
			need += vs.Instances
		}
	}
	current, ok := d.runDesired()
	if !ok {
		if ph, has := d.current(); has {
			current = ph.Desired
		}
	}
	have := 0
	for _, vs := range current.Versions {
		if vs.Role == plan.RoleStable {
			have += vs.Instances
		}
	}
	switch {
	case r.State == store.RunPending:
		note += " Once the run starts, that is."
	case have >= need && need > 0:
		note += fmt.Sprintf(" %s still runs all %d instances it needs, so only traffic moves.", r.FromVersion, need)
	case need > 0 && runTrafficOnlyRollback(d.plan.Strategy):
		// The plan's estimate assumed the old version still at full
		// size, which it no longer is.
		estimate = "more than " + templates.RunDuration(time.Duration(rb.ExpectedDuration))
		note += fmt.Sprintf(" %s runs %d of the %d instances it needs now, so the rollback first waits for %d to start.", r.FromVersion, have, need, need-have)
	case need > 0:
		note += fmt.Sprintf(" %s runs %d of the %d instances it needs now; the estimate includes starting the rest.", r.FromVersion, have, need)
	}
	return estimate, note
}

// runTrafficOnlyRollback reports whether the strategy's plan estimates its
// rollback as a traffic move alone, because its old version normally stays
// at full size while the run is active.
func runTrafficOnlyRollback(s plan.Strategy) bool {
	switch s {
	case plan.Canary, plan.BlueGreen, plan.Shadow, plan.ABTest:
		return true
	}
	return false
}

// actions are the buttons the viewer's role allows in the run's state.
func (d runData) actions(role auth.Role, canAct bool) templates.RunActions {
	r := d.run
	a := templates.RunActions{RunID: r.ID, Role: string(role)}
	where := d.app.Slug + "/" + d.env.Name
	if !canAct {
		a.Note = "Actions are unavailable: this Flightdeck server runs without its engine."
		return a
	}
	back := cmp.Or(r.FromVersion, "where it was before the run")
	ph, hasPhase := d.current()
	var valid []templates.RunAction
	add := func(name, label, hint, class, confirm string) {
		valid = append(valid, templates.RunAction{Name: name, Label: label, Hint: hint, Class: class, Confirm: confirm})
	}
	abortConfirm := fmt.Sprintf("Abort run %d and return %s to %s?", r.ID, where, back)
	rollbackConfirm := fmt.Sprintf("Roll back %s to %s?", where, back)
	switch r.State {
	case store.RunPending:
		add("abort", "Abort", "Cancel the run before it starts.", "danger", fmt.Sprintf("Abort run %d before it starts?", r.ID))
	case store.RunRunning:
		add("pause", "Pause", "Hold the run where it is; traffic stays as it is now.", "", "")
		if r.AppliedGeneration >= r.Generation {
			add("promote", "Promote", "End this phase's bake now; it is judged once more before the next phase.", "", "")
		}
		add("abort", "Abort", "Stop the run and return users to "+back+".", "danger", abortConfirm)
		add("rollback", "Roll back", "Return users to "+back+" now.", "danger", rollbackConfirm)
	case store.RunAwaitingApproval:
		if hasPhase && ph.ManualPromote {
			add("promote", "Promote", "Accept the findings and finish the run.", "primary", "")
		} else {
			label := "Approve"
			if r.PhaseIndex+1 < len(d.plan.Phases) {
				label = "Approve " + d.plan.Phases[r.PhaseIndex+1].Name
			}
			add("approve", label, "Let the run go on to its next phase.", "primary", "")
			add("reject", "Reject", "Refuse the next phase and return users to "+back+".", "danger",
				fmt.Sprintf("Reject %s on %s and roll back to %s?", r.ToVersion, where, back))
		}
		add("pause", "Pause", "Hold the run; it keeps waiting after it resumes.", "", "")
		add("abort", "Abort", "Stop the run and return users to "+back+".", "danger", abortConfirm)
	case store.RunPaused:
		add("resume", "Resume", "Go on with the plan; the bake does not count the time paused.", "primary", "")
		add("abort", "Abort", "Stop the run and return users to "+back+".", "danger", abortConfirm)
		add("rollback", "Roll back", "Return users to "+back+" now.", "danger", rollbackConfirm)
	case store.RunSucceeded:
		if r.FromVersion != "" && d.env.StableVersion == r.ToVersion && runReleases(d.plan.Strategy) {
			add("rollback", "Roll back to "+r.FromVersion, "Start a new run that returns "+where+" to "+r.FromVersion+".", "danger",
				fmt.Sprintf("Roll back %s from %s to %s? This starts a new run.", where, r.ToVersion, r.FromVersion))
		}
	}
	var missing []auth.Role
	for _, b := range valid {
		need := runActionRole(engine.Action(b.Name))
		if role.Includes(need) {
			a.Buttons = append(a.Buttons, b)
			a.Comment = a.Comment || need == auth.RoleApprover
		} else if !slices.Contains(missing, need) {
			missing = append(missing, need)
		}
	}
	switch {
	case len(missing) > 0 && len(a.Buttons) == 0:
		a.Note = fmt.Sprintf("You are %s on %s, so you can follow this run; acting on it needs the %s role.", runRoleArticle(role), where, runRoleList(missing))
	case len(missing) > 0:
		a.Note = fmt.Sprintf("Some actions need the %s role on %s.", runRoleList(missing), where)
	case len(valid) == 0 && r.State == store.RunRollingBack:
		a.Note = "The run is returning users to " + back + "; a rollback is not stopped halfway."
	case len(valid) == 0 && r.State.Terminal():
		a.Note = "The run has finished; there is nothing to do on it."
	}
	if r.State == store.RunAwaitingApproval && d.env.ApproverNotStarter && role.Includes(auth.RoleApprover) {
		a.Note = strings.TrimSpace(a.Note + fmt.Sprintf(" %s needs someone other than %s, who started the run, to approve or reject it.", where, r.CreatedBy))
	}
	return a
}

func runRoleList(roles []auth.Role) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, " or ")
}

// runEventsAfter reads up to limit events after the id, oldest first.
func runEventsAfter(ctx context.Context, st RunPageStore, runID, after int64, limit int) ([]store.RunEvent, error) {
	var out []store.RunEvent
	for len(out) < limit {
		want := min(runEventBatch, limit-len(out))
		batch, err := st.ListRunEvents(ctx, runID, after, want)
		if err != nil {
			return nil, fmt.Errorf("reading the events of run %d: %w", runID, err)
		}
		out = append(out, batch...)
		if len(batch) < want {
			break
		}
		after = batch[len(batch)-1].ID
	}
	return out, nil
}

// runLatestEvents reads the newest n events of a run, oldest first, and
// how many the run has.
func runLatestEvents(ctx context.Context, st RunPageStore, runID int64, n int) ([]store.RunEvent, int, error) {
	var kept []store.RunEvent
	total := 0
	var after int64
	for {
		batch, err := st.ListRunEvents(ctx, runID, after, runEventBatch)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the events of run %d: %w", runID, err)
		}
		total += len(batch)
		kept = append(kept, batch...)
		if len(kept) > n {
			kept = append([]store.RunEvent(nil), kept[len(kept)-n:]...)
		}
		if len(batch) < runEventBatch {
			return kept, total, nil
		}
		after = batch[len(batch)-1].ID
	}
}

// runEventViews words events for the log.
func runEventViews(events []store.RunEvent, d runData, now time.Time) []templates.RunEventView {
	out := make([]templates.RunEventView, len(events))
	for i, e := range events {
		text, tone := runEventText(e, d)
		out[i] = templates.RunEventView{ID: e.ID, At: templates.NewRunTime(e.At, now), Type: e.Type, Actor: e.Actor, Text: text, Tone: tone}
	}
	return out
}

// runEventText says what an event means, and how it should be coloured.
func runEventText(e store.RunEvent, d runData) (string, string) {
	var p struct {
		Phase       *int   `json:"phase"`
		Name        string `json:"name"`
		Reason      string `json:"reason"`
		Explanation string `json:"explanation"`
		Verdict     string `json:"verdict"`
		Comment     string `json:"comment"`
		Error       string `json:"error"`
		FromVersion string `json:"from_version"`
		ToVersion   string `json:"to_version"`
		Strategy    string `json:"strategy"`
		Step        int    `json:"step"`
		Of          int    `json:"of"`
		Attempt     int    `json:"attempt"`
		RollbackRun int64  `json:"rollback_run"`
		ToPhase     *int   `json:"to_phase"`
		Summary     string `json:"summary"`
		Output      string `json:"output"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	phase := ""
	if p.Phase != nil {
		phase = fmt.Sprintf("phase %d", *p.Phase+1)
		if p.Name == "" && *p.Phase >= 0 && *p.Phase < len(d.plan.Phases) {
			p.Name = d.plan.Phases[*p.Phase].Name
		}
		if p.Name != "" {
			phase += " (" + p.Name + ")"
		}
	}
	withComment := func(s string) string {
		if p.Comment != "" {
			return s + ": “" + p.Comment + "”"
		}
		return s + "."
	}
	switch e.Type {
	case "run.created":
		from := cmp.Or(p.FromVersion, "nothing")
		return fmt.Sprintf("Run created to deploy %s over %s with %s.", cmp.Or(p.ToVersion, d.run.ToVersion), from, runStrategyLabel(cmp.Or(p.Strategy, d.run.Strategy))), ""
	case "run.queued":
		return runSentence(cmp.Or(p.Reason, "queued")), "warn"
	case "run.started":
		return "Run started.", ""
	case "phase.applied":
		return runSentence(cmp.Or(phase, "the phase") + " applied; its bake starts"), ""
	case "phase.started":
		return runSentence(cmp.Or(phase, "the next phase") + " started"), ""
	case "phase.awaiting_approval":
		return runSentence(cmp.Or(phase, "the phase")+" baked; waiting for approval") + runEventSuffix(p.Explanation), "warn"
	case "run.approved":
		return withComment("Approved " + phase), "ok"
	case "run.rejected":
		return withComment("Rejected " + phase), "bad"
	case "run.paused":
		return withComment("Paused"), "warn"
	case "run.resumed":
		return withComment("Resumed"), ""
	case "run.promoted":
		if p.ToPhase != nil {
			return withComment(fmt.Sprintf("Promoted to phase %d", *p.ToPhase+1)), ""
		}
		return withComment("Promoted " + phase), ""
	case "run.aborted":
		return withComment("Aborted"), "bad"
	case "run.rolling_back":
		return runSentence("Rolling back: " + trimLabel(cmp.Or(p.Reason, "requested"), "Rolled back:")), "bad"
	case "rollback.step_applied":
		return fmt.Sprintf("Rollback step %d of %d applied.", p.Step, p.Of), "bad"
	case "run.rolled_back":
		return runSentence("Rolled back: " + trimLabel(cmp.Or(p.Reason, "users are back on "+cmp.Or(d.run.FromVersion, "the previous state")), "Rolled back:")), "bad"
	case "run.succeeded":
		return "Run succeeded.", "ok"
	case "run.failed":
		return runSentence("Failed: " + cmp.Or(p.Reason, "see the reason above")), "bad"
	case "run.rollback_requested":
		return withComment(fmt.Sprintf("Rollback requested; run %d returns to the previous version", p.RollbackRun)), "bad"
	case "driver.error":
		return runSentence(fmt.Sprintf("Driver error (attempt %d): %s", p.Attempt, p.Error)), "bad"
	case "driver.output":
		return runSentence(fmt.Sprintf("Driver %s: %s", p.Summary, truncate(p.Output, 600))), ""
	}
	if verdict, ok := strings.CutPrefix(e.Type, "analysis."); ok {
		tone := ""
		switch engine.Verdict(verdict) {
		case engine.VerdictRollback:
			tone = "bad"
		case engine.VerdictMonitorLonger, engine.VerdictInconclusive:
			tone = "warn"
		case engine.VerdictContinue:
			tone = "ok"
		}
		return runSentence(cmp.Or(p.Explanation, runVerdictLabel(verdict))), tone
	}
	text := strings.ReplaceAll(e.Type, ".", " ")
	for _, s := range []string{p.Explanation, p.Reason, p.Error, p.Comment} {
		if s != "" {
			return runSentence(text + ": " + s), ""
		}
	}
	return runSentence(text), ""
}

func runEventSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " " + runSentence(s)
}

// runChartSpec is one chart of the run page: which metric it reads and
// how a window becomes a point.
type runChartSpec struct {
	key, metric, title, unit string
	value                    func(w store.MetricWindow) (float64, bool)
}

var runChartSpecs = []runChartSpec{
	{key: "error_rate", metric: analysis.MetricErrorRate, title: "Error rate", unit: "percent", value: runWindowRate},
	{key: "latency_p99", metric: analysis.MetricLatency, title: "p99 latency", unit: "ms", value: func(w store.MetricWindow) (float64, bool) {
		if w.P99 == nil || w.Count == 0 {
			return 0, false
		}
		return *w.P99, true
	}},
	{key: "health_checks", metric: analysis.MetricHealthChecks, title: "Failed health checks", unit: "count", value: func(w store.MetricWindow) (float64, bool) {
		return w.Sum, w.Count > 0
	}},
	{key: "cpu", metric: analysis.MetricCPU, title: "CPU", unit: "percent", value: runWindowRate},
	{key: "memory", metric: analysis.MetricMemory, title: "Memory", unit: "percent", value: runWindowRate},
}

// runWindowRate is a window's mean: the error rate for errors, the mean
// utilisation for CPU and memory.
func runWindowRate(w store.MetricWindow) (float64, bool) {
	if w.Count == 0 {
		return 0, false
	}
	return w.Sum / float64(w.Count), true
}

// runChartCohorts are the cohorts a chart compares.
var runChartCohorts = []string{"candidate", "baseline"}

// runPoint is one point of a chart, as the page's script takes it.
type runPoint struct {
	Metric string  `json:"metric"`
	Cohort string  `json:"cohort"`
	T      float64 `json:"t"`
	V      float64 `json:"v"`
}

// chartRange is the span the page's charts start with: the whole run, or
// its last hours.
func (d runData) chartRange(now time.Time) (time.Time, time.Time) {
	to := now
	if d.run.FinishedAt != nil {
		to = *d.run.FinishedAt
	}
	from := d.run.CreatedAt
	if d.run.StartedAt != nil {
		from = *d.run.StartedAt
	}
	if earliest := to.Add(-runChartSpan); from.Before(earliest) {
		from = earliest
	}
	// Windows can end a little after the run's clock moved on.
	return from.Add(-time.Minute), to.Add(time.Hour)
}

// runPoints reads the charts' points from windows that start in [from,
// to) and end after after (all of them when after is zero), and the end
// of the newest window read. Rows of the same window written by several
// batches are added up; quantiles come from the row that saw the most.
// It takes one query per metric and cohort.
func runPoints(ctx context.Context, st RunPageStore, runID int64, from, to, after time.Time) ([]runPoint, time.Time, error) {
	var points []runPoint
	var newest time.Time
	for _, spec := range runChartSpecs {
		for _, cohort := range runChartCohorts {
			rows, err := st.ListMetricWindows(ctx, runID, cohort, spec.metric, from, to)
			if err != nil {
				return nil, newest, fmt.Errorf("reading the %s windows of run %d: %w", spec.metric, runID, err)
			}
			for _, w := range runMergeWindows(rows) {
				if !after.IsZero() && !w.End.After(after) {
					continue
				}
				if w.End.After(newest) {
					newest = w.End
				}
				if v, ok := spec.value(w); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
					points = append(points, runPoint{Metric: spec.key, Cohort: cohort, T: float64(w.End.UnixMilli()) / 1000, V: v})
				}
			}
		}
	}
	return points, newest, nil
}

// runMergeWindows adds up rows of the same window; rows come ordered by
// start.
func runMergeWindows(rows []store.MetricWindow) []store.MetricWindow {
	out := make([]store.MetricWindow, 0, len(rows))
	var largest int64
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].Start.Equal(r.Start) && out[n-1].End.Equal(r.End) {
			w := &out[n-1]
			w.Count += r.Count
			w.Sum += r.Sum
			if r.Count > largest {
				largest = r.Count
				w.P50, w.P95, w.P99 = r.P50, r.P95, r.P99
			}
			continue
		}
		largest = r.Count
		out = append(out, r)
	}
	return out
}

// runChartSetting is what a chart draws besides its points.
type runChartSetting struct {
	// Threshold is nil when it cannot be told from what is at hand; the
	// page then keeps the line it has.
	Threshold   *float64 `json:"threshold,omitempty"`
	WarmupStart int64    `json:"warmup_start,omitempty"`
	WarmupEnd   int64    `json:"warmup_end,omitempty"`
}

// chartSettings are each chart's threshold line and shaded warm-up. The
// threshold is the latest decision's for the current phase when it judged
// the metric; otherwise it is derived the way the decision derives it,
// from the thresholds and the baseline points given.
func (d runData) chartSettings(points []runPoint) map[string]runChartSetting {
	out := map[string]runChartSetting{}
	var warmStart, warmEnd int64
	ph, ok := d.current()
	if ok && ph.Analysis && d.run.State.Active() && d.run.PhaseStartedAt != nil {
		warmStart = d.run.PhaseStartedAt.Unix()
		warmEnd = d.run.PhaseStartedAt.Add(time.Duration(d.thresholds.Warmup)).Unix()
	}
	fromDecision := map[string]float64{}
	if d.decision != nil && d.decision.PhaseIndex == d.run.PhaseIndex {
		for _, m := range d.record.Metrics {
			if m.Outcome == analysis.OutcomeOK || m.Outcome == analysis.OutcomeDegraded {
				fromDecision[m.Metric] = m.Threshold
			}
		}
	}
	baseline := map[string][]float64{}
	for _, p := range points {
		if p.Cohort == "baseline" {
			baseline[p.Metric] = append(baseline[p.Metric], p.V)
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	th := d.thresholds
	for _, spec := range runChartSpecs {
		s := runChartSetting{WarmupStart: warmStart, WarmupEnd: warmEnd}
		base := baseline[spec.key]
		var line float64
		has := false
		if v, found := fromDecision[spec.key]; found {
			line, has = v, true
		} else {
			switch spec.key {
			case "error_rate":
				// Without a baseline the candidate is judged on its own
				// against the threshold itself.
				switch {
				case len(base) > 0:
					line, has = mean(base)+th.ErrorRatePP/100, true
				case !ok || ph.Baseline == "" || d.run.FromVersion == "":
					line, has = th.ErrorRatePP/100, true
				}
			case "latency_p99":
				if len(base) > 0 {
					sorted := slices.Clone(base)
					slices.Sort(sorted)
					line, has = sorted[len(sorted)/2]*th.LatencyRatio, true
				}
			case "health_checks":
				line, has = float64(th.HealthCheckFailures), th.HealthCheckFailures > 0
			case "cpu":
				if len(base) > 0 {
					line, has = mean(base)+th.CPUIncrease, true
				}
			case "memory":
				if len(base) > 0 {
					line, has = mean(base)+th.MemoryIncrease, true
				}
			}
		}
		if has {
			s.Threshold = &line
		}
		out[spec.key] = s
	}
	return out
}

// charts are the page's charts with their initial data.
func (d runData) charts(points []runPoint, from, now time.Time) ([]templates.RunChart, templates.RunChartData) {
	data := templates.RunChartData{Series: map[string]map[string][][2]float64{}}
	counts := map[string]int{}
	for _, p := range points {
		if data.Series[p.Metric] == nil {
			data.Series[p.Metric] = map[string][][2]float64{}
		}
		data.Series[p.Metric][p.Cohort] = append(data.Series[p.Metric][p.Cohort], [2]float64{p.T, p.V})
		counts[p.Metric]++
	}
	settings := d.chartSettings(points)
	started := d.run.CreatedAt
	if d.run.StartedAt != nil {
		started = *d.run.StartedAt
	}
	clipped := from.Add(time.Minute).After(started)
	charts := make([]templates.RunChart, len(runChartSpecs))
	for i, spec := range runChartSpecs {
		s := settings[spec.key]
		c := templates.RunChart{Key: spec.key, Title: spec.title, Unit: spec.unit, Points: counts[spec.key],
			WarmupStart: s.WarmupStart, WarmupEnd: s.WarmupEnd}
		if s.Threshold != nil {
			c.Threshold = strconv.FormatFloat(*s.Threshold, 'g', 6, 64)
		}
		if clipped {
			c.Note = fmt.Sprintf("The last %s of the run.", templates.RunDuration(runChartSpan))
		}
		charts[i] = c
	}
	return charts, data
}

// runRoleArticle names a role with its article: "a viewer", "an approver".
func runRoleArticle(r auth.Role) string {
	if r == auth.RoleAdmin || r == auth.RoleApprover {
		return "an " + string(r)
	}
	return "a " + string(r)
}
