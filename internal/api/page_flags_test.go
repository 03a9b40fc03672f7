package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

const (
	flagPage     = "/apps/checkout/flags/new-checkout"
	flagProdPage = flagPage + "?env=production"
	flagProdPath = flagPage + "/environments/production"
)

// flagPageFixture is checkout with a staging and a production
// environment and the boolean flag new-checkout, on in production for
// Acme's employees, with people of every kind of role:
//
//	paul  deployer on every environment of checkout (app-wide)
//	dora  deployer on checkout/production only
//	vic   viewer
type flagPageFixture struct {
	*pageServer
	t       *testing.T
	app     store.App
	staging store.Environment
	prod    store.Environment
	flag    store.Flag
}

// employeesState is new-checkout's state in production: on, true for
// Acme's employees, false for everyone else.
var employeesState = flags.EnvState{
	Enabled: true,
	Rules: []flags.Rule{{
		Name:    "employees",
		Clauses: []flags.Clause{{Attribute: "email", Op: flags.OpEndsWith, Values: []any{"@acme.com"}}},
		Serve:   flags.Serve{Variant: "true"},
	}},
}

func newFlagPageFixture(t *testing.T) *flagPageFixture {
	t.Helper()
	ctx := context.Background()
	f := &flagPageFixture{pageServer: newPageServer(t), t: t}
	var err error
	f.app, err = f.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	f.prod, err = f.Store.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	f.staging, err = f.Store.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "staging", Tier: "staging"})
	require.NoError(t, err)
	f.flag, err = f.Store.CreateFlag(ctx, f.app.ID, flags.Flag{
		Key: "new-checkout", Type: flags.TypeBoolean, DefaultVariant: "false",
		Variants:    map[string]json.RawMessage{"true": json.RawMessage("true"), "false": json.RawMessage("false")},
		Description: "The redesigned checkout flow",
	}, "setup")
	require.NoError(t, err)
	_, err = f.Store.SetFlagState(ctx, f.flag.ID, f.prod.ID, employeesState, 0, "setup")
	require.NoError(t, err)
	f.addUser("paul", false, "checkout/*=deployer")
	f.addUser("dora", false, "checkout/production=deployer")
	f.addUser("vic", false)
	return f
}

// state reads new-checkout's stored state in an environment.
func (f *flagPageFixture) state(env store.Environment) store.FlagState {
	f.t.Helper()
	states, err := f.Store.ListFlagStates(context.Background(), f.app.ID, env.ID)
	require.NoError(f.t, err)
	for _, s := range states {
		if s.Flag.ID == f.flag.ID {
			return s
		}
	}
	f.t.Fatalf("flag %s is not listed in %s", f.flag.Key(), env.Name)
	return store.FlagState{}
}

// flagCount is how many flags checkout has.
func (f *flagPageFixture) flagCount() int {
	f.t.Helper()
	all, err := f.Store.ListFlags(context.Background(), f.app.ID)
	require.NoError(f.t, err)
	return len(all)
}

