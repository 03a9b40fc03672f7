package nginx

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

func TestParseConfigFillsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(json.RawMessage(`{"type":"nginx","dir":"/etc/nginx/flightdeck/checkout","server_template":"app-{version}:8080"}`))
	require.NoError(t, err)
	require.Equal(t, Config{
		Dir:            "/etc/nginx/flightdeck/checkout",
		ServerTemplate: "app-{version}:8080",
		Location:       "/",
		TestCommand:    "nginx -t",
		ReloadCommand:  "nginx -s reload",
		CommandTimeout: 2 * time.Minute,
		ReloadSettle:   time.Second,
	}, cfg)

	cfg, err = ParseConfig(json.RawMessage(`{
		"type": "nginx", "dir": "/srv/fd/", "location": "/api/",
		"servers": {"v1": ["10.0.0.1:8080", "[::1]:9000"]},
		"hash_keys": {"user_id": "$http_x_customer"},
		"test_command": "sudo nginx -t", "reload_command": "sudo systemctl reload nginx",
		"start_command": "docker compose up -d --scale app-{version}={instances}",
		"stop_command": "docker compose stop app-$FLIGHTDECK_VERSION",
		"command_timeout": "30s", "reload_settle": "0s"
	}`))
	require.NoError(t, err)
	require.Equal(t, "/srv/fd", cfg.Dir)
	require.Zero(t, cfg.ReloadSettle, "the wait after a reload can be turned off")
	_, err = ParseConfig(json.RawMessage(`{"type":"nginx","dir":"/d","server_template":"a-{version}:80","reload_settle":"2h"}`))
	require.ErrorContains(t, err, "reload_settle: must be from 0s to 1m0s, got 2h")
	require.Equal(t, "/api/", cfg.Location)
	require.Equal(t, []string{"10.0.0.1:8080", "[::1]:9000"}, cfg.Servers["v1"])
	require.Equal(t, "$http_x_customer", cfg.HashKeys["user_id"])
	require.Equal(t, 30*time.Second, cfg.CommandTimeout)
	require.Equal(t, "sudo systemctl reload nginx", cfg.ReloadCommand)
}

func TestValidateConfigReportsEveryFieldProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []plan.FieldError
	}{
		{"not json", `{`, []plan.FieldError{{Field: "config", Message: "is not valid JSON"}}},
		{"not an object", `[1]`, []plan.FieldError{{Field: "config", Message: "must be a JSON object, got [1]"}}},
		{"missing dir and servers", `{"type":"nginx"}`, []plan.FieldError{
			{Field: "dir", Message: "is required: the directory the driver writes http.conf and server.conf to"},
			{Field: "servers", Message: "set servers or server_template so the driver knows each version's addresses"},
		}},
		{"relative dir", `{"type":"nginx","dir":"flightdeck","server_template":"a-{version}:80"}`, []plan.FieldError{
			{Field: "dir", Message: `must be an absolute directory path, got "flightdeck"`},
		}},
		{"bad addresses", `{"type":"nginx","dir":"/d","servers":{"v1":["10.0.0.1"],"v2":[],"v3":"x:1"}}`, []plan.FieldError{
			{Field: `servers["v1"][0]`, Message: `must be "host:port", such as "10.0.0.5:8080", got "10.0.0.1"`},
			{Field: `servers["v2"]`, Message: `must list at least one "host:port" address`},
			{Field: `servers["v3"]`, Message: `must be a list of "host:port" addresses, got "x:1"`},
		}},
		{"template without version", `{"type":"nginx","dir":"/d","server_template":"app:8080"}`, []plan.FieldError{
			{Field: "server_template", Message: `must contain {version}, such as "app-{version}:8080", got "app:8080"`},
		}},
		{"template not an address", `{"type":"nginx","dir":"/d","server_template":"http://app-{version}"}`, []plan.FieldError{
			{Field: "server_template", Message: `must give "host:port" once {version} and {index} are filled in, got "http://app-{version}"`},
		}},
		{"bad location, hash key, timeout", `{"type":"nginx","dir":"/d","server_template":"a-{version}:80","location":"api","hash_keys":{"user_id":"cookie"},"command_timeout":"5ms"}`, []plan.FieldError{
			{Field: "command_timeout", Message: "must be from 1s to 1h0m0s, got 5ms"},
			{Field: `hash_keys["user_id"]`, Message: `must be one or more nginx variables such as "$http_x_user_id" or "$cookie_uid", got "cookie"`},
			{Field: "location", Message: `must start with '/' and hold only letters, digits, '/', '.', '_' and '-', got "api"`},
		}},
		{"commands", `{"type":"nginx","dir":"/d","server_template":"a-{version}:80","start_command":"docker compose up -d","stop_command":" ","reload_command":"","command_timeout":"soon"}`, []plan.FieldError{
			{Field: "command_timeout", Message: `must be a duration such as "30s" or "2m", got "soon"`},
			{Field: "reload_command", Message: "must not be empty; leave it out for the default"},
			{Field: "start_command", Message: `must use {version} (or $FLIGHTDECK_VERSION) so it acts on one version, got "docker compose up -d"`},
			{Field: "stop_command", Message: "must not be empty; leave it out to run nothing"},
		}},
		{"wrong type and unknown field", `{"type":"simulator","dir":"/d","server_template":"a-{version}:80","upstreams":{}}`, []plan.FieldError{
			{Field: "type", Message: `must be "nginx", got "simulator"`},
			{Field: "upstreams", Message: "is not an nginx setting; known settings are " + knownFields},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateConfig(json.RawMessage(tt.raw))
			var ce *driver.ConfigError
			require.True(t, errors.As(err, &ce), "want a *driver.ConfigError, got %v", err)
			require.Equal(t, Type, ce.Type)
			require.Equal(t, tt.want, ce.Errors)
		})
	}
}
