package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// governanceSetup is runSetup with an admin token.
func governanceSetup(t *testing.T) *runAPI {
	t.Helper()
	a := runSetup(t)
	ctx := context.Background()
	u, err := a.store.UserByUsername(ctx, "admin")
	require.NoError(t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = a.store.CreateToken(ctx, store.NewToken{Name: "platform", Hash: hash, Prefix: prefix, Scopes: []auth.Scope{auth.ScopeAdmin}, UserID: u.ID})
	require.NoError(t, err)
	a.tokens["platform"] = plain
	return a
}

// closedDay is a weekday whose 00:00–01:00 UTC window is certainly closed
// now: neither today nor yesterday.
func closedDay() string {
	return []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}[(int(time.Now().UTC().Weekday())+3)%7]
}

func (a *runAPI) auditActions(t *testing.T) []string {
	t.Helper()
	entries, err := a.store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Action)
	}
	return out
}

func TestDeployWindowsRefuseOrWaitAndOverride(t *testing.T) {
	t.Parallel()
	a := governanceSetup(t)
	path := "/api/v1/apps/shop/environments/prod/deploy-windows"

	rec := a.as("reader", exchange{method: http.MethodGet, path: path})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Empty(t, decode[apigen.DeployWindows](t, rec).Windows, "no windows: deploys at any time")

	body := fmt.Sprintf(`{"outside": "refuse", "windows": [{"days": [%q], "start": "00:00", "end": "01:00", "time_zone": "UTC"}]}`, closedDay())
	rec = a.as("ci", exchange{method: http.MethodPut, path: path, body: body})
	require.Equal(t, http.StatusForbidden, rec.Code, "a deploy token cannot change windows")
	rec = a.as("platform", exchange{method: http.MethodPut, path: path, body: body})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, apigen.DeployWindowsOutside("refuse"), decode[apigen.DeployWindows](t, rec).Outside)

	rec = a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2"}`})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	p := readProblem(t, rec)
	require.Contains(t, p.Detail, "prod deploys only")
	require.Contains(t, p.Detail, "00:00–01:00 UTC; the next window opens")
	require.Contains(t, p.Detail, "nothing was started")

	// Only an admin overrides, with a reason.
	rec = a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2", "override": {"reason": "hotfix"}}`})
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	rec = a.as("platform", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2", "override": {"reason": " "}}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	require.Equal(t, []string{"override.reason"}, fieldsOf(readProblem(t, rec)))
	rec = a.as("platform", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2", "override": {"reason": "hotfix for incident 42"}}`})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	run := decode[apigen.Run](t, rec)
	evs, err := a.store.ListRunEvents(context.Background(), run.Id, 0, 100)
	require.NoError(t, err)
	require.True(t, slicesContainsFunc(evs, func(e store.RunEvent) bool {
		return e.Type == "run.override" && strings.Contains(string(e.Payload), "hotfix for incident 42")
	}), "the override is shown on the run")
	require.Contains(t, a.auditActions(t), "run.override")
	a.step()
	got, err := a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State, "the overridden run started outside its window: %s", got.Reason)
}

func TestWaitingRunIsOverriddenLater(t *testing.T) {
	t.Parallel()
	a := governanceSetup(t)
	rec := a.as("platform", exchange{method: http.MethodPut, path: "/api/v1/apps/shop/environments/prod/deploy-windows",
		body: fmt.Sprintf(`{"outside": "wait", "windows": [{"days": [%q], "start": "00:00", "end": "01:00", "time_zone": "UTC"}]}`, closedDay())})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	run := a.create("v2")
	a.step()
	got, err := a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, got.State)
	require.Contains(t, got.Reason, "waiting: prod deploys only")

	override := fmt.Sprintf("/api/v1/runs/%d/override", run.Id)
	rec = a.as("ci", exchange{method: http.MethodPost, path: override, body: `{"reason": "customer escalation"}`})
	require.Equal(t, http.StatusForbidden, rec.Code)
	rec = a.as("platform", exchange{method: http.MethodPost, path: override, body: `{}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	rec = a.as("platform", exchange{method: http.MethodPost, path: override, body: `{"reason": "customer escalation"}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	a.step()
	got, err = a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State)
	rec = a.as("platform", exchange{method: http.MethodPost, path: override, body: `{"reason": "again"}`})
	require.Equal(t, http.StatusConflict, rec.Code, "a running run waits for nothing")
}

func TestBadDeployWindowsAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	a := governanceSetup(t)
	path := "/api/v1/apps/shop/environments/prod/deploy-windows"
	rec := a.as("platform", exchange{method: http.MethodPut, path: path,
		body: `{"outside": "maybe", "windows": [{"days": ["mon", "someday"], "start": "25:00", "end": "16:00", "time_zone": "Mars/Base"}]}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	require.ElementsMatch(t, []string{"outside", "windows[0].days", "windows[0].start", "windows[0].time_zone"}, fieldsOf(readProblem(t, rec)))
	rec = a.as("platform", exchange{method: http.MethodPut, path: path, body: `{"outside": "wait", "windows": "always"}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	rec = a.as("reader", exchange{method: http.MethodGet, path: path})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, decode[apigen.DeployWindows](t, rec).Windows, "nothing was changed")
	require.NotContains(t, a.auditActions(t), "environment.deploy_windows")
}

func TestFreezesAreCreatedListedAndEnded(t *testing.T) {
	t.Parallel()
	a := governanceSetup(t)
	path := "/api/v1/apps/shop/environments/prod/freezes"
	until := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	rec := a.as("platform", exchange{method: http.MethodPost, path: path, body: `{"reason": "", "ends_at": "yesterday"}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	require.ElementsMatch(t, []string{"ends_at", "reason"}, fieldsOf(readProblem(t, rec)))
	rec = a.as("ci", exchange{method: http.MethodPost, path: path, body: fmt.Sprintf(`{"reason": "year-end", "ends_at": %q}`, until)})
	require.Equal(t, http.StatusForbidden, rec.Code)

	rec = a.as("platform", exchange{method: http.MethodPost, path: path, body: fmt.Sprintf(`{"reason": "year-end freeze", "ends_at": %q}`, until)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	f := decode[apigen.Freeze](t, rec)
	require.True(t, f.Active)
	require.Equal(t, "token:platform", f.CreatedBy)

	// A run asked for during the freeze waits (the default), naming it.
	run := a.create("v2")
	a.step()
	got, err := a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, got.State)
	require.Contains(t, got.Reason, "prod is frozen: year-end freeze (set by token:platform, ends ")

	rec = a.as("reader", exchange{method: http.MethodGet, path: path})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, decode[apigen.FreezeList](t, rec).Items, 1)

	end := fmt.Sprintf("%s/%d/end", path, f.Id)
	rec = a.as("platform", exchange{method: http.MethodPost, path: end})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.False(t, decode[apigen.Freeze](t, rec).Active)
	rec = a.as("platform", exchange{method: http.MethodPost, path: end})
	require.Equal(t, http.StatusConflict, rec.Code)
	rec = a.as("platform", exchange{method: http.MethodPost, path: path + "/999999/end"})
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Subset(t, a.auditActions(t), []string{"environment.freeze", "environment.freeze_ended"})
}

func TestStopTheLine(t *testing.T) {
	t.Parallel()
	a := governanceSetup(t)
	run := a.create("v2")
	a.step()

	rec := a.as("reader", exchange{method: http.MethodPost, path: "/api/v1/halt", body: `{"reason": "incident"}`})
	require.Equal(t, http.StatusForbidden, rec.Code, "a viewer cannot stop the line")
	rec = a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/halt", body: `{"reason": "incident"}`})
	require.Equal(t, http.StatusForbidden, rec.Code, "a deploy token cannot stop the line")
	rec = a.as("lead", exchange{method: http.MethodPost, path: "/api/v1/halt", body: `{"reason": ""}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)

	rec = a.as("lead", exchange{method: http.MethodPost, path: "/api/v1/halt", body: `{"reason": "incident 42"}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	h := decode[apigen.Halt](t, rec)
	require.True(t, h.Active)
	require.Equal(t, []int64{run.Id}, *h.Runs)
	got, err := a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunPaused, got.State)
	require.Equal(t, "stop the line: incident 42", got.Reason)

	rec = a.as("lead", exchange{method: http.MethodPost, path: "/api/v1/halt", body: `{"reason": "again"}`})
	require.Equal(t, http.StatusConflict, rec.Code)
	rec = a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/halt"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "incident 42", *decode[apigen.Halt](t, rec).Reason)

	rec = a.as("lead", exchange{method: http.MethodPost, path: "/api/v1/halt/lift"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, []int64{run.Id}, *decode[apigen.Halt](t, rec).Runs)
	got, err = a.store.Run(context.Background(), run.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State)
	rec = a.as("lead", exchange{method: http.MethodPost, path: "/api/v1/halt/lift"})
	require.Equal(t, http.StatusConflict, rec.Code)
	require.Subset(t, a.auditActions(t), []string{"halt.stopped", "halt.lifted"})
}

func slicesContainsFunc[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}
