package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// chromiumPath finds Debian's Chromium. Without it the browser tests skip,
// except in CI, where a missing browser is a broken setup.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const hint = "no Chromium on PATH (looked for chromium and chromium-browser); install it with: apt-get install chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(hint)
	}
	t.Skip(hint)
	return ""
}

// demoSite is a server binary running the demo on its own database, with a
// short analysis interval so that the pages change while a test watches.
type demoSite struct {
	*server
	store *store.Store
}

func startDemoSite(t *testing.T) *demoSite {
	t.Helper()
	dbURL, st := testDatabase(t)
	s := startServer(t, []string{"DATABASE_URL=" + dbURL, "FLIGHTDECK_ADMIN_PASSWORD=" + demoPassword},
		"--demo=on", "--analysis-interval=1s")
	require.Eventually(t, func() bool {
		apps, err := st.ListApps(context.Background(), "", 100)
		return err == nil && len(apps) > 0
	}, 30*time.Second, 100*time.Millisecond, "the demo was not seeded")
	return &demoSite{server: s, store: st}
}

// run returns the demo's newest run of the app's environment.
func (d *demoSite) run(t *testing.T, app, env string) store.Run {
	t.Helper()
	ctx := context.Background()
	a, err := d.store.App(ctx, app)
	require.NoError(t, err)
	e, err := d.store.Environment(ctx, a.ID, env)
	require.NoError(t, err)
	runs, err := d.store.ListRuns(ctx, store.RunFilter{EnvironmentID: e.ID, Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, runs, "%s/%s has a run", app, env)
	return runs[0]
}

// waitForState waits until the run is in the state.
func (d *demoSite) waitForState(t *testing.T, id int64, state store.RunState, within time.Duration) store.Run {
	t.Helper()
	var r store.Run
	require.Eventually(t, func() bool {
		var err error
		r, err = d.store.Run(context.Background(), id)
		return err == nil && r.State == state
	}, within, 200*time.Millisecond, "run %d did not reach %s (it is %s: %s)", id, state, r.State, r.Reason)
	return r
}

// chrome is one headless Chromium for a test; each person in the test gets
// a browser context of their own, with their own cookies.
type chrome struct {
	t   *testing.T
	ctx context.Context
}

func startChrome(t *testing.T) *chrome {
	t.Helper()
	path := chromiumPath(t)
	profile, err := os.MkdirTemp("", "flightdeck-chromium-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1400, 1000),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser; it gets no timeout, which would
	// end the browser with it.
	require.NoError(t, chromedp.Do(ctx), "starting Chromium at %s", path)
	return &chrome{t: t, ctx: ctx}
}

// tab is one person's browser tab.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	name string
}

// open returns a tab in a fresh browser context, as a person who has not
// signed in yet. Dialogs (confirmations) are accepted, and uncaught page
// errors are logged.
func (c *chrome) open(t *testing.T, base, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "opening a tab")
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			t.Logf("%s: accepting the dialog %q", name, ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			if d := ev.ExceptionDetails; d != nil {
				msg := d.Text
				if d.Exception != nil && d.Exception.Description != "" {
					msg = d.Exception.Description
				}
				t.Logf("%s: uncaught error in the page at %s:%d: %s", name, d.URL, d.LineNumber+1, msg)
			}
		}
	}()
	tb := &tab{t: t, ctx: ctx, base: base, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			tb.keepEvidence()
		}
	})
	return tb
}

// do runs actions with a timeout, failing the test with what was tried.
func (tb *tab) do(within time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, within)
	defer cancel()
	require.NoError(tb.t, chromedp.Do(ctx, actions...), "%s: %s", tb.name, what)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(tb.t, err, "%s: evaluating %s", tb.name, expr)
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (tb *tab) waitFor(within time.Duration, what, cond string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within)))
	require.NoError(tb.t, err, "%s: waiting until %s (%s)", tb.name, what, cond)
}

