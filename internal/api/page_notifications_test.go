package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// notificationsServer serves the pages with an administrator (ada) and a
// deployer (dora), and the app checkout with a production environment.
func notificationsServer(t *testing.T) *pageServer {
	t.Helper()
	return usersServer(t)
}

// subscribe stores a subscription directly, as an earlier visit to the
// page would have.
func subscribe(t *testing.T, s *pageServer, name string) store.NotificationSubscription {
	t.Helper()
	sub, err := s.Store.CreateNotificationSubscription(context.Background(), store.NotificationSubscription{
		Name: name, App: "checkout", Environment: "production", EventTypes: []string{"run.*"},
		URL: "https://hooks.example.com/services/T000/B000/token", Secret: strings.Repeat("s", 32),
		Format: "slack", Enabled: true, CreatedBy: "ada",
	})
	require.NoError(t, err)
	return sub
}

func subscriptionNames(t *testing.T, s *pageServer) []string {
	t.Helper()
	subs, err := s.Store.ListNotificationSubscriptions(context.Background())
	require.NoError(t, err)
	var names []string
	for _, sub := range subs {
		names = append(names, sub.Name)
	}
	return names
}

func TestNotificationsPageCreatesASubscriptionAndShowsItsSecretOnce(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	b := s.signIn("ada")

	res := b.get("/notifications")
	require.Equal(t, http.StatusOK, res.Code)
	require.NotNil(t, res.byTestID("notify-none"))
	require.NotNil(t, res.byTestID("nav-notifications"), "administrators find the page in the navigation")
	require.Contains(t, res.text("notify-catalogue"), "approval.requested", "the catalogue is shown next to the form")
	require.Equal(t, "*", attr(res.byTestID("notify-app"), "value"))

	res = b.post("/notifications", url.Values{
		"name": {"releases to #deploys"}, "app": {"checkout"}, "environment": {"production"},
		"event_types": {"run.*, approval.requested ,flag.killed"}, "url": {"https://hooks.example.com/services/T000/B000/token"},
		"format": {"slack"},
	})
	require.Equal(t, http.StatusCreated, res.Code, res.text("flash"))
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	secret := res.text("notify-secret")
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), secret)
	require.Contains(t, res.text("notify-secret-once"), "will not be shown again")
	require.Contains(t, res.text("notify-created"), "Flightdeck-Signature: t=<unix>,v1=<hex>")
	require.Contains(t, res.text("notify-created"), "HMAC-SHA256")

	subs, err := s.Store.ListNotificationSubscriptions(context.Background())
	require.NoError(t, err)
	require.Len(t, subs, 1)
	sub := subs[0]
	require.Equal(t, secret, sub.Secret, "the secret shown is the one deliveries are signed with")
	require.Equal(t, []string{"run.*", "approval.requested", "flag.killed"}, sub.EventTypes)
	require.Equal(t, "slack", sub.Format)
	require.True(t, sub.Enabled)
	require.Equal(t, "ada", sub.CreatedBy)

	again := b.get("/notifications")
	require.Equal(t, http.StatusOK, again.Code)
	require.Nil(t, again.byTestID("notify-created"), "the secret is shown once")
	require.NotContains(t, again.Body, secret)
	id := sub.ID
	require.Equal(t, "releases to #deploys", again.text(fmt.Sprintf("notify-sub-name-%d", id)))
	require.Equal(t, "checkout / production", again.text(fmt.Sprintf("notify-sub-scope-%d", id)))
	require.Equal(t, "run.*, approval.requested, flag.killed", again.text(fmt.Sprintf("notify-sub-events-%d", id)))
	require.Equal(t, "https://hooks.example.com/…", again.text(fmt.Sprintf("notify-sub-url-%d", id)), "the URL's token stays hidden")
	require.NotContains(t, again.Body, "B000/token")
	require.Equal(t, "enabled", again.text(fmt.Sprintf("notify-sub-enabled-%d", id)))
	require.NotNil(t, again.byTestID(fmt.Sprintf("notify-sub-no-deliveries-%d", id)))
	require.NotContains(t, b.get(fmt.Sprintf("/notifications/%d", id)).Body, secret, "nor on the log page")

	require.Contains(t, auditActions(t, s), "ada notification.subscription_created releases to #deploys: run.*,approval.requested,flag.killed to https://hooks.example.com/… as slack")
}

