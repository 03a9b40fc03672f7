package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// driverStatusSetup starts a run and leaves it waiting for a deploy system
// that accepted its first desired state. It returns the run and a token
// that may report driver statuses.
func driverStatusSetup(t *testing.T) (*runAPI, store.Run, string) {
	t.Helper()
	ctx := context.Background()
	a := runSetup(t)
	created := a.create("v2")
	a.step()
	run, err := a.store.Run(ctx, created.Id)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, run.State)
	require.Less(t, run.AppliedGeneration, run.Generation, "the first state is not applied yet")
	_, err = a.store.BeginDelivery(ctx, run.ID, run.Generation, "webhook")
	require.NoError(t, err)
	_, err = a.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: run.Generation, Status: store.DeliveryAccepted})
	require.NoError(t, err)

	admin, err := a.store.UserByUsername(ctx, "admin")
	require.NoError(t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = a.store.CreateToken(ctx, store.NewToken{Name: "deploy-bot", Hash: hash, Prefix: prefix,
		Scopes: []auth.Scope{auth.ScopeDeploy}, UserID: admin.ID})
	require.NoError(t, err)
	a.tokens["deploy-bot"] = plain
	return a, run, "deploy-bot"
}

func statusPath(id int64) string { return fmt.Sprintf("/api/v1/runs/%d/driver-status", id) }

func TestReportDriverStatusRecordsAndWakesTheRun(t *testing.T) {
	t.Parallel()
	a, run, bot := driverStatusSetup(t)
	ctx := context.Background()

	rec := a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID),
		body: fmt.Sprintf(`{"generation": %d, "ok": true, "message": "helm upgrade done"}`, run.Generation)})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	got := decode[apigen.DriverStatus](t, rec)
	require.Equal(t, run.ID, got.RunId)
	require.Equal(t, run.Generation, got.Generation)
	require.True(t, got.Ok)
	require.Equal(t, apigen.DriverStatusStatus("succeeded"), got.Status)
	require.Equal(t, "helm upgrade done", got.Message)
	require.Equal(t, "token:deploy-bot", got.ReportedBy)

	events, err := a.store.ListRunEvents(ctx, run.ID, 0, 100)
	require.NoError(t, err)
	last := events[len(events)-1]
	require.Equal(t, "driver.status", last.Type)
	require.Equal(t, "token:deploy-bot", last.Actor)
	require.JSONEq(t, fmt.Sprintf(`{"generation": %d, "ok": true, "message": "helm upgrade done", "driver": "webhook"}`, run.Generation), string(last.Payload))

	// The same report again cannot change the recorded status.
	rec = a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID),
		body: fmt.Sprintf(`{"generation": %d, "ok": false}`, run.Generation)})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Contains(t, readProblem(t, rec).Detail, "is already succeeded (reported by token:deploy-bot)")
	after, err := a.store.ListRunEvents(ctx, run.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, after, len(events), "a refused report records nothing")
}

func TestReportDriverStatusRefusesAnotherGeneration(t *testing.T) {
	t.Parallel()
	a, run, bot := driverStatusSetup(t)
	rec := a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID),
		body: fmt.Sprintf(`{"generation": %d, "ok": true}`, run.Generation+1)})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Equal(t, fmt.Sprintf("run %d is at generation %d; a status for generation %d is not for its current desired state. Nothing was recorded.",
		run.ID, run.Generation, run.Generation+1), readProblem(t, rec).Detail)
	d, err := a.store.Delivery(context.Background(), run.ID, run.Generation)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryAccepted, d.Status, "nothing changed")
}

