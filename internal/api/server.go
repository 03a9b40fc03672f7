// Package api serves Flightdeck over HTTP: the health and metrics endpoints,
// the REST API for CI and the pages for people. Handlers decode, validate,
// call the layer below and respond; they hold no business logic.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/web/static"
)

// Readiness is what the readiness probe needs to know about the database.
type Readiness interface {
	Ping(ctx context.Context) error
	MigrationsPending(ctx context.Context) (bool, error)
}

// Config holds what the HTTP layer is built from.
type Config struct {
	Logger    *slog.Logger
	Readiness Readiness
	// Gatherer serves /metrics; it must include what Registerer registers.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// Ingest takes pushed metric samples; nil leaves the route out.
	Ingest MetricsIngester
	// Resources backs the REST endpoints for apps and environments; nil
	// leaves them out.
	Resources ResourceStore
	// Runs starts runs and acts on them, and RunStore reads them and keeps
	// the answers to idempotent requests; the run endpoints are served
	// only when both are set.
	Runs     RunService
	RunStore RunStore
	// TokenAdmin backs the token endpoints; nil leaves them out.
	TokenAdmin TokenAdmin
	// Tokens authenticates the REST API. The server always sets it; tests
	// of handlers alone may leave it nil.
	Tokens TokenLookup
	// Sessions and Members sign people in to the pages; without them the
	// pages are not served.
	Sessions *scs.SessionManager
	Members  Members
	// Pages is what the pages read and change beyond the above.
	Pages PageStore
	// Flags answers the OFREP flag evaluation endpoints (/ofrep/v1/...);
	// nil leaves them out. Requests authenticate with Tokens.
	Flags FlagSnapshots
	// SecureCookies marks cookies Secure with the __Host- prefix; set it
	// when people reach the server over TLS.
	SecureCookies bool
	// Live streams the pages' updates over websockets (/ws/...); it must
	// be started. Nil leaves the websocket routes out, and the pages then
	// show what they showed when loaded.
	Live *live.Hub
	// ApprovalLinks signs links to approvals for chat messages; nil leaves
	// the links out.
	ApprovalLinks *ApprovalLinks
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For is believed; without any, a request comes from its
	// connection's peer, so clients cannot choose the address the audit
	// log records.
	TrustedProxies []*net.IPNet
	// OIDC, when set, offers single sign-on on the sign-in page; Members
	// must then also implement OIDCStore (*store.Store does).
	OIDC *OIDCConfig
}

// New returns the HTTP handler with every route and middleware installed.
func New(cfg Config) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}

	metrics := newHTTPMetrics(cfg.Registerer)
	e.Use(middleware.RequestID())
	e.Use(middleware.Recover())
	e.Use(recordOrigin)
	e.Use(requestLogger(cfg.Logger))
	e.Use(metrics.middleware())
	if cfg.Tokens != nil {
		e.Use(apiAuth(cfg.Tokens))
	}

	h := &healthHandlers{readiness: cfg.Readiness}
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.StaticFS("/static", echo.MustSubFS(static.Files, "."))
	if cfg.Sessions != nil && cfg.Members != nil {
		registerPages(e, cfg)
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	if cfg.Ingest != nil {
		e.POST(metricsRoute, (&metricsIngestHandlers{ingest: cfg.Ingest}).ingestMetrics)
	}
	e.GET(openAPIRoute, serveOpenAPIDocument)
	RegisterTokenRoutes(e, cfg.TokenAdmin)
	RegisterOFREPRoutes(e, cfg.Flags, cfg.Tokens)
	if cfg.Resources != nil {
		// The generated registration routes exactly the operations that
		// apigen's configuration includes, each to its handler.
		rest := &restHandlers{store: cfg.Resources, runs: cfg.Runs, runStore: cfg.RunStore}
		var router apigen.EchoRouter = e
		if cfg.Runs == nil || cfg.RunStore == nil {
			router = withoutRunRoutes{e}
		}
		apigen.RegisterHandlers(router, rest)
	}
	return e
}

// withoutRunRoutes registers every route but the run endpoints, for a
// server without an engine: they answer 404 rather than reach handlers
// with nothing behind them.
type withoutRunRoutes struct {
	*echo.Echo
}

// isRunRoute reports whether a generated route is one of the run
// endpoints.
func isRunRoute(path string) bool {
	return path == createRunRoute || path == "/api/v1/runs" || strings.HasPrefix(path, "/api/v1/runs/")
}

// GET registers the route unless it is a run endpoint.
func (r withoutRunRoutes) GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	if isRunRoute(path) {
		return nil
	}
	return r.Echo.GET(path, h, m...)
}

// POST registers the route unless it is a run endpoint.
func (r withoutRunRoutes) POST(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	if isRunRoute(path) {
		return nil
	}
	return r.Echo.POST(path, h, m...)
}

// openAPIRoute serves the API's description; it needs no token.
const openAPIRoute = "/api/v1/openapi.yaml"

// requestLogger logs each request with its request id; 5xx at error level.
func requestLogger(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Let the central handler write the response now, so the
				// status we log is the one the client saw.
				c.Error(err)
			}
			status := c.Response().Status
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			if c.Path() == "/healthz" || c.Path() == "/readyz" || c.Path() == "/metrics" {
				level = slog.LevelDebug
			}
			logger.LogAttrs(c.Request().Context(), level, "http request",
				slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
				slog.String("method", c.Request().Method),
				slog.String("path", c.Request().URL.Path),
				slog.String("route", c.Path()),
				slog.Int("status", status),
				slog.Duration("duration", time.Since(start)),
			)
			return nil
		}
	}
}

// problem is an RFC 9457 problem document, the one error shape of the API.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// errorHandler writes every error as problem+json and logs only server faults.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if refusal, ok := errors.AsType[*apiError](err); ok {
			writeProblem(c, refusal)
			return
		}
		status := http.StatusInternalServerError
		detail := ""
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			if msg, ok := he.Message.(string); ok {
				detail = msg
			}
		}
		if status >= 500 {
			logger.ErrorContext(c.Request().Context(), "request failed",
				slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
				slog.String("error", err.Error()))
			detail = "The server could not complete the request; the error is in its log."
		}
		if detail == http.StatusText(status) {
			detail = ""
		}
		p := problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, p)
	}
}
