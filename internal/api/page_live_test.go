package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// liveRunOrder lists the run ids of the incident view's rows, top first.
func liveRunOrder(p page) []string {
	var ids []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if id, ok := strings.CutPrefix(attr(n, "data-testid"), "live-run-"); ok && n.Data == "tr" {
			ids = append(ids, id)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.Doc)
	return ids
}

// incident puts four runs in flight: a canary on payments that is rolling
// back, a canary on search judged degraded (monitor longer), a healthy
// canary on billing at 50% and a healthy canary on checkout at 5%.
type incident struct {
	*releaseFixture
	wide, healthy, degraded, failing store.Run
}

func newIncident(t *testing.T) *incident {
	t.Helper()
	ctx := context.Background()
	f := newReleaseFixture(t)
	in := &incident{releaseFixture: f}
	canary := func(app, env, params string) store.Run {
		a, e := f.environment(app, env, nil)
		return f.stepUntil(f.start(a, e, "canary", params, "ci").ID, store.RunRunning)
	}
	// Created best last, so that the order shown owes nothing to age.
	in.failing = canary("payments", "production", "")
	in.degraded = canary("search", "production", "")
	in.wide = canary("billing", "production", `{"steps": [50, 100]}`)
	in.healthy = canary("checkout", "production", "")
	for _, r := range []store.Run{in.wide, in.healthy, in.failing} {
		f.decide(r, engine.VerdictContinue, healthyExplanation, 0.0021, 0.0025, analysis.OutcomeOK)
	}
	f.decide(in.degraded, engine.VerdictMonitorLonger, "Degraded but stable: error rate 3.1% vs 0.4%; watching longer.",
		0.031, 0.004, analysis.OutcomeDegraded)
	_, err := f.eng.Act(ctx, in.failing.ID, engine.ActionRequest{Action: engine.ActionRollback, Actor: "oncall"})
	require.NoError(t, err)
	require.Equal(t, store.RunRollingBack, f.run(in.failing.ID).State)
	return in
}

// decide records a decision on the run's current phase with the verdict
// and error rates given, as the engine would.
func (f *releaseFixture) decide(run store.Run, verdict engine.Verdict, explanation string, candidate, baseline float64, outcome string) {
	f.t.Helper()
	record, err := json.Marshal(analysis.Decision{
		Verdict: verdict, Explanation: explanation, CandidateVersion: run.ToVersion, BaselineVersion: run.FromVersion,
		Metrics: []analysis.MetricResult{{Metric: analysis.MetricErrorRate, Candidate: candidate, Baseline: baseline,
			Unit: "ratio", CandidateN: 5000, BaselineN: 90000, Outcome: outcome}},
	})
	require.NoError(f.t, err)
	_, err = f.Store.InsertDecision(context.Background(), store.Decision{RunID: run.ID, PhaseIndex: run.PhaseIndex,
		Verdict: string(verdict), Explanation: explanation, Record: record})
	require.NoError(f.t, err)
}

func TestLiveOrdersWorstFirstAndAbortNeedsDeployer(t *testing.T) {
	t.Parallel()
	in := newIncident(t)
	in.addUser("dora", false, "*/*=deployer")
	in.addUser("vic", false)
	wide, healthy, degraded, failing := fmt.Sprint(in.wide.ID), fmt.Sprint(in.healthy.ID), fmt.Sprint(in.degraded.ID), fmt.Sprint(in.failing.ID)

	dora := in.signIn("dora")
	res := dora.get("/live")
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, []string{failing, degraded, wide, healthy}, liveRunOrder(res),
		"rolling back first, then degraded, then healthy by exposure")
	require.Equal(t, "ws", attr(res.byTestID("live"), "hx-ext"))
	require.Equal(t, "/ws/live", attr(res.byTestID("live"), "ws-connect"))
	require.Contains(t, res.text("live-summary"), "4 in flight")
	require.Equal(t, "50%", res.text("live-exposure-"+wide))
	require.Contains(t, res.text("live-status-"+failing), "rolling back")
	require.Contains(t, res.text("live-why-"+failing), "rolled back by oncall")
	require.Contains(t, res.text("live-status-"+degraded), "degraded")
	require.Contains(t, res.text("live-errors-"+degraded), "3.1%")
	require.Contains(t, res.text("live-errors-"+degraded), "0.40%")
	require.Contains(t, res.text("live-why-"+degraded), "watching longer")
	require.Contains(t, res.text("live-status-"+healthy), "healthy")
	require.Contains(t, res.text("live-phase-"+healthy), "1/4")
	require.Contains(t, res.text("live-phase-"+healthy), "canary 5%")
	require.Equal(t, "5%", res.text("live-exposure-"+healthy))
	require.Contains(t, res.text("live-errors-"+healthy), "0.21%")
	require.Equal(t, healthyExplanation, res.text("live-why-"+healthy))
	require.NotEmpty(t, res.text("live-since-"+healthy))
	require.Contains(t, attr(res.byTestID("live-abort-"+healthy).Parent, "hx-confirm"), "Abort run "+healthy)
	require.Contains(t, attr(res.byTestID("live-rollback-"+healthy).Parent, "hx-confirm"), "Roll back checkout/production to v1?")
	require.Nil(t, res.byTestID("live-abort-"+failing), "a run already rolling back offers nothing more")
	require.Contains(t, res.text("live-returning-"+failing), "returning users to v1")

	vic := in.signIn("vic")
	res = vic.get("/live")
	require.Equal(t, []string{failing, degraded, wide, healthy}, liveRunOrder(res))
	require.Nil(t, res.byTestID("live-abort-"+healthy), "a viewer gets no buttons")
	require.Nil(t, res.byTestID("live-rollback-"+healthy))
	res = vic.post("/live/runs/"+healthy+"/abort", nil)
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "You are a viewer on checkout/production; aborting a run needs the deployer role. Nothing was changed.")
	require.Equal(t, store.RunRunning, in.run(in.healthy.ID).State)

	res = dora.post("/live/runs/"+healthy+"/abort", nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "/live", res.Location)
	aborted := in.run(in.healthy.ID)
	require.Equal(t, store.RunRollingBack, aborted.State)
	require.Equal(t, store.RunAborted, aborted.FinalState)
	res = dora.get("/live")
	require.Contains(t, res.text("flash"), "Aborting run "+healthy+" on checkout/production: traffic is returning to v1.")
	require.Equal(t, "rolling back", res.text("live-status-"+healthy))

	res = dora.post("/live/runs/"+failing+"/rollback", nil)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("refusal-message"), "cannot roll back: the run is already rolling back")
	res = dora.post("/live/runs/nope/abort", nil)
	require.Equal(t, http.StatusNotFound, res.Code)
	require.Contains(t, res.text("refusal-message"), `There is no run "nope"`)
}

