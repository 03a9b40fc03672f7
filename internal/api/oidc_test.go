package api_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// testRoleMap is the role map of the single sign-on tests: release
// managers approve in production, SREs deploy everywhere, platform admins
// administer Flightdeck.
const testRoleMap = `{"claim": "groups", "rules": [
	{"value": "release-managers", "app": "*", "env": "production", "role": "approver"},
	{"value": "sre", "app": "*", "env": "*", "role": "deployer"},
	{"value": "platform-admins", "admin": true}]}`

// testRedirectURL is the callback address the provider is told; the tests
// carry the provider's answer to the page server as a browser would.
const testRedirectURL = "https://deploy.example.com" + api.OIDCCallbackPath

// ssoSetup is a page server with single sign-on through a provider that
// runs inside the test.
type ssoSetup struct {
	*pageServer
	idp *mockoidc.MockOIDC
}

// startProvider starts an OpenID Connect provider; middleware, when given,
// wraps its endpoints.
func startProvider(t *testing.T, middleware ...func(http.Handler) http.Handler) *mockoidc.MockOIDC {
	t.Helper()
	idp, err := mockoidc.NewServer(nil)
	require.NoError(t, err)
	for _, mw := range middleware {
		require.NoError(t, idp.AddMiddleware(mw))
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, idp.Start(ln, nil))
	t.Cleanup(func() { _ = idp.Shutdown() })
	return idp
}

// newSSOServer serves the pages with single sign-on through idp; adjust
// changes the configuration further.
func newSSOServer(t *testing.T, idp *mockoidc.MockOIDC, adjust ...func(*api.OIDCConfig)) *ssoSetup {
	t.Helper()
	rm, err := api.ParseRoleMap([]byte(testRoleMap))
	require.NoError(t, err)
	cfg := &api.OIDCConfig{
		Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		RedirectURL: testRedirectURL, Name: "Keycloak", RoleMap: rm,
	}
	for _, a := range adjust {
		a(cfg)
	}
	s := newPageServer(t, func(c *api.Config) { c.OIDC = cfg })
	return &ssoSetup{pageServer: s, idp: idp}
}

// person is somebody with an account at the provider.
func person(subject, username string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{
		Subject: subject, PreferredUsername: username, Email: username + "@example.com", EmailVerified: true,
		Groups: groups,
	}
}

// ssoLogin walks b through a sign-in: Flightdeck's start, the provider's
// authorization endpoint (as who), and back to Flightdeck's callback.
// tamperAuth and tamperCallback, when not nil, change the query sent to
// the provider and to the callback.
func (s *ssoSetup) ssoLogin(b *browser, who *mockoidc.MockUser, tamperAuth, tamperCallback func(url.Values)) page {
	t := s.t
	t.Helper()
	start := b.get("/login/oidc?next=%2Fapprovals")
	require.Equal(t, http.StatusSeeOther, start.Code, start.Body)
	authURL := mustURL(t.(*testing.T), start.Location)
	require.True(t, strings.HasPrefix(start.Location, s.idp.AuthorizationEndpoint()), "the browser goes to the provider: %s", start.Location)
	q := authURL.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"), "the code is protected with PKCE")
	require.NotEmpty(t, q.Get("code_challenge"))
	require.NotEmpty(t, q.Get("state"))
	require.NotEmpty(t, q.Get("nonce"))
	require.Equal(t, testRedirectURL, q.Get("redirect_uri"))
	require.Equal(t, "openid email profile groups", q.Get("scope"))
	if tamperAuth != nil {
		tamperAuth(q)
	}
	authURL.RawQuery = q.Encode()
	s.idp.QueueUser(who)

	provider := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := provider.Get(authURL.String())
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode)
	back := mustURL(t.(*testing.T), res.Header.Get("Location"))
	require.Equal(t, testRedirectURL, back.Scheme+"://"+back.Host+back.Path, "the provider sends the browser back to the callback")
	cq := back.Query()
	if tamperCallback != nil {
		tamperCallback(cq)
	}
	return b.get(api.OIDCCallbackPath + "?" + cq.Encode())
}

