package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// pageServer is the pages served over HTTP on a real database, with people
// to sign in as.
type pageServer struct {
	t     testing.TB
	URL   string
	Store *store.Store
}

// pageServerOption adjusts the configuration a page server is built from.
type pageServerOption func(*api.Config)

// newPageServer serves every page on a fresh database. Options add what a
// test needs beyond sign-in and the store, such as the engine.
func newPageServer(t testing.TB, opts ...pageServerOption) *pageServer {
	t.Helper()
	pool := dbtest.New(t)
	st := store.New(pool, store.Options{})
	reg := prometheus.NewRegistry()
	cfg := api.Config{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Readiness: readiness{}, Gatherer: reg, Registerer: reg,
		Sessions: api.NewSessionManager(pgxstore.New(pool), false),
		Members:  st, Pages: st,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg))
	t.Cleanup(srv.Close)
	return &pageServer{t: t, URL: srv.URL, Store: st}
}

// withEngine gives the pages an engine on the page server's database, with
// the simulator driver and the analyzer given; tests step it with RunOnce.
// It is returned through *eng.
func withEngine(a engine.Analyzer, eng **engine.Engine) pageServerOption {
	return func(cfg *api.Config) {
		st := cfg.Pages.(*store.Store)
		drivers := driver.NewRegistry()
		drivers.Register(simulator.Type, simulator.New(simulator.Options{Seed: 1}))
		e, err := engine.New(engine.Config{Store: st, Drivers: drivers, Analyzer: a,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			panic(err)
		}
		cfg.Runs, cfg.RunStore = e, st
		*eng = e
	}
}

// testPassword is every test user's password.
const testPassword = "correct horse battery"

// addUser creates a user with the roles given as "app/env=role" ("*" for
// every app or environment), or an administrator when admin is true.
func (s *pageServer) addUser(username string, admin bool, roles ...string) store.User {
	s.t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword(testPassword)
	require.NoError(s.t, err)
	u, err := s.Store.CreateUser(ctx, store.NewUser{Username: username, PasswordHash: hash, IsAdmin: admin})
	require.NoError(s.t, err)
	for _, r := range roles {
		where, role, ok := strings.Cut(r, "=")
		require.True(s.t, ok, "a role is app/env=role: %q", r)
		app, env, ok := strings.Cut(where, "/")
		require.True(s.t, ok, "a role is app/env=role: %q", r)
		_, err := s.Store.SetRole(ctx, store.RoleBinding{UserID: u.ID, App: app, Environment: env, Role: role})
		require.NoError(s.t, err)
	}
	return u
}

// browser is a client with its own cookies, as one person's browser.
type browser struct {
	t      testing.TB
	base   string
	client *http.Client
}

// anonymous returns a browser that has not signed in.
func (s *pageServer) anonymous() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(s.t, err)
	return &browser{t: s.t, base: s.URL, client: &http.Client{
		Jar: jar,
		// Redirects are checked by the tests, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// signIn returns a browser signed in as the user (created beforehand with
// addUser).
func (s *pageServer) signIn(username string) *browser {
	s.t.Helper()
	b := s.anonymous()
	res := b.post("/login", url.Values{"username": {username}, "password": {testPassword}})
	require.Equal(s.t, http.StatusSeeOther, res.Code, "signing in as %s: %s", username, res.Body)
	return b
}

// page is a response with its parsed HTML.
type page struct {
	Code     int
	Header   http.Header
	Body     string
	Doc      *html.Node
	Location string
}

// byTestID returns the element with the data-testid, or nil.
func (p page) byTestID(id string) *html.Node { return byTestID(p.Doc, id) }

// text returns the text of the element with the data-testid ("" when
// missing).
func (p page) text(id string) string { return text(p.byTestID(id)) }

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	doc, err := html.Parse(strings.NewReader(string(body)))
	require.NoError(b.t, err)
	return page{Code: res.StatusCode, Header: res.Header, Body: string(body), Doc: doc, Location: res.Header.Get("Location")}
}

// get fetches a page.
func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

// csrf returns the form token the server gave this browser, fetching the
// sign-in page first when it has none yet.
func (b *browser) csrf() string {
	b.t.Helper()
	u, _ := url.Parse(b.base)
	for range 2 {
		for _, c := range b.client.Jar.Cookies(u) {
			if c.Name == "flightdeck_csrf" {
				return c.Value
			}
		}
		b.get("/login")
	}
	b.t.Fatal("the server gave no form token")
	return ""
}

// post submits a form with the browser's form token, as the pages' forms do.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	form = cloneValues(form)
	if form.Get("_csrf") == "" {
		form.Set("_csrf", b.csrf())
	}
	return b.postRaw(path, form)
}

// postRaw submits a form exactly as given, without adding a form token.
func (b *browser) postRaw(path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	s := newPageServer(t)
	s.addUser("rita", false)

	anon := s.anonymous()
	res := anon.get("/live")
	require.Equal(t, http.StatusSeeOther, res.Code, "pages need a signed-in person")
	require.Equal(t, "/login?next=%2Flive", res.Location)

	res = anon.post("/login", url.Values{"username": {"rita"}, "password": {"wrong password!"}})
	require.Equal(t, http.StatusUnauthorized, res.Code)
	require.Contains(t, res.text("login-error"), "username or password is not right")
	require.Equal(t, "rita", attr(res.byTestID("login-username"), "value"), "the username stays filled in")
	res = anon.post("/login", url.Values{"username": {"nobody"}, "password": {testPassword}})
	require.Equal(t, http.StatusUnauthorized, res.Code, "an unknown user gets the same answer")
	require.Contains(t, res.text("login-error"), "username or password is not right")

	res = anon.post("/login", url.Values{"username": {"rita"}, "password": {testPassword}, "next": {"/live"}})
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, "/live", res.Location)
	home := anon.get("/")
	require.Equal(t, http.StatusOK, home.Code)
	require.Equal(t, "rita", home.text("signed-in-as"))
	for _, c := range anon.client.Jar.Cookies(mustURL(t, s.URL)) {
		require.NotEqual(t, "__Host-flightdeck_session", c.Name, "plain HTTP gets no __Host- cookie")
	}

	res = s.anonymous().post("/login", url.Values{"username": {"rita"}, "password": {testPassword}, "next": {"https://evil.example/"}})
	require.Equal(t, "/", res.Location, "sign-in never sends people to another site")

	res = anon.post("/logout", nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, http.StatusSeeOther, anon.get("/").Code, "signed out means signed out")

	entries, err := s.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 10})
	require.NoError(t, err)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	require.Contains(t, actions, "rita user.signed_in")
	require.Contains(t, actions, "anonymous user.sign_in_failed")
	require.Contains(t, actions, "rita user.signed_out")
}