func TestLiveRollbackFromHtmxAnswersWithTheTable(t *testing.T) {
	t.Parallel()
	in := newIncident(t)
	in.addUser("dora", false, "search/production=deployer")
	dora := in.signIn("dora")
	degraded := fmt.Sprint(in.degraded.ID)

	res := dora.get("/live?wall=1")
	require.Equal(t, http.StatusOK, res.Code)
	require.Nil(t, res.byTestID("nav"), "wall mode has no navigation")
	require.NotNil(t, res.byTestID("live-table"))
	require.Nil(t, res.byTestID("live-abort-"+fmt.Sprint(in.healthy.ID)), "dora deploys only search")
	require.NotNil(t, res.byTestID("live-rollback-"+degraded))

	req, err := http.NewRequest(http.MethodPost, dora.base+"/live/runs/"+degraded+"/rollback", strings.NewReader(url.Values{}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", dora.csrf())
	res = dora.do(req)
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	require.Contains(t, res.text("flash"), "Rolling back run "+degraded+" on search/production: traffic is returning to v1.")
	require.Equal(t, "true", attr(res.byTestID("flash"), "hx-swap-oob"))
	require.NotNil(t, res.byTestID("live-table"))
	require.Equal(t, "rolling back", res.text("live-status-"+degraded))
	require.Equal(t, store.RunRollingBack, in.run(in.degraded.ID).State)
}

func TestLiveFeedRendersTheTableForEachMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := newIncident(t)
	feed := api.NewFeed(in.Store)
	deployer := auth.Member{Username: "dora", Bindings: []auth.Binding{{App: "*", Environment: "*", Role: auth.RoleDeployer}}}
	viewer := auth.Member{Username: "vic"}

	class, err := feed.Class(ctx, "live", deployer)
	require.NoError(t, err)
	other, err := feed.Class(ctx, "live", viewer)
	require.NoError(t, err)
	require.NotEqual(t, class, other, "members with different roles never share frames")
	_, err = feed.Class(ctx, "live:extra", viewer)
	require.True(t, errors.Is(err, live.ErrUnknownTopic), "got %v", err)
	require.True(t, feed.Affected("live", in.healthy.ID))

	cur := live.Cursor{EventID: 42}
	frames, after, err := feed.Frames(ctx, "live", class, deployer, cur)
	require.NoError(t, err)
	require.Equal(t, cur, after, "the table is a state; the cursor does not move")
	require.Len(t, frames, 1)
	require.Zero(t, frames[0].EventID)
	doc, err := html.Parse(strings.NewReader(string(frames[0].Data)))
	require.NoError(t, err)
	frame := page{Doc: doc}
	table := frame.byTestID("live-table")
	require.NotNil(t, table)
	require.Equal(t, "live-table", attr(table, "id"))
	require.Equal(t, "true", attr(table, "hx-swap-oob"))
	require.Equal(t, []string{fmt.Sprint(in.failing.ID), fmt.Sprint(in.degraded.ID), fmt.Sprint(in.wide.ID), fmt.Sprint(in.healthy.ID)}, liveRunOrder(frame))
	require.NotNil(t, frame.byTestID(fmt.Sprintf("live-abort-%d", in.healthy.ID)))

	frames, _, err = feed.Frames(ctx, "live", other, viewer, cur)
	require.NoError(t, err)
	doc, err = html.Parse(strings.NewReader(string(frames[0].Data)))
	require.NoError(t, err)
	require.Nil(t, byTestID(doc, fmt.Sprintf("live-abort-%d", in.healthy.ID)), "a viewer's frame has no buttons")
}
