package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsRunLocally(t *testing.T) {
	t.Parallel()
	c, err := parseConfig("serve", nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, Config{Addr: ":8080", DataDir: "./.flightdeck", LogLevel: "info", ShutdownTimeout: 15 * time.Second, MetricsRetention: 720 * time.Hour,
		AnalysisInterval: 15 * time.Second, Demo: "auto"}, c)
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	t.Parallel()
	c, err := parseConfig("serve", []string{"--addr", "127.0.0.1:9000", "--shutdown-timeout", "3s"},
		env(map[string]string{"FLIGHTDECK_ADDR": ":7000", "FLIGHTDECK_DATA_DIR": "/var/lib/fd", "FLIGHTDECK_LOG_LEVEL": "debug"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.Addr)
	require.Equal(t, "/var/lib/fd", c.DataDir)
	require.Equal(t, "debug", c.LogLevel)
	require.Equal(t, 3*time.Second, c.ShutdownTimeout)
}

func TestConfigReadsSecretsFromFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	require.NoError(t, os.WriteFile(path, []byte("postgres://fd:s3cret@db.internal:5432/fd\n"), 0o600))
	c, err := parseConfig("serve", nil, env(map[string]string{"DATABASE_URL_FILE": path}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "postgres://fd:s3cret@db.internal:5432/fd", c.DatabaseURL)

	_, err = parseConfig("serve", nil, env(map[string]string{"DATABASE_URL_FILE": path + ".missing"}), io.Discard)
	require.ErrorContains(t, err, "DATABASE_URL_FILE")
}

func TestConfigRejectsBadValues(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"log level":        {env: map[string]string{"FLIGHTDECK_LOG_LEVEL": "loud"}, want: `invalid log level "loud"`},
		"shutdown timeout": {args: []string{"--shutdown-timeout", "soon"}, want: `invalid shutdown timeout "soon"`},
		"negative timeout": {env: map[string]string{"FLIGHTDECK_SHUTDOWN_TIMEOUT": "-1s"}, want: "positive duration"},
		"unknown flag":     {args: []string{"--port", "1"}, want: "flag provided but not defined: -port"},
		"stray argument":   {args: []string{"extra"}, want: `unexpected argument "extra"`},
		"empty address":    {args: []string{"--addr", ""}, want: "listen address"},
		"short retention":  {args: []string{"--metrics-retention", "5m"}, want: `invalid metrics retention "5m"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig("serve", tc.args, env(tc.env), io.Discard)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestConfigReadsTheAdminToken(t *testing.T) {
	t.Parallel()
	token := "fdk_" + strings.Repeat("0123456789abcdef", 4)
	c, err := parseConfig("serve", nil, env(map[string]string{"FLIGHTDECK_ADMIN_TOKEN": token}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, token, c.AdminToken)

	path := filepath.Join(t.TempDir(), "admin-token")
	require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
	c, err = parseConfig("serve", nil, env(map[string]string{"FLIGHTDECK_ADMIN_TOKEN_FILE": path}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, token, c.AdminToken, "the file's trailing newline is not part of the token")

	other := "fdk_" + strings.Repeat("a", 40)
	c, err = parseConfig("serve", []string{"--admin-token", other}, env(map[string]string{"FLIGHTDECK_ADMIN_TOKEN": token}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, other, c.AdminToken, "the flag wins")
}

func TestConfigRefusesAMalformedAdminToken(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"s3cret-admin-password", "fdk_tooShort1234", "fdk_" + strings.Repeat("x", 39) + "!"} {
		_, err := parseConfig("serve", nil, env(map[string]string{"FLIGHTDECK_ADMIN_TOKEN": bad}), io.Discard)
		require.EqualError(t, err, "FLIGHTDECK_ADMIN_TOKEN is not a Flightdeck API token: an API token is fdk_ followed by 40 to 200 letters and digits, such as fdk_$(openssl rand -hex 32)")
		require.NotContains(t, err.Error(), bad)
	}
}

func TestAdminTokenIsMaskedInTheLog(t *testing.T) {
	t.Parallel()
	token := "fdk_AbCdEfGh" + strings.Repeat("s3cret", 7)
	var out bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	logger.Info("starting flightdeck", slog.Any("config", Config{AdminToken: token}))
	require.Contains(t, out.String(), `"admin_token":"fdk_AbCdEfGh…"`)
	require.NotContains(t, out.String(), "s3cret")

	out.Reset()
	logger.Info("starting flightdeck", slog.Any("config", Config{}))
	require.Contains(t, out.String(), `"admin_token":""`)
}

func TestDatabasePasswordIsMasked(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://fd:s3cret@db:5432/fd":                       "postgres://fd:xxxxx@db:5432/fd",
		"postgresql://fd@db/fd?password=s3cret&sslmode=require": "postgresql://fd@db/fd?password=xxxxx&sslmode=require",
		"host=db user=fd password=s3cret dbname=fd":             "host=db user=fd password=xxxxx dbname=fd",
		"host=db password='s3 cret' dbname=fd":                  "host=db password=xxxxx dbname=fd",
		"postgres://fd@db/fd":                                   "postgres://fd@db/fd",
	} {
		require.Equal(t, want, maskDatabaseURL(in))
	}
}
