package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

const rolloutPath = "/api/v1/apps/shop/flags/new-checkout/environments/prod/rollout"

// withMetricsToken adds a token that may only push metrics, as an
// application's reporter would hold.
func (a *flagAPI) withMetricsToken() {
	a.t.Helper()
	ctx := context.Background()
	admin, err := a.store.UserByUsername(ctx, "admin")
	require.NoError(a.t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(a.t, err)
	_, err = a.store.CreateToken(ctx, store.NewToken{Name: "reporter", Hash: hash, Prefix: prefix, Scopes: []auth.Scope{auth.ScopeMetrics}, UserID: admin.ID})
	require.NoError(a.t, err)
	a.tokens["reporter"] = plain
}

// samples is a batch of one ten-second window of both variants, n
// requests each, at the moment ahead of now: the analysis judges only
// whole windows that began after the step did.
func samples(n int, onErrors, offErrors float64, ahead time.Duration) string {
	at := time.Now().UTC().Add(ahead).Format(time.RFC3339Nano)
	return fmt.Sprintf(`{"samples": [
		{"variant": "on", "metric": "error_rate", "timestamp": %q, "count": %d, "sum": %g},
		{"variant": "off", "metric": "error_rate", "timestamp": %q, "count": %d, "sum": %g}]}`,
		at, n, float64(n)*onErrors, at, n, float64(n)*offErrors)
}

func TestGuardedRolloutThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	a.seedFlag()
	a.withMetricsToken()

	// Bad requests name each field and change nothing.
	before := a.stored()
	for body, field := range map[string]string{
		`{}`:                    "step_bake",
		`{"step_bake": "soon"}`: "step_bake",
		`{"step_bake": "1m"}`:   "variant",
		`{"variant": "on", "control_variant": "off", "steps": [50, 20, 100], "step_bake": "1m"}`: "steps[1]",
		`{"variant": "on", "control_variant": "off", "steps": [5, 50], "step_bake": "1m"}`:       "steps",
		`{"variant": "on", "control_variant": "on", "step_bake": "1m"}`:                          "control_variant",
		`{"variant": "on", "control_variant": "off", "steps": "fast", "step_bake": "1m"}`:        "steps",
		`{"variant": "on", "control_variant": "off", "step_bake": "1m", "speed": 3}`:             "speed",
	} {
		rec := a.must(http.StatusUnprocessableEntity, http.MethodPost, rolloutPath, body)
		require.Contains(t, rec.Body.String(), fmt.Sprintf("%q", field), body)
	}
	rec := a.as("reader", exchange{method: http.MethodPost, path: rolloutPath, body: `{"variant": "on", "control_variant": "off", "step_bake": "1m"}`})
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	a.must(http.StatusNotFound, http.MethodGet, rolloutPath, "")
	require.Equal(t, before, a.stored(), "refused rollouts change nothing")

	// Start: the flag serves 5% "on" to users no rule matches.
	rec = a.must(http.StatusCreated, http.MethodPost, rolloutPath, `{"variant": "on", "control_variant": "off", "steps": [5, 50, 100], "step_bake": "10m"}`)
	require.Equal(t, rolloutPath, rec.Header().Get("Location"))
	r := decode[apigen.FlagRollout](t, rec)
	require.Equal(t, apigen.FlagRolloutStateRunning, r.State)
	require.Equal(t, 5.0, r.Percent)
	require.Equal(t, "10m", r.StepBake)
	require.Equal(t, "token:ci", r.StartedBy)
	st := a.flagState("prod")
	require.True(t, st.Enabled)
	require.Len(t, st.Rules, 2, "the targeting rules stay in front of the rollout")
	require.Equal(t, "on", orEmpty(a.evaluate("prod", `{"targetingKey": "kim", "email": "kim@example.com"}`).Variant))

	rec = a.must(http.StatusConflict, http.MethodPost, rolloutPath, `{"variant": "on", "control_variant": "off", "step_bake": "1m"}`)
	require.Contains(t, rec.Body.String(), "running")
	require.Equal(t, r.Id, decode[struct{ Current apigen.FlagRollout }](t, rec).Current.Id)

	// Metrics by variant: the reporter's token may push, nothing else.
	rec = a.as("ci", exchange{method: http.MethodPost, path: rolloutPath + "/metrics", body: samples(100, 0, 0, 0)})
	require.Equal(t, http.StatusForbidden, rec.Code, "pushing needs the metrics scope")
	rec = a.as("reporter", exchange{method: http.MethodPost, path: rolloutPath + "/metrics", body: `{"samples": [
		{"variant": "blue", "metric": "error_rate", "timestamp": "2026-03-01T12:00:00Z", "value": 1}]}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `variant \"blue\" is not part of the rollout of new-checkout in prod, which releases \"on\" over \"off\"`)

	// A variant failing 30% of its requests against 0.5% is rolled back
	// in its warm-up, and the flag is turned off.
	for range 3 {
		rec = a.as("reporter", exchange{method: http.MethodPost, path: rolloutPath + "/metrics", body: samples(1000, 0.30, 0.005, 15*time.Second)})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	// The guard looks half a minute on, when that window is whole.
	guard := rollout.New(a.store, rollout.Config{Now: func() time.Time { return time.Now().Add(30 * time.Second) }})
	n, err := guard.RunOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r = decode[apigen.FlagRollout](t, a.must(http.StatusOK, http.MethodGet, rolloutPath, ""))
	require.Equal(t, apigen.FlagRolloutStateRolledBack, r.State, "decision: %v", r.Decision)
	require.Contains(t, *r.Outcome, "new-checkout=on error rate")
	require.NotNil(t, r.Decision)
	require.Equal(t, "rollback", (*r.Decision)["verdict"])
	require.False(t, a.flagState("prod").Enabled, "a rolled back rollout turns the flag off")

	rec = a.as("reporter", exchange{method: http.MethodPost, path: rolloutPath + "/metrics", body: samples(10, 0, 0, 0)})
	require.Equal(t, http.StatusNotFound, rec.Code, "samples are taken only while a rollout runs")
	rec = a.must(http.StatusConflict, http.MethodPost, rolloutPath+"/cancel", "")
	require.Contains(t, rec.Body.String(), "rolled back")
}

func TestCancelledRolloutKeepsItsShare(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	a.seedFlag()
	a.must(http.StatusNotFound, http.MethodPost, rolloutPath+"/cancel", "")
	a.must(http.StatusCreated, http.MethodPost, rolloutPath, `{"variant": "on", "control_variant": "off", "steps": [20, 100], "step_bake": "1h"}`)
	rec := a.as("reader", exchange{method: http.MethodPost, path: rolloutPath + "/cancel"})
	require.Equal(t, http.StatusForbidden, rec.Code)

	r := decode[apigen.FlagRollout](t, a.must(http.StatusOK, http.MethodPost, rolloutPath+"/cancel", ""))
	require.Equal(t, apigen.FlagRolloutStateCancelled, r.State)
	require.Contains(t, *r.Outcome, "Cancelled by token:ci at 20%")
	st := a.flagState("prod")
	require.True(t, st.Enabled)
	require.NotNil(t, st.DefaultRollout.Rollout)
	require.Equal(t, 20.0, (*st.DefaultRollout.Rollout)[0].Weight)

	// A kill switch during a new rollout stops it too.
	a.must(http.StatusCreated, http.MethodPost, rolloutPath, `{"variant": "on", "control_variant": "off", "step_bake": "1h"}`)
	a.must(http.StatusOK, http.MethodPost, "/api/v1/apps/shop/flags/new-checkout/environments/prod/kill", "")
	r = decode[apigen.FlagRollout](t, a.must(http.StatusOK, http.MethodGet, rolloutPath, ""))
	require.Equal(t, apigen.FlagRolloutStateCancelled, r.State)
	require.Contains(t, *r.Outcome, "token:ci turned the flag off")
}
