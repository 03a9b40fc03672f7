package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// tokenAPI is the API with its token endpoints and authentication wired as
// the server wires them, plus tokens of several kinds to call it with.
type tokenAPI struct {
	t       *testing.T
	handler http.Handler
	store   *store.Store
	userID  int64
	// admin, reader and limitedAdmin are bearer tokens.
	admin, reader, limitedAdmin string
}

func tokenSetup(t *testing.T) *tokenAPI {
	t.Helper()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	reg := prometheus.NewRegistry()
	e := api.New(api.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Readiness: readiness{},
		Resources: st, Tokens: st, Gatherer: reg, Registerer: reg,
	})
	api.RegisterTokenRoutes(e, st)
	user, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	a := &tokenAPI{t: t, handler: e, store: st, userID: user.ID}
	a.admin = a.seed("bootstrap", nil, auth.ScopeAdmin)
	a.reader = a.seed("reader", nil, auth.ScopeRead)
	a.limitedAdmin = a.seed("shop-admin", []string{"shop"}, auth.ScopeAdmin)
	return a
}

// seed stores a token directly and returns its secret.
func (a *tokenAPI) seed(name string, apps []string, scopes ...auth.Scope) string {
	a.t.Helper()
	plain, prefix, hash, err := auth.Generate()
	require.NoError(a.t, err)
	_, err = a.store.CreateToken(context.Background(), store.NewToken{Name: name, Hash: hash, Prefix: prefix, Scopes: scopes, UserID: a.userID, Apps: apps})
	require.NoError(a.t, err)
	return plain
}

// do sends the request with the bearer token and checks the exchange
// against the OpenAPI document.
func (a *tokenAPI) do(bearer string, x exchange) *httptest.ResponseRecorder {
	a.t.Helper()
	if x.header == nil {
		x.header = http.Header{}
	}
	x.header.Set("Authorization", "Bearer "+bearer)
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, x.request())
	checkContract(a.t, x, rec.Code, rec.Header(), rec.Body.Bytes())
	return rec
}

// tokenDoc is a token as the tests read it.
type tokenDoc struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"prefix"`
	Scopes       []string   `json:"scopes"`
	Apps         []string   `json:"apps"`
	Environments []string   `json:"environments"`
	ExpiresAt    *time.Time `json:"expires_at"`
	Token        string     `json:"token"`
}

func TestCreateToken(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		body   string
		status int
		fields []string
		check  func(t *testing.T, got tokenDoc)
	}{
		"scopes only": {
			body:   `{"name": "ci-checkout", "scopes": ["deploy", "read", "deploy"]}`,
			status: http.StatusCreated,
			check: func(t *testing.T, got tokenDoc) {
				require.Equal(t, []string{"read", "deploy"}, got.Scopes, "canonical order, no duplicates")
				require.Empty(t, got.Apps)
				require.Nil(t, got.ExpiresAt)
			},
		},
		"limited and expiring": {
			body:   `{"name": "staging deployer", "scopes": ["deploy"], "apps": ["checkout"], "environments": ["staging"], "expires_in": "30d"}`,
			status: http.StatusCreated,
			check: func(t *testing.T, got tokenDoc) {
				require.Equal(t, []string{"checkout"}, got.Apps)
				require.Equal(t, []string{"staging"}, got.Environments)
				require.NotNil(t, got.ExpiresAt)
				require.WithinDuration(t, time.Now().Add(30*24*time.Hour), *got.ExpiresAt, time.Minute)
			},
		},
		"expiring at a time": {
			body:   fmt.Sprintf(`{"name": "short", "scopes": ["read"], "expires_at": %q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)),
			status: http.StatusCreated,
		},
		"a taken name": {
			body:   `{"name": "reader", "scopes": ["read"]}`,
			status: http.StatusConflict,
		},
		"nothing": {
			body:   `{}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"name", "scopes"},
		},
		"bad values": {
			body:   `{"name": " padded", "scopes": ["deploy", "owner"], "apps": ["Checkout"], "environments": ["prod-"], "expires_in": "soon"}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"name", "scopes", "apps[0]", "environments[0]", "expires_in"},
		},
		"wrong types and an unknown field": {
			body:   `{"name": 7, "scopes": "deploy", "owner": "me"}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"name", "scopes", "owner"},
		},
		"no scopes": {
			body:   `{"name": "empty", "scopes": []}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"scopes"},
		},
		"both expiries": {
			body:   `{"name": "both", "scopes": ["read"], "expires_in": "1h", "expires_at": "2099-01-01T00:00:00Z"}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"expires_in"},
		},
		"an expiry in the past": {
			body:   `{"name": "late", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"}`,
			status: http.StatusUnprocessableEntity,
			fields: []string{"expires_at"},
		},
		"not JSON": {
			body:   `{"name":`,
			status: http.StatusBadRequest,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := tokenSetup(t)
			rec := a.do(a.admin, exchange{method: http.MethodPost, path: "/api/v1/tokens", body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status != http.StatusCreated {
				p := readProblem(t, rec)
				if tc.fields != nil {
					require.Equal(t, tc.fields, fieldsOf(p), rec.Body.String())
				}
				return
			}
			got := decode[tokenDoc](t, rec)
			require.NoError(t, auth.CheckFormat(got.Token))
			require.Equal(t, auth.Prefix(got.Token), got.Prefix)
			require.Equal(t, fmt.Sprintf("/api/v1/tokens/%d", got.ID), rec.Header().Get("Location"))
			if tc.check != nil {
				tc.check(t, got)
			}

			// The secret works at once, with what it was given.
			stored, err := a.store.TokenByHash(context.Background(), auth.Hash(got.Token))
			require.NoError(t, err)
			require.Equal(t, got.ID, stored.ID)
			list := a.do(got.Token, exchange{method: http.MethodGet, path: "/api/v1/apps"})
			if auth.Allows(stored.Scopes, auth.ScopeRead) {
				require.Equal(t, http.StatusOK, list.Code)
			}
		})
	}
}

