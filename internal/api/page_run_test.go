package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// runPage is a page server with an engine, the app checkout with its
// environment production (v1 stable on the simulator), and people with
// each role there.
type runPage struct {
	*pageServer
	eng *engine.Engine
	app store.App
	env store.Environment
}

func newRunPage(t *testing.T) *runPage {
	t.Helper()
	ctx := context.Background()
	var eng *engine.Engine
	s := newPageServer(t, withEngine(&steadyAnalyzer{}, &eng))
	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production",
		Driver: json.RawMessage(`{"type": "simulator"}`)})
	require.NoError(t, err)
	require.NoError(t, s.Store.SetStableVersion(ctx, env.ID, "v1"))
	env, err = s.Store.EnvironmentByID(ctx, env.ID)
	require.NoError(t, err)
	s.addUser("vera", false, "checkout/production=viewer")
	s.addUser("dev", false, "checkout/production=deployer")
	s.addUser("rita", false, "checkout/production=approver")
	return &runPage{pageServer: s, eng: eng, app: app, env: env}
}

// start creates a run of v2 with the strategy and parameters, started by
// ci.
func (p *runPage) start(strategy, params string) store.Run {
	p.t.Helper()
	run, _, err := p.eng.CreateRun(context.Background(), engine.NewRun{App: p.app, Environment: p.env, Version: "v2",
		Strategy: strategy, Params: json.RawMessage(params), CreatedBy: "ci"})
	require.NoError(p.t, err)
	return run
}

// stepUntil steps the engine until the run is in the state.
func (p *runPage) stepUntil(runID int64, state store.RunState) store.Run {
	p.t.Helper()
	ctx := context.Background()
	for range 20 {
		run, err := p.Store.Run(ctx, runID)
		require.NoError(p.t, err)
		if run.State == state {
			return run
		}
		_, err = p.eng.RunOnce(ctx)
		require.NoError(p.t, err)
	}
	p.t.Fatalf("run %d never became %s", runID, state)
	return store.Run{}
}

func (p *runPage) run(id int64) store.Run {
	p.t.Helper()
	run, err := p.Store.Run(context.Background(), id)
	require.NoError(p.t, err)
	return run
}

// ringAtTheGate is a ring run whose first ring has baked and waits for an
// approver.
func (p *runPage) ringAtTheGate() store.Run {
	p.t.Helper()
	run := p.start("ring", `{"rings": [
		{"name": "employees", "audience": {"kind": "header", "key": "X-User-Group", "values": ["employees"]}, "bake": "0s"},
		{"name": "everyone", "audience": {"kind": "all"}}]}`)
	return p.stepUntil(run.ID, store.RunAwaitingApproval)
}

// bakingCanary is a canary run baking its first step for an hour.
func (p *runPage) bakingCanary() store.Run {
	p.t.Helper()
	run := p.start("canary", `{"steps": [10, 100], "step_bake": "1h"}`)
	run = p.stepUntil(run.ID, store.RunRunning)
	_, err := p.eng.RunOnce(context.Background())
	require.NoError(p.t, err)
	return p.run(run.ID)
}

func runPagePath(id int64, rest ...string) string {
	return "/runs/" + strconv.FormatInt(id, 10) + strings.Join(rest, "")
}

func runHasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