func TestNotificationsPageRefusesBadInputByField(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	b := s.signIn("ada")

	res := b.post("/notifications", url.Values{
		"name": {"ops"}, "app": {"Checkout!"}, "environment": {"*"}, "event_types": {"run.*, run.exploded"},
		"url": {"ftp://hooks.example.com/x"}, "format": {"xml"},
	})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("notify-error-url"), "must be an http or https URL")
	require.Contains(t, res.text("notify-error-app"), `"Checkout!"`)
	require.Contains(t, res.text("notify-error-event_types"), `Unknown event type "run.exploded"`)
	require.Contains(t, res.text("notify-error-format"), "must be one of json, slack, teams")
	require.Empty(t, res.text("notify-error-name"))
	require.Nil(t, res.byTestID("notify-created"))
	require.Contains(t, res.text("flash"), "Nothing was changed")
	require.Equal(t, "ftp://hooks.example.com/x", attr(res.byTestID("notify-url"), "value"), "the form keeps what was typed")
	require.Equal(t, "run.*, run.exploded", attr(res.byTestID("notify-event-types"), "value"))
	require.Empty(t, subscriptionNames(t, s), "nothing is stored")

	res = b.post("/notifications", url.Values{"name": {""}, "app": {"*"}, "environment": {"*"}, "event_types": {" , "},
		"url": {"https://user:pass@hooks.example.com/"}, "format": {"json"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("notify-error-name"), "The name is required")
	require.Contains(t, res.text("notify-error-event_types"), "Enter at least one event type")
	require.Contains(t, res.text("notify-error-url"), "must not carry a user name or password")
	require.Empty(t, subscriptionNames(t, s))

	subscribe(t, s, "ops")
	res = b.post("/notifications", url.Values{"name": {"ops"}, "app": {"*"}, "environment": {"*"}, "event_types": {"*"},
		"url": {"https://example.com/hook"}, "format": {"json"}})
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("notify-error-name"), `There is a subscription named "ops" already`)
	require.Equal(t, []string{"ops"}, subscriptionNames(t, s))
	require.Empty(t, auditActions(t, s))
}

func TestNotificationsPageIsForAdministrators(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	sub := subscribe(t, s, "ops")
	b := s.signIn("dora")

	res := b.get("/notifications")
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "Managing notifications needs an administrator, and dora is not one")
	require.NotContains(t, res.Body, "hooks.example.com")
	res = b.get(fmt.Sprintf("/notifications/%d", sub.ID))
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Nil(t, b.get("/").byTestID("nav-notifications"), "the navigation leaves the page out")

	for _, path := range []string{
		"/notifications",
		fmt.Sprintf("/notifications/%d/test", sub.ID),
		fmt.Sprintf("/notifications/%d/disable", sub.ID),
		fmt.Sprintf("/notifications/%d/delete", sub.ID),
	} {
		forged := b.post(path, url.Values{"name": {"mallory"}, "app": {"*"}, "environment": {"*"},
			"event_types": {"*"}, "url": {"https://evil.example/"}, "format": {"json"}})
		require.Equal(t, http.StatusForbidden, forged.Code, path)
		require.Contains(t, forged.text("refusal-message"), "needs an administrator, and dora is not one. Nothing was changed.", path)
	}
	got, err := s.Store.NotificationSubscription(context.Background(), sub.ID)
	require.NoError(t, err)
	require.True(t, got.Enabled)
	require.Equal(t, []string{"ops"}, subscriptionNames(t, s))
	dels, err := s.Store.ListNotificationDeliveries(context.Background(), sub.ID, 0, 10)
	require.NoError(t, err)
	require.Empty(t, dels)
	require.Empty(t, auditActions(t, s))
}

