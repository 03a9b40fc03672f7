package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// healthyRecordAnalyzer judges every phase healthy with a decision record
// like the real analyzer's: an error rate compared on a known number of
// requests.
type healthyRecordAnalyzer struct{}

// healthyExplanation is the sentence every judgement of
// healthyRecordAnalyzer carries.
const healthyExplanation = "Healthy: v2 error rate 0.21% vs 0.25% on v1 over 1,234 requests."

func (healthyRecordAnalyzer) Analyze(_ context.Context, req engine.AnalysisRequest) (engine.Analysis, error) {
	record, err := json.Marshal(analysis.Decision{
		Verdict: engine.VerdictContinue, Explanation: healthyExplanation,
		CandidateVersion: req.Run.ToVersion, BaselineVersion: req.Run.FromVersion, ExposedShare: req.Phase.ExposedShare,
		Metrics: []analysis.MetricResult{{
			Metric: analysis.MetricErrorRate, Candidate: 0.0021, Baseline: 0.0025, Unit: "ratio",
			CandidateN: 1234, BaselineN: 98765, Outcome: analysis.OutcomeOK,
		}},
	})
	if err != nil {
		return engine.Analysis{}, err
	}
	return engine.Analysis{Verdict: engine.VerdictContinue, Explanation: healthyExplanation, Record: record}, nil
}

// releaseFixture is a page server with an engine and helpers to put runs
// where a test needs them.
type releaseFixture struct {
	*pageServer
	eng *engine.Engine
}

func newReleaseFixture(t testing.TB) *releaseFixture {
	t.Helper()
	var eng *engine.Engine
	s := newPageServer(t, withEngine(healthyRecordAnalyzer{}, &eng))
	return &releaseFixture{pageServer: s, eng: eng}
}

// environment creates app/env (and the app when it is new) on the
// simulator, with v1 stable; mutate adjusts its policies.
func (f *releaseFixture) environment(app, env string, mutate func(*store.Environment)) (store.App, store.Environment) {
	f.t.Helper()
	ctx := context.Background()
	a, err := f.Store.App(ctx, app)
	if err != nil {
		a, err = f.Store.CreateApp(ctx, store.NewApp{Slug: app, Name: strings.ToUpper(app[:1]) + app[1:]})
		require.NoError(f.t, err)
	}
	e, err := f.Store.CreateEnvironment(ctx, store.Environment{AppID: a.ID, Name: env, Tier: "production",
		Driver: json.RawMessage(`{"type": "simulator"}`)})
	require.NoError(f.t, err)
	e.StableVersion = "v1"
	if mutate != nil {
		mutate(&e)
	}
	e, err = f.Store.UpdateEnvironment(ctx, e)
	require.NoError(f.t, err)
	return a, e
}

// twoRings are ring parameters that reach the approval gate at once: the
// employees ring bakes 0s, then everyone.
const twoRings = `{"rings": [
	{"name": "employees", "audience": {"kind": "header", "key": "X-User-Group", "values": ["employees"]}, "bake": "0s"},
	{"name": "everyone", "audience": {"kind": "all"}}
]}`

// start creates a run of version v2 and returns it.
func (f *releaseFixture) start(app store.App, env store.Environment, strategy, params, by string) store.Run {
	f.t.Helper()
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	run, created, err := f.eng.CreateRun(context.Background(), engine.NewRun{
		App: app, Environment: env, Version: "v2", Strategy: strategy, Params: raw, CreatedBy: by,
	})
	require.NoError(f.t, err)
	require.True(f.t, created)
	return run
}

// stepUntil steps the engine until the run is in the state.
func (f *releaseFixture) stepUntil(runID int64, state store.RunState) store.Run {
	f.t.Helper()
	ctx := context.Background()
	for range 50 {
		run, err := f.Store.Run(ctx, runID)
		require.NoError(f.t, err)
		if run.State == state {
			return run
		}
		_, err = f.eng.RunOnce(ctx)
		require.NoError(f.t, err)
	}
	run, err := f.Store.Run(ctx, runID)
	require.NoError(f.t, err)
	f.t.Fatalf("run %d stayed %s (%s) instead of becoming %s", runID, run.State, run.Reason, state)
	return run
}

// run reads a run.
func (f *releaseFixture) run(id int64) store.Run {
	f.t.Helper()
	run, err := f.Store.Run(context.Background(), id)
	require.NoError(f.t, err)
	return run
}

