package webhook_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/webhook"
)

func TestParseConfigFillsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := webhook.ParseConfig(json.RawMessage(`{"type": "webhook", "url": "https://deploy.example.com/hooks/flightdeck", "secret": "0123456789abcdef"}`))
	require.NoError(t, err)
	require.Equal(t, webhook.Config{URL: "https://deploy.example.com/hooks/flightdeck", Secret: "0123456789abcdef",
		Timeout: webhook.DefaultTimeout, Deadline: webhook.DefaultDeadline}, cfg)

	cfg, err = webhook.ParseConfig(json.RawMessage(`{"type": "webhook", "url": "http://10.0.0.5:9000/", "secret_file": "/run/secrets/flightdeck",
		"timeout": "3s", "deadline": "30m", "headers": {"Authorization": "Bearer gateway"}}`))
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, cfg.Timeout)
	require.Equal(t, 30*time.Minute, cfg.Deadline)
	require.Equal(t, "/run/secrets/flightdeck", cfg.SecretFile)
	require.Equal(t, map[string]string{"Authorization": "Bearer gateway"}, cfg.Headers)
}

func TestValidateConfigNamesEveryProblem(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	for name, tc := range map[string]struct {
		config string
		fields map[string]string
	}{
		"empty": {config: `{"type": "webhook"}`, fields: map[string]string{
			"url": "is required", "secret": "is required"}},
		"bad values": {config: `{"type": "webhook", "url": "ftp://deploy.example.com", "secret": "` + secret + `", "timeout": "soon", "deadline": "-1m"}`,
			fields: map[string]string{
				"url": "must be an absolute http or https URL", "secret": "must be at least 16 bytes, got 12",
				"timeout": `must be a duration such as "30s" or "10m", got "soon"`, "deadline": "must be positive"}},
		"relative url": {config: `{"type": "webhook", "url": "/hooks", "secret": "0123456789abcdef"}`, fields: map[string]string{
			"url": "must be an absolute http or https URL"}},
		"both secrets": {config: `{"type": "webhook", "url": "https://d.example.com", "secret": "0123456789abcdef", "secret_file": "/run/s"}`,
			fields: map[string]string{"secret_file": "cannot be set together with secret"}},
		"relative secret file": {config: `{"type": "webhook", "url": "https://d.example.com", "secret_file": "secrets/hook"}`,
			fields: map[string]string{"secret_file": "must be an absolute path"}},
		"deadline before timeout": {config: `{"type": "webhook", "url": "https://d.example.com", "secret": "0123456789abcdef", "timeout": "10s", "deadline": "5s"}`,
			fields: map[string]string{"deadline": "must not be shorter than timeout (10s)"}},
		"timeout too long": {config: `{"type": "webhook", "url": "https://d.example.com", "secret": "0123456789abcdef", "timeout": "1m"}`,
			fields: map[string]string{"timeout": "must be at most 15s"}},
		"headers": {config: `{"type": "webhook", "url": "https://d.example.com", "secret": "0123456789abcdef",
			"headers": {"Flightdeck-Signature": "forged", "bad header": "x", "X-Team": "a\nb"}}`,
			fields: map[string]string{
				`headers["Flightdeck-Signature"]`: "is set by Flightdeck", `headers["bad header"]`: "is not a valid header name",
				`headers["X-Team"]`: "has a value that is not valid"}},
		"unknown and wrong types": {config: `{"type": "webhook", "url": 5, "secret": true, "retries": 3}`, fields: map[string]string{
			"url": "must be a string, got a number", "secret": "must be a string, got a boolean", "retries": "is not a webhook setting"}},
		"not an object": {config: `["webhook"]`, fields: map[string]string{"config": "must be a JSON object"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := webhook.ValidateConfig(json.RawMessage(tc.config))
			var cfgErr *driver.ConfigError
			require.True(t, errors.As(err, &cfgErr), "want a *driver.ConfigError, got %v", err)
			require.Equal(t, webhook.Type, cfgErr.Type)
			got := map[string]string{}
			for _, fe := range cfgErr.Errors {
				got[fe.Field] = fe.Message
			}
			require.Len(t, got, len(tc.fields), "problems: %v", cfgErr.Errors)
			for field, want := range tc.fields {
				require.Contains(t, got[field], want, "field %s", field)
			}
			require.NotContains(t, err.Error(), secret, "a secret is never repeated in a message")
		})
	}
}

func TestSignMatchesTheDocumentedScheme(t *testing.T) {
	t.Parallel()
	// HMAC-SHA256("0123456789abcdef", "1767225600.{}"), computed independently.
	got := webhook.Sign([]byte("0123456789abcdef"), time.Unix(1767225600, 0), []byte("{}"))
	require.Equal(t, "t=1767225600,v1=99902517b3069f78750aa0520b0493482454c2d30a579c7acc839f3363ca1b88", got)
}
