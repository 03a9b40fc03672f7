package main

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// demoPassword is the admin password the demo tests start the server with.
const demoPassword = "flight deck demo 2026"

// testDatabase returns the URL of a fresh database and a store on it, to
// look at what the server wrote.
func testDatabase(t *testing.T) (string, *store.Store) {
	t.Helper()
	u := dbtest.URL(t)
	pool, err := pgxpool.New(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return u, store.New(pool, store.Options{})
}

// waitForLog waits until the server has logged msg and returns the line.
func (s *server) waitForLog(t *testing.T, msg string, within time.Duration) map[string]any {
	t.Helper()
	var line map[string]any
	require.Eventually(t, func() bool {
		lines := s.logLines(msg)
		if len(lines) == 0 {
			return false
		}
		line = lines[0]
		return true
	}, within, 50*time.Millisecond, "the server did not log %q", msg)
	return line
}

// signInHTTP signs in through the sign-in form as a browser would, and
// returns a client carrying the session, or the status of the refusal.
func signInHTTP(t *testing.T, base, username, password string) (*http.Client, int) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	token := ""
	u, err := url.Parse(base)
	require.NoError(t, err)
	for _, c := range jar.Cookies(u) {
		if c.Name == "flightdeck_csrf" {
			token = c.Value
		}
	}
	require.NotEmpty(t, token, "the sign-in page sets a form token")
	resp, err = client.PostForm(base+"/login", url.Values{"username": {username}, "password": {password}, "_csrf": {token}})
	require.NoError(t, err)
	resp.Body.Close()
	return client, resp.StatusCode
}

// requireDemo checks that the database holds the demo: its apps and one
// run in flight for every strategy, all started by the demo.
func requireDemo(t *testing.T, st *store.Store) []store.Run {
	t.Helper()
	ctx := context.Background()
	apps, err := st.ListApps(ctx, "", 100)
	require.NoError(t, err)
	var slugs []string
	for _, a := range apps {
		slugs = append(slugs, a.Slug)
	}
	require.Subset(t, slugs, []string{"storefront", "payments", "mobile-api"})
	runs, err := st.ListRuns(ctx, store.RunFilter{Limit: 100})
	require.NoError(t, err)
	strategies := map[string]bool{}
	for _, r := range runs {
		require.Equal(t, "demo", r.CreatedBy)
		strategies[r.Strategy] = true
	}
	for _, s := range plan.Strategies {
		require.True(t, strategies[string(s)], "a %s run is in flight", s)
	}
	return runs
}

// TestMakeRunShowsTheDemo starts the server as `make run` does: on the
// embedded database with nothing configured. A newcomer gets a generated
// admin password, the demo, and demo users who sign in with that password.
func TestMakeRunShowsTheDemo(t *testing.T) {
	t.Parallel()
	s := startServer(t, []string{"DATABASE_URL=", "FLIGHTDECK_ADMIN_PASSWORD=", "FLIGHTDECK_DEMO="}, "--data-dir", dataDir(t))
	generated := s.waitForLog(t, "sign in to the pages as admin with this generated password; it is shown only now, so keep it", 10*time.Second)
	password, _ := generated["password"].(string)
	require.NotEmpty(t, password)
	seeded := s.waitForLog(t, "demo seeded", 30*time.Second)
	require.Contains(t, seeded["sign_in"], "with the admin password")

	admin, code := signInHTTP(t, s.url, "admin", password)
	require.Equal(t, http.StatusSeeOther, code, "the admin signs in with the printed password")
	resp, err := admin.Get(s.url + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, user := range []string{"release-manager", "oncall", "viewer"} {
		_, code := signInHTTP(t, s.url, user, password)
		require.Equal(t, http.StatusSeeOther, code, "%s signs in with the admin password", user)
	}
}

func TestDemoOnSeedsAnEmptyDatabaseOnce(t *testing.T) {
	t.Parallel()
	dbURL, st := testDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL, "FLIGHTDECK_ADMIN_PASSWORD=" + demoPassword}
	s := startServer(t, env, "--demo=on")
	s.waitForLog(t, "demo seeded", 30*time.Second)
	runs := requireDemo(t, st)
	_, code := signInHTTP(t, s.url, "release-manager", demoPassword)
	require.Equal(t, http.StatusSeeOther, code)
	_, code = signInHTTP(t, s.url, "viewer", "not the password!")
	require.Equal(t, http.StatusUnauthorized, code)

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	<-s.done
	again := startServer(t, env, "--demo=on")
	// The engine and the demo start before the server reports ready; give
	// a seed that should not happen time to show.
	time.Sleep(2 * time.Second)
	require.Empty(t, again.logLines("demo seeded"), "a database with apps is not seeded again")
	after, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 100})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(after), len(runs))
	for _, r := range after[:len(after)-len(runs)] {
		// Only the demo's loop adds runs, and only in idle environments.
		require.Equal(t, "demo", r.CreatedBy)
	}
}

func TestDemoAutoAndOffLeaveAnExternalDatabaseAlone(t *testing.T) {
	t.Parallel()
	for _, demo := range []string{"auto", "off"} {
		t.Run(demo, func(t *testing.T) {
			t.Parallel()
			dbURL, st := testDatabase(t)
			s := startServer(t, []string{"DATABASE_URL=" + dbURL, "FLIGHTDECK_ADMIN_PASSWORD=" + demoPassword}, "--demo="+demo)
			time.Sleep(2 * time.Second)
			require.Empty(t, s.logLines("demo seeded"))
			apps, err := st.ListApps(context.Background(), "", 10)
			require.NoError(t, err)
			require.Empty(t, apps, "--demo=%s on an external database adds nothing", demo)
			_, code := signInHTTP(t, s.url, "viewer", demoPassword)
			require.Equal(t, http.StatusUnauthorized, code, "there are no demo users")
		})
	}
}
