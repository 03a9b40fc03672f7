package api

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

type healthHandlers struct {
	readiness Readiness
	// migrated remembers that every migration was present once, so later
	// probes only need to ping.
	migrated atomic.Bool
}

type healthStatus struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// healthz answers while the process is up, whatever the database does.
func (h *healthHandlers) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthStatus{Status: "ok"})
}

// readyz answers 200 only when the database is reachable and migrated.
func (h *healthHandlers) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.readiness.Ping(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Detail: "database unreachable: " + err.Error()})
	}
	if !h.migrated.Load() {
		pending, err := h.readiness.MigrationsPending(ctx)
		if err != nil {
			return c.JSON(http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Detail: err.Error()})
		}
		if pending {
			return c.JSON(http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Detail: "database migrations are pending"})
		}
		h.migrated.Store(true)
	}
	return c.JSON(http.StatusOK, healthStatus{Status: "ok"})
}
