package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// Catalog is what the overview reads: apps and their environments.
type Catalog interface {
	ListApps(ctx context.Context, afterSlug string, limit int) ([]store.App, error)
	ListEnvironments(ctx context.Context, appID int64) ([]store.Environment, error)
}

type homeHandlers struct {
	catalog Catalog
}

// home renders the overview of every app and environment.
func (h *homeHandlers) home(c echo.Context) error {
	ctx := c.Request().Context()
	var rows []templates.AppRow
	after := ""
	for {
		apps, err := h.catalog.ListApps(ctx, after, 200)
		if err != nil {
			return fmt.Errorf("listing apps: %w", err)
		}
		for _, a := range apps {
			envs, err := h.catalog.ListEnvironments(ctx, a.ID)
			if err != nil {
				return fmt.Errorf("listing environments of %s: %w", a.Slug, err)
			}
			row := templates.AppRow{Slug: a.Slug, Name: a.Name}
			for _, e := range envs {
				row.Environments = append(row.Environments, templates.EnvironmentCell{Name: e.Name, Tier: e.Tier, StableVersion: e.StableVersion})
			}
			rows = append(rows, row)
		}
		if len(apps) < 200 {
			break
		}
		after = apps[len(apps)-1].Slug
	}
	return render(c, http.StatusOK, templates.Home(pageFor(c, "Overview", "overview"), rows))
}