func TestNotificationsPageSendsATestAndShowsItsDeliveries(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	sub := subscribe(t, s, "ops")
	b := s.signIn("ada")

	page := b.get("/notifications")
	require.NotNil(t, page.byTestID(fmt.Sprintf("notify-test-%d", sub.ID)))
	res := b.post(fmt.Sprintf("/notifications/%d/test", sub.ID), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, "/notifications", res.Location)

	dels, err := s.Store.ListNotificationDeliveries(context.Background(), sub.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, dels, 1)
	d := dels[0]
	require.Equal(t, "test", d.EventType)

	page = b.get("/notifications")
	require.Contains(t, page.text("flash"), "A test notification for ops is queued")
	require.NotNil(t, page.byTestID(fmt.Sprintf("notify-sub-deliveries-%d", sub.ID)))
	require.Equal(t, "test", page.text(fmt.Sprintf("notify-delivery-type-%d", d.ID)))
	require.Equal(t, "pending", page.text(fmt.Sprintf("notify-delivery-status-%d", d.ID)))
	require.Contains(t, page.text(fmt.Sprintf("notify-delivery-detail-%d", d.ID)), "first attempt")
	require.Equal(t, "—", page.text(fmt.Sprintf("notify-delivery-code-%d", d.ID)))

	// A dispatcher's first attempt: the receiver answers 502.
	ctx := context.Background()
	claimed, err := s.Store.ClaimNotificationDeliveries(ctx, time.Now().Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	next := time.Now().Add(30 * time.Second)
	require.NoError(t, s.Store.FinishNotificationAttempt(ctx, store.NotificationOutcome{
		DeliveryID: d.ID, Status: store.NotificationPending, NextAttemptAt: &next,
		NotificationAttempt: store.NotificationAttempt{Attempt: 1, At: time.Now(), StatusCode: 502,
			Response: "upstream is down", Error: "the receiver answered 502 Bad Gateway", Duration: 42 * time.Millisecond},
	}))

	page = b.get("/notifications")
	require.Equal(t, "retrying", page.text(fmt.Sprintf("notify-delivery-status-%d", d.ID)))
	require.Contains(t, page.text(fmt.Sprintf("notify-delivery-detail-%d", d.ID)), "attempt 2 at")
	require.Equal(t, "502", page.text(fmt.Sprintf("notify-delivery-code-%d", d.ID)))
	require.Equal(t, "42 ms", page.text(fmt.Sprintf("notify-delivery-took-%d", d.ID)))

	log := b.get(fmt.Sprintf("/notifications/%d", sub.ID))
	require.Equal(t, http.StatusOK, log.Code)
	require.Equal(t, "ops", log.text("notify-log-name"))
	require.Equal(t, "test", log.text(fmt.Sprintf("notify-log-type-%d", d.ID)))
	require.Equal(t, "retrying", log.text(fmt.Sprintf("notify-delivery-status-%d", d.ID)))
	require.Equal(t, "502", log.text(fmt.Sprintf("notify-attempt-code-%d-1", d.ID)))
	require.Equal(t, "the receiver answered 502 Bad Gateway", log.text(fmt.Sprintf("notify-attempt-error-%d-1", d.ID)))
	require.Equal(t, "upstream is down", log.text(fmt.Sprintf("notify-attempt-answer-%d-1", d.ID)))

	// Sent from the log page, a test comes back to it.
	res = b.post(fmt.Sprintf("/notifications/%d/test", sub.ID), url.Values{"from": {"log"}})
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, fmt.Sprintf("/notifications/%d", sub.ID), res.Location)
	log = b.get(res.Location)
	require.Contains(t, log.text("flash"), "A test notification for ops is queued")
	dels, err = s.Store.ListNotificationDeliveries(ctx, sub.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, dels, 2)
	require.NotNil(t, log.byTestID(fmt.Sprintf("notify-log-no-attempts-%d", dels[0].ID)))

	require.Equal(t, http.StatusNotFound, b.get("/notifications/999999").Code)
	require.Equal(t, http.StatusBadRequest, b.get(fmt.Sprintf("/notifications/%d?before=soon", sub.ID)).Code)
	require.Contains(t, auditActions(t, s), "ada notification.test_sent ops")
}

