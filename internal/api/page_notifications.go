package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/notify"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// NotificationPages is what the notifications page reads and changes: the
// subscriptions and their deliveries as the REST endpoints use them, the
// names of environments to suggest in the form, and the audit log.
type NotificationPages interface {
	NotificationStore
	ListEnvironmentNames(ctx context.Context) ([]store.EnvironmentName, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

const (
	// notificationsShown is how many deliveries of each subscription the
	// notifications page lists.
	notificationsShown = 5
	// notificationLogPage is how many deliveries the log page lists at once.
	notificationLogPage = 50
)

// notificationFieldLabels names the form's fields in messages.
var notificationFieldLabels = map[string]string{
	"name": "The name", "app": "The app", "environment": "The environment",
	"event_types": "The event types", "url": "The URL", "format": "The format",
}

type notificationHandlers struct {
	store    NotificationPages
	sessions *scs.SessionManager
}

func registerNotificationPages(g *echo.Group, cfg Config) {
	h := &notificationHandlers{store: cfg.Pages, sessions: cfg.Sessions}
	g.GET("/notifications", h.show)
	g.POST("/notifications", h.create)
	g.GET("/notifications/:id", h.log)
	g.POST("/notifications/:id/test", h.test)
	g.POST("/notifications/:id/disable", h.setEnabled(false))
	g.POST("/notifications/:id/enable", h.setEnabled(true))
	g.POST("/notifications/:id/delete", h.delete)
}

// admin returns the member when they are an administrator, and otherwise
// answers with a refusal and returns nil.
func (h *notificationHandlers) admin(c echo.Context, doing string) (*auth.Member, error) {
	m := memberFrom(c)
	if m.IsAdmin {
		return m, nil
	}
	msg := fmt.Sprintf("%s needs an administrator, and %s is not one. Nothing was changed.", doing, m.Username)
	if c.Request().Method == http.MethodGet {
		msg = fmt.Sprintf("%s needs an administrator, and %s is not one; ask one if a chat room should hear about releases.", doing, m.Username)
	}
	return nil, refusePage(c, http.StatusForbidden, msg)
}

// target reads the subscription named in the path; a missing one is
// answered with a refusal and ok false.
func (h *notificationHandlers) target(c echo.Context) (sub store.NotificationSubscription, ok bool, err error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil && id > 0 {
		sub, err = h.store.NotificationSubscription(c.Request().Context(), id)
		if err == nil {
			return sub, true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return sub, false, fmt.Errorf("reading notification subscription %d: %w", id, err)
		}
	}
	msg := fmt.Sprintf("There is no notification subscription %q; it may have been deleted.", truncate(c.Param("id"), 40))
	if c.Request().Method != http.MethodGet {
		msg += " Nothing was changed."
	}
	return sub, false, refusePage(c, http.StatusNotFound, msg)
}

// show renders the page.
func (h *notificationHandlers) show(c echo.Context) error {
	m, err := h.admin(c, "Managing notifications")
	if m == nil {
		return err
	}
	return h.render(c, http.StatusOK, templates.NotificationForm{App: "*", Environment: "*", Format: notify.FormatJSON}, nil, takeNotice(h.sessions, c))
}

// render shows the page with the form as given and, right after creating
// a subscription, its secret.
func (h *notificationHandlers) render(c echo.Context, status int, form templates.NotificationForm, created *templates.NotificationCreated, notice string) error {
	ctx := c.Request().Context()
	subs, err := h.store.ListNotificationSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("listing notification subscriptions: %w", err)
	}
	names, err := h.store.ListEnvironmentNames(ctx)
	if err != nil {
		return fmt.Errorf("listing environments: %w", err)
	}
	v := templates.NotificationsView{
		Form: form, Created: created, Groups: notify.Groups(), Formats: notify.Formats, Now: h.store.Now(),
	}
	for _, e := range notify.Catalogue {
		v.Catalogue = append(v.Catalogue, templates.NotificationEventType{Type: e.Type, Description: e.Description})
	}
	for _, n := range names {
		if !slices.Contains(v.Apps, n.AppSlug) {
			v.Apps = append(v.Apps, n.AppSlug)
		}
		if !slices.Contains(v.Environments, n.Environment) {
			v.Environments = append(v.Environments, n.Environment)
		}
	}
	slices.Sort(v.Environments)
	for _, s := range subs {
		row := notificationRow(s)
		if row.Deliveries, err = h.store.ListNotificationDeliveries(ctx, s.ID, 0, notificationsShown); err != nil {
			return fmt.Errorf("listing deliveries of notification subscription %d: %w", s.ID, err)
		}
		v.Subscriptions = append(v.Subscriptions, row)
	}
	p := pageFor(c, "Notifications", "notifications")
	switch {
	case notice != "":
		p.Flash = notice
	case status >= 400:
		p.Flash, p.FlashError = "Nothing was changed: the form below says what to fix.", true
	}
	if created != nil {
		// The page holds a secret: no cache may keep it.
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	}
	return render(c, status, templates.Notifications(p, v))
}

// notificationRow is a subscription as the pages show it: without its
// secret, and with its URL cut to scheme and host.
func notificationRow(s store.NotificationSubscription) templates.NotificationRow {
	return templates.NotificationRow{
		ID: s.ID, Name: s.Name, App: s.App, Environment: s.Environment, EventTypes: s.EventTypes,
		URL: notify.Redact(s.URL), Format: s.Format, Enabled: s.Enabled, CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt,
	}
}

// splitEventTypes reads a comma-separated list of event types; spaces and
// empty entries are dropped, and each type is kept once.
func splitEventTypes(text string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// eventTypesProblem says what is wrong with a list of event types that
// notify.Validate refused, in the words of the form.
func eventTypesProblem(types []string) string {
	if len(types) == 0 {
		return "Enter at least one event type, such as run.* or flag.killed."
	}
	if len(types) > notify.MaxEventTypes {
		return fmt.Sprintf("The list has %d event types; at most %d are allowed. Use a group such as run.* instead.", len(types), notify.MaxEventTypes)
	}
	var unknown []string
	for _, t := range types {
		if !notify.ValidPattern(t) {
			unknown = append(unknown, strconv.Quote(t))
		}
	}
	word := "type"
	if len(unknown) > 1 {
		word = "types"
	}
	return fmt.Sprintf("Unknown event %s %s: use * for every event, a group (%s) or types from the list of event types.",
		word, strings.Join(unknown, ", "), strings.Join(notify.Groups(), ", "))
}

// create adds a subscription from the form and shows its secret once.
func (h *notificationHandlers) create(c echo.Context) error {
	m, err := h.admin(c, "Adding notification subscriptions")
	if m == nil {
		return err
	}
	ctx := c.Request().Context()
	form := templates.NotificationForm{
		Name:        strings.TrimSpace(c.FormValue("name")),
		App:         strings.TrimSpace(c.FormValue("app")),
		Environment: strings.TrimSpace(c.FormValue("environment")),
		EventTypes:  strings.TrimSpace(c.FormValue("event_types")),
		URL:         strings.TrimSpace(c.FormValue("url")),
		Format:      strings.TrimSpace(c.FormValue("format")),
		Errors:      map[string]string{},
	}
	sub := store.NotificationSubscription{
		Name: form.Name, App: form.App, Environment: form.Environment, EventTypes: splitEventTypes(form.EventTypes),
		URL: form.URL, Format: form.Format, Enabled: true, CreatedBy: m.Actor(),
	}
	for _, fe := range notify.Validate(sub) {
		if form.Errors[fe.Field] == "" {
			form.Errors[fe.Field] = notificationFieldLabels[fe.Field] + " " + fe.Message + "."
		}
	}
	if form.Errors["event_types"] != "" {
		form.Errors["event_types"] = eventTypesProblem(sub.EventTypes)
	}
	if len(form.Errors) > 0 {
		return h.render(c, http.StatusBadRequest, form, nil, "")
	}
	if sub.Secret, err = notify.NewSecret(); err != nil {
		return err
	}
	created, err := h.store.CreateNotificationSubscription(ctx, sub)
	if errors.Is(err, store.ErrAlreadyExists) {
		form.Errors["name"] = fmt.Sprintf("There is a subscription named %q already; choose another name.", sub.Name)
		return h.render(c, http.StatusConflict, form, nil, "")
	}
	if err != nil {
		return fmt.Errorf("creating notification subscription %q: %w", sub.Name, err)
	}
	detail := fmt.Sprintf("%s: %s to %s as %s", created.Name, strings.Join(created.EventTypes, ","),
		notify.Redact(created.URL), created.Format)
	if err := h.audit(c, m, "notification.subscription_created", created, detail); err != nil {
		return err
	}
	shown := &templates.NotificationCreated{ID: created.ID, Name: created.Name, Secret: created.Secret}
	notice := fmt.Sprintf("Subscription %s added: it is sent %s from now on.", created.Name, strings.Join(created.EventTypes, ", "))
	return h.render(c, http.StatusCreated, templates.NotificationForm{App: "*", Environment: "*", Format: notify.FormatJSON}, shown, notice)
}

// audit records a change of a subscription in the audit log.
func (h *notificationHandlers) audit(c echo.Context, m *auth.Member, action string, s store.NotificationSubscription, detail string) error {
	e := store.AuditEvent{Actor: m.Actor(), Action: action, Detail: detail}
	if s.App != "*" {
		e.App = s.App
	}
	if s.Environment != "*" {
		e.Environment = s.Environment
	}
	if _, err := h.store.RecordAudit(c.Request().Context(), auditFrom(c, e)); err != nil {
		return fmt.Errorf("recording %s of %s: %w", action, s.Name, err)
	}
	return nil
}

// back returns to the page the form was sent from: the subscription's log
// or the notifications page.
func (h *notificationHandlers) back(c echo.Context, id int64) error {
	if c.FormValue("from") == "log" {
		return c.Redirect(http.StatusSeeOther, "/notifications/"+strconv.FormatInt(id, 10))
	}
	return c.Redirect(http.StatusSeeOther, "/notifications")
}

// log renders a subscription's full delivery log.
func (h *notificationHandlers) log(c echo.Context) error {
	m, err := h.admin(c, "Reading notification deliveries")
	if m == nil {
		return err
	}
	sub, ok, err := h.target(c)
	if !ok {
		return err
	}
	var before int64
	if raw := c.QueryParam("before"); raw != "" {
		if before, err = strconv.ParseInt(raw, 10, 64); err != nil || before < 1 {
			return refusePage(c, http.StatusBadRequest, fmt.Sprintf("%q is not a delivery id to list older deliveries from; it is a positive number.", truncate(raw, 40)))
		}
	}
	ctx := c.Request().Context()
	dels, err := h.store.ListNotificationDeliveries(ctx, sub.ID, before, notificationLogPage+1)
	if err != nil {
		return fmt.Errorf("listing deliveries of notification subscription %d: %w", sub.ID, err)
	}
	v := templates.NotificationLogView{Subscription: notificationRow(sub), Now: h.store.Now()}
	if len(dels) > notificationLogPage {
		dels = dels[:notificationLogPage]
		v.OlderThan = dels[len(dels)-1].ID
	}
	v.Subscription.Deliveries = dels
	p := pageFor(c, sub.Name+" · Notifications", "notifications")
	p.Flash = takeNotice(h.sessions, c)
	return render(c, http.StatusOK, templates.NotificationLog(p, v))
}

// test enqueues a test notification for a subscription; any replica's
// dispatcher sends it on its next pass.
func (h *notificationHandlers) test(c echo.Context) error {
	m, err := h.admin(c, "Sending test notifications")
	if m == nil {
		return err
	}
	sub, ok, err := h.target(c)
	if !ok {
		return err
	}
	if !sub.Enabled {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("The subscription %s is disabled, so a test would not be sent; enable it first. Nothing was changed.", sub.Name))
	}
	if _, err := notify.Test(c.Request().Context(), h.store, sub, m.Actor(), ""); err != nil {
		return fmt.Errorf("enqueueing a test of notification subscription %d: %w", sub.ID, err)
	}
	if err := h.audit(c, m, "notification.test_sent", sub, sub.Name); err != nil {
		return err
	}
	keepNotice(h.sessions, c, fmt.Sprintf("A test notification for %s is queued; its delivery below shows when it arrives.", sub.Name))
	return h.back(c, sub.ID)
}

// setEnabled disables a subscription, whose pending deliveries then wait,
// or enables it again.
func (h *notificationHandlers) setEnabled(enabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		doing := "Disabling notification subscriptions"
		if enabled {
			doing = "Enabling notification subscriptions"
		}
		m, err := h.admin(c, doing)
		if m == nil {
			return err
		}
		sub, ok, err := h.target(c)
		if !ok {
			return err
		}
		if sub.Enabled == enabled {
			keepNotice(h.sessions, c, fmt.Sprintf("%s was %s already.", sub.Name, enabledWord(enabled)))
			return h.back(c, sub.ID)
		}
		sub.Enabled = enabled
		_, err = h.store.UpdateNotificationSubscription(c.Request().Context(), sub)
		if errors.Is(err, store.ErrNotFound) {
			return refusePage(c, http.StatusNotFound, fmt.Sprintf("The subscription %s was deleted meanwhile. Nothing was changed.", sub.Name))
		}
		if err != nil {
			return fmt.Errorf("changing notification subscription %d: %w", sub.ID, err)
		}
		action, notice := "notification.subscription_enabled", fmt.Sprintf("%s is enabled: waiting deliveries and new events are sent again.", sub.Name)
		if !enabled {
			action, notice = "notification.subscription_disabled", fmt.Sprintf("%s is disabled: nothing is sent to it until it is enabled again.", sub.Name)
		}
		if err := h.audit(c, m, action, sub, sub.Name); err != nil {
			return err
		}
		keepNotice(h.sessions, c, notice)
		return h.back(c, sub.ID)
	}
}

func enabledWord(enabled bool) string {
	if enabled {
		return "enabled"
	}
	return "disabled"
}

// delete removes a subscription with its delivery log.
func (h *notificationHandlers) delete(c echo.Context) error {
	m, err := h.admin(c, "Deleting notification subscriptions")
	if m == nil {
		return err
	}
	sub, ok, err := h.target(c)
	if !ok {
		return err
	}
	err = h.store.DeleteNotificationSubscription(c.Request().Context(), sub.ID)
	if errors.Is(err, store.ErrNotFound) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("The subscription %s was deleted already. Nothing was changed.", sub.Name))
	}
	if err != nil {
		return fmt.Errorf("deleting notification subscription %d: %w", sub.ID, err)
	}
	if err := h.audit(c, m, "notification.subscription_deleted", sub, sub.Name+" ("+notify.Redact(sub.URL)+")"); err != nil {
		return err
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Subscription %s deleted with its delivery log.", sub.Name))
	return c.Redirect(http.StatusSeeOther, "/notifications")
}
