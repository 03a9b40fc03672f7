package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// governancePageSetup serves the pages with an engine, an app shop with
// environment prod (stable v1) and a running canary.
func governancePageSetup(t *testing.T) (*pageServer, *engine.Engine, store.Environment, store.Run) {
	t.Helper()
	var eng *engine.Engine
	s := newPageServer(t, withEngine(&steadyAnalyzer{}, &eng))
	ctx := context.Background()
	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "shop", Name: "Shop"})
	require.NoError(t, err)
	env, err := s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "prod", Tier: "production",
		Driver: json.RawMessage(`{"type": "simulator"}`), DefaultStrategy: "canary"})
	require.NoError(t, err)
	require.NoError(t, s.Store.SetStableVersion(ctx, env.ID, "v1"))
	env, err = s.Store.EnvironmentByID(ctx, env.ID)
	require.NoError(t, err)
	run, _, err := eng.CreateRun(ctx, engine.NewRun{App: app, Environment: env, Version: "v2", CreatedBy: "ci"})
	require.NoError(t, err)
	_, err = eng.RunOnce(ctx)
	require.NoError(t, err)
	return s, eng, env, run
}

func TestStopTheLinePage(t *testing.T) {
	t.Parallel()
	s, _, _, run := governancePageSetup(t)
	s.addUser("vera", false, "shop/prod=viewer")
	s.addUser("dan", false, "shop/prod=deployer")
	s.addUser("amy", false, "shop/*=approver")
	ctx := context.Background()

	viewer := s.signIn("vera")
	pg := viewer.get("/halt")
	require.Equal(t, http.StatusOK, pg.Code)
	require.Equal(t, "Running", pg.text("halt-state"))
	require.Nil(t, pg.byTestID("halt-stop"), "a viewer sees no stop button")
	pg = viewer.post("/halt", url.Values{"reason": {"incident"}})
	require.Equal(t, http.StatusForbidden, pg.Code)
	require.NotNil(t, pg.byTestID("refusal-403"))
	pg = s.signIn("dan").post("/halt", url.Values{"reason": {"incident"}})
	require.Equal(t, http.StatusForbidden, pg.Code, "a deployer cannot stop the line")
	st, err := s.Store.Halt(ctx)
	require.NoError(t, err)
	require.False(t, st.Active, "nothing was changed")

	approver := s.signIn("amy")
	pg = approver.get("/halt")
	require.NotNil(t, pg.byTestID("halt-stop"))
	require.Contains(t, attr(pg.byTestID("halt-form"), "data-confirm"), "Stop the line?")
	pg = approver.post("/halt", url.Values{"reason": {"  "}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.NotEmpty(t, pg.text("halt-error-reason"))

	pg = approver.post("/halt", url.Values{"reason": {"incident 42"}})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	got, err := s.Store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunPaused, got.State)
	require.Equal(t, "stop the line: incident 42", got.Reason)

	pg = viewer.get("/halt/banner")
	require.Contains(t, pg.text("halt-banner"), "The line is stopped.")
	require.Contains(t, pg.text("halt-banner"), "incident 42")
	require.NotNil(t, viewer.get("/").byTestID("halt-banner-slot"), "every page loads the banner")

	pg = approver.post("/halt/lift", url.Values{})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	got, err = s.Store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State)
	require.Nil(t, viewer.get("/halt/banner").byTestID("halt-banner"))
	entries, err := s.Store.ListAudit(ctx, store.AuditFilter{Limit: 20})
	require.NoError(t, err)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	require.Subset(t, actions, []string{"halt.stopped", "halt.lifted"})
}

