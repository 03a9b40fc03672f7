package api

// These tests sit inside the package so that requests meet the same central
// error handler as in production, which is what renders the problems.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

var authNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type authFixture struct {
	handler http.Handler
	store   *store.Store
	user    store.User
	// clock is what the middleware reads as now, in Unix seconds.
	clock *atomic.Int64
}

// authSetup serves GET /api/v1/apps/:app/environments/:env/deploy, which
// needs a token with the deploy scope that may act on the environment,
// and GET /api/v1/whoami, which needs any valid token. Both answer with
// the principal's actor.
func authSetup(t *testing.T) authFixture {
	t.Helper()
	s := store.New(dbtest.New(t), store.Options{Now: func() time.Time { return authNow }})
	user, err := s.EnsureAdminUser(context.Background(), "admin")
	require.NoError(t, err)
	clock := new(atomic.Int64)
	clock.Store(authNow.Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0).UTC() }
	return authFixture{handler: authServer(s, now), store: s, user: user, clock: clock}
}

func authServer(lookup TokenLookup, now func() time.Time) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := e.Group("/api/v1", RequireToken(lookup, now))
	g.GET("/whoami", func(c echo.Context) error {
		p, ok := PrincipalFrom(c)
		if !ok {
			return errors.New("no principal")
		}
		return c.String(http.StatusOK, p.Actor())
	})
	g.GET("/apps/:app/environments/:env/deploy", func(c echo.Context) error {
		if err := RequireScope(c, auth.ScopeDeploy); err != nil {
			return err
		}
		if err := RequireAccess(c, c.Param("app"), c.Param("env")); err != nil {
			return err
		}
		p, _ := PrincipalFrom(c)
		return c.String(http.StatusOK, p.Actor())
	})
	return e
}

func (f authFixture) token(t *testing.T, nt store.NewToken) (store.Token, string) {
	t.Helper()
	plaintext, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	nt.Hash, nt.Prefix, nt.UserID = hash, prefix, f.user.ID
	tok, err := f.store.CreateToken(context.Background(), nt)
	require.NoError(t, err)
	return tok, plaintext
}

func request(h http.Handler, path string, authorization ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// requireProblem checks that rec is the problem document clients get.
func requireProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, detail string) {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Equal(t, "about:blank", p["type"])
	require.Equal(t, http.StatusText(status), p["title"])
	require.EqualValues(t, status, p["status"])
	require.Contains(t, p["detail"], detail)
}