// byTestID is the CSS selector of an element with the data-testid.
func byTestID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id))
}

// visit opens a page and waits for the element with the data-testid.
func (tb *tab) visit(path, testID string) {
	tb.t.Helper()
	tb.do(20*time.Second, "opening "+path, chromedp.Navigate(tb.base+path), chromedp.WaitVisible(byTestID(testID)))
}

// signIn signs in through the sign-in form and waits for the overview.
func (tb *tab) signIn(username, password string) {
	tb.t.Helper()
	tb.visit("/login", "login-username")
	tb.do(20*time.Second, "signing in as "+username,
		chromedp.SendKeys(byTestID("login-username"), username),
		chromedp.SendKeys(byTestID("login-password"), password),
		chromedp.Click(byTestID("login-submit")),
		chromedp.WaitVisible(byTestID("signed-in-as")),
	)
}

// markPage leaves a mark on the page's window that a reload would wipe.
func (tb *tab) markPage() {
	tb.t.Helper()
	eval[chromedp.Void](tb, `window.__flightdeckMark = "still the same page"`)
}

// requireSamePage checks that the page was not reloaded since markPage.
func (tb *tab) requireSamePage() {
	tb.t.Helper()
	mark := eval[*string](tb, `window.__flightdeckMark || null`)
	require.NotNil(tb.t, mark, "%s: the page was reloaded, but it must update in place", tb.name)
}

// keepEvidence saves a screenshot and the HTML of a failed test's page.
func (tb *tab) keepEvidence() {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "flightdeck-browser-failure-")
	if err != nil {
		return
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(dir, tb.name+".png"), png, 0o644)
	}
	if html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); err == nil {
		_ = os.WriteFile(filepath.Join(dir, tb.name+".html"), []byte(html), 0o644)
	}
	tb.t.Logf("%s: the page at the failure is in %s", tb.name, dir)
}

