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
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/flags"
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
