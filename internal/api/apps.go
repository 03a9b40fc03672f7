package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Bounds of an app's text fields. The name's matches the database's CHECK;
// the description has none there, but a page shows it whole, so it stays
// readable.
const (
	maxAppName        = 200
	maxAppDescription = 2000
)

// ListApps handles GET /api/v1/apps: apps in slug order, a page at a time.
func (h *restHandlers) ListApps(c echo.Context, params apigen.ListAppsParams) error {
	p, err := readPage(params.Cursor, params.Limit)
	if err != nil {
		return err
	}
	// One more than asked tells whether another page follows.
	apps, err := h.store.ListApps(c.Request().Context(), p.after, p.limit+1)
	if err != nil {
		return fmt.Errorf("listing apps: %w", err)
	}
	list := apigen.AppList{Items: make([]apigen.App, 0, min(len(apps), p.limit))}
	if len(apps) > p.limit {
		apps = apps[:p.limit]
		list.NextCursor = cursorAfter(apps[len(apps)-1].Slug)
	}
	for _, a := range apps {
		list.Items = append(list.Items, appBody(a))
	}
	return c.JSON(http.StatusOK, list)
}

// CreateApp handles POST /api/v1/apps.
func (h *restHandlers) CreateApp(c echo.Context) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	var n store.NewApp
	o.required("slug")
	if slug, ok := o.str("slug"); ok {
		checkSlug(o, "slug", slug)
		n.Slug = slug
	}
	o.required("name")
	if name, ok := o.str("name"); ok {
		checkAppName(o, name)
		n.Name = name
	}
	if description, ok := o.str("description"); ok {
		checkAppDescription(o, description)
		n.Description = description
	}
	if err := o.finish("slug", "name", "description"); err != nil {
		return err
	}

	app, err := h.store.CreateApp(c.Request().Context(), n)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "an app with slug %q exists already", n.Slug)
	case err != nil:
		return fmt.Errorf("creating app %s: %w", n.Slug, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, appPath(app.Slug))
	return c.JSON(http.StatusCreated, appBody(app))
}

// GetApp handles GET /api/v1/apps/{app}.
func (h *restHandlers) GetApp(c echo.Context, slug apigen.AppSlug) error {
	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, appBody(app))
}

// UpdateApp handles PATCH /api/v1/apps/{app}: the fields given change, the
// others keep their value.
func (h *restHandlers) UpdateApp(c echo.Context, slug apigen.AppSlug) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.readOnly("slug", "it identifies the app; create a new app for a new slug")
	for _, field := range []string{"created_at", "updated_at"} {
		o.readOnly(field, "the server keeps it")
	}
	name, hasName := o.str("name")
	if hasName {
		checkAppName(o, name)
	}
	description, hasDescription := o.str("description")
	if hasDescription {
		checkAppDescription(o, description)
	}
	if err := o.finish("name", "description"); err != nil {
		return err
	}

	app, err := h.app(c, slug)
	if err != nil {
		return err
	}
	if !hasName && !hasDescription {
		return c.JSON(http.StatusOK, appBody(app))
	}
	update := store.AppUpdate{Name: app.Name, Description: app.Description}
	if hasName {
		update.Name = name
	}
	if hasDescription {
		update.Description = description
	}
	updated, err := h.store.UpdateApp(c.Request().Context(), app.Slug, update)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("there is no app with slug %q", slug)
	case err != nil:
		return fmt.Errorf("updating app %s: %w", slug, err)
	}
	return c.JSON(http.StatusOK, appBody(updated))
}

// DeleteApp handles DELETE /api/v1/apps/{app}. An app that still has
// environments is refused, so no deployment history is lost by it.
func (h *restHandlers) DeleteApp(c echo.Context, slug apigen.AppSlug) error {
	err := h.store.DeleteApp(c.Request().Context(), slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("there is no app with slug %q", slug)
	case errors.Is(err, store.ErrInUse):
		return conflict(nil, "app %q still has environments, and deleting it would lose their deployment history", slug)
	case err != nil:
		return fmt.Errorf("deleting app %s: %w", slug, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// app reads the app named in the path, or refuses with 404.
func (h *restHandlers) app(c echo.Context, slug string) (store.App, error) {
	app, err := h.store.App(c.Request().Context(), slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.App{}, notFound("there is no app with slug %q", slug)
	case err != nil:
		return store.App{}, fmt.Errorf("reading app %s: %w", slug, err)
	}
	return app, nil
}

// checkAppName records a problem unless name is 1 to maxAppName characters
// with something besides spaces, which a list of apps could not show.
func checkAppName(o *requestObject, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		o.add("name", "must not be empty or only spaces")
	case n > maxAppName:
		o.add("name", "must be at most %d characters, got %d", maxAppName, n)
	}
}

// checkAppDescription records a problem when the description is too long.
func checkAppDescription(o *requestObject, description string) {
	if n := utf8.RuneCountInString(description); n > maxAppDescription {
		o.add("description", "must be at most %d characters, got %d", maxAppDescription, n)
	}
}

// appPath is where the app is found in the API.
func appPath(slug string) string {
	return "/api/v1/apps/" + url.PathEscape(slug)
}

// appBody is the app as the API shows it.
func appBody(a store.App) apigen.App {
	return apigen.App{Slug: a.Slug, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}