func TestFormsNeedTheirToken(t *testing.T) {
	t.Parallel()
	s := newPageServer(t)
	s.addUser("rita", false)
	b := s.signIn("rita")
	res := b.postRaw("/logout", url.Values{"_csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "nothing was changed")
	require.Equal(t, http.StatusOK, b.get("/").Code, "the refused sign-out left the session alone")
}

func TestSessionCookieIsHostOnlyAndSecureOverTLS(t *testing.T) {
	t.Parallel()
	sm := api.NewSessionManager(nil, true)
	require.Equal(t, "__Host-flightdeck_session", sm.Cookie.Name)
	require.True(t, sm.Cookie.Secure)
	require.True(t, sm.Cookie.HttpOnly)
	require.Equal(t, "/", sm.Cookie.Path)
	require.Equal(t, http.SameSiteLaxMode, sm.Cookie.SameSite)
}

func attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

func TestUnknownPathsAreNotFoundSignedInOrNot(t *testing.T) {
	t.Parallel()
	s := newPageServer(t)
	s.addUser("rita", false)
	require.Equal(t, http.StatusNotFound, s.anonymous().get("/no-such-page").Code)
	require.Equal(t, http.StatusNotFound, s.signIn("rita").get("/no-such-page").Code)
	require.Equal(t, http.StatusNotFound, s.anonymous().get("/ws/nothing").Code)
}
