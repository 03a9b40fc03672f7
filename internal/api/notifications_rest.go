package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/notify"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// NotificationStore is what the notification endpoints and page need from
// the store; *store.Store implements it.
type NotificationStore interface {
	notify.TestStore
	CreateNotificationSubscription(ctx context.Context, n store.NotificationSubscription) (store.NotificationSubscription, error)
	NotificationSubscription(ctx context.Context, id int64) (store.NotificationSubscription, error)
	ListNotificationSubscriptions(ctx context.Context) ([]store.NotificationSubscription, error)
	UpdateNotificationSubscription(ctx context.Context, n store.NotificationSubscription) (store.NotificationSubscription, error)
	DeleteNotificationSubscription(ctx context.Context, id int64) error
	ListNotificationDeliveries(ctx context.Context, subscriptionID, beforeID int64, limit int) ([]store.NotificationDelivery, error)
}

var (
	createSubscriptionFields = []string{"name", "app", "environment", "event_types", "url", "secret", "format", "enabled"}
	updateSubscriptionFields = []string{"name", "app", "environment", "event_types", "url", "format", "enabled"}
)

// subscriptionBody is a subscription as the API shows it: no secret, and
// the URL cut to scheme and host.
func subscriptionBody(s store.NotificationSubscription) map[string]any {
	return map[string]any{
		"id": s.ID, "name": s.Name, "app": s.App, "environment": s.Environment, "event_types": s.EventTypes,
		"url": notify.Redact(s.URL), "format": s.Format, "enabled": s.Enabled, "created_by": s.CreatedBy,
		"created_at": s.CreatedAt.UTC(), "updated_at": s.UpdatedAt.UTC(),
	}
}

// readSubscriptionFields reads the writable fields present in o into s.
func readSubscriptionFields(o *requestObject, s *store.NotificationSubscription) {
	for field, dst := range map[string]*string{"name": &s.Name, "app": &s.App, "environment": &s.Environment, "url": &s.URL, "format": &s.Format} {
		if v, ok := o.str(field); ok {
			*dst = v
		}
	}
	if o.has("event_types") {
		if v, ok := readValue[[]string](o, "event_types", "a list of event types such as [\"run.*\", \"flag.killed\"]"); ok {
			s.EventTypes = v
		}
	}
	if v, ok := o.boolean("enabled"); ok {
		s.Enabled = v
	}
}

// ListNotificationSubscriptions handles GET /api/v1/notifications/subscriptions.
func (h *restHandlers) ListNotificationSubscriptions(c echo.Context) error {
	subs, err := h.store.ListNotificationSubscriptions(c.Request().Context())
	if err != nil {
		return fmt.Errorf("listing notification subscriptions: %w", err)
	}
	items := make([]map[string]any, len(subs))
	for i, s := range subs {
		items[i] = subscriptionBody(s)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

// CreateNotificationSubscription handles POST /api/v1/notifications/subscriptions.
func (h *restHandlers) CreateNotificationSubscription(c echo.Context) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	s := store.NotificationSubscription{App: "*", Environment: "*", Format: notify.FormatJSON, Enabled: true}
	o.required("name")
	o.required("event_types")
	o.required("url")
	readSubscriptionFields(o, &s)
	if v, ok := o.str("secret"); ok {
		s.Secret = v
	}
	if err := o.finish(createSubscriptionFields...); err != nil {
		return err
	}
	if errs := notify.Validate(s); len(errs) > 0 {
		return validationFailed(errs)
	}
	if s.CreatedBy, err = requestActor(c); err != nil {
		return err
	}
	if s.Secret == "" {
		if s.Secret, err = notify.NewSecret(); err != nil {
			return err
		}
	}
	created, err := h.store.CreateNotificationSubscription(c.Request().Context(), s)
	if errors.Is(err, store.ErrAlreadyExists) {
		return conflict(nil, "a notification subscription named %q exists already; nothing was changed", s.Name)
	}
	if err != nil {
		return fmt.Errorf("creating notification subscription %q: %w", s.Name, err)
	}
	body := subscriptionBody(created)
	body["secret"] = created.Secret
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/notifications/subscriptions/"+strconv.FormatInt(created.ID, 10))
	return c.JSON(http.StatusCreated, body)
}

// subscription reads one subscription or answers 404.
func (h *restHandlers) subscription(ctx context.Context, id int64) (store.NotificationSubscription, error) {
	s, err := h.store.NotificationSubscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return s, notFound("there is no notification subscription %d", id)
	}
	if err != nil {
		return s, fmt.Errorf("reading notification subscription %d: %w", id, err)
	}
	return s, nil
}

