package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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

// LiveStore is what the incident view reads: every run in flight with its
// newest decision, and a run with its app and environment to act on it.
type LiveStore interface {
	ListInFlightRuns(ctx context.Context, states []store.RunState, limit int) ([]store.InFlightRun, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	AppByID(ctx context.Context, id int64) (store.App, error)
	EnvironmentByID(ctx context.Context, id int64) (store.Environment, error)
}

// maxInFlight bounds the runs the incident view and the approvals page
// list; more than that in flight at once is a sign of a stuck queue, which
// the truncation note makes visible.
const maxInFlight = 500

type liveHandlers struct {
	store    LiveStore
	runs     RunService
	sessions *scs.SessionManager
}

// live renders the incident view; ?wall=1 drops the navigation for a
// screen on the wall.
func (h *liveHandlers) live(c echo.Context) error {
	m := memberFrom(c)
	v, err := buildLiveView(c.Request().Context(), h.store, *m, time.Now())
	if err != nil {
		return err
	}
	p := pageFor(c, "Live", "live")
	v.CSRF = p.CSRF
	p.Flash = takeNotice(h.sessions, c)
	wall := c.QueryParam("wall") == "1" || c.QueryParam("wall") == "true"
	return render(c, http.StatusOK, templates.Live(p, v, wall))
}

// abort and rollback are the incident view's one-click actions.
func (h *liveHandlers) abort(c echo.Context) error { return h.act(c, engine.ActionAbort) }

func (h *liveHandlers) rollback(c echo.Context) error { return h.act(c, engine.ActionRollback) }

// liveActionWords names an action in refusals and results.
var liveActionWords = map[engine.Action][2]string{
	engine.ActionAbort:    {"aborting", "abort"},
	engine.ActionRollback: {"rolling back", "roll back"},
}

// act checks the member's role on the run's environment, asks the engine
// and answers with the refreshed table (htmx) or the page again.
func (h *liveHandlers) act(c echo.Context, action engine.Action) error {
	ctx := c.Request().Context()
	m := memberFrom(c)
	target, status, refusal, err := loadActionTarget(ctx, h.store, c.Param("id"))
	if err != nil {
		return err
	}
	if refusal != "" {
		return refusePage(c, status, refusal)
	}
	words := liveActionWords[action]
	where := target.app.Slug + "/" + target.env.Name
	if !m.Can(target.app.Slug, target.env.Name, auth.RoleDeployer) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are %s on %s; %s a run needs the deployer role. Nothing was changed.",
			withArticle(m.RoleOn(target.app.Slug, target.env.Name)), where, words[0]))
	}
	if h.runs == nil {
		return refusePage(c, http.StatusServiceUnavailable,
			"This Flightdeck server runs without its engine, so runs cannot be acted on here. Nothing was changed.")
	}
	res, err := h.runs.Act(ctx, target.run.ID, engine.ActionRequest{Action: action, Actor: m.Actor()})
	if ae, ok := errors.AsType[*engine.ActionError](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf(
			"Run %d on %s cannot %s: %s (it is %s). Nothing was changed.",
			target.run.ID, where, words[1], ae.Detail, stateWords(ae.State)))
	}
	if err != nil {
		return fmt.Errorf("%s run %d: %w", words[0], target.run.ID, err)
	}
	message := liveActedMessage(action, target, res.Run, m.Actor())
	if c.Request().Header.Get("HX-Request") == "true" {
		v, err := buildLiveView(ctx, h.store, *m, time.Now())
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, templates.LiveActed(v, message))
	}
	keepNotice(h.sessions, c, message)
	return c.Redirect(http.StatusSeeOther, "/live")
}

// liveActedMessage says what an action did, for the flash area.
func liveActedMessage(action engine.Action, t actionTarget, after store.Run, actor string) string {
	where := t.app.Slug + "/" + t.env.Name
	back := "the previous version"
	if t.run.FromVersion != "" {
		back = t.run.FromVersion
	}
	if after.State == store.RunAborted {
		return fmt.Sprintf("Run %d on %s was aborted by %s before it started.", t.run.ID, where, actor)
	}
	if action == engine.ActionAbort {
		return fmt.Sprintf("Aborting run %d on %s: traffic is returning to %s.", t.run.ID, where, back)
	}
	return fmt.Sprintf("Rolling back run %d on %s: traffic is returning to %s.", t.run.ID, where, back)
}

// actionTarget is a run with the app and environment it deploys to.
type actionTarget struct {
	run store.Run
	app store.App
	env store.Environment
}

// runLookup is what loading a run to act on needs.
type runLookup interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	AppByID(ctx context.Context, id int64) (store.App, error)
	EnvironmentByID(ctx context.Context, id int64) (store.Environment, error)
}

// loadActionTarget reads the run named in a path with its app and
// environment. A malformed or unknown id is a refusal with its status.
func loadActionTarget(ctx context.Context, st runLookup, raw string) (actionTarget, int, string, error) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return actionTarget{}, http.StatusNotFound, fmt.Sprintf("There is no run %q: a run is named by its number. Nothing was changed.", truncate(raw, 40)), nil
	}
	run, err := st.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return actionTarget{}, http.StatusNotFound, fmt.Sprintf("There is no run %d. Nothing was changed.", id), nil
	}
	if err != nil {
		return actionTarget{}, 0, "", fmt.Errorf("reading run %d: %w", id, err)
	}
	app, err := st.AppByID(ctx, run.AppID)
	if err != nil {
		return actionTarget{}, 0, "", fmt.Errorf("reading the app of run %d: %w", id, err)
	}
	env, err := st.EnvironmentByID(ctx, run.EnvironmentID)
	if err != nil {
		return actionTarget{}, 0, "", fmt.Errorf("reading the environment of run %d: %w", id, err)
	}
	return actionTarget{run: run, app: app, env: env}, 0, "", nil
}

