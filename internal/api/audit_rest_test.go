package api_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func init() {
	// Exports are files; the document describes them as strings, which is
	// all a contract check can say about them.
	openapi3filter.RegisterBodyDecoder("application/jsonl", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.PlainBodyDecoder)
}

// exportLine is one line of a JSON lines export.
type exportLine struct {
	At          string `json:"at"`
	Kind        string `json:"kind"`
	Actor       string `json:"actor"`
	Action      string `json:"action"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	RunID       int64  `json:"run_id"`
	Detail      string `json:"detail"`
	RemoteAddr  string `json:"remote_addr"`
	UserAgent   string `json:"user_agent"`
}

// jsonLines reads a JSON lines export, each line on its own.
func jsonLines(t *testing.T, body string) []exportLine {
	t.Helper()
	var lines []exportLine
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var l exportLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines
}

// addToken makes a token with the scopes and app limits and returns its
// secret.
func (a *runAPI) addToken(name string, scopes []auth.Scope, apps ...string) {
	a.t.Helper()
	ctx := context.Background()
	admin, err := a.store.EnsureAdminUser(ctx, "admin")
	require.NoError(a.t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(a.t, err)
	_, err = a.store.CreateToken(ctx, store.NewToken{Name: name, Hash: hash, Prefix: prefix, Scopes: scopes, UserID: admin.ID, Apps: apps})
	require.NoError(a.t, err)
	a.tokens[name] = plain
}

func TestAPIActionsRecordTheCallersOriginAndExportAsJSONLines(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	a.addToken("auditor", []auth.Scope{auth.ScopeAdmin})
	// A client cannot choose the address recorded by sending
	// X-Forwarded-For when no proxy is trusted.
	ua := http.Header{"User-Agent": {"deployctl/2.1 (ci job 812)"}, "X-Forwarded-For": {"203.0.113.9"}}
	rec := a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2"}`, header: ua})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	a.step()

	rec = a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=jsonl&app=shop"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "application/jsonl; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Regexp(t, `^attachment; filename="flightdeck-audit-\d{8}T\d{6}Z\.jsonl"$`, rec.Header().Get("Content-Disposition"))
	lines := jsonLines(t, rec.Body.String())
	var created, engineSteps int
	for _, l := range lines {
		require.Equal(t, "shop", l.App)
		require.Equal(t, "prod", l.Environment)
		switch l.Actor {
		case "token:ci":
			created++
			require.Equal(t, "run.created", l.Action)
			require.Equal(t, "run", l.Kind)
			require.Equal(t, "192.0.2.1", l.RemoteAddr, "the caller's address")
			require.Equal(t, "deployctl/2.1 (ci job 812)", l.UserAgent)
			_, err := time.Parse(time.RFC3339, l.At)
			require.NoError(t, err, "at is RFC 3339")
		case "engine":
			engineSteps++
			require.Empty(t, l.RemoteAddr, "the engine's own steps come from no request")
			require.Empty(t, l.UserAgent)
		}
	}
	require.Equal(t, 1, created)
	require.Positive(t, engineSteps, "the engine's steps are exported unless hidden")

	rec = a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=jsonl&app=shop&hide_engine=true&actor=token:ci"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	lines = jsonLines(t, rec.Body.String())
	require.Len(t, lines, 1)
	require.Equal(t, "token:ci", lines[0].Actor)

	rec = a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=jsonl&app=blog"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String(), "an export with nothing in it is empty, not an error")
}

func TestAuditExportAsCSVWithFiltersAndFormulaGuard(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	a.addToken("auditor", []auth.Scope{auth.ScopeAdmin})
	ctx := context.Background()
	for _, e := range []store.AuditEvent{
		{Actor: "sam", Action: "environment.updated", App: "shop", Environment: "prod", Detail: `=HYPERLINK("http://evil.example","click")`, RemoteAddr: "10.0.0.7", UserAgent: "Mozilla/5.0, \"quoted\""},
		{Actor: "sam", Action: "role.granted", App: "shop", Environment: "staging", Detail: "+1 deployer", RemoteAddr: "10.0.0.8"},
		{Actor: "rita", Action: "environment.updated", App: "blog", Environment: "prod", Detail: "@SUM(A1)"},
	} {
		_, err := a.store.RecordAudit(ctx, e)
		require.NoError(t, err)
	}
	from := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	rec := a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv&app=shop&environment=prod&actor=sam&from=" + from})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "text/csv; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Regexp(t, `^attachment; filename="flightdeck-audit-\d{8}T\d{6}Z\.csv"$`, rec.Header().Get("Content-Disposition"))
	records, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"at", "kind", "actor", "action", "app", "environment", "run_id", "detail", "remote_addr", "user_agent"}, records[0])
	require.Len(t, records, 2, "only sam's change of shop/prod")
	row := records[1]
	require.Equal(t, []string{"audit", "sam", "environment.updated", "shop", "prod", "0"}, row[1:7])
	require.Equal(t, `'=HYPERLINK("http://evil.example","click")`, row[7], "a formula is neutralised")
	require.Equal(t, "10.0.0.7", row[8])
	require.Equal(t, `Mozilla/5.0, "quoted"`, row[9], "commas and quotes survive")

	rec = a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv&hide_engine=true"})
	require.Equal(t, http.StatusOK, rec.Code)
	records, err = csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err)
	details := map[string]string{}
	for _, r := range records[1:] {
		details[r[3]+" "+r[4]+"/"+r[5]] = r[7]
	}
	require.Equal(t, "'+1 deployer", details["role.granted shop/staging"])
	require.Equal(t, "'@SUM(A1)", details["environment.updated blog/prod"])

	until := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	rec = a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv&to=" + until})
	require.Equal(t, http.StatusOK, rec.Code)
	records, err = csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, 1, "nothing happened before the range ends: the header alone")
}