// waitingRing starts a ring run on app/env and steps it to the gate after
// its first ring.
func (f *releaseFixture) waitingRing(app store.App, env store.Environment, by string) store.Run {
	f.t.Helper()
	run := f.start(app, env, "ring", twoRings, by)
	return f.stepUntil(run.ID, store.RunAwaitingApproval)
}

func TestApprovalsListsWaitingRingWithItsBakeSummary(t *testing.T) {
	t.Parallel()
	f := newReleaseFixture(t)
	f.addUser("ana", false, "checkout/production=approver")
	f.addUser("vic", false)
	app, env := f.environment("checkout", "production", nil)

	empty := f.signIn("ana").get("/approvals")
	require.Equal(t, http.StatusOK, empty.Code)
	require.Contains(t, empty.text("approvals-empty"), "Nothing is waiting")

	run := f.waitingRing(app, env, "ci")
	id := fmt.Sprint(run.ID)
	res := f.signIn("ana").get("/approvals")
	require.Equal(t, http.StatusOK, res.Code)
	require.Nil(t, res.byTestID("approvals-empty"))
	require.NotNil(t, res.byTestID("approval-run-"+id))
	require.Contains(t, res.text("approval-where-"+id), "checkout/production")
	require.Contains(t, res.text("approval-versions-"+id), "v1")
	require.Contains(t, res.text("approval-versions-"+id), "v2")
	next := res.text("approval-next-" + id)
	require.Contains(t, next, "ring 1: everyone")
	require.Contains(t, next, "exposes 100% of users")
	bake := res.text("approval-bake-" + id)
	require.Contains(t, bake, "ring 0: employees")
	require.Contains(t, bake, "phase 1 of 2")
	require.Contains(t, bake, "baked")
	require.Contains(t, res.text("approval-requests-"+id), "1,234 requests judged on v2")
	require.Contains(t, res.text("approval-requests-"+id), "98,765 on the baseline")
	require.Equal(t, "healthy", res.text("approval-verdict-"+id))
	require.Equal(t, healthyExplanation, res.text("approval-explanation-"+id))
	require.Contains(t, res.text("approval-decided-"+id), "decided")
	require.NotNil(t, res.byTestID("approval-approve-"+id))
	require.Contains(t, attr(res.byTestID("approval-reject-form-"+id), "data-confirm"), "Reject ring 0: employees of checkout/production",
		"rejecting asks first")
	require.Nil(t, res.byTestID("approval-readonly-"+id))

	viewer := f.signIn("vic").get("/approvals")
	require.Equal(t, http.StatusOK, viewer.Code)
	require.NotNil(t, viewer.byTestID("approval-run-"+id), "viewers see what waits")
	require.Contains(t, viewer.text("approval-readonly-"+id), "needs the approver role on checkout/production")
	require.Nil(t, viewer.byTestID("approval-approve-"+id), "a viewer gets no approve button")
	require.Nil(t, viewer.byTestID("approval-reject-"+id), "a viewer gets no reject button")
}

