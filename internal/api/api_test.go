package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type readiness struct {
	pingErr error
	pending bool
}

func (r readiness) Ping(context.Context) error                      { return r.pingErr }
func (r readiness) MigrationsPending(context.Context) (bool, error) { return r.pending, nil }

func newHandler(t *testing.T, ready api.Readiness) http.Handler {
	t.Helper()
	reg := prometheus.NewRegistry()
	return api.New(api.Config{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Readiness: ready, Gatherer: reg, Registerer: reg,
	})
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestReadinessFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		ready  readiness
		status int
		detail string
	}{
		"ready":       {readiness{}, http.StatusOK, ""},
		"unreachable": {readiness{pingErr: errors.New("dial tcp: connection refused")}, http.StatusServiceUnavailable, "database unreachable"},
		"pending":     {readiness{pending: true}, http.StatusServiceUnavailable, "migrations are pending"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHandler(t, tc.ready)
			rec := get(h, "/readyz")
			require.Equal(t, tc.status, rec.Code)
			require.Contains(t, rec.Body.String(), tc.detail)
			// The process itself is alive in every case.
			require.Equal(t, http.StatusOK, get(h, "/healthz").Code)
		})
	}
}

func TestRequestsGetAnID(t *testing.T) {
	t.Parallel()
	rec := get(newHandler(t, readiness{}), "/healthz")
	require.NotEmpty(t, rec.Header().Get("X-Request-Id"))
}

func TestStaticFilesAreServed(t *testing.T) {
	t.Parallel()
	rec := get(newHandler(t, readiness{}), "/static/app.css")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "--bg")
}

func parse(t *testing.T, rec *httptest.ResponseRecorder) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(rec.Body.String()))
	require.NoError(t, err)
	return doc
}

func byTestID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "data-testid" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if found := byTestID(c, id); found != nil {
			return found
		}
	}
	return nil
}

func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
