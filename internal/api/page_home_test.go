package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// continuingAnalyzer judges every analysed phase healthy, so runs go on
// as planned.
type continuingAnalyzer struct{}

func (continuingAnalyzer) Analyze(context.Context, engine.AnalysisRequest) (engine.Analysis, error) {
	return engine.Analysis{Verdict: engine.VerdictContinue, Explanation: "Error rate and latency are within the thresholds.", Record: json.RawMessage(`{}`)}, nil
}

// deployment is an app with one environment on a page server with an
// engine stepped by hand.
type deployment struct {
	t   *testing.T
	s   *pageServer
	eng *engine.Engine
	app store.App
	env store.Environment
}

// newDeployment serves the pages with an engine, and creates the app and
// environment given (tier production).
func newDeployment(t *testing.T, appSlug, envName string) *deployment {
	t.Helper()
	d := &deployment{t: t}
	d.s = newPageServer(t, withEngine(continuingAnalyzer{}, &d.eng))
	ctx := context.Background()
	var err error
	d.app, err = d.s.Store.CreateApp(ctx, store.NewApp{Slug: appSlug, Name: strings.ToUpper(appSlug[:1]) + appSlug[1:]})
	require.NoError(t, err)
	d.env, err = d.s.Store.CreateEnvironment(ctx, store.Environment{AppID: d.app.ID, Name: envName, Tier: "production"})
	require.NoError(t, err)
	return d
}

// start creates a canary run of version as actor, with the step bake
// given ("0s" finishes at once, "1h" keeps the run in flight).
func (d *deployment) start(version, actor, bake string) store.Run {
	d.t.Helper()
	ctx := context.Background()
	env, err := d.s.Store.EnvironmentByID(ctx, d.env.ID)
	require.NoError(d.t, err)
	run, _, err := d.eng.CreateRun(ctx, engine.NewRun{
		App: d.app, Environment: env, Version: version, Strategy: "canary",
		Params: json.RawMessage(`{"steps": [5, 25, 50, 100], "step_bake": "` + bake + `"}`), CreatedBy: actor,
	})
	require.NoError(d.t, err)
	return run
}

// stepUntil steps the engine until the run satisfies done.
func (d *deployment) stepUntil(runID int64, what string, done func(store.Run) bool) store.Run {
	d.t.Helper()
	ctx := context.Background()
	for range 60 {
		run, err := d.s.Store.Run(ctx, runID)
		require.NoError(d.t, err)
		if done(run) {
			return run
		}
		_, err = d.eng.RunOnce(ctx)
		require.NoError(d.t, err)
	}
	run, _ := d.s.Store.Run(ctx, runID)
	d.t.Fatalf("run %d never got %s; it is %s at phase %d (%s)", runID, what, run.State, run.PhaseIndex, run.Reason)
	return run
}

// deploy runs version to success as actor.
func (d *deployment) deploy(version, actor string) store.Run {
	d.t.Helper()
	run := d.start(version, actor, "0s")
	return d.stepUntil(run.ID, "succeeded", func(r store.Run) bool { return r.State == store.RunSucceeded })
}

func TestOverviewListsAppsAndEnvironments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newPageServer(t)
	s.addUser("rita", false)
	b := s.signIn("rita")

	res := b.get("/")
	require.NotNil(t, res.byTestID("no-apps"), "an empty install says how to begin")

	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	env.StableVersion = "v1.4.2"
	_, err = s.Store.UpdateEnvironment(ctx, env)
	require.NoError(t, err)
	_, err = s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "staging", Tier: "staging"})
	require.NoError(t, err)
	_, err = s.Store.CreateApp(ctx, store.NewApp{Slug: "search", Name: "Search"})
	require.NoError(t, err)

	res = b.get("/")
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.Header.Get("Content-Type"), "text/html")
	require.Nil(t, res.byTestID("no-apps"))
	require.Contains(t, res.text("env-checkout-production"), "v1.4.2")
	require.Contains(t, res.text("env-checkout-staging"), "not deployed")
	require.Contains(t, res.text("app-search"), "no environments")
	require.Equal(t, "/apps/checkout/environments/production", attr(res.byTestID("env-link-checkout-production"), "href"))
	require.Equal(t, "production", res.text("tier-checkout-production"))
	require.Equal(t, "idle", res.text("run-checkout-production"))
	require.Equal(t, "never", res.text("last-deploy-checkout-production"))

	socket := res.byTestID("overview-socket")
	require.Equal(t, "ws", attr(socket, "hx-ext"), "the overview keeps itself current")
	require.Equal(t, "/ws/overview", attr(socket, "ws-connect"))
	require.Contains(t, res.Body, `id="overview-table"`)
}

