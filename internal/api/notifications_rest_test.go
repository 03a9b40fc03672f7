package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

const subscriptionsPath = "/api/v1/notifications/subscriptions"

func TestNotificationSubscriptionsThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	ctx := context.Background()

	// Bad input names each field and stores nothing.
	for body, field := range map[string]string{
		`{"name": "ops", "event_types": ["run.*"], "url": "ftp://hooks.example.com/x"}`:                        "url",
		`{"name": "ops", "event_types": ["run.*"], "url": "not a url"}`:                                        "url",
		`{"name": "ops", "event_types": ["run.exploded"], "url": "https://hooks.example.com/x"}`:               "event_types",
		`{"name": "ops", "event_types": ["run.*"], "url": "https://hooks.example.com/x", "format": "email"}`:   "format",
		`{"name": "ops", "event_types": [], "url": "https://hooks.example.com/x"}`:                             "event_types",
		`{"name": "ops", "event_types": ["run.*"], "url": "https://hooks.example.com/x", "secret": "short"}`:   "secret",
		`{"name": "ops", "event_types": ["run.*"], "url": "https://hooks.example.com/x", "app": "Not A Slug"}`: "app",
		`{"event_types": ["run.*"], "url": "https://hooks.example.com/x"}`:                                     "name",
		`{"name": "ops", "event_types": ["run.*"], "url": "https://hooks.example.com/x", "colour": "red"}`:     "colour",
	} {
		rec := a.as("admin-token", exchange{method: http.MethodPost, path: subscriptionsPath, body: body})
		require.Equal(t, http.StatusUnprocessableEntity, rec.Code, "%s: %s", body, rec.Body.String())
		var p struct {
			Errors []struct{ Field, Message string } `json:"errors"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		var fields []string
		for _, e := range p.Errors {
			fields = append(fields, e.Field)
		}
		require.Contains(t, fields, field, body)
	}
	subs, err := a.store.ListNotificationSubscriptions(ctx)
	require.NoError(t, err)
	require.Empty(t, subs)

	// Only admin tokens manage subscriptions.
	rec := a.as("ci", exchange{method: http.MethodPost, path: subscriptionsPath,
		body: `{"name": "ops", "event_types": ["run.*"], "url": "https://hooks.example.com/x"}`})
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())

	// Created: the secret is shown this once.
	rec = a.as("admin-token", exchange{method: http.MethodPost, path: subscriptionsPath,
		body: `{"name": "ops", "app": "shop", "environment": "prod", "event_types": ["run.*", "flag.killed"], "url": "https://hooks.slack.com/services/T1/B2/token", "format": "slack"}`})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var created map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
	secret, _ := created["secret"].(string)
	require.Len(t, secret, 64)
	require.Equal(t, "https://hooks.slack.com/…", created["url"], "the webhook's token is not shown")
	location := rec.Header().Get("Location")

	stored, err := a.store.ListNotificationSubscriptions(ctx)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	require.Equal(t, secret, stored[0].Secret)
	require.Equal(t, "https://hooks.slack.com/services/T1/B2/token", stored[0].URL)

	// Never again: not in reads, lists or updates.
	for _, x := range []exchange{
		{method: http.MethodGet, path: location},
		{method: http.MethodGet, path: subscriptionsPath},
		{method: http.MethodPatch, path: location, body: `{"enabled": false}`},
	} {
		rec := a.as("admin-token", x)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.NotContains(t, rec.Body.String(), secret)
		require.NotContains(t, rec.Body.String(), `"secret"`)
	}
	rec = a.as("admin-token", exchange{method: http.MethodPatch, path: location, body: `{"secret": "0123456789abcdef0123"}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	rec = a.as("admin-token", exchange{method: http.MethodPatch, path: location, body: `{"event_types": ["nope"]}`})
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	got, err := a.store.NotificationSubscription(ctx, stored[0].ID)
	require.NoError(t, err)
	require.False(t, got.Enabled)
	require.Equal(t, []string{"run.*", "flag.killed"}, got.EventTypes)

	// A test is enqueued and shows in the delivery log.
	rec = a.as("admin-token", exchange{method: http.MethodPost, path: location + "/test"})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	rec = a.as("admin-token", exchange{method: http.MethodGet, path: location + "/deliveries"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var log struct {
		Items []struct {
			EventType string `json:"event_type"`
			Status    string `json:"status"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &log))
	require.Len(t, log.Items, 1)
	require.Equal(t, "test", log.Items[0].EventType)
	require.Equal(t, "pending", log.Items[0].Status)

	rec = a.as("admin-token", exchange{method: http.MethodDelete, path: location})
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	rec = a.as("admin-token", exchange{method: http.MethodGet, path: location})
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
}