func TestListAndRevokeTokens(t *testing.T) {
	t.Parallel()
	a := tokenSetup(t)
	for _, name := range []string{"ci-b", "ci-a", "ci-c"} {
		rec := a.do(a.admin, exchange{method: http.MethodPost, path: "/api/v1/tokens", body: fmt.Sprintf(`{"name": %q, "scopes": ["deploy"]}`, name)})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}

	type listDoc struct {
		Items      []tokenDoc `json:"items"`
		NextCursor string     `json:"next_cursor"`
	}
	var names []string
	path := "/api/v1/tokens?limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 10)
		rec := a.do(a.admin, exchange{method: http.MethodGet, path: path})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.NotContains(t, rec.Body.String(), `"token"`, "a listing never shows a secret")
		page := decode[listDoc](t, rec)
		for _, item := range page.Items {
			names = append(names, item.Name)
		}
		path = ""
		if page.NextCursor != "" {
			path = "/api/v1/tokens?limit=2&cursor=" + page.NextCursor
		}
	}
	require.Equal(t, []string{"bootstrap", "ci-a", "ci-b", "ci-c", "reader", "shop-admin"}, names)

	rec := a.do(a.admin, exchange{method: http.MethodGet, path: "/api/v1/tokens?limit=0&cursor=%25%25"})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, []string{"limit", "cursor"}, fieldsOf(readProblem(t, rec)))

	victim, err := a.store.TokenByName(context.Background(), "reader")
	require.NoError(t, err)
	revoke := exchange{method: http.MethodDelete, path: fmt.Sprintf("/api/v1/tokens/%d", victim.ID)}
	require.Equal(t, http.StatusNoContent, a.do(a.admin, revoke).Code)
	rec = a.do(a.reader, exchange{method: http.MethodGet, path: "/api/v1/apps"})
	require.Equal(t, http.StatusUnauthorized, rec.Code, "a revoked token stops working at once")
	require.Equal(t, http.StatusNotFound, a.do(a.admin, revoke).Code, "revoking twice changes nothing")
	require.Equal(t, http.StatusNotFound, a.do(a.admin, exchange{method: http.MethodDelete, path: "/api/v1/tokens/424242"}).Code)

	// The name of a revoked token is free again.
	rec = a.do(a.admin, exchange{method: http.MethodPost, path: "/api/v1/tokens", body: `{"name": "reader", "scopes": ["read"]}`})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
}

func TestTokenManagementNeedsAnUnlimitedAdmin(t *testing.T) {
	t.Parallel()
	a := tokenSetup(t)
	for _, bearer := range []string{a.reader, a.limitedAdmin} {
		for _, x := range []exchange{
			{method: http.MethodGet, path: "/api/v1/tokens"},
			{method: http.MethodPost, path: "/api/v1/tokens", body: `{"name": "escalate", "scopes": ["admin"]}`},
			{method: http.MethodDelete, path: "/api/v1/tokens/1"},
		} {
			rec := a.do(bearer, x)
			require.Equal(t, http.StatusForbidden, rec.Code, "%s %s: %s", x.method, x.path, rec.Body.String())
			readProblem(t, rec)
		}
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/tokens", nil))
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	_, err := a.store.TokenByName(context.Background(), "escalate")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.True(t, strings.HasPrefix(a.admin, auth.TokenPrefix))
}
