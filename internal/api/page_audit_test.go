package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// auditRows returns the data-testids of the audit log's rows, top first,
// with what each row says in its who, what and where cells.
func auditRows(p page) (ids []string, rows []string) {
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		id := attr(n, "data-testid")
		if n.Data == "tr" && strings.HasPrefix(id, "audit-entry-") {
			ids = append(ids, id)
			rows = append(rows, p.text(id+"-actor")+" | "+p.text(id+"-action")+" | "+p.text(id+"-where"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.Doc)
	return ids, rows
}

func TestAuditLogFiltersByAppEnvironmentAndUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReleaseFixture(t)
	f.addUser("rita", false)
	checkout, checkoutProd := f.environment("checkout", "production", nil)
	_, _ = f.environment("checkout", "staging", nil)
	search, searchProd := f.environment("search", "production", nil)
	f.start(checkout, checkoutProd, "canary", "", "rita")
	f.start(search, searchProd, "canary", "", "token:ci")
	for _, e := range []store.AuditEvent{
		{Actor: "sam", Action: "environment.updated", App: "checkout", Environment: "staging", Detail: "failure_policy: rollback → pause", RemoteAddr: "10.0.0.7"},
		{Actor: "sam", Action: "role.granted", App: "search", Environment: "production", Detail: "rita is deployer"},
	} {
		_, err := f.Store.RecordAudit(ctx, e)
		require.NoError(t, err)
	}
	rita := f.signIn("rita")

	res := rita.get("/audit")
	require.Equal(t, http.StatusOK, res.Code)
	_, rows := auditRows(res)
	require.Contains(t, rows, "rita | created the run | checkout/production")
	require.Contains(t, rows, "token:ci | created the run | search/production")
	require.Contains(t, rows, "sam | environment updated | checkout/staging")
	require.Contains(t, rows, "rita | signed in | ")
	require.Nil(t, res.byTestID("audit-older"), "one page holds everything")

	res = rita.get("/audit?app=checkout")
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "checkout", attr(res.byTestID("audit-app"), "value"), "the filter keeps its values")
	_, rows = auditRows(res)
	require.Equal(t, []string{"sam | environment updated | checkout/staging", "rita | created the run | checkout/production"}, rows)

	res = rita.get("/audit?" + url.Values{"app": {"checkout"}, "env": {"production"}}.Encode())
	_, rows = auditRows(res)
	require.Equal(t, []string{"rita | created the run | checkout/production"}, rows)
	require.Equal(t, "production", attr(res.byTestID("audit-env"), "value"))

	res = rita.get("/audit?env=production")
	_, rows = auditRows(res)
	require.Equal(t, []string{"sam | role granted | search/production", "token:ci | created the run | search/production", "rita | created the run | checkout/production"}, rows)

	res = rita.get("/audit?user=sam")
	require.Equal(t, "sam", attr(res.byTestID("audit-user"), "value"))
	ids, rows := auditRows(res)
	require.Equal(t, []string{"sam | role granted | search/production", "sam | environment updated | checkout/staging"}, rows)
	require.Equal(t, "10.0.0.7", res.text(ids[1]+"-addr"), "where it came from is shown")
	require.Contains(t, res.text(ids[1]+"-detail"), "failure_policy: rollback → pause")

	res = rita.get("/audit?user=token:ci")
	_, rows = auditRows(res)
	require.Equal(t, []string{"token:ci | created the run | search/production"}, rows)

	res = rita.get("/audit?user=nobody")
	require.NotNil(t, res.byTestID("audit-empty"))
	require.Contains(t, res.text("audit-empty"), "Nothing matches this filter")
}

func TestAuditLogRefusesBadFiltersAndPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newPageServer(t)
	s.addUser("rita", false)
	for i := range 60 {
		_, err := s.Store.RecordAudit(ctx, store.AuditEvent{Actor: "sam", Action: "environment.updated", App: "checkout",
			Environment: "production", Detail: fmt.Sprintf("change %02d", i)})
		require.NoError(t, err)
	}
	rita := s.signIn("rita")

	for name, tc := range map[string]struct {
		query, field, says string
	}{
		"an app slug with spaces":          {query: "app=check+out", field: "app", says: `"check out" is not an app slug`},
		"an environment name in capitals":  {query: "env=Production", field: "env", says: `"Production" is not an environment name`},
		"a username with a space":          {query: "user=rita+k", field: "user", says: `"rita k" is not a username or token`},
		"a damaged link to older entries":  {query: "before=run-x-1", field: "before", says: "link to older entries is damaged"},
		"a link from a kind that is not":   {query: "before=user-3-1772442000000000", field: "before", says: "damaged"},
		"an empty token name":              {query: "user=token:", field: "user", says: "is not a username or token"},
		"an app slug ending with a dash":   {query: "app=checkout-", field: "app", says: "is not an app slug"},
		"a valid app with an invalid user": {query: "app=checkout&user=%21", field: "user", says: "is not a username"},
	} {
		t.Run(name, func(t *testing.T) {
			res := rita.get("/audit?" + tc.query)
			require.Equal(t, http.StatusBadRequest, res.Code)
			require.Contains(t, res.text("audit-error-"+tc.field), tc.says)
			require.NotNil(t, res.byTestID("audit-invalid"))
			require.Nil(t, res.byTestID("audit-entries"), "nothing is listed on a filter that cannot be used")
		})
	}
	res := rita.get("/audit?app=check+out")
	require.Equal(t, "check out", attr(res.byTestID("audit-app"), "value"), "the bad value stays for correcting")

	first := rita.get("/audit?app=checkout")
	require.Equal(t, http.StatusOK, first.Code)
	firstIDs, _ := auditRows(first)
	require.Len(t, firstIDs, 50)
	require.Contains(t, first.text(firstIDs[0]+"-detail"), "change 59", "newest first")
	older := attr(first.byTestID("audit-older"), "href")
	require.True(t, strings.HasPrefix(older, "/audit?"), older)
	q, err := url.ParseQuery(strings.TrimPrefix(older, "/audit?"))
	require.NoError(t, err)
	require.Equal(t, "checkout", q.Get("app"), "the filter carries over to older entries")

	second := rita.get(older)
	require.Equal(t, http.StatusOK, second.Code)
	secondIDs, _ := auditRows(second)
	require.Len(t, secondIDs, 10)
	require.Contains(t, second.text(secondIDs[9]+"-detail"), "change 00")
	for _, id := range secondIDs {
		require.NotContains(t, firstIDs, id, "no entry is shown twice")
	}
	require.Nil(t, second.byTestID("audit-older"), "the last page has no older link")
	require.Equal(t, "/audit?app=checkout", attr(second.byTestID("audit-newest"), "href"))
}

func TestAuditLogShowsTheEngineOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReleaseFixture(t)
	f.addUser("rita", false)
	app, env := f.environment("checkout", "production", nil)
	run := f.start(app, env, "canary", "", "rita")
	_, err := f.Store.AppendRunEvent(ctx, run.ID, store.Event{Type: "phase.applied", Actor: "engine"})
	require.NoError(t, err)
	rita := f.signIn("rita")

	_, rows := auditRows(rita.get("/audit?app=checkout"))
	require.Equal(t, []string{"rita | created the run | checkout/production"}, rows, "the engine's steps are left out by default")

	res := rita.get("/audit?app=checkout&engine=1")
	box := res.byTestID("audit-engine")
	require.NotNil(t, box)
	require.True(t, slices.ContainsFunc(box.Attr, func(a html.Attribute) bool { return a.Key == "checked" }), "the box stays ticked")
	_, rows = auditRows(res)
	require.Len(t, rows, 2)
	require.Contains(t, rows[0], "engine | ")

	_, rows = auditRows(rita.get("/audit?user=engine"))
	require.Len(t, rows, 1, "asking for the engine by name shows its steps")
}