func TestNotificationsPageDisablesEnablesAndDeletes(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	sub := subscribe(t, s, "ops")
	keep := subscribe(t, s, "pager")
	b := s.signIn("ada")
	ctx := context.Background()

	res := b.post(fmt.Sprintf("/notifications/%d/disable", sub.ID), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	got, err := s.Store.NotificationSubscription(ctx, sub.ID)
	require.NoError(t, err)
	require.False(t, got.Enabled)
	page := b.get("/notifications")
	require.Contains(t, page.text("flash"), "ops is disabled")
	require.Equal(t, "disabled", page.text(fmt.Sprintf("notify-sub-enabled-%d", sub.ID)))
	require.Nil(t, page.byTestID(fmt.Sprintf("notify-test-%d", sub.ID)), "a disabled subscription offers no test")
	require.NotNil(t, page.byTestID(fmt.Sprintf("notify-enable-%d", sub.ID)))

	res = b.post(fmt.Sprintf("/notifications/%d/test", sub.ID), nil)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Contains(t, res.text("refusal-message"), "ops is disabled")
	dels, err := s.Store.ListNotificationDeliveries(ctx, sub.ID, 0, 10)
	require.NoError(t, err)
	require.Empty(t, dels)

	res = b.post(fmt.Sprintf("/notifications/%d/enable", sub.ID), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	got, err = s.Store.NotificationSubscription(ctx, sub.ID)
	require.NoError(t, err)
	require.True(t, got.Enabled)
	require.Equal(t, strings.Repeat("s", 32), got.Secret, "enabling keeps the secret")

	page = b.get("/notifications")
	del := page.byTestID(fmt.Sprintf("notify-delete-%d", sub.ID))
	require.NotNil(t, del)
	require.Contains(t, attr(del.Parent, "data-confirm"), "Delete the subscription ops")
	require.Equal(t, "post", attr(del.Parent, "method"))

	res = b.post(fmt.Sprintf("/notifications/%d/delete", sub.ID), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, []string{"pager"}, subscriptionNames(t, s))
	page = b.get("/notifications")
	require.Contains(t, page.text("flash"), "Subscription ops deleted")
	require.Nil(t, page.byTestID(fmt.Sprintf("notify-sub-%d", sub.ID)))
	require.NotNil(t, page.byTestID(fmt.Sprintf("notify-sub-%d", keep.ID)))

	res = b.post(fmt.Sprintf("/notifications/%d/delete", sub.ID), nil)
	require.Equal(t, http.StatusNotFound, res.Code)
	require.Contains(t, res.text("refusal-message"), "Nothing was changed.")

	require.Equal(t, []string{
		"ada notification.subscription_deleted ops (https://hooks.example.com/…)",
		"ada notification.subscription_enabled ops",
		"ada notification.subscription_disabled ops",
	}, auditActions(t, s))
}

func TestNotificationsPageTellsDeliveredFailedAndGivenUpApart(t *testing.T) {
	t.Parallel()
	s := notificationsServer(t)
	sub := subscribe(t, s, "ops")
	b := s.signIn("ada")
	ctx := context.Background()
	for range 3 {
		require.Equal(t, http.StatusSeeOther, b.post(fmt.Sprintf("/notifications/%d/test", sub.ID), nil).Code)
	}
	claimed, err := s.Store.ClaimNotificationDeliveries(ctx, time.Now().Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	outcomes := []struct {
		status store.NotificationStatus
		code   int
		label  string
		detail string
	}{
		{store.NotificationDelivered, 204, "delivered", ""},
		{store.NotificationFailed, 404, "failed", "refused with 404; not retried"},
		{store.NotificationFailed, 503, "gave up", "after 1 attempt"},
	}
	for i, o := range outcomes {
		require.NoError(t, s.Store.FinishNotificationAttempt(ctx, store.NotificationOutcome{
			DeliveryID: claimed[i].ID, Status: o.status,
			NotificationAttempt: store.NotificationAttempt{Attempt: 1, At: time.Now(), StatusCode: o.code, Duration: time.Millisecond},
		}))
	}
	for _, path := range []string{"/notifications", fmt.Sprintf("/notifications/%d", sub.ID)} {
		page := b.get(path)
		for i, o := range outcomes {
			require.Equal(t, o.label, page.text(fmt.Sprintf("notify-delivery-status-%d", claimed[i].ID)), path)
			require.Equal(t, o.detail, page.text(fmt.Sprintf("notify-delivery-detail-%d", claimed[i].ID)), path)
		}
	}
}
