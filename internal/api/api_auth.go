package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
)

// metricsRoute is the route agents push samples to.
const metricsRoute = "/api/v1/runs/:id/metrics"

// apiAuth authenticates every /api/v1 request except the OpenAPI document
// and checks what the route needs: the metrics scope to push samples, read
// to read, deploy to start and act on runs, approve to approve or reject
// a phase, admin to change apps and environments, and, for tokens limited
// to some apps or environments, access to the one addressed.
func apiAuth(tokens TokenLookup) echo.MiddlewareFunc {
	authenticate := RequireToken(tokens, nil)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		guarded := authenticate(func(c echo.Context) error {
			if err := RequireScope(c, scopeFor(c)); err != nil {
				return err
			}
			if err := RequireAccess(c, c.Param("app"), c.Param("env")); err != nil {
				return err
			}
			return next(c)
		})
		return func(c echo.Context) error {
			path := c.Request().URL.Path
			if !strings.HasPrefix(path, "/api/") || c.Path() == openAPIRoute {
				return next(c)
			}
			return guarded(c)
		}
	}
}

// scopeFor is the scope a request needs. Starting runs and acting on them
// is deploy, except the approval of a phase, which is a person's judgement
// and so has its own scope; changing feature flags and segments is deploy
// too, and evaluating a flag only reads; anything else that writes is
// admin.
func scopeFor(c echo.Context) auth.Scope {
	switch {
	case c.Path() == metricsRoute || c.Path() == flagRolloutMetricsRoute:
		return auth.ScopeMetrics
	case c.Path() == auditExportRoute:
		// The audit log shows what everybody did and from where.
		return auth.ScopeAdmin
	case c.Request().Method == http.MethodGet || c.Request().Method == http.MethodHead:
		return auth.ScopeRead
	case c.Path() == runActionRoute && (c.Param("action") == "approve" || c.Param("action") == "reject"):
		return auth.ScopeApprove
	case c.Path() == haltRoute || c.Path() == haltLiftRoute:
		// Stopping and restarting the line is an approver's call.
		return auth.ScopeApprove
	case c.Path() == runActionRoute || c.Path() == createRunRoute || c.Path() == driverStatusRoute:
		// A deploy system reporting that it applied a phase acts on the
		// run as CI does.
		return auth.ScopeDeploy
	case c.Path() == flagEvaluateRoute:
		// Asking what a user would get from a flag changes nothing.
		return auth.ScopeRead
	case isSchemaWriteRoute(c.Path()):
		// Recording schema phases and what versions need is part of
		// deploying them.
		return auth.ScopeDeploy
	case isFlagWriteRoute(c.Path()):
		// Flags are released by the people who deploy.
		return auth.ScopeDeploy
	default:
		return auth.ScopeAdmin
	}
}
