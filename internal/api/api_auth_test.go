package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TestTheAPINeedsATokenWithTheRightScope wires the API as the server does
// and checks who may do what.
func TestTheAPINeedsATokenWithTheRightScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	reg := prometheus.NewRegistry()
	h := api.New(api.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Readiness: readiness{},
		Resources: st, Tokens: st, Ingest: push.NewIngester(st, nil), Gatherer: reg, Registerer: reg,
	})
	admin, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	token := func(name string, apps []string, scopes ...auth.Scope) string {
		plain, prefix, hash, err := auth.Generate()
		require.NoError(t, err)
		_, err = st.CreateToken(ctx, store.NewToken{Name: name, Hash: hash, Prefix: prefix, Scopes: scopes, UserID: admin.ID, Apps: apps})
		require.NoError(t, err)
		return plain
	}
	adminToken := token("admin", nil, auth.ScopeAdmin)
	readToken := token("reader", nil, auth.ScopeRead)
	metricsToken := token("agent", nil, auth.ScopeMetrics)
	limitedToken := token("shop-only", []string{"shop"}, auth.ScopeRead)

	do := func(method, path, token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	require.Equal(t, http.StatusOK, do("GET", "/api/v1/openapi.yaml", "", "").Code, "the document is public")
	rec := do("GET", "/api/v1/apps", "", "")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	require.Equal(t, http.StatusUnauthorized, do("GET", "/api/v1/apps", "fdk_notarealtokenatallnotarealtokenatall1234", "").Code)

	require.Equal(t, http.StatusCreated, do("POST", "/api/v1/apps", adminToken, `{"slug": "shop", "name": "Shop"}`).Code)
	require.Equal(t, http.StatusCreated, do("POST", "/api/v1/apps", adminToken, `{"slug": "search", "name": "Search"}`).Code)
	require.Equal(t, http.StatusOK, do("GET", "/api/v1/apps", readToken, "").Code)

	rec = do("POST", "/api/v1/apps", readToken, `{"slug": "blog", "name": "Blog"}`)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), `admin`)
	require.Equal(t, http.StatusForbidden, do("GET", "/api/v1/apps", metricsToken, "").Code, "an agent's token only pushes samples")
	_, err = st.App(ctx, "blog")
	require.ErrorIs(t, err, store.ErrNotFound, "a refused request changes nothing")

	require.Equal(t, http.StatusOK, do("GET", "/api/v1/apps/shop", limitedToken, "").Code)
	require.Equal(t, http.StatusForbidden, do("GET", "/api/v1/apps/search", limitedToken, "").Code)

	// The metrics scope reaches the ingest route (the run does not exist).
	require.Equal(t, http.StatusNotFound, do("POST", "/api/v1/runs/4242/metrics", metricsToken, `{"samples": [{"cohort": "candidate", "metric": "error_rate", "timestamp": "2026-01-01T00:00:00Z", "count": 1, "sum": 0}]}`).Code)
	require.Equal(t, http.StatusForbidden, do("POST", "/api/v1/runs/4242/metrics", readToken, `{"samples": []}`).Code)
}
