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

	"github.com/flightdeckhq/flightdeck/internal/store"
)

const prodPage = "/apps/checkout/environments/production"

// settingsForm is the settings form as the page fills it, for a browser to
// change and send.
func settingsForm(t *testing.T, res page) url.Values {
	t.Helper()
	form := url.Values{}
	for _, name := range []string{"tier", "default_strategy", "failure_policy"} {
		sel := res.byTestID("setting-" + name)
		require.NotNil(t, sel, "the form has %s", name)
		for c := sel.FirstChild; c != nil; c = c.NextSibling {
			if hasAttr(c, "selected") {
				form.Set(name, attr(c, "value"))
			}
		}
	}
	for _, name := range []string{"strategy_defaults", "driver", "metrics"} {
		form.Set(name, res.text("setting-"+name))
	}
	for _, name := range []string{"require_approval", "approver_not_starter"} {
		if hasAttr(res.byTestID("setting-"+name), "checked") {
			form.Set(name, "true")
		}
	}
	form.Set("digest", hiddenValue(res, "digest"))
	for _, name := range []string{"warmup", "error_rate_pp", "p99_ratio", "confidence", "health_check_failures"} {
		in := res.byTestID("threshold-" + name)
		require.NotNil(t, in, "the form has threshold %s", name)
		form.Set("t."+name, attr(in, "value"))
	}
	return form
}

// hasAttr reports whether the element has the attribute, such as checked.
func hasAttr(n *html.Node, key string) bool {
	if n == nil {
		return false
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// hiddenValue returns the value of the page's first input with the name.
func hiddenValue(p page, name string) string {
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == name {
			found = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.Doc)
	return attr(found, "value")
}

// storedEnv reads the environment as stored now.
func (d *deployment) storedEnv() store.Environment {
	d.t.Helper()
	env, err := d.s.Store.EnvironmentByID(context.Background(), d.env.ID)
	require.NoError(d.t, err)
	return env
}

// audit returns the audit events of the action.
func (d *deployment) audit(action string) []store.AuditEntry {
	d.t.Helper()
	entries, err := d.s.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	require.NoError(d.t, err)
	var out []store.AuditEntry
	for _, e := range entries {
		if e.Kind == "audit" && e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestEnvironmentPageShowsVersionsHistoryAndRollsBack(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("dora", false, "checkout/production=deployer")
	d.s.addUser("vic", false)
	first := d.deploy("v1.4.1", "dora")
	second := d.deploy("v1.4.2", "dora")

	viewer := d.s.signIn("vic")
	res := viewer.get(prodPage)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "checkout / production", res.text("env-title"))
	require.Contains(t, res.text("env-stable"), "v1.4.2")
	require.Contains(t, res.text("env-previous"), "v1.4.1")
	require.NotNil(t, res.byTestID("env-idle"))
	require.Nil(t, res.byTestID("env-rollback"), "a viewer gets no rollback button")
	require.Contains(t, res.text("env-rollback-needs-role"), "deployer")
	for _, r := range []store.Run{first, second} {
		row := res.text(fmt.Sprintf("history-run-%d", r.ID))
		require.Contains(t, row, r.ToVersion)
		require.Contains(t, row, "succeeded")
		require.Contains(t, row, "dora")
		require.Contains(t, row, "Canary")
	}
	require.Less(t, strings.Index(res.Body, fmt.Sprintf("history-run-%d", second.ID)), strings.Index(res.Body, fmt.Sprintf("history-run-%d", first.ID)), "newest first")

	// A forged rollback from the viewer is refused and starts nothing.
	refused := viewer.post(prodPage+"/rollback", url.Values{"to": {"v1.4.1"}})
	require.Equal(t, http.StatusForbidden, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "You are a viewer on checkout/production; rolling it back needs the deployer role. Nothing was changed.")
	runs, err := d.s.Store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: d.env.ID})
	require.NoError(t, err)
	require.Len(t, runs, 2)

	deployer := d.s.signIn("dora")
	res = deployer.get(prodPage)
	button := res.byTestID("env-rollback")
	require.NotNil(t, button)
	require.Equal(t, "Roll back to v1.4.1", res.text("env-rollback"))
	require.Contains(t, attr(res.byTestID("env-rollback-form"), "data-confirm"), "Roll back checkout/production from v1.4.2 to v1.4.1?")

	// A page showing an older previous version is not acted on.
	stale := deployer.post(prodPage+"/rollback", url.Values{"to": {"v1.3.0"}})
	require.Equal(t, http.StatusConflict, stale.Code)
	require.Contains(t, stale.text("refusal-message"), "now v1.4.1, not v1.3.0")

	done := deployer.post(prodPage+"/rollback", url.Values{"to": {"v1.4.1"}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	runs, err = d.s.Store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: d.env.ID})
	require.NoError(t, err)
	require.Len(t, runs, 3)
	rollback := runs[0]
	require.Equal(t, fmt.Sprintf("/runs/%d", rollback.ID), done.Location)
	require.Equal(t, "v1.4.1", rollback.ToVersion)
	require.Equal(t, "blue_green", rollback.Strategy)
	require.Equal(t, "dora", rollback.CreatedBy)

	// While that rollback is in flight, the page shows it and a second
	// rollback is refused.
	res = deployer.get(prodPage)
	require.Contains(t, res.text("env-current"), "v1.4.2 → v1.4.1")
	require.Equal(t, fmt.Sprintf("/runs/%d", rollback.ID), attr(res.byTestID("env-current-link"), "href"))
	require.Nil(t, res.byTestID("env-rollback"))
	require.Contains(t, res.text("env-rollback-blocked"), "is in flight")
	again := deployer.post(prodPage+"/rollback", url.Values{"to": {"v1.4.1"}})
	require.Equal(t, http.StatusConflict, again.Code)
	require.Contains(t, again.text("refusal-message"), "is in flight")
	runs, err = d.s.Store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: d.env.ID})
	require.NoError(t, err)
	require.Len(t, runs, 3, "nothing more was started")
}

