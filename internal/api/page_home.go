package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// Catalog is what the overview reads: every app and environment with the
// run in flight there, in one query.
type Catalog interface {
	Overview(ctx context.Context) ([]store.OverviewEntry, error)
}

type homeHandlers struct {
	catalog Catalog
}

// home renders the overview of every app and environment.
func (h *homeHandlers) home(c echo.Context) error {
	o, err := loadOverview(c.Request().Context(), h.catalog)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.Home(pageFor(c, "Overview", "overview"), o))
}

// loadOverview reads what the overview shows, for the page and its live
// feed alike.
func loadOverview(ctx context.Context, catalog Catalog) (templates.Overview, error) {
	entries, err := catalog.Overview(ctx)
	if err != nil {
		return templates.Overview{}, fmt.Errorf("reading the overview: %w", err)
	}
	return templates.NewOverview(entries, time.Now()), nil
}
