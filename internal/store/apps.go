package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// App is a deployable application, addressed by its slug.
type App struct {
	ID          int64
	Slug        string
	Name        string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewApp holds what is needed to create an app.
type NewApp struct {
	Slug        string
	Name        string
	Description string
}

// AppUpdate holds the editable fields of an app.
type AppUpdate struct {
	Name        string
	Description string
}

func appFromRow(r sqlcdb.App) App {
	return App{ID: r.ID, Slug: r.Slug, Name: r.Name, Description: r.Description, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// CreateApp stores a new app. A taken slug is ErrAlreadyExists.
func (s *Store) CreateApp(ctx context.Context, a NewApp) (App, error) {
	row, err := s.q.AppInsert(ctx, sqlcdb.AppInsertParams{Slug: a.Slug, Name: a.Name, Description: a.Description, Now: s.Now()})
	if err != nil {
		return App{}, mapError(err)
	}
	return appFromRow(row), nil
}

// App returns the app with the slug, or ErrNotFound.
func (s *Store) App(ctx context.Context, slug string) (App, error) {
	row, err := s.q.AppGetBySlug(ctx, slug)
	if err != nil {
		return App{}, mapError(err)
	}
	return appFromRow(row), nil
}

// AppByID returns the app with the id, or ErrNotFound.
func (s *Store) AppByID(ctx context.Context, id int64) (App, error) {
	row, err := s.q.AppGetByID(ctx, id)
	if err != nil {
		return App{}, mapError(err)
	}
	return appFromRow(row), nil
}

// ListApps returns up to limit apps ordered by slug, starting after the
// slug afterSlug ("" for the first page).
func (s *Store) ListApps(ctx context.Context, afterSlug string, limit int) ([]App, error) {
	rows, err := s.q.AppList(ctx, sqlcdb.AppListParams{AfterSlug: afterSlug, Max: int32(limit)})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, appFromRow), nil
}

// UpdateApp changes an app's name and description.
func (s *Store) UpdateApp(ctx context.Context, slug string, u AppUpdate) (App, error) {
	row, err := s.q.AppUpdate(ctx, sqlcdb.AppUpdateParams{Slug: slug, Name: u.Name, Description: u.Description, Now: s.Now()})
	if err != nil {
		return App{}, mapError(err)
	}
	return appFromRow(row), nil
}

// DeleteApp removes an app that has no environments. An app that still has
// environments is ErrInUse, so no deployment history is ever lost by it.
func (s *Store) DeleteApp(ctx context.Context, slug string) error {
	n, err := s.q.AppDelete(ctx, slug)
	if err != nil {
		return mapError(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