func TestEnvironmentRollbackNeedsAnEarlierVersion(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("dora", false, "checkout/*=deployer")
	b := d.s.signIn("dora")

	res := b.get(prodPage)
	require.Contains(t, res.text("env-rollback-none"), "has not been deployed yet")
	refused := b.post(prodPage+"/rollback", url.Values{"to": {"v1"}})
	require.Equal(t, http.StatusConflict, refused.Code)
	require.Contains(t, refused.text("refusal-message"), "Nothing was changed.")

	d.deploy("v1.0.0", "dora")
	res = b.get(prodPage)
	require.Contains(t, res.text("env-rollback-none"), "was the first deployment")
	refused = b.post(prodPage+"/rollback", url.Values{"to": {"v0"}})
	require.Equal(t, http.StatusConflict, refused.Code)
	runs, err := d.s.Store.ListRuns(context.Background(), store.RunFilter{EnvironmentID: d.env.ID})
	require.NoError(t, err)
	require.Len(t, runs, 1)

	missing := b.get("/apps/checkout/environments/nowhere")
	require.Equal(t, http.StatusNotFound, missing.Code)
	require.Contains(t, missing.text("refusal-message"), `no environment "nowhere"`)
}

func TestEnvironmentHistoryIsPaged(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("vic", false)
	ctx := context.Background()
	var ids []int64
	for i := range 23 {
		r, _, err := d.s.Store.CreateRun(ctx, store.NewRun{AppID: d.app.ID, EnvironmentID: d.env.ID,
			ToVersion: fmt.Sprintf("v0.%d", i), Strategy: "canary", CreatedBy: "ci"})
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	b := d.s.signIn("vic")
	res := b.get(prodPage)
	require.NotNil(t, res.byTestID(fmt.Sprintf("history-run-%d", ids[22])))
	require.NotNil(t, res.byTestID(fmt.Sprintf("history-run-%d", ids[3])))
	require.Nil(t, res.byTestID(fmt.Sprintf("history-run-%d", ids[2])), "twenty runs a page")
	older := attr(res.byTestID("env-history-older"), "href")
	require.Equal(t, fmt.Sprintf("%s?before=%d#history", prodPage, ids[3]), older)
	// The oldest waiting run is the one in flight; the others queue.
	require.Contains(t, res.text("env-current"), "v0.0")
	require.Contains(t, res.text("env-queue"), "v0.22")

	res = b.get(strings.TrimSuffix(older, "#history"))
	require.Equal(t, http.StatusOK, res.Code)
	for _, id := range ids[:3] {
		require.NotNil(t, res.byTestID(fmt.Sprintf("history-run-%d", id)))
	}
	require.Nil(t, res.byTestID(fmt.Sprintf("history-run-%d", ids[3])))
	require.Nil(t, res.byTestID("env-history-older"))
	require.NotNil(t, res.byTestID("env-history-newest"))

	bad := b.get(prodPage + "?before=yesterday")
	require.Equal(t, http.StatusBadRequest, bad.Code)
	require.Contains(t, bad.text("refusal-message"), "before must be a run number")
}

func TestEnvironmentSettingsAreSavedByAdmins(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("ada", false, "checkout/production=admin")
	b := d.s.signIn("ada")
	before := d.storedEnv()

	res := b.get(prodPage)
	require.NotNil(t, res.byTestID("settings-form"))
	require.Nil(t, res.byTestID("settings-read-only"))
	require.Equal(t, "2", attr(res.byTestID("threshold-error_rate_pp"), "placeholder"), "defaults are shown")
	form := settingsForm(t, res)
	form.Set("default_strategy", "blue_green")
	form.Set("t.error_rate_pp", "3")
	form.Set("t.warmup", "2m")
	form.Set("require_approval", "true")
	form.Set("strategy_defaults", `{"canary": {"steps": [10, 50, 100], "step_bake": "10m"}}`)

	saved := b.post(prodPage+"/settings", form)
	require.Equal(t, http.StatusSeeOther, saved.Code, saved.Body)
	require.Equal(t, prodPage, saved.Location)
	env := d.storedEnv()
	require.Equal(t, "blue_green", env.DefaultStrategy)
	require.True(t, env.RequireApproval)
	require.JSONEq(t, `{"error_rate_pp": 3, "warmup": "2m"}`, string(env.Thresholds))
	require.JSONEq(t, `{"canary": {"steps": [10, 50, 100], "step_bake": "10m"}}`, string(env.StrategyDefaults))
	require.Greater(t, env.Version, before.Version)

	events := d.audit("environment.settings_changed")
	require.Len(t, events, 1)
	require.Equal(t, "ada", events[0].Actor)
	require.Equal(t, "checkout", events[0].App)
	require.Equal(t, "production", events[0].Environment)
	for _, field := range []string{"default_strategy: canary → blue_green", "thresholds (error_rate_pp, warmup)", "strategy_defaults", "require_approval: false → true"} {
		require.Contains(t, events[0].Detail, field)
	}
	require.NotContains(t, events[0].Detail, "driver")

	res = b.get(prodPage)
	require.Contains(t, res.text("flash"), "Settings saved")
	require.Equal(t, "3", attr(res.byTestID("threshold-error_rate_pp"), "value"))

	// A run recording a new stable version meanwhile does not get in the
	// way of a form opened before it.
	form = settingsForm(t, res)
	require.NoError(t, d.s.Store.SetStableVersion(context.Background(), d.env.ID, "v9"))
	form.Set("failure_policy", "pause")
	saved = b.post(prodPage+"/settings", form)
	require.Equal(t, http.StatusSeeOther, saved.Code, saved.Body)
	env = d.storedEnv()
	require.Equal(t, "pause", env.FailurePolicy)
	require.Equal(t, "v9", env.StableVersion, "the form never touches the versions")

	// Someone else's change in the meantime is not overwritten unseen.
	stale := form
	stale.Set("failure_policy", "rollback")
	other := env
	other.DefaultStrategy = "ring"
	_, err := d.s.Store.UpdateEnvironment(context.Background(), other)
	require.NoError(t, err)
	res = b.post(prodPage+"/settings", stale)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("settings-error"), "Someone changed the settings")
	require.Equal(t, "ring", d.storedEnv().DefaultStrategy)
	require.Equal(t, "pause", d.storedEnv().FailurePolicy)
	require.Len(t, d.audit("environment.settings_changed"), 2)
}

func TestEnvironmentSettingsRefuseBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("ada", false, "checkout/production=admin")
	b := d.s.signIn("ada")
	before := d.storedEnv()
	form := settingsForm(t, b.get(prodPage))

	for _, tc := range []struct {
		name   string
		change map[string]string
		errors map[string]string
	}{
		{
			name:   "thresholds out of range or of the wrong kind",
			change: map[string]string{"t.error_rate_pp": "150", "t.confidence": "very", "t.warmup": "soon", "t.p99_ratio": "0.5"},
			errors: map[string]string{
				"thresholds.error_rate_pp": "between 0 and 100 percentage points",
				"thresholds.confidence":    `must be a number, got "very"`,
				"thresholds.warmup":        "must be a duration",
			},
		},
		{
			name:   "a ratio below 1",
			change: map[string]string{"t.p99_ratio": "0.5"},
			errors: map[string]string{"thresholds.p99_ratio": "must be at least 1"},
		},
		{
			name:   "unknown strategy",
			change: map[string]string{"default_strategy": "yolo"},
			errors: map[string]string{"default_strategy": `got "yolo"`},
		},
		{
			name:   "strategy defaults naming no strategy",
			change: map[string]string{"strategy_defaults": `{"big_bang": {}}`},
			errors: map[string]string{"strategy_defaults": "big_bang: is not a strategy"},
		},
		{
			name:   "driver that is not JSON",
			change: map[string]string{"driver": `{"type": simulator}`},
			errors: map[string]string{"driver": "is not valid JSON"},
		},
		{
			name:   "metric source of an unknown type",
			change: map[string]string{"metrics": `{"type": "graphite"}`},
			errors: map[string]string{"metrics": `type: must be one of`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := cloneValues(form)
			for k, v := range tc.change {
				sent.Set(k, v)
			}
			res := b.post(prodPage+"/settings", sent)
			require.Equal(t, http.StatusBadRequest, res.Code)
			require.Contains(t, res.text("settings-error"), "Nothing was saved")
			for field, message := range tc.errors {
				require.Contains(t, res.text("error-"+field), message, field)
			}
			for k, v := range tc.change {
				if name, ok := strings.CutPrefix(k, "t."); ok {
					require.Equal(t, v, attr(res.byTestID("threshold-"+name), "value"), "the form keeps what was typed")
				} else if k != "default_strategy" {
					require.Equal(t, v, res.text("setting-"+k), "the form keeps what was typed")
				}
			}
		})
	}
	require.Equal(t, before.Version, d.storedEnv().Version, "nothing was saved")
	require.Empty(t, d.audit("environment.settings_changed"))
}