func TestAuditExportRefusesBadParametersAndWeakTokens(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	a.addToken("auditor", []auth.Scope{auth.ScopeAdmin})
	a.addToken("shop-admin", []auth.Scope{auth.ScopeAdmin}, "shop")
	_, err := a.store.RecordAudit(context.Background(), store.AuditEvent{Actor: "sam", Action: "environment.updated", App: "blog", Environment: "prod"})
	require.NoError(t, err)

	for name, tc := range map[string]struct{ query, field, says string }{
		"an unknown format":       {"format=xml", "format", `"xml" is not an export format`},
		"an app that is no slug":  {"format=csv&app=Shop!", "app", "is not an app slug"},
		"a time that is no time":  {"format=csv&from=yesterday", "from", `"yesterday" is not a time`},
		"a range that ends first": {"format=csv&from=2026-03-02&to=2026-03-01", "to", "to must be later than from"},
		"an actor that is none":   {"format=jsonl&actor=token:", "actor", "is not a username or token"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := a.as("auditor", exchange{method: http.MethodGet, path: "/api/v1/audit?" + tc.query})
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			var p struct {
				Errors []struct{ Field, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			require.Len(t, p.Errors, 1, rec.Body.String())
			require.Equal(t, tc.field, p.Errors[0].Field)
			require.Contains(t, p.Errors[0].Message, tc.says)
		})
	}

	rec := a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv"})
	require.Equal(t, http.StatusForbidden, rec.Code, "a token that only reads cannot export")
	require.Contains(t, rec.Body.String(), `This needs the \"admin\" scope`)
	rec = a.as("ci", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv"})
	require.Equal(t, http.StatusForbidden, rec.Code)

	rec = a.as("shop-admin", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv"})
	require.Equal(t, http.StatusForbidden, rec.Code, "a token limited to shop must say so")
	require.Contains(t, rec.Body.String(), "name one of them in app")
	rec = a.as("shop-admin", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv&app=blog"})
	require.Equal(t, http.StatusForbidden, rec.Code, "nor export another app")
	rec = a.as("shop-admin", exchange{method: http.MethodGet, path: "/api/v1/audit?format=csv&app=shop"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotContains(t, rec.Body.String(), "blog")
}

func TestAuditPageActionsRecordOriginAndAdminsExport(t *testing.T) {
	t.Parallel()
	f := newReleaseFixture(t)
	f.addUser("dora", false, "checkout/production=deployer")
	f.addUser("ada", true)
	app, env := f.environment("checkout", "production", nil)
	run := f.start(app, env, "canary", "", "rita")
	f.stepUntil(run.ID, store.RunRunning)
	dora := f.signIn("dora")
	res := dora.post("/live/runs/"+strconv.FormatInt(run.ID, 10)+"/abort", nil)
	require.Less(t, res.Code, 400, res.Body)

	entries, err := f.Store.ListAudit(context.Background(), store.AuditFilter{App: "checkout", Limit: 100})
	require.NoError(t, err)
	var byDora int
	for _, e := range entries {
		switch {
		case e.Kind == "run" && strings.Contains(e.Actor, "dora"):
			byDora++
			require.Equal(t, "127.0.0.1", e.RemoteAddr, "the browser's address")
			require.Equal(t, "Go-http-client/1.1", e.UserAgent)
		case e.Actor == "engine":
			require.Empty(t, e.RemoteAddr)
		}
	}
	require.Positive(t, byDora, "aborting from the page is a run event by dora")

	// Only admins export; everyone else reads the log on the page.
	res = dora.get("/audit?app=checkout")
	require.Equal(t, http.StatusOK, res.Code)
	require.Nil(t, res.byTestID("audit-export"), "no download links for a deployer")
	res = dora.get("/audit/export?format=csv&app=checkout")
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "Exporting the audit log needs an admin")

	ada := f.signIn("ada")
	res = ada.get("/audit?app=checkout&user=dora&engine=1&from=2026-01-01")
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	csvHref := attr(res.byTestID("audit-export-csv"), "href")
	jsonHref := attr(res.byTestID("audit-export-jsonl"), "href")
	for _, href := range []string{csvHref, jsonHref} {
		u := mustURL(t, href)
		require.Equal(t, "/audit/export", u.Path)
		q := u.Query()
		require.Equal(t, "checkout", q.Get("app"), "the links keep the filter")
		require.Equal(t, "dora", q.Get("user"))
		require.Equal(t, "1", q.Get("engine"))
		require.Equal(t, "2026-01-01", q.Get("from"))
	}
	res = ada.get(csvHref)
	require.Equal(t, http.StatusOK, res.Code, res.Body)
	require.Equal(t, "text/csv; charset=utf-8", res.Header.Get("Content-Type"))
	records, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, 1+byDora, "the header and dora's entries")
	for _, r := range records[1:] {
		require.Contains(t, r[2], "dora")
		require.Equal(t, "127.0.0.1", r[8])
	}
	res = ada.get(jsonHref)
	require.Equal(t, http.StatusOK, res.Code)
	require.Len(t, jsonLines(t, res.Body), byDora)

	res = ada.get("/audit/export?format=pdf")
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("refusal-message"), `"pdf" is not an export format`)
	res = ada.get("/audit/export?format=csv&from=soon")
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("refusal-message"), `"soon" is not a time`)
	res = ada.get("/audit?from=soon")
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("audit-error-from"), `"soon" is not a time`)
	require.Nil(t, res.byTestID("audit-export"), "no download of a filter that cannot be used")
}