func TestReportDriverStatusRefusesARunNotWaitingForADeploySystem(t *testing.T) {
	t.Parallel()
	a, run, bot := driverStatusSetup(t)
	// The simulator applies the state on the next step; the run then has
	// nothing waiting for a report.
	a.step()
	current, err := a.store.Run(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, current.Generation, current.AppliedGeneration)
	rec := a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID),
		body: fmt.Sprintf(`{"generation": %d, "ok": true}`, current.Generation)})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Contains(t, readProblem(t, rec).Detail, "is already applied")

	// A run whose desired state went to no deploy system at all.
	other := a.create("v3")
	rec = a.as(bot, exchange{method: http.MethodPost, path: statusPath(other.Id), body: `{"generation": 0, "ok": true}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	abort := a.as("ci", exchange{method: http.MethodPost, path: fmt.Sprintf("/api/v1/runs/%d/actions/abort", other.Id)})
	require.Equal(t, http.StatusOK, abort.Code, abort.Body.String())
	rec = a.as(bot, exchange{method: http.MethodPost, path: statusPath(other.Id), body: `{"generation": 1, "ok": true}`})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Contains(t, readProblem(t, rec).Detail, "has finished (aborted)")
}

func TestReportDriverStatusWithoutADelivery(t *testing.T) {
	t.Parallel()
	a, run, bot := driverStatusSetup(t)
	ctx := context.Background()
	// Move the run to a generation nothing was delivered for.
	run.Generation++
	run.LeaseOwner = ""
	_, err := a.store.UpdateRun(ctx, run, store.Event{Type: "test.generation"})
	require.NoError(t, err)
	rec := a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID),
		body: fmt.Sprintf(`{"generation": %d, "ok": true}`, run.Generation)})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.Equal(t, fmt.Sprintf("nothing was delivered to a deploy system for generation %d of run %d yet; its environment prod uses the simulator driver. Nothing was recorded.",
		run.Generation, run.ID), readProblem(t, rec).Detail)
}

func TestReportDriverStatusValidatesTheBody(t *testing.T) {
	t.Parallel()
	a, run, bot := driverStatusSetup(t)
	for name, tc := range map[string]struct {
		body   string
		status int
		fields []string
	}{
		"missing fields":  {body: `{}`, status: http.StatusUnprocessableEntity, fields: []string{"generation", "ok"}},
		"wrong types":     {body: `{"generation": 1.5, "ok": "yes", "message": 3}`, status: http.StatusUnprocessableEntity, fields: []string{"generation", "ok", "message"}},
		"unknown field":   {body: `{"generation": 1, "ok": true, "state": "done"}`, status: http.StatusUnprocessableEntity, fields: []string{"state"}},
		"zero generation": {body: `{"generation": 0, "ok": true}`, status: http.StatusUnprocessableEntity, fields: []string{"generation"}},
		"not json":        {body: `generation=1`, status: http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			rec := a.as(bot, exchange{method: http.MethodPost, path: statusPath(run.ID), body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			p := readProblem(t, rec)
			if tc.fields != nil {
				require.ElementsMatch(t, tc.fields, fieldsOf(p))
			}
		})
	}
	d, err := a.store.Delivery(context.Background(), run.ID, run.Generation)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryAccepted, d.Status, "a refused report changes nothing")
}

func TestReportDriverStatusNeedsAToken(t *testing.T) {
	t.Parallel()
	a, run, _ := driverStatusSetup(t)
	body := fmt.Sprintf(`{"generation": %d, "ok": true}`, run.Generation)
	rec := a.as("reader", exchange{method: http.MethodPost, path: statusPath(run.ID), body: body})
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	rec = a.do(exchange{method: http.MethodPost, path: statusPath(run.ID), body: body})
	require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
	rec = a.as("deploy-bot", exchange{method: http.MethodPost, path: statusPath(run.ID + 1000), body: body})
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
	d, err := a.store.Delivery(context.Background(), run.ID, run.Generation)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryAccepted, d.Status, "a refused report changes nothing")
}

// webhookSecret is the secret of the webhook environments below; it must
// never appear in what Flightdeck shows.
const webhookSecret = "whsec-0123456789abcdef-do-not-show"

func TestWebhookSecretIsHiddenFromTheAPI(t *testing.T) {
	t.Parallel()
	a, _, _ := driverStatusSetup(t)
	ctx := context.Background()
	_, err := a.store.CreateEnvironment(ctx, store.Environment{AppID: a.app.ID, Name: "edge", Tier: "production",
		Driver: json.RawMessage(`{"type": "webhook", "url": "https://deploy.example.com/hook", "secret": "` + webhookSecret + `"}`)})
	require.NoError(t, err)

	rec := a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/environments/edge"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotContains(t, rec.Body.String(), webhookSecret)
	var env struct {
		Driver map[string]any `json:"driver"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env))
	require.Equal(t, map[string]any{"type": "webhook", "url": "https://deploy.example.com/hook",
		"secret": "(hidden; send a new secret to change it)"}, env.Driver)

	rec = a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/environments"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotContains(t, rec.Body.String(), webhookSecret)
	stored, err := a.store.Environment(ctx, a.app.ID, "edge")
	require.NoError(t, err)
	require.Contains(t, string(stored.Driver), webhookSecret, "the stored secret is kept")
}

func TestWebhookSecretIsHiddenFromTheEnvironmentPage(t *testing.T) {
	t.Parallel()
	s := newPageServer(t)
	ctx := context.Background()
	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	_, err = s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production",
		Driver: json.RawMessage(`{"type": "webhook", "url": "https://deploy.example.com/hook", "secret": "` + webhookSecret + `"}`)})
	require.NoError(t, err)
	s.addUser("root", true)
	p := s.signIn("root").get("/apps/checkout/environments/production")
	require.Equal(t, http.StatusOK, p.Code)
	require.NotContains(t, p.Body, webhookSecret)
	require.Contains(t, p.text("setting-driver"), `"secret": "(hidden; send a new secret to change it)"`)
}