func TestEnvironmentSettingsAreReadOnlyForOthers(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("dora", false, "checkout/production=deployer", "checkout/staging=admin")
	b := d.s.signIn("dora")
	before := d.storedEnv()

	res := b.get(prodPage)
	require.Nil(t, res.byTestID("settings-form"), "no form for a deployer")
	require.Contains(t, res.text("settings-read-only"), "needs the admin role on checkout/production; you are a deployer")
	require.Contains(t, res.text("threshold-view-error_rate_pp"), "2")
	require.Contains(t, res.text("threshold-view-error_rate_pp"), "default")
	require.Equal(t, "deployer", strings.TrimPrefix(res.text("env-role"), "your role here: "))

	forged := b.post(prodPage+"/settings", url.Values{
		"digest": {"x"}, "tier": {"production"}, "default_strategy": {"recreate"}, "failure_policy": {"rollback"},
		"driver": {`{"type": "simulator"}`}, "metrics": {`{"type": "simulator"}`},
	})
	require.Equal(t, http.StatusForbidden, forged.Code)
	require.Equal(t, "You are a deployer on checkout/production; changing its settings needs the admin role. Nothing was changed.", forged.text("refusal-message"))
	after := d.storedEnv()
	require.Equal(t, before.Version, after.Version)
	require.Equal(t, "canary", after.DefaultStrategy)
	require.Empty(t, d.audit("environment.settings_changed"))
	var thresholds map[string]any
	require.NoError(t, json.Unmarshal(after.Thresholds, &thresholds))
	require.Empty(t, thresholds)
}