func TestApprovingMovesTheRunOnAndKeepsTheDecision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReleaseFixture(t)
	f.addUser("ana", false, "checkout/*=approver")
	f.addUser("bob", false, "*/*=approver")
	f.addUser("dan", false, "checkout/production=deployer")
	f.addUser("vic", false)
	app, env := f.environment("checkout", "production", nil)
	run := f.waitingRing(app, env, "ci")
	id := fmt.Sprint(run.ID)
	approvePath := "/approvals/" + id + "/approve"

	// Viewers and deployers are refused, and the run still waits.
	for _, who := range []string{"vic", "dan"} {
		res := f.signIn(who).post(approvePath, url.Values{"comment": {"looks fine"}})
		require.Equal(t, http.StatusForbidden, res.Code, who)
		require.Contains(t, res.text("refusal-message"), "needs the approver role there. Nothing was changed.", who)
	}
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State)

	// A forged request without the form token changes nothing either.
	ana := f.signIn("ana")
	res := ana.postRaw(approvePath, url.Values{"comment": {"no token"}})
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State)

	// A comment that is too long is refused with the form filled in again.
	long := strings.Repeat("é", 2001)
	res = ana.post(approvePath, url.Values{"comment": {long}})
	require.Equal(t, http.StatusUnprocessableEntity, res.Code)
	require.Contains(t, res.text("approval-approve-error-"+id), "2001 characters; at most 2000")
	require.Equal(t, long, res.text("approval-approve-comment-"+id), "the comment is kept")
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State)
	approvals, err := f.Store.ListApprovals(ctx, run.ID)
	require.NoError(t, err)
	require.Empty(t, approvals)

	res = ana.post(approvePath, url.Values{"comment": {"  dashboards checked  "}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "/approvals", res.Location)
	page := ana.get("/approvals")
	require.Contains(t, page.text("flash"), "You approved ring 0: employees of run "+id+" on checkout/production.")
	require.NotNil(t, page.byTestID("approvals-empty"), "the run no longer waits")

	approvals, err = f.Store.ListApprovals(ctx, run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)
	require.Equal(t, "approved", approvals[0].Outcome)
	require.Equal(t, "ana", approvals[0].Actor)
	require.Equal(t, "dashboards checked", approvals[0].Comment)

	// The decision the approval rested on is in the audit log.
	decision, err := f.Store.LatestDecision(ctx, run.ID)
	require.NoError(t, err)
	entries, err := f.Store.ListAudit(ctx, store.AuditFilter{Actor: "ana", App: "checkout", Limit: 10})
	require.NoError(t, err)
	var evidence *store.AuditEntry
	for i, e := range entries {
		if e.Kind == "audit" && e.Action == "run.approved" {
			evidence = &entries[i]
		}
	}
	require.NotNil(t, evidence, "approving records the decision at hand: %+v", entries)
	require.Equal(t, "production", evidence.Environment)
	require.Contains(t, evidence.Detail, fmt.Sprintf("run %d, ring 0: employees: decision %d", run.ID, decision.ID))
	require.Contains(t, evidence.Detail, healthyExplanation)
	require.Contains(t, evidence.Detail, "Comment: dashboards checked")
	require.NotEmpty(t, evidence.RemoteAddr)

	// A second approver who was a moment too late is told so, and nothing
	// changes.
	res = f.signIn("bob").post(approvePath, url.Values{"comment": {"me too"}})
	require.Equal(t, http.StatusConflict, res.Code)
	late := res.text("refusal-message")
	require.Contains(t, late, "is no longer waiting for an approval: ana approved it at")
	require.Contains(t, late, "Nothing was changed.")
	approvals, err = f.Store.ListApprovals(ctx, run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)

	// The engine takes the run on to its last ring.
	require.Equal(t, 1, f.stepUntil(run.ID, store.RunSucceeded).PhaseIndex)
}

func TestRejectingRollsBackAndStarterPolicyHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReleaseFixture(t)
	f.addUser("ana", false, "checkout/*=approver")
	app, env := f.environment("checkout", "production", func(e *store.Environment) { e.ApproverNotStarter = true })
	run := f.waitingRing(app, env, "ana")
	id := fmt.Sprint(run.ID)
	ana := f.signIn("ana")

	page := ana.get("/approvals")
	require.Contains(t, page.text("approval-approve-blocked-"+id), "You started this run")
	require.Nil(t, page.byTestID("approval-approve-"+id))
	require.NotNil(t, page.byTestID("approval-reject-"+id), "the starter may still reject")

	res := ana.post("/approvals/"+id+"/approve", nil)
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "you started run "+id)
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State)

	res = ana.post("/approvals/"+id+"/reject", url.Values{"comment": {"checkout errors in the employee ring"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Contains(t, ana.get("/approvals").text("flash"), "It is rolling back.")
	after := f.run(run.ID)
	require.Equal(t, store.RunRollingBack, after.State)
	require.Equal(t, store.RunRolledBack, after.FinalState)
	approvals, err := f.Store.ListApprovals(ctx, run.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)
	require.Equal(t, "rejected", approvals[0].Outcome)

	for name, tc := range map[string]struct {
		path   string
		status int
		says   string
	}{
		"an id that is not a number": {path: "/approvals/abc/approve", status: http.StatusNotFound, says: `There is no run "abc"`},
		"an unknown run":             {path: "/approvals/987654/reject", status: http.StatusNotFound, says: "There is no run 987654"},
		"a run no longer waiting":    {path: "/approvals/" + id + "/reject", status: http.StatusConflict, says: "no longer waiting"},
	} {
		t.Run(name, func(t *testing.T) {
			res := ana.post(tc.path, nil)
			require.Equal(t, tc.status, res.Code)
			require.Contains(t, res.text("refusal-message"), tc.says)
		})
	}
}