// GetNotificationSubscription handles GET .../subscriptions/{id}.
func (h *restHandlers) GetNotificationSubscription(c echo.Context, id apigen.NotificationSubscriptionID) error {
	s, err := h.subscription(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, subscriptionBody(s))
}

// UpdateNotificationSubscription handles PATCH .../subscriptions/{id}.
func (h *restHandlers) UpdateNotificationSubscription(c echo.Context, id apigen.NotificationSubscriptionID) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	o.readOnly("secret", "the secret cannot be changed; create a new subscription to use another")
	ctx := c.Request().Context()
	s, err := h.subscription(ctx, id)
	if err != nil {
		return err
	}
	readSubscriptionFields(o, &s)
	if err := o.finish(updateSubscriptionFields...); err != nil {
		return err
	}
	if errs := notify.Validate(s); len(errs) > 0 {
		return validationFailed(errs)
	}
	updated, err := h.store.UpdateNotificationSubscription(ctx, s)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "a notification subscription named %q exists already; nothing was changed", s.Name)
	case errors.Is(err, store.ErrNotFound):
		return notFound("there is no notification subscription %d", id)
	case err != nil:
		return fmt.Errorf("updating notification subscription %d: %w", id, err)
	}
	return c.JSON(http.StatusOK, subscriptionBody(updated))
}

// DeleteNotificationSubscription handles DELETE .../subscriptions/{id}.
func (h *restHandlers) DeleteNotificationSubscription(c echo.Context, id apigen.NotificationSubscriptionID) error {
	err := h.store.DeleteNotificationSubscription(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("there is no notification subscription %d", id)
	}
	if err != nil {
		return fmt.Errorf("deleting notification subscription %d: %w", id, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// deliveryBody is a delivery with its attempts as the API shows it.
func deliveryBody(d store.NotificationDelivery) map[string]any {
	body := map[string]any{
		"id": d.ID, "delivery_id": d.Key, "event_type": d.EventType, "summary": d.Summary, "status": d.Status,
		"attempts": d.Attempts, "created_at": d.CreatedAt.UTC(), "last_error": d.LastError,
	}
	if d.EventSource != store.NotificationSourceTest {
		body["event"] = d.EventSource + ":" + strconv.FormatInt(d.EventID, 10)
	}
	if d.NextAttemptAt != nil {
		body["next_attempt_at"] = d.NextAttemptAt.UTC()
	}
	if d.LastStatusCode != 0 {
		body["last_status_code"] = d.LastStatusCode
	}
	log := make([]map[string]any, len(d.Log))
	for i, a := range d.Log {
		log[i] = map[string]any{"attempt": a.Attempt, "at": a.At.UTC(), "response": a.Response, "error": a.Error,
			"duration_ms": a.Duration / time.Millisecond}
		if a.StatusCode != 0 {
			log[i]["status_code"] = a.StatusCode
		}
	}
	body["log"] = log
	return body
}

// ListNotificationDeliveries handles GET .../subscriptions/{id}/deliveries.
func (h *restHandlers) ListNotificationDeliveries(c echo.Context, id apigen.NotificationSubscriptionID, params apigen.ListNotificationDeliveriesParams) error {
	limit := defaultPageSize
	if params.Limit != nil {
		if *params.Limit < 1 || *params.Limit > maxPageSize {
			return badRequest("limit is out of range", plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d, got %d", maxPageSize, *params.Limit)})
		}
		limit = *params.Limit
	}
	ctx := c.Request().Context()
	if _, err := h.subscription(ctx, id); err != nil {
		return err
	}
	dels, err := h.store.ListNotificationDeliveries(ctx, id, 0, limit)
	if err != nil {
		return fmt.Errorf("listing deliveries of notification subscription %d: %w", id, err)
	}
	items := make([]map[string]any, len(dels))
	for i, d := range dels {
		items[i] = deliveryBody(d)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

// TestNotificationSubscription handles POST .../subscriptions/{id}/test.
func (h *restHandlers) TestNotificationSubscription(c echo.Context, id apigen.NotificationSubscriptionID) error {
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	s, err := h.subscription(ctx, id)
	if err != nil {
		return err
	}
	d, err := notify.Test(ctx, h.store, s, actor, "")
	if err != nil {
		return fmt.Errorf("enqueueing a test of notification subscription %d: %w", id, err)
	}
	return c.JSON(http.StatusAccepted, deliveryBody(d))
}