// TestBrowser drives the pages in headless Chromium against the server
// binary running the demo, as release managers, on-call engineers and
// viewers use them.
func TestBrowser(t *testing.T) {
	t.Parallel()
	site := startDemoSite(t)
	browser := startChrome(t)
	canary := site.run(t, "storefront", "production")
	require.Equal(t, "canary", canary.Strategy)
	ring := site.run(t, "mobile-api", "production")
	require.Equal(t, "ring", ring.Strategy)

	t.Run("sign in and see every demo environment on the overview", func(t *testing.T) {
		admin := browser.open(t, site.url, "admin")
		admin.signIn("admin", demoPassword)
		ctx := context.Background()
		apps, err := site.store.ListApps(ctx, "", 100)
		require.NoError(t, err)
		for _, a := range apps {
			envs, err := site.store.ListEnvironments(ctx, a.ID)
			require.NoError(t, err)
			for _, e := range envs {
				admin.waitFor(10*time.Second, a.Slug+"/"+e.Name+" is listed",
					fmt.Sprintf(`document.querySelector('[data-testid="env-%s-%s"]') !== null`, a.Slug, e.Name))
			}
		}
	})

	t.Run("a canary's charts and decision update without a reload", func(t *testing.T) {
		oncall := browser.open(t, site.url, "oncall")
		oncall.signIn("oncall", demoPassword)
		oncall.visit(fmt.Sprintf("/runs/%d", canary.ID), "decision-panel")
		oncall.do(10*time.Second, "waiting for the error rate chart", chromedp.WaitVisible(byTestID("chart-error_rate")))
		oncall.markPage()
		points := eval[string](oncall, `document.querySelector('[data-testid="chart-error_rate"]').getAttribute('data-points') || "0"`)
		before, err := strconv.Atoi(points)
		require.NoError(t, err, "data-points is a count: %q", points)
		decision := `(() => {
			const text = (id) => { const el = document.querySelector('[data-testid="' + id + '"]'); return el ? el.textContent.trim() : ""; };
			const lit = [...document.querySelectorAll('[data-testid^="decision-node-"].lit')].map((n) => n.dataset.testid).sort().join(",");
			return text("decision-explanation") + "|" + lit;
		})()`
		was := eval[string](oncall, decision)

		oncall.waitFor(45*time.Second, "the error rate chart gains points",
			fmt.Sprintf(`Number(document.querySelector('[data-testid="chart-error_rate"]').getAttribute('data-points') || 0) > %d`, before))
		oncall.waitFor(30*time.Second, "the decision panel shows a newer decision",
			fmt.Sprintf(`%s !== %s`, decision, strconv.Quote(was)))
		oncall.requireSamePage()
	})

	// The ring waits for its first approval within a minute of starting.
	site.waitForState(t, ring.ID, store.RunAwaitingApproval, 90*time.Second)
	runPage := fmt.Sprintf("/runs/%d", ring.ID)

	t.Run("a viewer cannot approve, not even with a forged request", func(t *testing.T) {
		viewer := browser.open(t, site.url, "viewer")
		viewer.signIn("viewer", demoPassword)
		viewer.visit(runPage, "run-timeline")
		require.Equal(t, "awaiting_approval", eval[string](viewer, `document.querySelector('[data-testid="phase-0"]').dataset.status`))
		require.False(t, eval[bool](viewer, `document.querySelector('[data-testid="action-approve"]') !== null`),
			"a viewer is shown no approve button")

		status := eval[int](viewer, fmt.Sprintf(`fetch(%q, {
			method: "POST",
			headers: {"Content-Type": "application/x-www-form-urlencoded"},
			body: new URLSearchParams({_csrf: document.querySelector('meta[name="csrf-token"]').content, comment: "looks fine to me"}),
			redirect: "manual",
		}).then((r) => r.status)`, runPage+"/actions/approve"))
		require.Equal(t, 403, status, "the server refuses a viewer's approval")

		r, err := site.store.Run(context.Background(), ring.ID)
		require.NoError(t, err)
		require.Equal(t, store.RunAwaitingApproval, r.State, "the run still waits")
		approvals, err := site.store.ListApprovals(context.Background(), ring.ID)
		require.NoError(t, err)
		require.Empty(t, approvals)
	})

	t.Run("an approver approves the ring and the timeline moves on in place", func(t *testing.T) {
		manager := browser.open(t, site.url, "release-manager")
		manager.signIn("release-manager", demoPassword)
		manager.visit(runPage, "action-approve")
		require.Equal(t, "awaiting_approval", eval[string](manager, `document.querySelector('[data-testid="phase-0"]').dataset.status`))
		manager.markPage()
		manager.do(10*time.Second, "clicking approve", chromedp.Click(chromedp.CSS(
			`button[data-testid="action-approve"], [data-testid="action-approve"] button[type="submit"], [data-testid="action-approve"] button`)))
		manager.waitFor(20*time.Second, "the approved ring is no longer waiting",
			`document.querySelector('[data-testid="phase-0"]').dataset.status !== "awaiting_approval"`)
		manager.requireSamePage()

		r, err := site.store.Run(context.Background(), ring.ID)
		require.NoError(t, err)
		require.GreaterOrEqual(t, r.PhaseIndex, 1, "the run moved to the next ring")
		approvals, err := site.store.ListApprovals(context.Background(), ring.ID)
		require.NoError(t, err)
		require.Len(t, approvals, 1)
		require.Equal(t, "approved", approvals[0].Outcome)
		require.Equal(t, "release-manager", approvals[0].Actor, "the approval is recorded as the person who clicked")
	})
}

