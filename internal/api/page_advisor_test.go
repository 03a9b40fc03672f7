package api_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// schemaChangeAnswers are a zero-downtime release with a schema change and
// budget for double capacity: blue-green.
var schemaChangeAnswers = url.Values{
	"downtime": {"none"}, "budget": {"double"}, "schema": {"yes"}, "real_load": {"no"},
	"behaviour": {"no"}, "org": {"small"}, "batch": {"no"},
}

// advisorServer serves the pages with apps checkout and search, each with
// a production environment.
func advisorServer(t *testing.T) (*pageServer, store.Environment) {
	t.Helper()
	s := newPageServer(t)
	ctx := context.Background()
	var checkout store.Environment
	for _, slug := range []string{"checkout", "search"} {
		app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: slug, Name: slug})
		require.NoError(t, err)
		env, err := s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
		require.NoError(t, err)
		if slug == "checkout" {
			checkout = env
		}
	}
	return s, checkout
}

func TestAdvisorRecommendsAStrategyWithItsReasons(t *testing.T) {
	t.Parallel()
	s, _ := advisorServer(t)
	s.addUser("vic", false)
	b := s.signIn("vic")

	res := b.get("/advisor")
	require.Equal(t, http.StatusOK, res.Code)
	require.NotNil(t, res.byTestID("advisor-form"))
	require.Nil(t, res.byTestID("advice"), "no advice before the questions are answered")
	require.True(t, hasAttr(res.byTestID("answer-downtime-none"), "checked"), "the form starts with likely answers")

	res = b.get("/advisor?" + schemaChangeAnswers.Encode())
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "blue_green", res.text("advice-strategy"))
	require.Equal(t, "Blue-green", res.text("advice-title"))
	require.Equal(t, "none", res.text("advice-downtime"))
	require.Contains(t, res.text("advice-rollback"), "seconds")
	require.Equal(t, "2×", res.text("advice-cost"))
	require.Contains(t, res.text("advice-reasons"), "schema change")
	require.Contains(t, res.text("advice-reasons"), "twice the capacity")
	require.NotNil(t, res.byTestID("alternative-canary"))
	require.True(t, hasAttr(res.byTestID("answer-schema-yes"), "checked"), "the answers stay chosen")
	require.Contains(t, res.text("advice-no-admin"), "needs the admin role", "a viewer is told why there is no button")
	require.Nil(t, res.byTestID("advice-default-form"))

	batch := cloneValues(schemaChangeAnswers)
	batch.Set("batch", "yes")
	res = b.get("/advisor?" + batch.Encode())
	require.Equal(t, "recreate", res.text("advice-strategy"))
	require.Contains(t, res.text("advice-downtime"), "yes")
}

func TestAdvisorNamesUnansweredQuestions(t *testing.T) {
	t.Parallel()
	s, _ := advisorServer(t)
	s.addUser("vic", false)
	b := s.signIn("vic")

	bad := cloneValues(schemaChangeAnswers)
	bad.Set("downtime", "forever")
	bad.Del("org")
	res := b.get("/advisor?" + bad.Encode())
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Nil(t, res.byTestID("advice"))
	require.Contains(t, res.text("error-downtime"), `"forever" is not an answer`)
	require.Contains(t, res.text("error-org"), "Choose an answer")
	require.Empty(t, res.text("error-budget"))
	require.True(t, hasAttr(res.byTestID("answer-budget-double"), "checked"), "valid answers stay chosen")
}

func TestAdvisorMakesTheAdviceTheDefaultStrategy(t *testing.T) {
	t.Parallel()
	s, checkout := advisorServer(t)
	s.addUser("ada", false, "checkout/production=admin")
	ctx := context.Background()
	b := s.signIn("ada")

	res := b.get("/advisor?" + schemaChangeAnswers.Encode())
	picker := res.byTestID("advice-environment")
	require.NotNil(t, picker)
	var options []string
	for o := picker.FirstChild; o != nil; o = o.NextSibling {
		if o.Data == "option" {
			options = append(options, attr(o, "value"))
		}
	}
	require.Equal(t, []string{"checkout/production"}, options, "only environments the member is admin of")

	form := cloneValues(schemaChangeAnswers)
	form.Set("strategy", "blue_green")
	form.Set("environment", "checkout/production")
	done := b.post("/advisor", form)
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	require.Equal(t, "/apps/checkout/environments/production", done.Location)
	env, err := s.Store.EnvironmentByID(ctx, checkout.ID)
	require.NoError(t, err)
	require.Equal(t, "blue_green", env.DefaultStrategy)
	entries, err := s.Store.ListAudit(ctx, store.AuditFilter{App: "checkout", Limit: 10})
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "environment.settings_changed", entries[0].Action)
	require.Equal(t, "ada", entries[0].Actor)
	require.Contains(t, entries[0].Detail, "default_strategy: canary → blue_green")
	require.Contains(t, b.get(done.Location).text("flash"), "Blue-green is now the default strategy of checkout/production")

	// An environment the member is not admin of is refused and unchanged.
	form.Set("environment", "search/production")
	refused := b.post("/advisor", form)
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on search/production; changing its default strategy needs the admin role. Nothing was changed.")

	// A strategy that does not exist, or an environment that does not,
	// is named and changes nothing.
	form.Set("environment", "checkout/production")
	form.Set("strategy", "big_bang")
	res = b.post("/advisor", form)
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("error-strategy"), `"big_bang" is not a strategy`)
	require.Equal(t, "blue_green", res.text("advice-strategy"), "the advice is shown again")
	form.Set("strategy", "ring")
	form.Set("environment", "checkout/moon")
	res = b.post("/advisor", form)
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("error-environment"), `There is no environment "checkout/moon"`)

	env, err = s.Store.EnvironmentByID(ctx, checkout.ID)
	require.NoError(t, err)
	require.Equal(t, "blue_green", env.DefaultStrategy)
	entries, err = s.Store.ListAudit(ctx, store.AuditFilter{Limit: 20})
	require.NoError(t, err)
	changes := 0
	for _, e := range entries {
		if e.Action == "environment.settings_changed" {
			changes++
		}
	}
	require.Equal(t, 1, changes)
}