func TestRequestsWithoutAValidTokenAreUnauthorized(t *testing.T) {
	t.Parallel()
	f := authSetup(t)
	ctx := context.Background()
	revoked, revokedText := f.token(t, store.NewToken{Name: "revoked", Scopes: []auth.Scope{auth.ScopeAdmin}})
	require.NoError(t, f.store.RevokeToken(ctx, revoked.ID))
	expires := authNow.Add(time.Minute)
	_, expiredText := f.token(t, store.NewToken{Name: "expired", Scopes: []auth.Scope{auth.ScopeAdmin}, ExpiresAt: &expires})
	// The store's clock decides expiry; this one stands after it.
	later := authServer(store.New(f.store.Pool(), store.Options{Now: func() time.Time { return expires }}), nil)
	unknownText, _, _, err := auth.Generate()
	require.NoError(t, err)

	const plain = `Bearer realm="flightdeck"`
	const invalid = `Bearer realm="flightdeck", error="invalid_token"`
	for name, tc := range map[string]struct {
		handler       http.Handler
		authorization []string
		challenge     string
		detail        string
	}{
		"missing":        {nil, nil, plain, `sent as "Authorization: Bearer <token>"`},
		"empty":          {nil, []string{" "}, plain, "needs an API token"},
		"basic":          {nil, []string{"Basic YWRtaW46YWRtaW4="}, plain, "must use the Bearer scheme"},
		"no token":       {nil, []string{"Bearer"}, invalid, "not a Flightdeck API token"},
		"two tokens":     {nil, []string{"Bearer " + unknownText + " " + unknownText}, invalid, "not a Flightdeck API token"},
		"not ours":       {nil, []string{"Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}, invalid, "start with fdk_"},
		"unknown":        {nil, []string{"Bearer " + unknownText}, invalid, "unknown, revoked or expired"},
		"revoked":        {nil, []string{"Bearer " + revokedText}, invalid, "unknown, revoked or expired"},
		"expired":        {later, []string{"Bearer " + expiredText}, invalid, "unknown, revoked or expired"},
		"two headers":    {nil, []string{"Bearer " + unknownText, "Bearer " + unknownText}, `Bearer realm="flightdeck", error="invalid_request"`, "more than one"},
		"token as realm": {nil, []string{unknownText}, plain, "Bearer scheme"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := tc.handler
			if h == nil {
				h = f.handler
			}
			rec := request(h, "/api/v1/whoami", tc.authorization...)
			requireProblem(t, rec, http.StatusUnauthorized, tc.detail)
			require.Equal(t, tc.challenge, rec.Header().Get("WWW-Authenticate"))
			require.NotContains(t, rec.Body.String(), unknownText[4:], "a token is never echoed")
		})
	}
	// Until it expires, the expiring token works.
	rec := request(f.handler, "/api/v1/whoami", "Bearer "+expiredText)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestValidTokenIdentifiesTheRequest(t *testing.T) {
	t.Parallel()
	f := authSetup(t)
	tok, plaintext := f.token(t, store.NewToken{Name: "ci", Scopes: []auth.Scope{auth.ScopeRead}})
	for _, header := range []string{"Bearer " + plaintext, "bearer " + plaintext, "BEARER   " + plaintext + "  "} {
		rec := request(f.handler, "/api/v1/whoami", header)
		require.Equal(t, http.StatusOK, rec.Code, "%q: %s", header, rec.Body.String())
		require.Equal(t, "token:ci", rec.Body.String())
		require.Empty(t, rec.Header().Get("WWW-Authenticate"))
	}

	// The first use is recorded; later uses within the minute are not.
	got, err := f.store.TokenByName(context.Background(), "ci")
	require.NoError(t, err)
	require.Equal(t, tok.ID, got.ID)
	require.NotNil(t, got.LastUsedAt)
	require.True(t, got.LastUsedAt.Equal(authNow), "last used %v", got.LastUsedAt)

	f.clock.Add(120)
	require.Equal(t, http.StatusOK, request(f.handler, "/api/v1/whoami", "Bearer "+plaintext).Code)
	got, err = f.store.TokenByName(context.Background(), "ci")
	require.NoError(t, err)
	require.True(t, got.LastUsedAt.Equal(authNow.Add(2*time.Minute)), "last used %v", got.LastUsedAt)
}

func TestTokenWithoutTheScopeIsForbidden(t *testing.T) {
	t.Parallel()
	f := authSetup(t)
	const path = "/api/v1/apps/checkout/environments/production/deploy"
	for _, tc := range []struct {
		scopes []auth.Scope
		status int
	}{
		{[]auth.Scope{auth.ScopeRead}, http.StatusForbidden},
		{[]auth.Scope{auth.ScopeApprove, auth.ScopeMetrics}, http.StatusForbidden},
		{[]auth.Scope{auth.ScopeDeploy}, http.StatusOK},
		{[]auth.Scope{auth.ScopeAdmin}, http.StatusOK},
	} {
		name := string(tc.scopes[0])
		_, plaintext := f.token(t, store.NewToken{Name: name, Scopes: tc.scopes})
		rec := request(f.handler, path, "Bearer "+plaintext)
		if tc.status == http.StatusOK {
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Equal(t, "token:"+name, rec.Body.String())
			continue
		}
		requireProblem(t, rec, http.StatusForbidden, `This needs the "deploy" scope, which the token "`+name+`" does not have (it has `)
		require.Equal(t, `Bearer realm="flightdeck", error="insufficient_scope", scope="deploy"`, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestTokenLimitsAreEnforced(t *testing.T) {
	t.Parallel()
	f := authSetup(t)
	_, plaintext := f.token(t, store.NewToken{Name: "checkout-staging", Scopes: []auth.Scope{auth.ScopeDeploy},
		Apps: []string{"checkout"}, Environments: []string{"staging"}})
	deploy := func(app, env string) *httptest.ResponseRecorder {
		return request(f.handler, "/api/v1/apps/"+app+"/environments/"+env+"/deploy", "Bearer "+plaintext)
	}
	require.Equal(t, http.StatusOK, deploy("checkout", "staging").Code)
	requireProblem(t, deploy("checkout", "production"), http.StatusForbidden,
		`The token "checkout-staging" is limited to apps checkout and environments staging.`)
	requireProblem(t, deploy("billing", "staging"), http.StatusForbidden, "limited to apps checkout")

	p := auth.Principal{Apps: []string{"checkout"}}
	require.True(t, CanAccess(p, "checkout", "production"))
	require.False(t, CanAccess(p, "billing", "production"))
}

// failingLookup stands for a database that does not answer.
type failingLookup struct{}

func (failingLookup) TokenByHash(context.Context, []byte) (store.Token, error) {
	return store.Token{}, errors.New("connection refused")
}

func (failingLookup) TouchToken(context.Context, int64, time.Time) error {
	return errors.New("connection refused")
}

func TestLookupFailureIsAServerError(t *testing.T) {
	t.Parallel()
	plaintext, _, _, err := auth.Generate()
	require.NoError(t, err)
	rec := request(authServer(failingLookup{}, nil), "/api/v1/whoami", "Bearer "+plaintext)
	requireProblem(t, rec, http.StatusInternalServerError, "the error is in its log")
	require.Empty(t, rec.Header().Get("WWW-Authenticate"), "a broken database is not the client's fault")
}

func TestChecksWithoutRequireTokenFailClosed(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.GET("/unguarded", func(c echo.Context) error {
		_, ok := PrincipalFrom(c)
		require.False(t, ok)
		if err := RequireAccess(c, "checkout", "production"); err != nil {
			return err
		}
		return RequireScope(c, auth.ScopeRead)
	})
	rec := request(e, "/unguarded")
	requireProblem(t, rec, http.StatusUnauthorized, "needs an API token")
	require.Equal(t, `Bearer realm="flightdeck"`, rec.Header().Get("WWW-Authenticate"))
}