// ofrepValue asks the server, as an application would, which value a user
// gets from a flag of storefront/production.
func ofrepValue(t *testing.T, base, token, key string) (any, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/ofrep/v1/evaluate/flags/"+key,
		strings.NewReader(`{"context": {"targetingKey": "customer-7", "email": "customer-7@mail.example"}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Value  any    `json:"value"`
		Reason string `json:"reason"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Value, out.Reason
}

// TestBrowserKillSwitch has an on-call engineer pull a flag's kill switch
// in the browser while an application evaluates it over OFREP.
func TestBrowserKillSwitch(t *testing.T) {
	t.Parallel()
	site := startDemoSite(t)
	browser := startChrome(t)
	ctx := context.Background()
	owner, err := site.store.UserByUsername(ctx, "admin")
	require.NoError(t, err)
	token, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = site.store.CreateToken(ctx, store.NewToken{Name: "storefront-app", Hash: hash, Prefix: prefix,
		Scopes: []auth.Scope{auth.ScopeFlags}, UserID: owner.ID, Apps: []string{"storefront"}, Environments: []string{"production"}})
	require.NoError(t, err)
	value, _ := ofrepValue(t, site.url, token, "search-ranking")
	require.NotNil(t, value, "search-ranking is on in production")

	oncall := browser.open(t, site.url, "oncall")
	oncall.signIn("oncall", demoPassword)
	oncall.visit("/apps/storefront/flags/search-ranking?env=production", "flag-kill")
	// The kill switch asks for confirmation; the engineer says yes.
	_ = eval[bool](oncall, `(() => { window.confirm = () => true; return true; })()`)
	clicked := time.Now()
	oncall.do(10*time.Second, "pulling the kill switch", chromedp.Click(byTestID("flag-kill")))
	require.Eventually(t, func() bool {
		v, reason := ofrepValue(t, site.url, token, "search-ranking")
		return v == "classic" && reason == "DISABLED"
	}, 2*time.Second, 2*time.Millisecond, "applications see the flag off at once")
	t.Logf("kill switch click to the application seeing it off: %s", time.Since(clicked))
	// The form's answer is the page again, now offering to turn it on.
	oncall.do(10*time.Second, "the turn-on button is offered", chromedp.WaitVisible(byTestID("flag-turn-on")))
	state := eval[string](oncall, `document.querySelector('[data-testid="flag-env-state"]').textContent`)
	require.Contains(t, state, "Off in production")
}

// TestScreenshots saves a full-page screenshot of every page into the
// directory named by FLIGHTDECK_SCREENSHOTS, so people can look at the
// pages as the demo shows them. It runs only when that variable is set.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("FLIGHTDECK_SCREENSHOTS")
	if dir == "" {
		t.Skip("set FLIGHTDECK_SCREENSHOTS to a directory to save screenshots of every page")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	site := startDemoSite(t)
	browser := startChrome(t)
	ring := site.run(t, "mobile-api", "production")
	canary := site.run(t, "storefront", "production")
	// Give the pages something to show: a ring waiting for approval, and
	// a canary with a few windows of metrics.
	site.waitForState(t, ring.ID, store.RunAwaitingApproval, 90*time.Second)

	save := func(tb *tab, name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		defer cancel()
		// Charts and live fragments settle after the load.
		time.Sleep(time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err, "screenshot of %s", name)
		path := filepath.Join(dir, name+".png")
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("saved %s", path)
	}
	visitor := browser.open(t, site.url, "visitor")
	visitor.visit("/login", "login-username")
	save(visitor, "login")

	admin := browser.open(t, site.url, "admin")
	admin.signIn("admin", demoPassword)
	for _, p := range []struct{ name, path, testID string }{
		{"overview", "/", "signed-in-as"},
		{"environment", "/apps/storefront/environments/production", "signed-in-as"},
		{"run-canary", fmt.Sprintf("/runs/%d", canary.ID), "run-timeline"},
		{"run-ring", fmt.Sprintf("/runs/%d", ring.ID), "run-timeline"},
		{"approvals", "/approvals", "signed-in-as"},
		{"live", "/live", "signed-in-as"},
		{"advisor", "/advisor", "signed-in-as"},
		{"audit", "/audit", "signed-in-as"},
		{"users", "/users", "signed-in-as"},
	} {
		admin.visit(p.path, p.testID)
		save(admin, p.name)
	}
}