func TestOverviewShowsTheRunInFlightAndTheLastDeploy(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("rita", false)
	first := d.deploy("v1.4.2", "rita")

	run := d.start("v1.5.0", "sam", "1h")
	run = d.stepUntil(run.ID, "its first phase baking", func(r store.Run) bool {
		return r.State == store.RunRunning && r.AppliedGeneration == r.Generation && r.Generation > 0
	})
	_, err := d.s.Store.InsertDecision(context.Background(), store.Decision{
		RunID: run.ID, PhaseIndex: run.PhaseIndex, Verdict: string(engine.VerdictMonitorLonger),
		Explanation: "Error rate is 1.1 points above stable; watching longer.", Record: json.RawMessage(`{}`),
	})
	require.NoError(t, err)

	b := d.s.signIn("rita")
	res := b.get("/")
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.text("stable-checkout-production"), "v1.4.2")
	require.Contains(t, res.text("run-checkout-production"), "v1.5.0")
	require.Contains(t, res.text("run-checkout-production"), "running")
	require.Contains(t, res.text("run-checkout-production"), "by sam")
	require.Equal(t, "/runs/"+strconv.FormatInt(run.ID, 10), attr(res.byTestID("run-link-checkout-production"), "href"))
	require.Equal(t, "canary 5% · 1 of 4", res.text("phase-checkout-production"))
	require.Equal(t, "monitoring longer", res.text("health-checkout-production"))
	require.Contains(t, attr(res.byTestID("health-checkout-production"), "title"), "watching longer")

	last := res.text("last-deploy-checkout-production")
	require.Contains(t, last, "v1.4.2")
	require.Equal(t, "rita", res.text("last-deploy-by-checkout-production"))
	require.Equal(t, "just now", res.text("last-deploy-at-checkout-production"))
	require.Equal(t, first.FinishedAt.UTC().Format("2006-01-02T15:04:05Z07:00"),
		attr(res.byTestID("last-deploy-at-checkout-production"), "datetime"))

	// A second run waits in line behind the one in flight.
	d.start("v1.6.0", "sam", "1h")
	res = b.get("/")
	require.Equal(t, "1 more queued", res.text("queued-checkout-production"))

	// Paused runs say so instead of their last verdict.
	_, err = d.eng.Act(context.Background(), run.ID, engine.ActionRequest{Action: engine.ActionPause, Actor: "sam"})
	require.NoError(t, err)
	res = b.get("/")
	require.Equal(t, "paused", res.text("health-checkout-production"))
}

func TestOverviewFeedSendsTheTableToReplaceInPlace(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.deploy("v1.4.2", "rita")
	ctx := context.Background()
	feed := api.NewFeed(d.s.Store)
	m := auth.Member{UserID: 1, Username: "rita"}

	class, err := feed.Class(ctx, "overview", m)
	require.NoError(t, err)
	require.Empty(t, class, "everyone sees the same overview")
	_, err = feed.Class(ctx, "overview:checkout", m)
	require.True(t, errors.Is(err, live.ErrUnknownTopic), "the overview topic takes no argument: %v", err)
	require.True(t, feed.Affected("overview", 12345), "every run's change concerns the overview")

	cur := live.Cursor{EventID: 42}
	frames, next, err := feed.Frames(ctx, "overview", class, m, cur)
	require.NoError(t, err)
	require.Equal(t, cur, next, "the overview is a state; the cursor stays where it was")
	require.Len(t, frames, 1)
	require.Zero(t, frames[0].EventID, "a state frame, safe to send again")
	frame := string(frames[0].Data)
	require.True(t, strings.HasPrefix(frame, `<div id="overview-table"`), frame)
	require.Contains(t, frame, `hx-swap-oob="true"`)
	require.Contains(t, frame, `data-testid="env-checkout-production"`)
	require.Contains(t, frame, "v1.4.2")
}

func TestOverviewFollowsRunsLive(t *testing.T) {
	t.Parallel()
	var hub *live.Hub
	s := newPageServer(t, withLive(t, &hub))
	writer := liveWriter(t, s)
	ctx := context.Background()
	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	s.addUser("rita", false)
	b := s.signIn("rita")

	ws := b.open("/ws/overview", `{}`)
	first := ws.await(`data-testid="env-checkout-production"`)
	require.Contains(t, first, `hx-swap-oob="true"`)
	require.Contains(t, first, `data-testid="run-checkout-production">idle<`)

	// A run started by any replica appears on the open overview.
	run, _, err := writer.CreateRun(ctx, store.NewRun{AppID: app.ID, EnvironmentID: env.ID, ToVersion: "v1.5.0", Strategy: "canary", CreatedBy: "sam"})
	require.NoError(t, err)
	frame := ws.await(`href="/runs/` + strconv.FormatInt(run.ID, 10) + `"`)
	require.Contains(t, frame, "v1.5.0")
	require.Contains(t, frame, ">queued<")
}