func TestRunPageShowsAViewerTheRunWithoutActions(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	run := p.ringAtTheGate()
	vera := p.signIn("vera")

	res := vera.get(runPagePath(run.ID))
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	require.Contains(t, res.text("run-versions"), "v1")
	require.Contains(t, res.text("run-versions"), "v2")
	require.Equal(t, "awaiting_approval", attr(res.byTestID("run-state"), "data-state"))
	require.Equal(t, "Awaiting approval", res.text("run-state"))
	require.Contains(t, res.text("run-created-by"), "ci")
	require.Contains(t, res.text("run-summary"), "waits for an approver before ring 1: everyone")

	require.NotNil(t, res.byTestID("run-timeline"))
	require.Equal(t, "awaiting_approval", attr(res.byTestID("phase-0"), "data-status"))
	require.Contains(t, res.text("phase-0"), "ring 0: employees")
	require.Contains(t, res.text("phase-0"), "then approval")
	require.Equal(t, "pending", attr(res.byTestID("phase-1"), "data-status"))
	require.Contains(t, res.text("traffic-split"), "candidate")
	require.NotEmpty(t, attr(res.byTestID("traffic-split"), "data-candidate"))
	require.Contains(t, res.text("impact-rollback-note"), "route every ring back")

	for _, a := range []string{"pause", "resume", "promote", "approve", "reject", "abort", "rollback"} {
		require.Nil(t, res.byTestID("action-"+a), "a viewer gets no %s button", a)
	}
	require.Contains(t, res.text("actions-note"), "You are a viewer on checkout/production")
	require.Equal(t, "/ws/runs/"+strconv.FormatInt(run.ID, 10), attr(res.byTestID("run-page"), "ws-connect"))

	log := res.byTestID("event-log")
	require.NotNil(t, log)
	events, err := p.Store.ListRunEvents(context.Background(), run.ID, 0, 100)
	require.NoError(t, err)
	require.NotEmpty(t, events)
	for _, e := range events {
		item := res.byTestID("event-" + strconv.FormatInt(e.ID, 10))
		require.NotNil(t, item, "event %d (%s) is in the log", e.ID, e.Type)
		require.Equal(t, strconv.FormatInt(e.ID, 10), attr(item, "data-event-id"))
	}
	first := log.FirstChild
	for first != nil && first.Type != html.ElementNode {
		first = first.NextSibling
	}
	require.Equal(t, strconv.FormatInt(events[len(events)-1].ID, 10), attr(first, "data-event-id"), "the log is newest first")

	// A forged approval from the viewer changes nothing.
	res = vera.post(runPagePath(run.ID, "/actions/approve"), url.Values{"comment": {"looks fine"}})
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "You are a viewer on checkout/production; approving a run needs the approver role. Nothing was changed.")
	require.Equal(t, store.RunAwaitingApproval, p.run(run.ID).State)
	approvals, err := p.Store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Empty(t, approvals)

	res = vera.postRaw(runPagePath(run.ID, "/actions/pause"), url.Values{"_csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, res.Code, "a form without its token is refused")
	require.Equal(t, store.RunAwaitingApproval, p.run(run.ID).State)
}

func TestDeployerPausesAndResumesARun(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	run := p.bakingCanary()
	dev := p.signIn("dev")

	res := dev.get(runPagePath(run.ID))
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	require.Equal(t, "baking", attr(res.byTestID("phase-0"), "data-status"))
	require.NotNil(t, res.byTestID("phase-0-countdown"), "the baking phase counts down")
	require.Contains(t, res.text("phase-0-countdown"), "left")
	require.Equal(t, "90", attr(res.byTestID("traffic-split"), "data-stable"))
	require.Equal(t, "10", attr(res.byTestID("traffic-split"), "data-candidate"))
	require.Contains(t, res.text("impact-exposed"), "10%")
	require.Contains(t, res.text("impact-rollback"), "about 10s")
	for _, a := range []string{"pause", "promote", "abort", "rollback"} {
		require.NotNil(t, res.byTestID("action-"+a), "a deployer may %s a running run", a)
	}
	for _, a := range []string{"resume", "approve", "reject"} {
		require.Nil(t, res.byTestID("action-"+a), "%s is not offered for a running run", a)
	}
	require.Empty(t, attr(res.byTestID("action-pause"), "data-confirm"), "pausing needs no confirmation")
	require.Nil(t, res.byTestID("action-comment"), "the comment goes with approvals, which a deployer cannot give")
	require.Contains(t, attr(res.byTestID("action-rollback"), "data-confirm"), "Roll back checkout/production to v1?")
	require.Contains(t, attr(res.byTestID("action-abort"), "data-confirm"), "Abort run")

	res = dev.post(runPagePath(run.ID, "/actions/pause"), url.Values{"comment": {"checking a dashboard"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, runPagePath(run.ID), res.Location)
	require.Equal(t, store.RunPaused, p.run(run.ID).State)

	res = dev.get(runPagePath(run.ID))
	require.Contains(t, res.text("flash"), "Paused run")
	require.Equal(t, "paused", attr(res.byTestID("run-state"), "data-state"))
	require.NotNil(t, res.byTestID("action-resume"))
	require.Nil(t, res.byTestID("action-pause"))
	require.Contains(t, res.text("phase-0"), "Paused with")
	require.Contains(t, res.text("event-log"), "checking a dashboard")

	// From the page's script: the answer is the fresh fragments, with the
	// events the page has not seen.
	events, err := p.Store.ListRunEvents(context.Background(), run.ID, 0, 100)
	require.NoError(t, err)
	seen := events[len(events)-1].ID
	form := url.Values{"_csrf": {dev.csrf()}, "seen_event": {strconv.FormatInt(seen, 10)}}
	req, err := http.NewRequest(http.MethodPost, dev.base+runPagePath(run.ID, "/actions/resume"), strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	res = dev.do(req)
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	require.Equal(t, store.RunRunning, p.run(run.ID).State)
	require.Contains(t, res.text("flash"), "Resumed run")
	require.Equal(t, "running", attr(res.byTestID("run-state"), "data-state"))
	require.Equal(t, "true", attr(res.byTestID("decision-panel"), "hx-swap-oob"))
	require.NotNil(t, res.byTestID("action-pause"))
	after, err := p.Store.ListRunEvents(context.Background(), run.ID, seen, 100)
	require.NoError(t, err)
	require.Len(t, after, 1)
	require.NotNil(t, res.byTestID("event-"+strconv.FormatInt(after[0].ID, 10)), "the resume event comes with the answer")
	require.Nil(t, res.byTestID("event-"+strconv.FormatInt(seen, 10)), "events the page has are not sent again")
}

func TestApproverApprovesTheNextRing(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	run := p.ringAtTheGate()
	rita := p.signIn("rita")

	res := rita.get(runPagePath(run.ID))
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.text("action-approve"), "Approve ring 1: everyone")
	require.Contains(t, attr(res.byTestID("action-reject"), "data-confirm"), "Reject v2 on checkout/production and roll back to v1?")
	require.NotNil(t, res.byTestID("action-comment"))
	require.Nil(t, res.byTestID("action-resume"))

	res = rita.post(runPagePath(run.ID, "/actions/approve"), url.Values{"comment": {"employees are happy"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	approvals, err := p.Store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)
	require.Equal(t, "approved", approvals[0].Outcome)
	require.Equal(t, "rita", approvals[0].Actor)
	require.Equal(t, "employees are happy", approvals[0].Comment)

	_, err = p.eng.RunOnce(context.Background())
	require.NoError(t, err)
	res = rita.get(runPagePath(run.ID))
	require.Contains(t, res.text("flash"), "Approved run")
	require.Equal(t, "succeeded", attr(res.byTestID("phase-0"), "data-status"))
	require.Contains(t, []string{"applying", "baking"}, attr(res.byTestID("phase-1"), "data-status"), "the next ring has started")
	require.Equal(t, "running", attr(res.byTestID("run-state"), "data-state"))
	require.Contains(t, res.text("event-log"), "employees are happy")
}

func TestRefusedActionsSayWhyAndChangeNothing(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	run := p.bakingCanary()
	rita := p.signIn("rita")
	before := p.run(run.ID)

	res := rita.post(runPagePath(run.ID, "/actions/approve"), nil)
	require.Equal(t, http.StatusConflict, res.Code)
	require.NotNil(t, res.byTestID("refusal-409"))
	require.Contains(t, res.text("refusal-message"), fmt.Sprintf("Run %d cannot be approved while it is running: the run is not waiting for an approval. Nothing was changed.", run.ID))

	res = rita.post(runPagePath(run.ID, "/actions/launch"), nil)
	require.Equal(t, http.StatusNotFound, res.Code)
	require.Contains(t, res.text("refusal-message"), `There is no action "launch"; the actions on a run are pause, resume, promote, approve, reject, abort and rollback.`)

	res = rita.post(runPagePath(run.ID, "/actions/pause"), url.Values{"comment": {strings.Repeat("é", 2001)}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("refusal-message"), "the comment has 2001 characters, and a comment can have at most 2000")

	res = rita.post("/runs/999999/actions/pause", nil)
	require.Equal(t, http.StatusNotFound, res.Code)
	require.Contains(t, res.text("refusal-message"), "There is no run 999999.")
	require.Equal(t, http.StatusNotFound, rita.get("/runs/999999").Code)
	require.Equal(t, http.StatusNotFound, rita.get("/runs/checkout").Code)

	after := p.run(run.ID)
	require.Equal(t, before.State, after.State)
	require.Equal(t, before.Version, after.Version, "no refusal touched the run")

	// The same refusal for the page's script is a fragment for the flash
	// area.
	req, err := http.NewRequest(http.MethodPost, rita.base+runPagePath(run.ID, "/actions/resume"),
		strings.NewReader(url.Values{"_csrf": {rita.csrf()}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	res = rita.do(req)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Equal(t, "#flash", res.Header.Get("HX-Retarget"))
	require.Contains(t, res.text("flash"), "only a paused run can be resumed")
}

func TestDecisionPanelLightsTheBranchTaken(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	ctx := context.Background()
	run := p.bakingCanary()
	vera := p.signIn("vera")

	res := vera.get(runPagePath(run.ID))
	require.Contains(t, res.text("decision-explanation"), "No decision yet")
	require.NotNil(t, res.byTestID("decision-node-warm_up"), "the tree is drawn before the first decision")
	require.False(t, runHasClass(res.byTestID("decision-node-warm_up"), "lit"))

	nodes := []string{"warm_up", "fast_fail", "inconclusive", "degraded", "exposure", "worsening", "stable", "continue", "rollback", "monitor_longer"}
	for _, tc := range []struct {
		verdict engine.Verdict
		path    analysis.Path
		lit     []string
		ended   string
	}{
		{engine.VerdictWarmingUp, analysis.Path{WarmingUp: true}, []string{"warm_up"}, "warm_up"},
		{engine.VerdictRollback, analysis.Path{WarmingUp: true, FastFail: true, Degraded: true}, []string{"warm_up", "fast_fail", "rollback"}, "rollback"},
		{engine.VerdictInconclusive, analysis.Path{Inconclusive: true}, []string{"warm_up", "inconclusive"}, "inconclusive"},
		{engine.VerdictContinue, analysis.Path{}, []string{"warm_up", "degraded", "continue"}, "continue"},
		{engine.VerdictMonitorLonger, analysis.Path{Degraded: true}, []string{"warm_up", "degraded", "stable", "monitor_longer"}, "monitor_longer"},
		{engine.VerdictRollback, analysis.Path{Degraded: true, Worsening: true}, []string{"warm_up", "degraded", "worsening", "rollback"}, "rollback"},
		{engine.VerdictRollback, analysis.Path{Degraded: true, ExposureOverLimit: true}, []string{"warm_up", "degraded", "exposure", "rollback"}, "rollback"},
	} {
		explanation := fmt.Sprintf("Decided %s with %+v.", tc.verdict, tc.path)
		record, err := json.Marshal(analysis.Decision{
			Verdict: tc.verdict, Explanation: explanation, Path: tc.path,
			Metrics: []analysis.MetricResult{{
				Metric: analysis.MetricErrorRate, Candidate: 0.09, Baseline: 0.01, Delta: 0.08, Threshold: 0.03, Unit: "ratio",
				CandidateN: 4000, BaselineN: 36000, Confidence: 0.99, Outcome: analysis.OutcomeDegraded,
			}},
			Thresholds: analysis.DefaultThresholds(),
		})
		require.NoError(t, err)
		_, err = p.Store.InsertDecision(ctx, store.Decision{RunID: run.ID, PhaseIndex: 0, Verdict: string(tc.verdict), Explanation: explanation, Record: record})
		require.NoError(t, err)

		res := vera.get(runPagePath(run.ID))
		require.Equal(t, http.StatusOK, res.Code)
		require.Equal(t, string(tc.verdict), attr(res.byTestID("decision-verdict"), "data-verdict"))
		require.Equal(t, explanation, res.text("decision-explanation"))
		for _, n := range nodes {
			node := res.byTestID("decision-node-" + n)
			require.NotNil(t, node, "the tree draws %s", n)
			require.Equal(t, slices.Contains(tc.lit, n), runHasClass(node, "lit"), "%s with %+v: is %s lit", tc.verdict, tc.path, n)
			require.Equal(t, n == tc.ended, runHasClass(node, "ended"), "%s with %+v: did it end at %s", tc.verdict, tc.path, n)
		}
	}

	// The last decision stored was the rollback for too many users exposed.
	res = vera.get(runPagePath(run.ID))
	metrics := res.text("decision-metrics")
	require.Contains(t, metrics, "error rate")
	require.Contains(t, metrics, "9.0%")
	require.Contains(t, metrics, "+8.00 pp")
	require.Contains(t, metrics, "4,000 / 36,000")
	require.Contains(t, metrics, "99%")
	require.Contains(t, metrics, "degraded")
	require.Contains(t, res.text("decision-panel"), "Affecting > 10% of users?")
	require.Equal(t, "0.03", attr(res.byTestID("chart-error_rate"), "data-threshold"), "the chart draws the decision's threshold")
}

func TestQueuedRunShowsThePlanItWouldFollow(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	first := p.bakingCanary()
	queued := p.start("canary", `{"steps": [50, 100], "step_bake": "10m"}`)
	_, err := p.eng.RunOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, store.RunPending, p.run(queued.ID).State)

	res := p.signIn("dev").get(runPagePath(queued.ID))
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "pending", attr(res.byTestID("run-state"), "data-state"))
	require.Contains(t, res.text("run-summary"), "another run is active")
	require.Contains(t, res.text("timeline-note"), "has not started")
	require.Contains(t, res.text("phase-0"), "canary 50%")
	require.Contains(t, res.text("phase-1"), "canary 100%")
	require.Contains(t, res.text("traffic-note"), "v1 serves everyone")
	require.Contains(t, attr(res.byTestID("action-abort"), "data-confirm"), "before it starts")
	require.Nil(t, res.byTestID("action-pause"))

	res = p.signIn("dev").post(runPagePath(queued.ID, "/actions/abort"), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, store.RunAborted, p.run(queued.ID).State)
	require.Equal(t, store.RunRunning, p.run(first.ID).State, "the active run is not touched")
}

func TestChartsStartWithTheRunsMetricWindows(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	ctx := context.Background()
	run := p.bakingCanary()
	start := time.Now().Truncate(time.Second)
	var windows []store.MetricWindow
	for i := range 4 {
		from := start.Add(time.Duration(i) * 30 * time.Second)
		for _, cohort := range []string{"candidate", "baseline"} {
			p99 := 120.0 + float64(i)
			windows = append(windows,
				store.MetricWindow{RunID: run.ID, Cohort: cohort, Metric: "error_rate", Start: from, End: from.Add(30 * time.Second), Count: 1000, Sum: 12},
				store.MetricWindow{RunID: run.ID, Cohort: cohort, Metric: "latency", Start: from, End: from.Add(30 * time.Second), Count: 1000, Sum: 90000, P99: &p99})
		}
	}
	// A second batch of the same window adds up with the first.
	windows = append(windows, store.MetricWindow{RunID: run.ID, Cohort: "candidate", Metric: "error_rate", Start: start, End: start.Add(30 * time.Second), Count: 1000, Sum: 28})
	_, err := p.Store.InsertMetricWindows(ctx, windows)
	require.NoError(t, err)

	res := p.signIn("vera").get(runPagePath(run.ID))
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "8", attr(res.byTestID("chart-error_rate"), "data-points"))
	require.Equal(t, "8", attr(res.byTestID("chart-latency_p99"), "data-points"))
	require.Equal(t, "0", attr(res.byTestID("chart-cpu"), "data-points"))
	require.Equal(t, "percent", attr(res.byTestID("chart-error_rate"), "data-unit"))
	require.NotEmpty(t, attr(res.byTestID("chart-error_rate"), "data-warmup-end"), "the current phase's warm-up is shaded")

	var data struct {
		Series map[string]map[string][][2]float64 `json:"series"`
	}
	script := runFindByID(res.Doc, "chart-data")
	require.NotNil(t, script)
	require.NoError(t, json.Unmarshal([]byte(text(script)), &data))
	require.Len(t, data.Series["error_rate"]["candidate"], 4)
	require.InDelta(t, 0.02, data.Series["error_rate"]["candidate"][0][1], 1e-9, "rows of one window add up")
	require.InDelta(t, 0.012, data.Series["error_rate"]["baseline"][0][1], 1e-9)
	require.InDelta(t, 123.0, data.Series["latency_p99"]["baseline"][3][1], 1e-9)
	require.InDelta(t, float64(start.Add(30*time.Second).Unix()), data.Series["error_rate"]["candidate"][0][0], 1e-3, "a point is at its window's end")
}

func TestRunFeedSendsExactlyWhatTheCursorLacks(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	ctx := context.Background()
	run := p.bakingCanary()
	feed := api.NewFeed(p.Store)
	topic := "run:" + strconv.FormatInt(run.ID, 10)

	vera := auth.Member{Username: "vera", Bindings: []auth.Binding{{App: "checkout", Environment: "production", Role: auth.RoleViewer}}}
	dev := auth.Member{Username: "dev", Bindings: []auth.Binding{{App: "*", Environment: "*", Role: auth.RoleDeployer}}}
	class, err := feed.Class(ctx, topic, vera)
	require.NoError(t, err)
	require.Equal(t, "viewer", class)
	devClass, err := feed.Class(ctx, topic, dev)
	require.NoError(t, err)
	require.Equal(t, "deployer", devClass)
	for _, bad := range []string{"run:999999", "run:abc", "run:"} {
		_, err := feed.Class(ctx, bad, vera)
		require.ErrorIs(t, err, live.ErrUnknownTopic, bad)
	}

	events, err := p.Store.ListRunEvents(ctx, run.ID, 0, 100)
	require.NoError(t, err)
	require.Greater(t, len(events), 2)
	cursor := live.Cursor{EventID: events[1].ID}

	frames, next, err := feed.Frames(ctx, topic, class, vera, cursor)
	require.NoError(t, err)
	var sent []int64
	var state []byte
	for _, f := range frames {
		switch {
		case f.EventID != 0:
			sent = append(sent, f.EventID)
			require.Contains(t, string(f.Data), `hx-swap-oob="afterbegin:#event-log"`)
			require.Contains(t, string(f.Data), `data-event-id="`+strconv.FormatInt(f.EventID, 10)+`"`)
			require.Equal(t, 1, strings.Count(string(f.Data), "data-event-id="), "one event per frame")
		case strings.HasPrefix(string(f.Data), "{"):
		default:
			state = f.Data
		}
	}
	var want []int64
	for _, e := range events[2:] {
		want = append(want, e.ID)
	}
	require.Equal(t, want, sent, "exactly the events after the cursor, in order")
	require.Equal(t, events[len(events)-1].ID, next.EventID)
	require.NotNil(t, state, "a change re-renders the page's state")
	for _, id := range []string{"run-header", "run-timeline", "traffic-split", "run-impact", "decision-panel", "run-actions"} {
		require.Regexp(t, `id="`+id+`"[^>]*hx-swap-oob="true"`, string(state))
	}
	require.NotContains(t, string(state), `data-testid="action-pause"`, "a viewer's frames have no buttons")

	devFrames, _, err := feed.Frames(ctx, topic, devClass, dev, cursor)
	require.NoError(t, err)
	var devState string
	for _, f := range devFrames {
		if f.EventID == 0 && !strings.HasPrefix(string(f.Data), "{") {
			devState = string(f.Data)
		}
	}
	require.Contains(t, devState, `data-testid="action-pause"`, "a deployer's frames have the buttons")
	require.NotContains(t, devState, `name="_csrf"`, "shared frames carry no one's form token")

	// Nothing new: nothing is sent.
	frames, again, err := feed.Frames(ctx, topic, class, vera, next)
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Equal(t, next, again)

	// New metric windows arrive as one JSON frame of points, after which
	// the cursor has them.
	start := time.Now().Truncate(time.Second)
	_, err = p.Store.InsertMetricWindows(ctx, []store.MetricWindow{
		{RunID: run.ID, Cohort: "candidate", Metric: "error_rate", Start: start, End: start.Add(30 * time.Second), Count: 200, Sum: 4},
		{RunID: run.ID, Cohort: "baseline", Metric: "error_rate", Start: start, End: start.Add(30 * time.Second), Count: 1800, Sum: 18},
	})
	require.NoError(t, err)
	frames, withPoints, err := feed.Frames(ctx, topic, class, vera, again)
	require.NoError(t, err)
	require.Len(t, frames, 1)
	require.Zero(t, frames[0].EventID)
	var msg struct {
		Type   string `json:"type"`
		Points []struct {
			Metric, Cohort string
			T, V           float64
		} `json:"points"`
	}
	require.NoError(t, json.Unmarshal(frames[0].Data, &msg))
	require.Equal(t, "points", msg.Type)
	require.Len(t, msg.Points, 2)
	for _, pt := range msg.Points {
		require.Equal(t, "error_rate", pt.Metric)
		require.InDelta(t, float64(start.Add(30*time.Second).Unix()), pt.T, 1e-3)
	}
	require.True(t, withPoints.WindowEnd.Equal(start.Add(30*time.Second)), "the cursor moves to the newest window's end")
	frames, _, err = feed.Frames(ctx, topic, class, vera, withPoints)
	require.NoError(t, err)
	require.Empty(t, frames, "points are sent once")

	_, _, err = feed.Frames(ctx, topic, "pilot", vera, withPoints)
	require.Error(t, err, "an unknown class is an error")
	_, _, err = feed.Frames(ctx, "run:999999", class, vera, live.Cursor{})
	require.True(t, errors.Is(err, live.ErrUnknownTopic), "a run that does not exist is an unknown topic: %v", err)
}

// findByID returns the element with the id, or nil.
func runFindByID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode && attr(n, "id") == id {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if found := runFindByID(c, id); found != nil {
			return found
		}
	}
	return nil
}

func TestEveryAssetThePagesLoadIsServed(t *testing.T) {
	t.Parallel()
	p := newRunPage(t)
	run := p.bakingCanary()
	b := p.signIn("vera")
	res := b.get(runPagePath(run.ID))
	require.Equal(t, http.StatusOK, res.Code)

	var assets []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "script" && attr(n, "src") != "" {
			assets = append(assets, attr(n, "src"))
		}
		if n.Type == html.ElementNode && n.Data == "link" && attr(n, "rel") == "stylesheet" {
			assets = append(assets, attr(n, "href"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(res.Doc)
	require.Subset(t, assets, []string{"/static/app.css", "/static/pages.css", "/static/vendor/uPlot.min.css",
		"/static/vendor/htmx.min.js", "/static/vendor/htmx-ext-ws.js", "/static/vendor/uPlot.iife.min.js", "/static/app.js"})
	for _, a := range assets {
		require.True(t, strings.HasPrefix(a, "/static/"), "%s is served by Flightdeck itself, not a CDN", a)
		got := b.get(a)
		require.Equal(t, http.StatusOK, got.Code, a)
		require.NotEmpty(t, got.Body, a)
		if strings.Contains(a, "/vendor/") {
			require.True(t, strings.HasPrefix(got.Body, "/*!"), "%s starts with its license comment", a)
			require.Contains(t, got.Body[:200], "License", a)
		}
	}
	versions := b.get("/static/vendor/VERSIONS")
	require.Equal(t, http.StatusOK, versions.Code)
	for _, pkg := range []string{"htmx.org     2.0.11", "htmx-ext-ws  2.0.4", "uplot        1.6.32"} {
		require.Contains(t, versions.Body, pkg)
	}
}