// audit returns the audit log as "actor action detail" lines, newest first.
func (s *ssoSetup) audit() []string {
	s.t.Helper()
	entries, err := s.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 50})
	require.NoError(s.t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Actor+" "+e.Action+" "+e.Detail)
	}
	return out
}

// member returns what the user may do, as the pages see it.
func (s *ssoSetup) member(username string) auth.Member {
	s.t.Helper()
	ctx := context.Background()
	u, err := s.Store.UserByUsername(ctx, username)
	require.NoError(s.t, err)
	roles, err := s.Store.RolesOf(ctx, u.ID)
	require.NoError(s.t, err)
	m := auth.Member{UserID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin}
	for _, r := range roles {
		m.Bindings = append(m.Bindings, auth.Binding{App: r.App, Environment: r.Environment, Role: auth.Role(r.Role)})
	}
	return m
}

// requireSignedOut checks that b has no session.
func requireSignedOut(t *testing.T, b *browser) {
	t.Helper()
	res := b.get("/")
	require.Equal(t, http.StatusSeeOther, res.Code, "nobody was signed in")
	require.Equal(t, "/login", res.Location)
}

func TestSSOSignInCreatesTheUserWithMappedRoles(t *testing.T) {
	t.Parallel()
	s := newSSOServer(t, startProvider(t))
	b := s.anonymous()

	login := b.get("/login")
	require.Equal(t, http.StatusOK, login.Code)
	require.Equal(t, "Sign in with Keycloak", login.text("login-sso"))
	require.Equal(t, "/login/oidc", attr(login.byTestID("login-sso"), "href"))
	require.NotNil(t, login.byTestID("login-username"), "local accounts keep their form")

	res := s.ssoLogin(b, person("sub-jane", "jane.doe", "release-managers", "design"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.Equal(t, "/approvals", res.Location, "the person goes on where they were going")

	approvals := b.get("/approvals")
	require.Equal(t, http.StatusOK, approvals.Code, "the session works on a page")
	require.Equal(t, "jane.doe", approvals.text("signed-in-as"))

	ctx := context.Background()
	u, err := s.Store.UserByUsername(ctx, "jane.doe")
	require.NoError(t, err)
	hash, err := s.Store.PasswordHash(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, hash, "an SSO user has no password")
	ids, err := s.Store.IdentitiesOf(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	require.Equal(t, s.idp.Issuer(), ids[0].Issuer)
	require.Equal(t, "sub-jane", ids[0].Subject)

	m := s.member("jane.doe")
	require.False(t, m.IsAdmin)
	require.True(t, m.Can("checkout", "production", auth.RoleApprover), "release managers approve in production")
	require.False(t, m.Can("checkout", "staging", auth.RoleDeployer), "but only view staging")
	require.True(t, m.Can("checkout", "staging", auth.RoleViewer))

	require.Contains(t, s.audit()[0], "jane.doe user.signed_in first sign-in, user created, through Keycloak (subject sub-jane); roles: approver on */production")

	// A password cannot be given to an SSO user later.
	h, err := auth.HashPassword("a long enough password")
	require.NoError(t, err)
	require.ErrorIs(t, s.Store.SetPasswordHash(ctx, u.ID, h), store.ErrInvalid)
	require.Equal(t, http.StatusUnauthorized, s.anonymous().post("/login", url.Values{"username": {"jane.doe"}, "password": {"a long enough password"}}).Code)
}

func TestSSOSignInReplacesRolesAtEveryLogin(t *testing.T) {
	t.Parallel()
	s := newSSOServer(t, startProvider(t))

	res := s.ssoLogin(s.anonymous(), person("sub-sam", "sam", "release-managers", "sre", "platform-admins"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	m := s.member("sam")
	require.True(t, m.IsAdmin)
	require.Len(t, m.Bindings, 2)
	require.True(t, m.Can("checkout", "staging", auth.RoleDeployer))

	// Sam left the release managers and the platform admins.
	res = s.ssoLogin(s.anonymous(), person("sub-sam", "sam", "sre"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	m = s.member("sam")
	require.False(t, m.IsAdmin, "administration ends with the group")
	require.Equal(t, []auth.Binding{{App: "*", Environment: "*", Role: auth.RoleDeployer}}, m.Bindings)
	require.False(t, m.Can("checkout", "production", auth.RoleApprover), "approving production ends with the group")
	require.Contains(t, s.audit()[0], "sam user.signed_in through Keycloak (subject sub-sam); roles: deployer on */*")

	// A role given by hand lasts only until the next sign-in: the
	// provider's groups are the only source of an SSO user's roles.
	_, err := s.Store.SetRole(context.Background(), store.RoleBinding{UserID: m.UserID, App: "checkout", Environment: "production", Role: "admin"})
	require.NoError(t, err)
	res = s.ssoLogin(s.anonymous(), person("sub-sam", "sam"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	m = s.member("sam")
	require.Empty(t, m.Bindings, "no matching group: viewer only")
	require.Equal(t, auth.RoleViewer, m.RoleOn("checkout", "production"))
	require.Contains(t, s.audit()[0], "roles: viewer only")
}

func TestSSONeverTakesOverALocalUser(t *testing.T) {
	t.Parallel()
	s := newSSOServer(t, startProvider(t))
	local := s.addUser("jane.doe", false, "checkout/staging=deployer")

	res := s.ssoLogin(s.anonymous(), person("sub-other", "jane.doe"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	users, err := s.Store.ListUsers(context.Background())
	require.NoError(t, err)
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	require.Len(t, names, 2)
	require.Contains(t, names, "jane.doe")
	sso := names[0]
	if sso == "jane.doe" {
		sso = names[1]
	}
	require.True(t, strings.HasPrefix(sso, "jane.doe-"), "the SSO user gets a name of their own: %s", sso)

	require.Equal(t, local.ID, s.member("jane.doe").UserID)
	require.True(t, s.member("jane.doe").Can("checkout", "staging", auth.RoleDeployer), "the local user's roles are untouched")
	s.signIn("jane.doe") // and their password still works

	// Once linked explicitly, the local user signs in through the provider.
	_, err = s.Store.LinkIdentity(context.Background(), local.ID, s.idp.Issuer(), "sub-linked")
	require.NoError(t, err)
	res = s.ssoLogin(s.anonymous(), person("sub-linked", "someone-else", "sre"), nil, nil)
	require.Equal(t, http.StatusSeeOther, res.Code, res.Body)
	require.True(t, s.member("jane.doe").Can("payments", "production", auth.RoleDeployer))
	require.Equal(t, http.StatusUnauthorized, s.anonymous().post("/login", url.Values{"username": {"jane.doe"}, "password": {testPassword}}).Code,
		"linking removes the password")
}

func TestSSORefusesADisabledUser(t *testing.T) {
	t.Parallel()
	s := newSSOServer(t, startProvider(t))
	require.Equal(t, http.StatusSeeOther, s.ssoLogin(s.anonymous(), person("sub-dan", "dan", "sre"), nil, nil).Code)
	u, err := s.Store.UserByUsername(context.Background(), "dan")
	require.NoError(t, err)
	_, err = s.Store.SetUserDisabled(context.Background(), u.ID, true)
	require.NoError(t, err)

	b := s.anonymous()
	res := s.ssoLogin(b, person("sub-dan", "dan", "release-managers"), nil, nil)
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("login-error"), "disabled")
	requireSignedOut(t, b)
	require.Equal(t, []auth.Binding{{App: "*", Environment: "*", Role: auth.RoleDeployer}}, s.member("dan").Bindings, "nothing changed")
	require.Contains(t, s.audit()[0], "anonymous user.sign_in_failed through Keycloak: user dan is disabled")
}

func TestSSORefusesATokenSignedWithAnotherKey(t *testing.T) {
	t.Parallel()
	// The provider publishes one key and signs with another, as a forged
	// token would be.
	decoy, err := mockoidc.RandomKeypair(2048)
	require.NoError(t, err)
	jwks, err := decoy.JWKS()
	require.NoError(t, err)
	idp := startProvider(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.JWKSEndpoint {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(jwks)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	s := newSSOServer(t, idp)
	b := s.anonymous()

	res := s.ssoLogin(b, person("sub-eve", "eve", "platform-admins"), nil, nil)
	require.Equal(t, http.StatusUnauthorized, res.Code)
	require.Contains(t, res.text("login-error"), "not signed by the provider's keys")
	require.NotNil(t, res.byTestID("login-sso"), "the person can start again")
	requireSignedOut(t, b)
	_, err = s.Store.UserByUsername(context.Background(), "eve")
	require.ErrorIs(t, err, store.ErrNotFound, "no user was created")
	require.Contains(t, s.audit()[0], "anonymous user.sign_in_failed through Keycloak: ID token refused")
}

func TestSSORefusesAnExpiredToken(t *testing.T) {
	t.Parallel()
	// Flightdeck's clock is two hours past the token's ten-minute life.
	s := newSSOServer(t, startProvider(t), func(c *api.OIDCConfig) {
		c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	})
	b := s.anonymous()
	res := s.ssoLogin(b, person("sub-old", "old", "sre"), nil, nil)
	require.Equal(t, http.StatusUnauthorized, res.Code)
	require.Contains(t, res.text("login-error"), "has expired")
	requireSignedOut(t, b)
	require.Contains(t, s.audit()[0], "user.sign_in_failed through Keycloak: ID token refused")
}

func TestSSORefusesAWrongStateOrNonce(t *testing.T) {
	t.Parallel()
	s := newSSOServer(t, startProvider(t))

	b := s.anonymous()
	res := s.ssoLogin(b, person("sub-mal", "mal", "sre"), nil, func(q url.Values) { q.Set("state", "forged") })
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("login-error"), "does not belong to the sign-in started in this browser")
	requireSignedOut(t, b)
	require.Contains(t, s.audit()[0], "user.sign_in_failed through Keycloak: state does not match")

	b = s.anonymous()
	res = s.ssoLogin(b, person("sub-mal", "mal", "sre"), func(q url.Values) { q.Set("nonce", "replayed") }, nil)
	require.Equal(t, http.StatusUnauthorized, res.Code)
	require.Contains(t, res.text("login-error"), "issued for another sign-in")
	requireSignedOut(t, b)
	require.Contains(t, s.audit()[0], "user.sign_in_failed through Keycloak: nonce does not match (subject sub-mal)")

	// An answer without a sign-in started in the browser.
	b = s.anonymous()
	res = b.get(api.OIDCCallbackPath + "?code=abc&state=def")
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("login-error"), "did not start in this browser")
	requireSignedOut(t, b)

	// The provider's refusal is shown, not a server error.
	b = s.anonymous()
	res = s.ssoLogin(b, person("sub-mal", "mal", "sre"), nil, func(q url.Values) {
		q.Del("code")
		q.Set("error", "access_denied")
		q.Set("error_description", "User is not assigned to this application")
	})
	require.Equal(t, http.StatusUnauthorized, res.Code)
	require.Contains(t, res.text("login-error"), "Keycloak did not sign you in: User is not assigned to this application.")

	_, err := s.Store.UserByUsername(context.Background(), "mal")
	require.ErrorIs(t, err, store.ErrNotFound, "no user was created")
}

func TestSSOProviderDownShowsAClearPage(t *testing.T) {
	t.Parallel()
	idp := startProvider(t)
	s := newSSOServer(t, idp)

	// Down after the browser went there: the code cannot be exchanged.
	b := s.anonymous()
	res := s.ssoLogin(b, person("sub-pat", "pat", "sre"), nil, func(url.Values) { require.NoError(t, idp.Shutdown()) })
	require.Equal(t, http.StatusBadGateway, res.Code)
	require.Contains(t, res.text("login-error"), "the provider at "+idp.Issuer()+" could not be reached")
	requireSignedOut(t, b)

	// Down before anybody signed in: discovery fails, and the sign-in page
	// says so with the local form still there.
	down := newSSOServer(t, idp)
	res = down.anonymous().get("/login/oidc")
	require.Equal(t, http.StatusBadGateway, res.Code)
	require.Contains(t, res.text("login-error"), "Signing in with Keycloak is not possible right now")
	require.NotNil(t, res.byTestID("login-username"))
	require.Contains(t, down.audit()[0], "anonymous user.sign_in_failed through Keycloak: provider unreachable")
}

func TestParseRoleMap(t *testing.T) {
	t.Parallel()
	m, err := api.ParseRoleMap([]byte(testRoleMap))
	require.NoError(t, err)
	require.Equal(t, "groups", m.Claim)
	admin, grants := m.Grants([]string{"sre", "release-managers", "unknown"})
	require.False(t, admin)
	require.Equal(t, []auth.Binding{
		{App: "*", Environment: "production", Role: auth.RoleApprover},
		{App: "*", Environment: "*", Role: auth.RoleDeployer},
	}, grants)

	m, err = api.ParseRoleMap([]byte(`{"claim": "realm_access.roles", "rules": [
		{"value": "a", "app": "checkout", "env": "production", "role": "deployer"},
		{"value": "b", "app": "checkout", "env": "production", "role": "approver"},
		{"value": "c", "app": "checkout", "env": "production", "role": "viewer"}]}`))
	require.NoError(t, err)
	_, grants = m.Grants([]string{"a", "b", "c"})
	require.Equal(t, []auth.Binding{{App: "checkout", Environment: "production", Role: auth.RoleApprover}}, grants, "the strongest role wins")

	m, err = api.ParseRoleMap(nil)
	require.NoError(t, err)
	require.Equal(t, "groups", m.Claim)
	require.Empty(t, m.Rules)

	for name, tc := range map[string]struct{ in, want string }{
		"not JSON":      {`{"claim": `, "role map: not valid JSON"},
		"unknown field": {`{"rules": [{"value": "x", "app": "*", "env": "*", "role": "deployer", "environment": "x"}]}`, `unknown field "environment"`},
		"trailing data": {`{} {}`, "unexpected data after the JSON object"},
		"empty value":   {`{"rules": [{"app": "*", "env": "*", "role": "deployer"}]}`, "rule 1: value is empty"},
		"unknown role":  {`{"rules": [{"value": "sre", "app": "*", "env": "*", "role": "deploy"}]}`, `rule 1 (value "sre"): unknown role "deploy"`},
		"no role":       {`{"rules": [{"value": "sre", "app": "*", "env": "*"}]}`, `set role (viewer, deployer, approver or admin) or "admin": true`},
		"bad app":       {`{"rules": [{"value": "sre", "app": "Checkout", "env": "*", "role": "deployer"}]}`, `app "Checkout": want an app slug`},
		"missing env":   {`{"rules": [{"value": "x", "app": "*", "role": "deployer"}, {"value": "sre", "app": "*", "role": "deployer"}]}`, `rule 1 (value "x"): env "": want an environment name`},
		"admin scoped":  {`{"rules": [{"value": "ops", "admin": true, "env": "production"}]}`, "leave out app, env and role"},
		"bad claim":     {`{"claim": "realm_access..roles"}`, "has an empty part"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := api.ParseRoleMap([]byte(tc.in))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
