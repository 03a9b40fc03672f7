package api

import (
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// recordOrigin puts where each request comes from, its client address and
// user agent, into the request's context, so that the run and flag events
// it causes, through the API or the pages, record from where a person or a
// token acted. The address is echo's RealIP, the same the sign-in audit
// events record.
func recordOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := store.WithOrigin(r.Context(), store.Origin{Addr: c.RealIP(), UserAgent: r.UserAgent()})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}