// withArticle is "a viewer", "an approver", as refusals say it.
func withArticle(r auth.Role) string {
	switch r {
	case auth.RoleAdmin, auth.RoleApprover:
		return "an " + string(r)
	}
	return "a " + string(r)
}

// stateWords names a run state for people.
func stateWords(s store.RunState) string {
	switch s {
	case store.RunAwaitingApproval:
		return "awaiting approval"
	case store.RunRollingBack:
		return "rolling back"
	case store.RunRolledBack:
		return "rolled back"
	}
	return string(s)
}

// buildLiveView reads every run in flight and orders it worst first: runs
// rolling back or judged for rollback, then degraded or inconclusive ones,
// then those waiting for a person, then healthy ones, then the queue; within
// a group the run exposing the most users comes first.
func buildLiveView(ctx context.Context, st LiveStore, m auth.Member, now time.Time) (templates.LiveView, error) {
	runs, err := st.ListInFlightRuns(ctx, store.InFlightStates, maxInFlight+1)
	if err != nil {
		return templates.LiveView{}, fmt.Errorf("listing runs in flight: %w", err)
	}
	v := templates.LiveView{Now: now}
	if len(runs) > maxInFlight {
		runs, v.Truncated = runs[:maxInFlight], true
	}
	type ranked struct {
		row  templates.LiveRow
		rank int
	}
	rows := make([]ranked, 0, len(runs))
	for _, r := range runs {
		row := liveRow(r, m)
		rows = append(rows, ranked{row: row, rank: liveRank(row.Severity)})
	}
	slices.SortStableFunc(rows, func(a, b ranked) int {
		return cmp.Or(
			cmp.Compare(a.rank, b.rank),
			cmp.Compare(b.row.Exposure, a.row.Exposure),
			cmp.Compare(b.row.RunID, a.row.RunID),
		)
	})
	for _, r := range rows {
		v.Rows = append(v.Rows, r.row)
	}
	return v, nil
}

// liveRank orders the severities, worst first.
func liveRank(severity string) int {
	return slices.Index([]string{templates.LiveBad, templates.LiveWarn, templates.LiveWait, templates.LiveOK, templates.LiveQueue}, severity)
}

// liveRow turns a run in flight into a row of the incident view.
func liveRow(r store.InFlightRun, m auth.Member) templates.LiveRow {
	row := templates.LiveRow{
		RunID: r.ID, App: r.AppSlug, Environment: r.Environment, Tier: r.Tier,
		FromVersion: r.FromVersion, ToVersion: r.ToVersion, Strategy: r.Strategy, State: string(r.State),
		PhaseCount: r.PhaseCount,
	}
	var phase plan.Phase
	if r.PhaseCount > 0 && len(r.Phase) > 0 && json.Unmarshal(r.Phase, &phase) == nil {
		row.PhaseNumber, row.PhaseName = r.PhaseIndex+1, phase.Name
		if r.State != store.RunPending {
			row.Exposure = phase.ExposedShare
		}
	}
	verdict := ""
	if d := r.Decision; d != nil {
		verdict = d.Verdict
		row.Verdict, row.Explanation = d.Verdict, d.Explanation
		var rec analysis.Decision
		if json.Unmarshal(d.Record, &rec) == nil {
			for _, mr := range rec.Metrics {
				if mr.Metric == analysis.MetricErrorRate && mr.CandidateN > 0 {
					row.ErrorRate = &templates.LiveErrorRate{
						Candidate: mr.Candidate, Baseline: mr.Baseline,
						HasBaseline: rec.BaselineVersion != "", Degraded: mr.Outcome == analysis.OutcomeDegraded,
					}
				}
			}
		}
	}
	switch {
	case r.State == store.RunRollingBack:
		row.Severity, row.Status = templates.LiveBad, "rolling back"
		row.Explanation = cmp.Or(r.Reason, row.Explanation)
	case verdict == string(engine.VerdictRollback):
		row.Severity, row.Status = templates.LiveBad, "judged for rollback"
	case verdict == string(engine.VerdictMonitorLonger):
		row.Severity, row.Status = templates.LiveWarn, "degraded, watched longer"
	case verdict == string(engine.VerdictInconclusive):
		row.Severity, row.Status = templates.LiveWarn, "inconclusive"
	case r.State == store.RunAwaitingApproval:
		row.Severity, row.Status = templates.LiveWait, "awaiting approval"
	case r.State == store.RunPaused:
		row.Severity, row.Status = templates.LiveWait, "paused"
		row.Explanation = cmp.Or(r.Reason, row.Explanation)
	case r.State == store.RunPending:
		row.Severity, row.Status = templates.LiveQueue, "queued"
		row.Explanation = cmp.Or(r.Reason, "Waiting for the environment to be free.")
	default:
		row.Severity, row.Status = templates.LiveOK, "healthy"
		if verdict == string(engine.VerdictWarmingUp) {
			row.Status = "warming up"
		}
	}
	switch {
	case r.State == store.RunPending:
		row.Since = &r.CreatedAt
	case r.PhaseStartedAt != nil:
		row.Since = r.PhaseStartedAt
	default:
		row.Since = r.StartedAt
	}
	if m.Can(r.AppSlug, r.Environment, auth.RoleDeployer) {
		row.CanAbort = r.State != store.RunRollingBack
		row.CanRollback = r.State != store.RunRollingBack && r.State != store.RunPending
	}
	return row
}