func TestDeployWindowsPage(t *testing.T) {
	t.Parallel()
	s, eng, env, first := governancePageSetup(t)
	s.addUser("dan", false, "shop/prod=deployer")
	s.addUser("root", true)
	ctx := context.Background()
	path := "/apps/shop/environments/prod/governance"

	deployer := s.signIn("dan")
	pg := deployer.get(path)
	require.Equal(t, http.StatusOK, pg.Code)
	require.Nil(t, pg.byTestID("gov-windows-form"), "only admins edit windows")
	pg = deployer.post(path+"/windows", url.Values{"windows": {"mon 09:00-10:00 UTC"}, "outside": {"wait"}})
	require.Equal(t, http.StatusForbidden, pg.Code)
	require.Contains(t, pg.text("refusal-message"), "needs the admin role")

	admin := s.signIn("root")
	require.NotNil(t, admin.get("/apps/shop/environments/prod").byTestID("env-governance-link"))
	pg = admin.post(path+"/windows", url.Values{"windows": {"mon-thu 25:00-16:00 Mars/Base"}, "outside": {"sometimes"}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.Contains(t, pg.text("gov-error-windows"), "line 1")
	require.Contains(t, pg.text("gov-error-windows"), "Mars/Base")
	require.NotEmpty(t, pg.text("gov-error-outside"))
	pg = admin.post(path+"/windows", url.Values{"windows": {"whenever"}, "outside": {"wait"}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	set, err := s.Store.DeployWindows(ctx, env.ID)
	require.NoError(t, err)
	require.Empty(t, set.Windows, "nothing was changed")

	day := strings.ToLower(time.Now().UTC().Add(72 * time.Hour).Weekday().String()[:3])
	pg = admin.post(path+"/windows", url.Values{"windows": {day + " 00:00-01:00 UTC"}, "outside": {"wait"}})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	pg = admin.get(path)
	require.Contains(t, pg.text("gov-summary"), "deploys only")
	require.Contains(t, pg.text("gov-status"), "the next window opens")

	// A freeze: refused without an end, then set.
	pg = admin.post(path+"/freezes", url.Values{"reason": {"year-end"}, "ends_at": {""}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.NotEmpty(t, pg.text("gov-error-ends_at"))
	ends := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04")
	pg = admin.post(path+"/freezes", url.Values{"reason": {"year-end freeze"}, "ends_at": {ends}})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	fs, err := s.Store.ListFreezes(ctx, env.ID, 10)
	require.NoError(t, err)
	require.Len(t, fs, 1)

	// A second run waits; the admin overrides it from the page.
	app, err := s.Store.App(ctx, "shop")
	require.NoError(t, err)
	waiting, _, err := eng.CreateRun(ctx, engine.NewRun{App: app, Environment: env, Version: "v3", CreatedBy: "ci"})
	require.NoError(t, err)
	_, err = eng.Act(ctx, first.ID, engine.ActionRequest{Action: engine.ActionAbort, Actor: "root"})
	require.NoError(t, err)
	for range 5 {
		_, err = eng.RunOnce(ctx)
		require.NoError(t, err)
	}
	got, err := s.Store.Run(ctx, waiting.ID)
	require.NoError(t, err)
	require.Contains(t, got.Reason, "prod is frozen: year-end freeze")
	pg = admin.get(path)
	id := strings.TrimPrefix(attr(pg.byTestID("override-"+itoa64(waiting.ID)), "data-testid"), "override-")
	require.Equal(t, itoa64(waiting.ID), id)
	pg = deployer.post(path+"/runs/"+id+"/override", url.Values{"reason": {"hotfix"}})
	require.Equal(t, http.StatusForbidden, pg.Code)
	pg = admin.post(path+"/runs/"+id+"/override", url.Values{"reason": {""}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.NotEmpty(t, pg.text("gov-error-override"))
	pg = admin.post(path+"/runs/"+id+"/override", url.Values{"reason": {"hotfix for incident 42"}})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	_, err = eng.RunOnce(ctx)
	require.NoError(t, err)
	got, err = s.Store.Run(ctx, waiting.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State, got.Reason)

	pg = admin.post(path+"/freezes/"+itoa64(fs[0].ID)+"/end", url.Values{})
	require.Equal(t, http.StatusSeeOther, pg.Code, pg.Body)
	require.Contains(t, admin.get(path).text("freeze-"+itoa64(fs[0].ID)), "ended early by root")
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestApprovalPolicyFromTheBrowser(t *testing.T) {
	t.Parallel()
	s, _, env, _ := governancePageSetup(t)
	s.addUser("dan", false, "shop/prod=deployer")
	s.addUser("root", true)
	ctx := context.Background()
	path := "/apps/shop/environments/prod/governance"

	deployer := s.signIn("dan")
	pg := deployer.get(path)
	require.Contains(t, pg.text("gov-approvals-summary"), "Each gate needs one approver and waits as long as it takes.")
	require.Nil(t, pg.byTestID("gov-approvals-form"), "only admins edit the policy")
	pg = deployer.post(path+"/approvals", url.Values{"min_approvers": {"2"}, "on_timeout": {"reject"}})
	require.Equal(t, http.StatusForbidden, pg.Code)

	admin := s.signIn("root")
	pg = admin.post(path+"/approvals", url.Values{"min_approvers": {"twelve"}, "timeout": {"5s"}, "on_timeout": {"reject"}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.Contains(t, pg.text("gov-error-min_approvers"), "not a whole number")
	require.Equal(t, "twelve", attr(pg.byTestID("gov-min-approvers"), "value"), "the form keeps what was typed")
	p, err := s.Store.ApprovalPolicy(ctx, env.ID)
	require.NoError(t, err)
	require.Equal(t, 1, p.MinApprovers, "nothing was changed")

	pg = admin.post(path+"/approvals", url.Values{"min_approvers": {"2"}, "timeout": {"5s"}, "on_timeout": {"reject"}})
	require.Equal(t, http.StatusUnprocessableEntity, pg.Code)
	require.Contains(t, pg.text("gov-error-timeout"), "between 1m0s and 30 days")

	pg = admin.post(path+"/approvals", url.Values{"min_approvers": {"2"}, "timeout": {"4h"}, "on_timeout": {"escalate"}, "in_window_only": {"true"}})
	require.Equal(t, http.StatusSeeOther, pg.Code)
	pg = admin.get(path)
	require.Equal(t, "Each gate needs 2 different approvers; a gate nobody answers within 4h is escalated; approvals are taken only inside the deploy window.",
		pg.text("gov-approvals-summary"))
	p, err = s.Store.ApprovalPolicy(ctx, env.ID)
	require.NoError(t, err)
	require.Equal(t, 2, p.MinApprovers)
	require.True(t, p.InWindowOnly)
}