func TestEnvironmentPageShowsHowFarEachSchemaChangeIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("vic", false)
	require.Nil(t, d.s.signIn("vic").get(prodPage).byTestID("env-schema"), "no panel without schema changes")

	sc, err := d.s.Store.CreateSchemaChange(ctx, d.app.ID, "orders-currency", "orders.currency replaces currency_code", "user:dba")
	require.NoError(t, err)
	sc, err = d.s.Store.RecordSchemaPhase(ctx, sc, d.env.ID, "expand", 0, "user:dba")
	require.NoError(t, err)
	_, err = d.s.Store.RecordSchemaPhase(ctx, sc, d.env.ID, "migrate", 0, "token:ci")
	require.NoError(t, err)

	res := d.s.signIn("vic").get(prodPage)
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.text("env-schema-orders-currency"), "orders.currency replaces currency_code")
	require.Contains(t, res.text("env-schema-orders-currency-expand"), "✓ expand")
	require.Contains(t, res.text("env-schema-orders-currency-migrate"), "token:ci")
	require.NotContains(t, res.text("env-schema-orders-currency-contract"), "✓")
	require.Nil(t, res.byTestID("env-schema-orders-currency-record"), "a viewer records nothing")
	require.Equal(t, http.StatusForbidden, d.s.signIn("vic").post(prodPage+"/schema/orders-currency", url.Values{"phase": {"contract"}}).Code)
}

func TestContractBlocksRollingBackToOldCode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, "checkout", "production")
	d.s.addUser("dora", false, "checkout/production=deployer")
	d.deploy("v1", "dora")
	sc, err := d.s.Store.CreateSchemaChange(ctx, d.app.ID, "orders-currency", "", "user:dba")
	require.NoError(t, err)
	_, err = d.s.Store.RecordSchemaPhase(ctx, sc, d.env.ID, "expand", 0, "user:dba")
	require.NoError(t, err)
	d.deploy("v2", "dora")
	require.NoError(t, d.s.Store.SetVersionNeeds(ctx, d.app.ID, "v3", []store.VersionNeed{{Change: "orders-currency", Phase: "migrate"}}, "token:ci"))

	dora := d.s.signIn("dora")
	res := dora.get(prodPage)
	require.Contains(t, attr(res.byTestID("env-schema-orders-currency-record"), "data-confirm"), "reached migrate")
	require.Equal(t, http.StatusSeeOther, dora.post(prodPage+"/schema/orders-currency", url.Values{"phase": {"migrate"}}).Code)
	d.deploy("v3", "dora")
	require.Equal(t, http.StatusSeeOther, dora.post(prodPage+"/schema/orders-currency", url.Values{"phase": {"contract"}}).Code)
	require.Equal(t, http.StatusUnprocessableEntity, dora.post(prodPage+"/schema/orders-currency", url.Values{"phase": {"shrink"}}).Code)

	// v2 served production before migrate: the old code would break on
	// the contracted schema, so "roll back to previous" is blocked.
	res = dora.get(prodPage)
	require.Contains(t, res.text("env-rollback-blocked"), "Rolling back to v2 is blocked: v2 served production before schema change orders-currency reached migrate there")
	refused := dora.post(prodPage+"/rollback", url.Values{"to": {"v2"}})
	require.Equal(t, http.StatusConflict, refused.Code)
	require.Nil(t, res.byTestID("env-rollback-override-form"), "a deployer cannot override")
	forbidden := dora.post(prodPage+"/rollback", url.Values{"to": {"v2"}, "schema_override": {"trust me"}})
	require.Equal(t, http.StatusForbidden, forbidden.Code)

	// An administrator overrides with a reason; the run records it.
	d.s.addUser("root", true)
	root := d.s.signIn("root")
	require.NotNil(t, root.get(prodPage).byTestID("env-rollback-override-form"))
	done := root.post(prodPage+"/rollback", url.Values{"to": {"v2"}, "schema_override": {"currency_code was restored by hand"}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.text("refusal-message"))
	runs, err := d.s.Store.ListRuns(ctx, store.RunFilter{EnvironmentID: d.env.ID, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, "v2", runs[0].ToVersion)
	events, err := d.s.Store.ListRunEvents(ctx, runs[0].ID, 0, 100)
	require.NoError(t, err)
	found := false
	for _, e := range events {
		if e.Type == "schema.override" {
			found = true
			require.Contains(t, string(e.Payload), "currency_code was restored by hand")
		}
	}
	require.True(t, found, "the override is recorded on the run")
}
