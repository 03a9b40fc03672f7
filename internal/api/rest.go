package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// ResourceStore is what the REST endpoints for apps and environments, and
// for the feature flags and segments of apps (FlagStore), need from the
// store; *store.Store implements it.
type ResourceStore interface {
	FlagStore
	FlagRolloutStore
	ApprovalPolicyStore
	GovernanceStore
	SchemaChangeStore
	AuditExportStore
	NotificationStore
	CreateApp(ctx context.Context, a store.NewApp) (store.App, error)
	App(ctx context.Context, slug string) (store.App, error)
	ListApps(ctx context.Context, afterSlug string, limit int) ([]store.App, error)
	UpdateApp(ctx context.Context, slug string, u store.AppUpdate) (store.App, error)
	DeleteApp(ctx context.Context, slug string) error
	CreateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error)
	Environment(ctx context.Context, appID int64, name string) (store.Environment, error)
	ListEnvironments(ctx context.Context, appID int64) ([]store.Environment, error)
	UpdateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error)
}

// restHandlers serves the REST endpoints generated from openapi.yaml. Each
// resource's handlers live in their own file (apps.go, environments.go,
// runs.go).
type restHandlers struct {
	store ResourceStore
	// runs and runStore back the run endpoints (runs.go, run_events.go);
	// they are nil, and the run routes left out, when the server has no
	// engine.
	runs     RunService
	runStore RunStore
}

// The compiler checks that every operation the generated server routes has
// a handler.
var _ apigen.ServerInterface = (*restHandlers)(nil)

// Page sizes of the list endpoints.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// slugPattern is the syntax of app slugs and environment names, the same
// rule as the database's CHECK, so a bad one is refused with a clear
// message before the database sees it.
var slugPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// slugRule says what slugPattern means, for messages.
const slugRule = "must be 1 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"

// checkSlug records a problem when s is not a valid slug or name.
func checkSlug(o *requestObject, field, s string) {
	if !slugPattern.MatchString(s) {
		o.add(field, "%s, got %q", slugRule, s)
	}
}

// page is where a list starts and how long it may be.
type page struct {
	after string
	limit int
}

// readPage checks the cursor and limit query parameters of a list. The
// cursor is the base64 of the last key of the page before, opaque to
// clients, so the order can stay stable while the key type may change.
func readPage(cursor *string, limit *int) (page, error) {
	p := page{limit: defaultPageSize}
	var errs []plan.FieldError
	if limit != nil {
		if *limit < 1 || *limit > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, got %d", maxPageSize, *limit)})
		}
		p.limit = *limit
	}
	if cursor != nil && *cursor != "" {
		key, err := base64.RawURLEncoding.DecodeString(*cursor)
		if err != nil || !slugPattern.Match(key) {
			errs = append(errs, plan.FieldError{Field: "cursor", Message: "is not a cursor this server handed out; pass next_cursor unchanged, or leave cursor out to start at the beginning"})
		}
		p.after = string(key)
	}
	if len(errs) > 0 {
		return page{}, badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	return p, nil
}

// cursorAfter returns the cursor of the page that follows the key.
func cursorAfter(key string) *string {
	c := base64.RawURLEncoding.EncodeToString([]byte(key))
	return &c
}