// formInput returns the value of the named input inside the element with
// the data-testid (a form), or "" when there is none.
func formInput(p page, formID, name string) string {
	var found string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == name && found == "" {
			found = attr(n, "value")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if form := p.byTestID(formID); form != nil {
		walk(form)
	}
	return found
}

// problemFields lists the field paths of a problem list.
func problemFields(p page, listID string) []string {
	var out []string
	for i := 0; ; i++ {
		n := p.byTestID(fmt.Sprintf("%s-%d", listID, i))
		if n == nil {
			return out
		}
		out = append(out, attr(n, "data-field"))
	}
}

func TestFlagListShowsWhatEachEnvironmentServes(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	_, err := f.Store.KillFlag(ctx, f.flag.ID, f.staging.ID, "setup")
	require.NoError(t, err)

	vic := f.signIn("vic")
	res := vic.get("/apps/checkout/flags")
	require.Equal(t, http.StatusOK, res.Code)
	row := res.text("flag-row-new-checkout")
	require.Contains(t, row, "boolean")
	require.Contains(t, row, "The redesigned checkout flow")
	require.Equal(t, "on · 1 rule · false", res.text("flag-cell-new-checkout-production"))
	require.Equal(t, "off", res.text("flag-cell-new-checkout-staging"))
	require.Equal(t, flagProdPage, attr(res.byTestID("flag-cell-new-checkout-production"), "href"))
	require.Less(t, strings.Index(res.Body, "flag-cell-new-checkout-staging"), strings.Index(res.Body, "flag-cell-new-checkout-production"),
		"staging's column comes before production's")
	require.Nil(t, res.byTestID("flag-form"), "a viewer gets no form to create flags")
	require.Contains(t, res.text("flag-create-needs-role"), "checkout/*")

	// A flag never configured in an environment says so.
	_, err = f.Store.CreateFlag(ctx, f.app.ID, flags.Flag{
		Key: "banner-color", Type: flags.TypeString, DefaultVariant: "blue",
		Variants: map[string]json.RawMessage{"blue": json.RawMessage(`"blue"`), "red": json.RawMessage(`"red"`)},
	}, "setup")
	require.NoError(t, err)
	res = f.signIn("paul").get("/apps/checkout/flags")
	require.Equal(t, "not configured", res.text("flag-cell-banner-color-production"))
	require.NotNil(t, res.byTestID("flag-form"), "an app-wide deployer may create flags")

	// The environment page links to the flags.
	env := vic.get("/apps/checkout/environments/production")
	require.Equal(t, "/apps/checkout/flags", attr(env.byTestID("env-flags-link"), "href"))

	require.Equal(t, http.StatusNotFound, vic.get("/apps/nothing/flags").Code)
}

func TestCreatingAFlagFromTheListPage(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	paul := f.signIn("paul")

	res := paul.post("/apps/checkout/flags", url.Values{
		"key": {"banner-color"}, "type": {"string"}, "variants": {"blue = blue\nred = \"red\""},
		"default_variant": {"blue"}, "description": {"Colour of the sale banner"},
	})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "/apps/checkout/flags/banner-color", res.Location)
	created, err := f.Store.Flag(context.Background(), f.app.ID, "banner-color")
	require.NoError(t, err)
	require.Equal(t, flags.TypeString, created.Definition.Type)
	require.JSONEq(t, `"blue"`, string(created.Definition.Variants["blue"]), "bare text is a string value")
	require.JSONEq(t, `"red"`, string(created.Definition.Variants["red"]))
	page := paul.get(res.Location)
	require.Contains(t, page.text("flash"), "banner-color created")
	require.Equal(t, "Off in staging", strings.TrimSpace(page.text("flag-env-state")), "a new flag is off")

	// Problems are shown field by field and nothing is created.
	res = paul.post("/apps/checkout/flags", url.Values{
		"key": {"bad key!"}, "type": {"number"}, "variants": {"small = 1\nlarge = \"big\""}, "default_variant": {"medium"},
	})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("flag-form-error-key"), "not a valid flag key")
	require.Contains(t, res.text("flag-form-error-variants"), "every variant of a number flag must be a number")
	require.Contains(t, res.text("flag-form-error-default_variant"), `no variant named "medium"`)
	require.Contains(t, problemFields(res, "flag-form-problems"), `variants["large"]`)
	require.Equal(t, "bad key!", attr(res.byTestID("flag-form-key"), "value"), "the form keeps what was typed")
	require.Equal(t, 2, f.flagCount())

	res = paul.post("/apps/checkout/flags", url.Values{"key": {"other"}, "type": {"boolean"}, "variants": {"on"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("flag-form-error-variants"), "line 1: write name = value")

	res = paul.post("/apps/checkout/flags", url.Values{"key": {"new-checkout"}, "type": {"boolean"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("flag-form-error-key"), "checkout already has a flag new-checkout")
	require.Equal(t, 2, f.flagCount())

	// A boolean flag left without variants gets true and false.
	res = paul.post("/apps/checkout/flags", url.Values{"key": {"dark-mode"}, "type": {"boolean"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	dark, err := f.Store.Flag(context.Background(), f.app.ID, "dark-mode")
	require.NoError(t, err)
	require.Equal(t, "false", dark.Definition.DefaultVariant)
	require.Len(t, dark.Definition.Variants, 2)

	// A deployer on one environment only may not: a definition is shared
	// by every environment.
	res = f.signIn("dora").post("/apps/checkout/flags", url.Values{"key": {"sneaky"}, "type": {"boolean"}})
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "deployer role on all of them (checkout/*)")
	require.Contains(t, res.text("refusal-message"), "Nothing was changed.")
	require.Equal(t, 3, f.flagCount())
}

func TestKillSwitchOnTheFlagPage(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)

	// A viewer sees the state but no switch, and a forged kill is refused.
	vic := f.signIn("vic")
	res := vic.get(flagProdPage)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "On in production", strings.TrimSpace(res.text("flag-env-state")))
	require.Nil(t, res.byTestID("flag-kill"))
	require.Contains(t, res.text("flag-switch-needs-role"), "You are a viewer on checkout/production")
	refused := vic.post(flagProdPath+"/kill", nil)
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on checkout/production; turning new-checkout off there needs the deployer role. Nothing was changed.")
	require.True(t, f.state(f.prod).State.Enabled, "the refused kill changed nothing")

	// Dora, a deployer on production, kills it.
	dora := f.signIn("dora")
	res = dora.get(flagProdPage)
	kill := res.byTestID("flag-kill-form")
	require.NotNil(t, kill)
	require.Contains(t, attr(kill, "data-confirm"), "Turn new-checkout off in checkout/production?")
	require.Contains(t, res.text("flag-kill"), "Turn off in production")
	res = dora.post(flagProdPath+"/kill", nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, flagProdPage, res.Location)
	st := f.state(f.prod)
	require.False(t, st.State.Enabled)
	require.Len(t, st.State.Rules, 1, "the rules are kept for when it is turned back on")
	require.Equal(t, "dora", st.UpdatedBy)

	res = dora.get(flagProdPage)
	require.Contains(t, res.text("flash"), "new-checkout is off in checkout/production")
	require.Equal(t, "Off in production", strings.TrimSpace(res.text("flag-env-state")))
	require.Nil(t, res.byTestID("flag-kill"))
	require.NotNil(t, res.byTestID("flag-turn-on"))

	// The evaluator now says DISABLED, even for an employee.
	res = vic.post(flagPage+"/evaluate", url.Values{"env": {"production"}, "targeting_key": {"u1"}, "attributes": {"email = rita@acme.com"}})
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "DISABLED", res.text("flag-eval-reason"))
	require.Equal(t, "false", res.text("flag-eval-variant"))

	// The history names who killed it, newest first.
	history := res.byTestID("flag-history")
	require.NotNil(t, history)
	events, err := f.Store.ListFlagEventsBefore(context.Background(), f.flag.ID, 0, 1)
	require.NoError(t, err)
	killID := fmt.Sprint(events[0].ID)
	require.Equal(t, "killed in production", res.text("flag-event-"+killID+"-text"))
	require.Equal(t, "dora", res.text("flag-event-"+killID+"-actor"))

	// A deployer on production only cannot touch staging.
	refused = dora.post(flagPage+"/environments/staging/kill", nil)
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on checkout/staging")

	// Turning it on again carries the version the page showed.
	version := formInput(dora.get(flagProdPage), "flag-on-form", "version")
	require.Equal(t, fmt.Sprint(st.State.Version), version)
	res = dora.post(flagProdPath+"/on", url.Values{"version": {version}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.True(t, f.state(f.prod).State.Enabled)
	stale := dora.post(flagProdPath+"/on", url.Values{"version": {version}})
	require.Equal(t, http.StatusConflict, stale.Code)
	require.Contains(t, stale.text("refusal-message"), fmt.Sprintf("(version %s → %d)", version, st.State.Version+1))
}

func TestRolloutPercentageControl(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	dora := f.signIn("dora")
	res := dora.get(flagProdPage)
	require.Equal(t, "0", attr(res.byTestID("flag-rollout-percent"), "value"))
	version := formInput(res, "flag-rollout-form", "version")

	res = dora.post(flagProdPath+"/rollout", url.Values{"percent": {"5"}, "version": {version}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	st := f.state(f.prod).State
	require.Equal(t, flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "true", Weight: 5}, {Variant: "false", Weight: 95}}}, st.DefaultRollout)
	require.Len(t, st.Rules, 1, "the rules stay")
	require.True(t, st.Enabled)

	res = dora.get(flagProdPage)
	require.Contains(t, res.text("flash"), "now serves 5% true by default")
	require.Equal(t, "5% true / 95% false", res.text("flag-default")[len("default: "):])
	require.Equal(t, "5", attr(res.byTestID("flag-rollout-percent"), "value"))
	list := dora.get("/apps/checkout/flags")
	require.Equal(t, "on · 1 rule · 5% true", list.text("flag-cell-new-checkout-production"))

	// Not a percentage, or from a stale page: nothing changes.
	for _, bad := range []struct {
		percent, version string
		status           int
		message          string
	}{
		{"101", formInput(res, "flag-rollout-form", "version"), http.StatusBadRequest, "between 0 and 100"},
		{"2.555", formInput(res, "flag-rollout-form", "version"), http.StatusBadRequest, "at most two decimals"},
		{"50", version, http.StatusConflict, "since you opened the page (version 1 → 2)"},
	} {
		refused := dora.post(flagProdPath+"/rollout", url.Values{"percent": {bad.percent}, "version": {bad.version}})
		require.Equal(t, bad.status, refused.Code, bad.percent)
		require.Contains(t, refused.text("flag-rollout-error"), bad.message)
		require.Equal(t, bad.percent, attr(refused.byTestID("flag-rollout-percent"), "value"), "the typed value stays")
		require.Equal(t, st, f.state(f.prod).State, "nothing changed")
	}

	// A string flag has no percentage control.
	_, err := f.Store.CreateFlag(context.Background(), f.app.ID, flags.Flag{
		Key: "banner-color", Type: flags.TypeString, DefaultVariant: "blue",
		Variants: map[string]json.RawMessage{"blue": json.RawMessage(`"blue"`)},
	}, "setup")
	require.NoError(t, err)
	res = dora.get("/apps/checkout/flags/banner-color?env=production")
	require.Equal(t, http.StatusOK, res.Code)
	require.Nil(t, res.byTestID("flag-rollout-form"))
	require.NotNil(t, res.byTestID("flag-state-form"))
}

func TestStateEditorRefusesBadInputAndStaleVersions(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	dora := f.signIn("dora")
	res := dora.get(flagProdPage)
	require.Equal(t, "1. employees — email ends_with @acme.com → true", strings.Join(strings.Fields(res.text("flag-rule-1")), " "))
	editor := res.text("flag-state-text")
	require.Contains(t, editor, `"enabled": true`)
	require.NotContains(t, editor, `"version"`, "the version travels in the form, not the text")
	version := formInput(res, "flag-state-form", "version")
	require.Equal(t, "1", version)
	before := f.state(f.prod)

	// A rule naming an unknown segment: the path and message are shown
	// next to the editor, which keeps the text.
	bad := `{"enabled": true, "rules": [{"name": "beta", "segment": "ghosts", "variant": "true"}], "default_rollout": {}}`
	res = dora.post(flagProdPath+"/state", url.Values{"state": {bad}, "version": {version}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Equal(t, []string{"rules[0].segment"}, problemFields(res, "flag-state-problems"))
	require.Contains(t, res.text("flag-state-problems-0"), `unknown segment "ghosts"`)
	require.Equal(t, bad, res.text("flag-state-text"))
	require.Equal(t, before, f.state(f.prod), "nothing changed")

	for _, c := range []struct{ text, field, message string }{
		{`{"enabled": true, "rules": [`, "state", "ends before the object is complete"},
		{"{\n  \"enabled\": true,\n  \"rules\": [}", "state", "not valid JSON at line 3"},
		{`{"enabled": true, "rule": []}`, "state", `unknown field "rule"`},
		{`{"enabled": "yes"}`, "enabled", "a JSON string cannot go here"},
		{`[]`, "state", "must be a JSON object"},
		{`{"enabled": true} {"enabled": false}`, "state", "has more after its JSON object"},
		{`{"enabled": true} }`, "state", "has more after its JSON object"},
		{`{"enabled": true, "default_rollout": {"rollout": [{"variant": "true", "weight": 30}]}}`, "default_rollout.rollout", "add up to 30%"},
	} {
		res = dora.post(flagProdPath+"/state", url.Values{"state": {c.text}, "version": {version}})
		require.Equal(t, http.StatusBadRequest, res.Code, c.text)
		require.Equal(t, []string{c.field}, problemFields(res, "flag-state-problems"), c.text)
		require.Contains(t, res.text("flag-state-problems-0"), c.message, c.text)
	}
	require.Equal(t, before, f.state(f.prod), "nothing changed")

	// Someone else saves first: the stale save is refused and says so.
	_, err := f.Store.SetFlagState(context.Background(), f.flag.ID, f.prod.ID, flags.EnvState{Enabled: true}, 1, "paul")
	require.NoError(t, err)
	good := `{"enabled": true, "rules": [], "default_rollout": {"variant": "true"}}`
	res = dora.post(flagProdPath+"/state", url.Values{"state": {good}, "version": {version}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("flag-state-error"), "Someone changed the state of new-checkout in production since you opened the page (version 1 → 2), so nothing was saved.")
	require.Equal(t, good, res.text("flag-state-text"))
	after := f.state(f.prod)
	require.Equal(t, "paul", after.UpdatedBy)
	require.Empty(t, after.State.DefaultRollout.Variant, "the stale save did not overwrite paul's")

	// With the current version it is saved.
	res = dora.post(flagProdPath+"/state", url.Values{"state": {good}, "version": {"2"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "true", f.state(f.prod).State.DefaultRollout.Variant)
	require.Equal(t, "dora", f.state(f.prod).UpdatedBy)

	// A viewer gets the state to read, not to edit.
	res = f.signIn("vic").get(flagProdPage)
	require.Nil(t, res.byTestID("flag-state-form"))
	require.Contains(t, res.text("flag-state-text"), `"variant": "true"`)
	refused := f.signIn("vic").post(flagProdPath+"/state", url.Values{"state": {good}, "version": {"3"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
}

func TestEvaluatorSaysWhatAUserWouldGet(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	vic := f.signIn("vic")
	evaluate := func(form url.Values) page {
		t.Helper()
		return vic.post(flagPage+"/evaluate", form)
	}

	res := evaluate(url.Values{"env": {"production"}, "targeting_key": {"user-1"}, "attributes": {"email = rita@acme.com\nplan = pro"}})
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "true", res.text("flag-eval-variant"))
	require.Equal(t, "TARGETING_MATCH", res.text("flag-eval-reason"))
	require.Equal(t, "employees", res.text("flag-eval-rule"))
	require.Equal(t, "production", res.text("flag-eval-env-name"))
	require.Contains(t, res.text("flag-eval-explanation"), "TARGETING_MATCH by rule employees")
	require.Equal(t, "user-1", attr(res.byTestID("flag-eval-key"), "value"), "the form stays filled")

	res = evaluate(url.Values{"env": {"production"}, "targeting_key": {"user-2"}, "attributes": {`{"email": "sam@example.com"}`}})
	require.Equal(t, "false", res.text("flag-eval-variant"))
	require.Equal(t, "DEFAULT", res.text("flag-eval-reason"))
	require.Nil(t, res.byTestID("flag-eval-rule"))

	// Staging was never configured: the flag is off there.
	res = evaluate(url.Values{"env": {"staging"}, "targeting_key": {"user-1"}, "attributes": {"email = rita@acme.com"}})
	require.Equal(t, "DISABLED", res.text("flag-eval-reason"))
	require.Contains(t, res.text("flag-eval-explanation"), "never been configured in staging")

	// A percentage rollout names the user's bucket and arm.
	_, err := f.Store.SetFlagState(context.Background(), f.flag.ID, f.prod.ID, flags.EnvState{Enabled: true,
		DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "true", Weight: 50}, {Variant: "false", Weight: 50}}}}, 1, "paul")
	require.NoError(t, err)
	bucket := flags.Bucket("new-checkout", "", "user-3")
	want := "true"
	if bucket >= 5000 {
		want = "false"
	}
	res = evaluate(url.Values{"env": {"production"}, "targeting_key": {"user-3"}})
	require.Equal(t, "SPLIT", res.text("flag-eval-reason"))
	require.Equal(t, want, res.text("flag-eval-variant"))
	require.Contains(t, res.text("flag-eval-explanation"), fmt.Sprintf("bucket is %s of 100", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", float64(bucket)/100), "0"), ".")))
	res = evaluate(url.Values{"env": {"production"}})
	require.Equal(t, "ERROR", res.text("flag-eval-reason"))
	require.Equal(t, "TARGETING_KEY_MISSING", res.text("flag-eval-error-code"))

	// Bad context is a clear message, never a failure.
	for _, c := range []struct{ attributes, message string }{
		{`[1, 2]`, "must be a JSON object"},
		{`{"email": `, "not valid JSON"},
		{"email rita@acme.com", "Line 1 of the attributes is not name = value"},
		{`{"targetingKey": 42}`, "targetingKey must be a string"},
	} {
		res = evaluate(url.Values{"env": {"production"}, "targeting_key": {"u"}, "attributes": {c.attributes}})
		require.Equal(t, http.StatusBadRequest, res.Code, c.attributes)
		require.Contains(t, res.text("flag-eval-error"), c.message, c.attributes)
		require.Equal(t, c.attributes, res.text("flag-eval-attributes"), "the attributes stay as typed")
	}
	res = evaluate(url.Values{"env": {"moon"}, "targeting_key": {"u"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("flag-eval-error"), `no environment "moon"`)

	// htmx gets the result panel alone, and a refusal aimed at it.
	req, err := http.NewRequest(http.MethodPost, vic.base+flagPage+"/evaluate", strings.NewReader(url.Values{
		"env": {"production"}, "targeting_key": {"user-3"},
	}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", vic.csrf())
	frag := vic.do(req)
	require.Equal(t, http.StatusOK, frag.Code)
	require.Equal(t, "SPLIT", frag.text("flag-eval-reason"))
	require.Nil(t, frag.byTestID("nav"), "a fragment, not a page")
	req, err = http.NewRequest(http.MethodPost, vic.base+flagPage+"/evaluate", strings.NewReader(url.Values{
		"env": {"production"}, "attributes": {"[]"},
	}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", vic.csrf())
	frag = vic.do(req)
	require.Equal(t, http.StatusBadRequest, frag.Code)
	require.Equal(t, "#flag-eval-result", frag.Header.Get("HX-Retarget"))
	require.Contains(t, frag.text("flag-eval-error"), "must be a JSON object")
}

func TestSegmentsAreEditedAsJSON(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	paul := f.signIn("paul")
	res := paul.get("/apps/checkout/flags")
	require.NotNil(t, res.byTestID("segments-empty"))

	segment := `{"key": "beta", "name": "Beta testers", "clauses": [{"attribute": "plan", "op": "in", "values": ["pro", "team"]}], "included_keys": ["u-7"]}`
	res = paul.post("/apps/checkout/segments", url.Values{"definition": {segment}, "version": {"0"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "/apps/checkout/flags#segments", res.Location)
	res = paul.get("/apps/checkout/flags")
	require.Equal(t, "1 clause, 1 included key", res.text("segment-summary-beta"))
	require.Equal(t, "1", formInput(res, "segment-form-beta", "version"))

	// Problems are listed by path; nothing is saved.
	broken := `{"key": "beta", "clauses": [{"attribute": "plan", "op": "within", "values": ["pro"]}]}`
	res = paul.post("/apps/checkout/segments", url.Values{"segment": {"beta"}, "definition": {broken}, "version": {"1"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Equal(t, []string{"clauses[0].op"}, problemFields(res, "segment-form-beta-problems"))
	require.Equal(t, broken, res.text("segment-form-beta-text"))

	// A second "new" segment with the same key is refused.
	res = paul.post("/apps/checkout/segments", url.Values{"definition": {segment}, "version": {"0"}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("segment-new-error"), "already has a segment beta (version 1)")

	// A stale editor is refused.
	replaced := `{"key": "beta", "included_keys": ["u-7", "u-8"]}`
	res = paul.post("/apps/checkout/segments", url.Values{"segment": {"beta"}, "definition": {replaced}, "version": {"1"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	res = paul.post("/apps/checkout/segments", url.Values{"segment": {"beta"}, "definition": {segment}, "version": {"1"}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("segment-form-beta-error"), "(version 1 → 2)")

	// Rules can target it, and the evaluator uses it.
	dora := f.signIn("dora")
	state := `{"enabled": true, "rules": [{"name": "beta", "segment": "beta", "variant": "true"}]}`
	res = dora.post(flagProdPath+"/state", url.Values{"state": {state}, "version": {"1"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	res = dora.post(flagPage+"/evaluate", url.Values{"env": {"production"}, "targeting_key": {"u-8"}})
	require.Equal(t, "TARGETING_MATCH", res.text("flag-eval-reason"))
	require.Contains(t, strings.Join(strings.Fields(res.text("flag-rule-1")), " "), "beta — in segment beta → true")

	// Segments are shared by every environment: a deployer on one may
	// not change them.
	refused := dora.post("/apps/checkout/segments", url.Values{"definition": {`{"key": "mine"}`}, "version": {"0"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	segs, err := f.Store.ListSegments(context.Background(), f.app.ID)
	require.NoError(t, err)
	require.Len(t, segs, 1)
}

func TestEditingAFlagDefinition(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	paul := f.signIn("paul")
	res := paul.get(flagPage)
	require.Equal(t, "1", formInput(res, "flag-definition-form", "version"))
	require.Contains(t, res.text("flag-variant-false"), "default")

	res = paul.post(flagPage+"/definition", url.Values{
		"version": {"1"}, "type": {"boolean"}, "variants": {"true = true\nfalse = false"},
		"default_variant": {"false"}, "off_variant": {"false"}, "description": {"The new checkout, behind a switch"},
	})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	stored, err := f.Store.Flag(context.Background(), f.app.ID, "new-checkout")
	require.NoError(t, err)
	require.Equal(t, int64(2), stored.Version)
	require.Equal(t, "The new checkout, behind a switch", stored.Definition.Description)

	// Removing a variant production's rule serves is refused, by path.
	res = paul.post(flagPage+"/definition", url.Values{
		"version": {"2"}, "type": {"boolean"}, "variants": {"false = false"}, "default_variant": {"false"},
	})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, problemFields(res, "flag-definition-form-problems"), `environments["production"].rules[0].variant`)
	require.Equal(t, "false = false", res.text("flag-form-variants"))

	// A stale form is refused.
	res = paul.post(flagPage+"/definition", url.Values{
		"version": {"1"}, "type": {"boolean"}, "variants": {"true = true\nfalse = false"}, "default_variant": {"true"},
	})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("flag-definition-form-error"), "(version 1 → 2)")
	stored, err = f.Store.Flag(context.Background(), f.app.ID, "new-checkout")
	require.NoError(t, err)
	require.Equal(t, int64(2), stored.Version, "nothing was saved")
	require.Equal(t, "false", stored.Definition.DefaultVariant)

	refused := f.signIn("dora").post(flagPage+"/definition", url.Values{"version": {"2"}, "type": {"boolean"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	res = f.signIn("dora").get(flagPage)
	require.Nil(t, res.byTestID("flag-definition-form"))
	require.Contains(t, res.text("flag-definition-needs-role"), "checkout/*")
}

func TestFlagHistoryIsPaged(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	for range 26 {
		_, err := f.Store.KillFlag(ctx, f.flag.ID, f.staging.ID, "dora")
		require.NoError(t, err)
	}
	events, err := f.Store.ListFlagEventsBefore(ctx, f.flag.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, events, 28, "created, configured in production, 26 kills in staging")

	vic := f.signIn("vic")
	res := vic.get(flagPage + "?env=staging")
	require.NotNil(t, res.byTestID(fmt.Sprintf("flag-event-%d", events[0].ID)))
	require.Nil(t, res.byTestID(fmt.Sprintf("flag-event-%d", events[25].ID)), "25 changes a page")
	require.Equal(t, "killed in staging (it was already off)", res.text(fmt.Sprintf("flag-event-%d-text", events[1].ID)))
	require.Equal(t, "dora", res.text(fmt.Sprintf("flag-event-%d-actor", events[1].ID)))
	older := attr(res.byTestID("flag-history-older"), "href")
	require.Equal(t, fmt.Sprintf("%s?env=staging&before=%d#history", flagPage, events[24].ID), older)

	res = vic.get(strings.TrimSuffix(older, "#history"))
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "state changed in production: on, 1 rule, default false", res.text(fmt.Sprintf("flag-event-%d-text", events[26].ID)))
	require.Contains(t, res.text(fmt.Sprintf("flag-event-%d-text", events[27].ID)), "created: boolean; variants false, true; default false")
	require.Nil(t, res.byTestID("flag-history-older"))
	require.NotNil(t, res.byTestID("flag-history-newest"))

	require.Equal(t, http.StatusBadRequest, vic.get(flagPage+"?before=last").Code)
	require.Equal(t, http.StatusNotFound, vic.get(flagPage+"?env=moon").Code)
	require.Equal(t, http.StatusNotFound, vic.get("/apps/checkout/flags/nothing").Code)
}

func TestEnvironmentTimelineInterleavesFlagChanges(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("dora", false, "checkout/production=deployer")
	ctx := context.Background()
	run := d.deploy("v1.4.1", "dora")
	flag, err := d.s.Store.CreateFlag(ctx, d.app.ID, flags.Flag{
		Key: "new-checkout", Type: flags.TypeBoolean, DefaultVariant: "false",
		Variants: map[string]json.RawMessage{"true": json.RawMessage("true"), "false": json.RawMessage("false")},
	}, "paul")
	require.NoError(t, err)
	_, err = d.s.Store.SetFlagState(ctx, flag.ID, d.env.ID, flags.EnvState{Enabled: true,
		DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "true", Weight: 5}, {Variant: "false", Weight: 95}}}}, 0, "dora")
	require.NoError(t, err)

	dora := d.s.signIn("dora")
	res := dora.post("/apps/checkout/flags/new-checkout/environments/production/kill", nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	changes, err := d.s.Store.ListEnvironmentFlagEvents(ctx, d.env.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, changes, 2)
	require.Equal(t, store.FlagEventKilled, changes[0].Type)
	require.Equal(t, "new-checkout", changes[0].FlagKey)

	res = dora.get(prodPage)
	require.Equal(t, http.StatusOK, res.Code)
	killed := fmt.Sprintf("history-flag-%d", changes[0].ID)
	set := fmt.Sprintf("history-flag-%d", changes[1].ID)
	runRow := fmt.Sprintf("history-run-%d", run.ID)
	require.Contains(t, res.text(killed), "new-checkout")
	require.Contains(t, res.text(killed), "dora")
	require.Equal(t, "turned off by its kill switch", res.text(killed+"-text"))
	require.Equal(t, "state changed: on, no rules, default 5% true / 95% false", res.text(set+"-text"))
	require.Less(t, strings.Index(res.Body, killed), strings.Index(res.Body, set), "newest first")
	require.Less(t, strings.Index(res.Body, set), strings.Index(res.Body, runRow), "the flag changes came after the run")
	require.Nil(t, res.byTestID("env-history-older"))

	require.Equal(t, http.StatusBadRequest, dora.get(prodPage+"?flags_before=x").Code)
}

func TestEnvironmentTimelinePagesRunsAndFlagChangesTogether(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	for range 30 {
		_, err := f.Store.KillFlag(ctx, f.flag.ID, f.prod.ID, "dora")
		require.NoError(t, err)
	}
	changes, err := f.Store.ListEnvironmentFlagEvents(ctx, f.prod.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, changes, 31)

	vic := f.signIn("vic")
	res := vic.get(prodPage)
	require.NotNil(t, res.byTestID(fmt.Sprintf("history-flag-%d", changes[19].ID)))
	require.Nil(t, res.byTestID(fmt.Sprintf("history-flag-%d", changes[20].ID)), "twenty entries a page")
	older := attr(res.byTestID("env-history-older"), "href")
	require.Equal(t, fmt.Sprintf("%s?flags_before=%d#history", prodPage, changes[19].ID), older)
	res = vic.get(strings.TrimSuffix(older, "#history"))
	require.NotNil(t, res.byTestID(fmt.Sprintf("history-flag-%d", changes[20].ID)))
	require.NotNil(t, res.byTestID(fmt.Sprintf("history-flag-%d", changes[30].ID)))
	require.Nil(t, res.byTestID("env-history-older"))
}

func TestAuditLogShowsFlagChanges(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	other, err := f.Store.CreateApp(ctx, store.NewApp{Slug: "search", Name: "Search"})
	require.NoError(t, err)
	_, err = f.Store.CreateFlag(ctx, other.ID, flags.Flag{
		Key: "fuzzy", Type: flags.TypeBoolean, DefaultVariant: "false",
		Variants: map[string]json.RawMessage{"true": json.RawMessage("true"), "false": json.RawMessage("false")},
	}, "sam")
	require.NoError(t, err)
	_, err = f.Store.UpsertSegment(ctx, f.app.ID, flags.Segment{Key: "beta", IncludedKeys: []string{"u-1"}}, 0, "paul")
	require.NoError(t, err)
	res := f.signIn("dora").post(flagProdPath+"/kill", nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)

	paul := f.signIn("paul")
	res = paul.get("/audit?app=checkout")
	require.Equal(t, http.StatusOK, res.Code)
	_, rows := auditRows(res)
	require.Equal(t, []string{
		"dora | turned a flag off | checkout/production",
		"paul | created a segment | checkout",
		"setup | changed a flag's state | checkout/production",
		"setup | created a flag | checkout",
	}, flagRowsOnly(rows))
	events, err := f.Store.ListFlagEventsBefore(ctx, f.flag.ID, 0, 1)
	require.NoError(t, err)
	id := fmt.Sprintf("audit-entry-flag-%d", events[0].ID)
	require.Equal(t, "new-checkout turned off by its kill switch (version 2)", res.text(id+"-detail"))

	res = paul.get("/audit?app=checkout&env=production&user=dora")
	_, rows = auditRows(res)
	require.Equal(t, []string{"dora | turned a flag off | checkout/production"}, flagRowsOnly(rows))
	res = paul.get("/audit?app=search")
	_, rows = auditRows(res)
	require.Equal(t, []string{"sam | created a flag | search"}, flagRowsOnly(rows))

	// Paging continues after a flag entry.
	entries, err := f.Store.ListAudit(ctx, store.AuditFilter{App: "checkout", Limit: 100})
	require.NoError(t, err)
	var afterKill []store.AuditEntry
	for i, e := range entries {
		if e.Kind == store.AuditKindFlag && e.ID == events[0].ID {
			afterKill, err = f.Store.ListAudit(ctx, store.AuditFilter{App: "checkout", Before: &entries[i], Limit: 100})
			require.NoError(t, err)
			require.Equal(t, entries[i+1:], afterKill)
		}
	}
	require.NotNil(t, afterKill, "the kill is in the log")
	res = paul.get("/audit?before=flag-" + fmt.Sprint(events[0].ID) + "-" + fmt.Sprint(events[0].At.UnixMicro()))
	require.Equal(t, http.StatusOK, res.Code, "a cursor after a flag entry is understood")
}

// flagRowsOnly keeps the audit rows about flags and segments.
func flagRowsOnly(rows []string) []string {
	var out []string
	for _, r := range rows {
		if strings.Contains(r, "flag") || strings.Contains(r, "segment") {
			out = append(out, r)
		}
	}
	return out
}

// selectedOption returns the value of the selected option of the select
// with the data-testid, or "" when none is.
func selectedOption(p page, testID string) string {
	sel := p.byTestID(testID)
	if sel == nil {
		return ""
	}
	for c := sel.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == "option" {
			for _, a := range c.Attr {
				if a.Key == "selected" {
					return attr(c, "value")
				}
			}
		}
	}
	return ""
}

// cellTexts lists the texts of a table row's cells.
func cellTexts(row *html.Node) []string {
	var out []string
	if row == nil {
		return nil
	}
	for c := row.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == "td" {
			out = append(out, strings.TrimSpace(text(c)))
		}
	}
	return out
}

// htmxGet fetches a path as htmx does: with the HX-Request header.
func (b *browser) htmxGet(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	req.Header.Set("HX-Request", "true")
	return b.do(req)
}

// startRollout starts a guarded rollout of new-checkout in production the
// way the page does, as paul.
func (f *flagPageFixture) startRollout(steps []float64, bake time.Duration) store.FlagRollout {
	f.t.Helper()
	r, _, err := f.Store.StartFlagRollout(context.Background(), store.NewFlagRollout{
		FlagID: f.flag.ID, EnvironmentID: f.prod.ID, Steps: steps, StepBake: bake, Actor: "paul",
	})
	require.NoError(f.t, err)
	return r
}

// rollout reads new-checkout's running or latest rollout in production.
func (f *flagPageFixture) rollout() store.FlagRollout {
	f.t.Helper()
	r, err := f.Store.CurrentFlagRollout(context.Background(), f.flag.ID, f.prod.ID)
	require.NoError(f.t, err)
	return r
}

// historyTexts lists the flag's history as the page words it, newest
// first.
func historyTexts(t *testing.T, f *flagPageFixture, p page) []string {
	t.Helper()
	events, err := f.Store.ListFlagEventsBefore(context.Background(), f.flag.ID, 0, 25)
	require.NoError(t, err)
	var out []string
	for _, ev := range events {
		out = append(out, p.text(fmt.Sprintf("flag-event-%d-text", ev.ID)))
	}
	return out
}

const guardedRolloutPath = flagProdPath + "/guarded-rollout"

func TestStartingAGuardedRolloutFromTheFlagPage(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	dora := f.signIn("dora")

	// The form offers the boolean flag's true over false, the default
	// steps and a bake, and says what will happen.
	res := dora.get(flagProdPage)
	require.Equal(t, http.StatusOK, res.Code)
	require.NotNil(t, res.byTestID("flag-guarded-form"))
	require.Equal(t, "true", selectedOption(res, "flag-guarded-variant"))
	require.Equal(t, "false", selectedOption(res, "flag-guarded-control"))
	require.Equal(t, "5, 25, 50, 100", attr(res.byTestID("flag-guarded-steps-input"), "value"))
	require.Equal(t, "10m", attr(res.byTestID("flag-guarded-bake-input"), "value"))
	plan := res.text("flag-guarded-plan")
	require.Contains(t, plan, "Starting turns new-checkout on in production")
	require.Contains(t, plan, "Rules stay in front")
	require.Contains(t, plan, "POST /api/v1/apps/checkout/flags/new-checkout/environments/production/rollout/metrics")
	require.Empty(t, attr(res.byTestID("flag-guarded-rollout"), "hx-trigger"), "nothing runs, so nothing refreshes")

	res = dora.post(guardedRolloutPath, url.Values{
		"variant": {"true"}, "control_variant": {"false"}, "steps": {"5, 25, 50, 100"}, "step_bake": {"10m"},
	})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, flagProdPage+"#guarded-rollout", res.Location)

	// The flag serves 5% true by default; the employees rule stays first.
	st := f.state(f.prod)
	require.True(t, st.State.Enabled)
	require.Equal(t, flags.Serve{Rollout: []flags.WeightedVariant{{Variant: "true", Weight: 5}, {Variant: "false", Weight: 95}}}, st.State.DefaultRollout)
	require.Equal(t, employeesState.Rules, st.State.Rules)
	r := f.rollout()
	require.Equal(t, store.FlagRolloutRunning, r.State)
	require.Equal(t, 10*time.Minute, r.StepBake)
	require.Equal(t, "dora", r.StartedBy)

	res = dora.get(flagProdPage)
	require.Contains(t, res.text("flash"), "Guarded rollout of new-checkout started in checkout/production: true serves 5% of the users no rule matches. It moves to 25% after 10m of healthy metrics.")
	require.Equal(t, "rolling out", res.text("flag-guarded-state"))
	require.Equal(t, "5%", res.text("flag-guarded-percent"))
	require.Equal(t, "current", attr(res.byTestID("flag-guarded-step-1"), "data-status"))
	require.Equal(t, "step", attr(res.byTestID("flag-guarded-step-1"), "aria-current"))
	for i, pct := range []string{"5%", "25%", "50%", "100%"} {
		require.Contains(t, res.text(fmt.Sprintf("flag-guarded-step-%d", i+1)), pct)
	}
	require.Equal(t, "next", attr(res.byTestID("flag-guarded-step-4"), "data-status"))
	require.Contains(t, res.text("flag-guarded-bake"), "of 10m")
	require.Contains(t, res.text("flag-guarded-explanation"), "Waiting for the first check")
	require.Nil(t, res.byTestID("flag-guarded-verdict"))
	require.Nil(t, res.byTestID("flag-guarded-form"), "no second rollout is offered while one runs")
	cancel := res.byTestID("flag-guarded-cancel-form")
	require.NotNil(t, cancel)
	require.Contains(t, attr(cancel, "data-confirm"), "Cancel the guarded rollout of new-checkout in checkout/production? It stops at 5%")
	require.Equal(t, fmt.Sprint(r.ID), formInput(res, "flag-guarded-cancel-form", "rollout"))
	panel := res.byTestID("flag-guarded-rollout")
	require.Equal(t, "every 5s", attr(panel, "hx-trigger"), "a running rollout's panel refreshes itself")
	require.True(t, strings.HasPrefix(attr(panel, "hx-get"), guardedRolloutPath+"?seen="), attr(panel, "hx-get"))
	require.Nil(t, res.byTestID("flag-rollout-form"), "the percentage is the rollout's to set while it runs")
	require.Contains(t, res.text("flag-rollout-guarded"), "cancel it to set the percentage by hand")
	require.Equal(t, "5% true / 95% false", res.text("flag-default")[len("default: "):])
	require.Contains(t, res.text("flag-env-tab-production"), "on · 1 rule · rolling out · 5%")

	// The flag list says so too.
	list := dora.get("/apps/checkout/flags")
	require.Equal(t, "on · 1 rule · rolling out · 5%", list.text("flag-cell-new-checkout-production"))
	require.Contains(t, attr(list.byTestID("flag-cell-new-checkout-production"), "title"), "step 1 of 4")
	require.Equal(t, "not configured", list.text("flag-cell-new-checkout-staging"))

	// A second rollout is refused while this one runs.
	res = dora.post(guardedRolloutPath, url.Values{"variant": {"true"}, "control_variant": {"false"}, "step_bake": {"1m"}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("flag-guarded-error"), "A guarded rollout of new-checkout is running in checkout/production already (true at 5%, started by dora)")
	require.Contains(t, res.text("flag-guarded-error"), "Nothing was changed.")
	require.Equal(t, st, f.state(f.prod), "nothing changed")
	require.Equal(t, r.ID, f.rollout().ID)

	// The refresh answers the panel alone while the flag is as the page
	// showed it, and the switch, tabs and default too once it changed.
	seen := strings.TrimPrefix(attr(panel, "hx-get"), guardedRolloutPath)
	frag := dora.htmxGet(guardedRolloutPath + seen)
	require.Equal(t, http.StatusOK, frag.Code)
	require.Equal(t, "5%", frag.text("flag-guarded-percent"))
	require.Nil(t, frag.byTestID("nav"), "a fragment, not a page")
	require.Nil(t, frag.byTestID("flag-switch"))
	_, err := f.Store.FinishFlagRolloutCheck(context.Background(), store.FlagRolloutCheck{
		RolloutID: r.ID, StepIndex: 0, Action: store.RolloutAdvance, Explanation: "Continue: healthy.",
		Decision: json.RawMessage(`{"verdict": "continue", "explanation": "Continue: healthy."}`), NextCheckAt: time.Now(), Actor: "rollout",
	})
	require.NoError(t, err)
	frag = dora.htmxGet(guardedRolloutPath + seen)
	require.Equal(t, "25%", frag.text("flag-guarded-percent"))
	require.Equal(t, "true", attr(frag.byTestID("flag-switch"), "hx-swap-oob"))
	require.Equal(t, "25% true / 75% false", frag.text("flag-default")[len("default: "):])
	require.Contains(t, frag.text("flag-env-tab-production"), "rolling out · 25%")

	// Without htmx the panel's address is the flag page.
	res = dora.get(guardedRolloutPath)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, flagProdPage+"#guarded-rollout", res.Location)
}

func TestGuardedRolloutFormRefusesBadInput(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	dora := f.signIn("dora")
	before := f.state(f.prod)

	for _, c := range []struct {
		name    string
		form    url.Values
		field   string
		message string
	}{
		{"shrinking steps", url.Values{"steps": {"50, 20"}, "step_bake": {"10m"}}, "steps", "step 2: 20 does not grow from the step before (50); steps must increase"},
		{"not ending at 100", url.Values{"steps": {"50, 20"}, "step_bake": {"10m"}}, "steps", "the last step is 20%; it must be 100"},
		{"not a number", url.Values{"steps": {"5, lots, 100"}, "step_bake": {"10m"}}, "steps", `step 2: "lots" is not a percentage`},
		{"above 100", url.Values{"steps": {"5, 150"}, "step_bake": {"10m"}}, "steps", "step 2: 150 is not a percentage above 0 and at most 100"},
		{"bake not a duration", url.Values{"steps": {"5, 100"}, "step_bake": {"soon"}}, "step_bake", `"soon" must be a duration such as "90s", "5m", "24h" or "3d"`},
		{"no bake", url.Values{"steps": {"5, 100"}}, "step_bake", "is empty; write how long each step bakes"},
		{"bake too short", url.Values{"step_bake": {"500ms"}}, "step_bake", "shorter than 1s"},
		{"unknown variant", url.Values{"variant": {"blue"}, "step_bake": {"10m"}}, "variant", `flag "new-checkout" has no variant "blue"`},
		{"same variants", url.Values{"variant": {"true"}, "control_variant": {"true"}, "step_bake": {"10m"}}, "control_variant", "must differ from the variant released"},
	} {
		form := url.Values{"variant": {"true"}, "control_variant": {"false"}}
		for k, v := range c.form {
			form[k] = v
		}
		res := dora.post(guardedRolloutPath, form)
		require.Equal(t, http.StatusBadRequest, res.Code, c.name)
		require.Contains(t, res.text("flag-guarded-error-"+c.field), c.message, c.name)
		require.Contains(t, res.text("flash"), "Nothing was started", c.name)
		require.Equal(t, form.Get("steps"), attr(res.byTestID("flag-guarded-steps-input"), "value"), "%s: the form keeps what was typed", c.name)
		require.Equal(t, form.Get("step_bake"), attr(res.byTestID("flag-guarded-bake-input"), "value"), c.name)
		if _, known := f.flag.Definition.Variants[form.Get("variant")]; known {
			require.Equal(t, form.Get("variant"), selectedOption(res, "flag-guarded-variant"), c.name)
		}
	}
	require.Equal(t, before, f.state(f.prod), "nothing changed")
	_, err := f.Store.CurrentFlagRollout(context.Background(), f.flag.ID, f.prod.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "nothing was started")

	// Empty steps are the default steps.
	res := dora.post(guardedRolloutPath, url.Values{"variant": {"true"}, "control_variant": {"false"}, "step_bake": {"1d"}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	r := f.rollout()
	require.Equal(t, store.DefaultFlagRolloutSteps, r.Steps)
	require.Equal(t, 24*time.Hour, r.StepBake)
}

func TestOnlyDeployersStartOrCancelGuardedRollouts(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	vic := f.signIn("vic")
	before := f.state(f.prod)

	res := vic.get(flagProdPage)
	require.Nil(t, res.byTestID("flag-guarded-form"), "a viewer gets no form")
	require.Contains(t, res.text("flag-guarded-needs-role"), "You are a viewer on checkout/production; starting or cancelling a guarded rollout needs the deployer role.")
	refused := vic.post(guardedRolloutPath, url.Values{"variant": {"true"}, "control_variant": {"false"}, "step_bake": {"10m"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on checkout/production; starting a guarded rollout of new-checkout needs the deployer role. Nothing was changed.")
	require.Equal(t, before, f.state(f.prod))
	_, err := f.Store.CurrentFlagRollout(context.Background(), f.flag.ID, f.prod.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	// A deployer on production only may not start one in staging.
	refused = f.signIn("dora").post(flagPage+"/environments/staging/guarded-rollout", url.Values{"step_bake": {"10m"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on checkout/staging")

	// A viewer watches a running one but cannot cancel it.
	r := f.startRollout(nil, 10*time.Minute)
	res = vic.get(flagProdPage)
	require.Equal(t, "5%", res.text("flag-guarded-percent"))
	require.Nil(t, res.byTestID("flag-guarded-cancel-form"))
	require.Contains(t, res.text("flag-guarded-needs-role"), "You are a viewer")
	require.Equal(t, http.StatusOK, vic.htmxGet(guardedRolloutPath).Code, "viewers watch it refresh")
	refused = vic.post(guardedRolloutPath+"/cancel", url.Values{"rollout": {fmt.Sprint(r.ID)}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "cancelling the guarded rollout of new-checkout needs the deployer role. Nothing was changed.")
	require.True(t, f.rollout().Running())
}

func TestCancellingAGuardedRolloutKeepsItsShare(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	r := f.startRollout([]float64{10, 50, 100}, 10*time.Minute)
	dora := f.signIn("dora")
	served := f.state(f.prod).State.DefaultRollout

	require.Equal(t, http.StatusBadRequest, dora.post(guardedRolloutPath+"/cancel", nil).Code, "the form names the rollout")
	res := dora.post(guardedRolloutPath+"/cancel", url.Values{"rollout": {fmt.Sprint(r.ID)}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, flagProdPage+"#guarded-rollout", res.Location)
	st := f.state(f.prod).State
	require.True(t, st.Enabled)
	require.Equal(t, served, st.DefaultRollout, "the flag keeps serving 10% true")
	require.Equal(t, store.FlagRolloutCancelled, f.rollout().State)

	res = dora.get(flagProdPage)
	require.Contains(t, res.text("flash"), "Cancelled the guarded rollout of new-checkout in checkout/production at 10%: new-checkout keeps serving true to that share")
	require.Equal(t, "cancelled", res.text("flag-guarded-state"))
	require.Equal(t, "Cancelled by dora at 10%; the flag keeps serving that share.", res.text("flag-guarded-outcome"))
	require.Contains(t, res.text("flag-guarded-last-summary"), "true over false, 10% → 50% → 100%, 10m per step, started by paul")
	require.NotNil(t, res.byTestID("flag-guarded-form"), "a new rollout may start")
	require.Empty(t, attr(res.byTestID("flag-guarded-rollout"), "hx-trigger"), "an ended rollout's panel stops refreshing")
	require.NotNil(t, res.byTestID("flag-rollout-form"), "the percentage is set by hand again")

	// Cancelling it again from a stale page changes nothing.
	res = dora.post(guardedRolloutPath+"/cancel", url.Values{"rollout": {fmt.Sprint(r.ID)}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("flag-guarded-error"), "has ended already")
	require.Equal(t, st, f.state(f.prod).State)
}

func TestRolledBackRolloutShowsTheDecisionAndTheFlagIsOff(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	r := f.startRollout([]float64{25, 100}, 10*time.Minute)

	// The application reports the released variant failing a fifth of its
	// requests; the guard rolls it back during the warm-up.
	now := time.Now()
	guard := rollout.New(f.Store, rollout.Config{Now: func() time.Time { return now }})
	for i := 0; r.Running() && i < 5; i++ {
		now = now.Add(10 * time.Second)
		at := now.Add(-5 * time.Second).Format(time.RFC3339)
		sample := func(variant string, errors float64) push.Sample {
			return push.Sample{Variant: variant, Metric: analysis.MetricErrorRate, Timestamp: at, Count: push.Num(400), Sum: push.Num(400 * errors)}
		}
		res, err := rollout.Ingest(ctx, f.Store, r, f.flag.Key(), f.prod.Name, push.Batch{Samples: []push.Sample{sample("true", 0.2), sample("false", 0.005)}}, now)
		require.NoError(t, err)
		require.Empty(t, res.Rejected)
		r, err = guard.Check(ctx, r)
		require.NoError(t, err)
	}
	require.Equal(t, store.FlagRolloutRolledBack, r.State)
	require.False(t, f.state(f.prod).State.Enabled, "a rollback turns the flag off")

	vic := f.signIn("vic")
	res := vic.get(flagProdPage)
	require.Equal(t, "Off in production", strings.TrimSpace(res.text("flag-env-state")))
	require.Equal(t, "rolled back", res.text("flag-guarded-state"))
	require.Equal(t, "Rolled back at 25%: the decision found true worse than false, so new-checkout was turned off in production and every user there got false.",
		res.text("flag-guarded-outcome"))
	explanation := res.text("flag-guarded-explanation")
	require.Equal(t, r.Outcome, explanation)
	require.Contains(t, explanation, "Rolled back during warm-up: new-checkout=true error rate 20%")
	require.Equal(t, "off", vic.get("/apps/checkout/flags").text("flag-cell-new-checkout-production"))

	texts := historyTexts(t, f, res)
	require.Equal(t, "rollout rolled back in production at 25% during warm-up: "+strings.TrimSuffix(strings.TrimPrefix(explanation, "Rolled back during warm-up: "), "."), texts[0])
	require.Equal(t, "guarded rollout started in production: true to 25% → 100%, 10m per step", texts[1])
}

func TestGuardedRolloutDecisionAndHistoryInWords(t *testing.T) {
	t.Parallel()
	f := newFlagPageFixture(t)
	ctx := context.Background()
	r := f.startRollout(nil, 10*time.Minute)

	// A healthy check of the first step, then the one that moves it on.
	decision := analysis.Decision{
		Verdict: engine.VerdictContinue, Explanation: "Continue: new-checkout=true is as healthy as new-checkout=false.",
		WindowFrom: r.StepStartedAt, WindowTo: time.Now(),
		Metrics: []analysis.MetricResult{{
			Metric: analysis.MetricErrorRate, Candidate: 0.004, Baseline: 0.005, Delta: -0.001, Threshold: 0.025, Unit: "ratio",
			CandidateN: 4000, BaselineN: 76000, Outcome: analysis.OutcomeOK,
		}},
	}
	raw, err := json.Marshal(decision)
	require.NoError(t, err)
	r, err = f.Store.FinishFlagRolloutCheck(ctx, store.FlagRolloutCheck{
		RolloutID: r.ID, StepIndex: 0, Action: store.RolloutWait, Decision: raw, Explanation: decision.Explanation,
		NextCheckAt: time.Now().Add(15 * time.Second), Actor: "rollout",
	})
	require.NoError(t, err)
	dora := f.signIn("dora")
	res := dora.get(flagProdPage)
	require.Equal(t, "Continue", res.text("flag-guarded-verdict"))
	require.Equal(t, decision.Explanation, res.text("flag-guarded-explanation"))
	require.Nil(t, res.byTestID("flag-guarded-earlier"))
	require.Equal(t, []string{"error rate", "0.40%", "0.50%", "-0.10 pp", "≤ 2.5%", "ok"}, cellTexts(res.byTestID("flag-guarded-metric-error rate")))
	require.Contains(t, res.text("flag-guarded-next-check"), "Next check in")

	_, err = f.Store.FinishFlagRolloutCheck(ctx, store.FlagRolloutCheck{
		RolloutID: r.ID, StepIndex: 0, Action: store.RolloutAdvance, Decision: raw, Explanation: decision.Explanation,
		NextCheckAt: time.Now(), Actor: "rollout",
	})
	require.NoError(t, err)
	res = dora.get(flagProdPage)
	require.Equal(t, "25%", res.text("flag-guarded-percent"))
	require.Equal(t, "done", attr(res.byTestID("flag-guarded-step-1"), "data-status"))
	require.Equal(t, "current", attr(res.byTestID("flag-guarded-step-2"), "data-status"))
	require.Contains(t, res.text("flag-guarded-earlier"), "This check judged the 5% step and moved the rollout on")

	res = dora.post(guardedRolloutPath+"/cancel", url.Values{"rollout": {fmt.Sprint(r.ID)}})
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	res = dora.get(flagProdPage)
	require.Equal(t, []string{
		"rollout cancelled in production at 25%; the flag keeps serving that share",
		"rollout moved true from 5% to 25% in production",
		"guarded rollout started in production: true to 5% → 25% → 50% → 100%, 10m per step",
		"state changed in production: on, 1 rule, default false",
		"created: boolean; variants false, true; default false",
	}, historyTexts(t, f, res))
	events, err := f.Store.ListFlagEventsBefore(ctx, f.flag.ID, 0, 3)
	require.NoError(t, err)
	require.Equal(t, "dora", res.text(fmt.Sprintf("flag-event-%d-actor", events[0].ID)))
	require.Equal(t, "paul", res.text(fmt.Sprintf("flag-event-%d-actor", events[2].ID)))

	// The environment's timeline and the audit log word them too.
	env := dora.get("/apps/checkout/environments/production")
	moved := env.text(fmt.Sprintf("history-flag-%d-text", events[1].ID))
	require.True(t, strings.HasPrefix(moved, "rollout moved"), moved)
	require.True(t, strings.HasSuffix(moved, "from 5% to 25%"), moved)
	require.Equal(t, "guarded rollout started: true to 5% → 25% → 50% → 100%, 10m per step", env.text(fmt.Sprintf("history-flag-%d-text", events[2].ID)))
	audit := f.signIn("paul").get("/audit?app=checkout")
	require.Equal(t, "new-checkout: guarded rollout started: true to 5% → 25% → 50% → 100%, 10m per step (version 2)",
		audit.text(fmt.Sprintf("audit-entry-flag-%d-detail", events[2].ID)))
	require.Equal(t, "new-checkout: rollout cancelled at 25%; the flag keeps serving that share",
		audit.text(fmt.Sprintf("audit-entry-flag-%d-detail", events[0].ID)))
}
