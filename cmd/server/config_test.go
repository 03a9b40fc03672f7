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
		"trusted proxy":    {env: map[string]string{"FLIGHTDECK_TRUSTED_PROXIES": "10.0.0.0/8, nginx"}, want: `invalid trusted proxy "nginx/32"`},
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

func TestConfigReadsSingleSignOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("0idc-s3cret\n"), 0o600))
	roles := filepath.Join(dir, "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"claim": "groups", "rules": [
		{"value": "release-managers", "app": "*", "env": "production", "role": "approver"},
		{"value": "platform-admins", "admin": true}]}`), 0o600))
	c, err := parseConfig("serve", []string{"--oidc-name", "Keycloak"}, env(map[string]string{
		"FLIGHTDECK_PUBLIC_URL":              "https://deploy.example.com/",
		"FLIGHTDECK_OIDC_ISSUER":             "https://sso.example.com/realms/platform",
		"FLIGHTDECK_OIDC_CLIENT_ID":          "flightdeck",
		"FLIGHTDECK_OIDC_CLIENT_SECRET_FILE": secret,
		"FLIGHTDECK_OIDC_ROLE_MAP_FILE":      roles,
		"FLIGHTDECK_OIDC_SCOPES":             "openid,email profile",
	}), io.Discard)
	require.NoError(t, err)
	require.NotNil(t, c.OIDC)
	require.Equal(t, "https://sso.example.com/realms/platform", c.OIDC.Issuer)
	require.Equal(t, "flightdeck", c.OIDC.ClientID)
	require.Equal(t, "0idc-s3cret", c.OIDC.ClientSecret)
	require.Equal(t, "https://deploy.example.com/login/oidc/callback", c.OIDC.RedirectURL)
	require.Equal(t, "Keycloak", c.OIDC.Name)
	require.Equal(t, []string{"openid", "email", "profile"}, c.OIDC.Scopes)
	require.Len(t, c.OIDC.RoleMap.Rules, 2)

	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("starting flightdeck", slog.Any("config", c))
	require.Contains(t, out.String(), "issuer https://sso.example.com/realms/platform, client flightdeck, secret set true, 2 role rules on claim groups")
	require.NotContains(t, out.String(), "0idc-s3cret", "the client secret is masked")

	// Flags and their files work too.
	c, err = parseConfig("serve", []string{"--public-url", "https://deploy.example.com", "--oidc-issuer", "https://sso.example.com",
		"--oidc-client-id", "fd", "--oidc-client-secret-file", secret, "--oidc-role-map", `{"rules": []}`}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "0idc-s3cret", c.OIDC.ClientSecret)
	require.Empty(t, c.OIDC.Scopes, "the default scopes are the server's")

	c, err = parseConfig("serve", nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Nil(t, c.OIDC, "single sign-on is off without an issuer")
}

func TestConfigRejectsBadSingleSignOn(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"FLIGHTDECK_PUBLIC_URL": "https://deploy.example.com", "FLIGHTDECK_OIDC_ISSUER": "https://sso.example.com",
		"FLIGHTDECK_OIDC_CLIENT_ID": "fd", "FLIGHTDECK_OIDC_CLIENT_SECRET": "0idc-s3cret",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for bk, bv := range base {
			m[bk] = bv
		}
		m[k] = v
		return m
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no issuer":      {map[string]string{"FLIGHTDECK_OIDC_CLIENT_ID": "fd"}, "single sign-on settings are given without an issuer"},
		"bad issuer":     {with("FLIGHTDECK_OIDC_ISSUER", "sso.example.com"), `invalid OIDC issuer "sso.example.com"`},
		"no client id":   {with("FLIGHTDECK_OIDC_CLIENT_ID", ""), "set --oidc-client-id"},
		"no secret":      {with("FLIGHTDECK_OIDC_CLIENT_SECRET", ""), "needs the client secret"},
		"no public URL":  {with("FLIGHTDECK_PUBLIC_URL", ""), "single sign-on needs --public-url"},
		"bad role map":   {with("FLIGHTDECK_OIDC_ROLE_MAP", `{"rules": [{"value": "sre", "app": "*", "env": "*", "role": "deploy"}]}`), `FLIGHTDECK_OIDC_ROLE_MAP: role map: rule 1 (value "sre"): unknown role "deploy"`},
		"role map JSON":  {with("FLIGHTDECK_OIDC_ROLE_MAP", `{"rules": [`), "FLIGHTDECK_OIDC_ROLE_MAP: role map: not valid JSON"},
		"missing secret": {map[string]string{"FLIGHTDECK_OIDC_ISSUER": "https://sso.example.com", "FLIGHTDECK_OIDC_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "reading FLIGHTDECK_OIDC_CLIENT_SECRET_FILE"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig("serve", nil, env(tc.env), io.Discard)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "0idc-s3cret")
		})
	}
}

func TestConfigReadsTrustedProxies(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig("serve", []string{"--trusted-proxies", "10.0.0.0/8, 192.168.1.7"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Len(t, cfg.TrustedProxies, 2)
	require.Equal(t, "10.0.0.0/8", cfg.TrustedProxies[0].String())
	require.Equal(t, "192.168.1.7/32", cfg.TrustedProxies[1].String())
}
