package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
)

// Config is everything the server reads at start, from flags and
// FLIGHTDECK_* environment variables; flags win over the environment.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string
	// DatabaseURL points at an external Postgres; empty starts the embedded one.
	DatabaseURL string
	// DataDir keeps the embedded database.
	DataDir string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// ShutdownTimeout bounds each step of an orderly shutdown.
	ShutdownTimeout time.Duration
	// MetricsRetention is how long metric windows are kept.
	MetricsRetention time.Duration
	// AdminToken, when set, is made a working admin API token at start, so
	// that a fresh installation can be driven by scripts from the first
	// minute.
	AdminToken string
	// AdminPassword, when set, is the password of the "admin" user, who is
	// created if missing. On the embedded database with none set, a
	// password is generated for a new admin and printed once.
	AdminPassword string
	// AnalysisInterval is how often the engine judges a phase.
	AnalysisInterval time.Duration
	// Demo is auto, on or off: whether a demo is seeded into an empty
	// database (auto: only on the embedded one) and kept moving.
	Demo string
	// PublicURL is the address people use to reach the server; https
	// there makes the pages' cookies Secure with the __Host- prefix.
	PublicURL string
	// OIDC is single sign-on through an OpenID Connect provider, nil
	// unless an issuer is configured.
	OIDC *api.OIDCConfig
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For names the client; without any, the client is the
	// connection's peer, so nobody can choose the address the audit log
	// records.
	TrustedProxies []*net.IPNet
}

// LogValue prints the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	db := "embedded (" + c.DataDir + ")"
	if c.DatabaseURL != "" {
		db = maskDatabaseURL(c.DatabaseURL)
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("database", db),
		slog.String("data_dir", c.DataDir),
		slog.String("log_level", c.LogLevel),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("metrics_retention", c.MetricsRetention),
		slog.String("admin_token", maskToken(c.AdminToken)),
		slog.Bool("admin_password_set", c.AdminPassword != ""),
		slog.Duration("analysis_interval", c.AnalysisInterval),
		slog.String("demo", c.Demo),
		slog.String("public_url", c.PublicURL),
		slog.String("oidc", describeOIDC(c.OIDC)),
	)
}

// describeOIDC says which provider single sign-on uses, without its secret.
func describeOIDC(o *api.OIDCConfig) string {
	if o == nil {
		return "off"
	}
	return fmt.Sprintf("issuer %s, client %s, secret set %t, %d role rules on claim %s",
		o.Issuer, o.ClientID, o.ClientSecret != "", len(o.RoleMap.Rules), o.RoleMap.Claim)
}

// oidcSettings are the single sign-on settings as given.
type oidcSettings struct {
	issuer, clientID, clientSecret, clientSecretFile, roleMap, roleMapFile, name, scopes string
}

// parseOIDC checks the single sign-on settings and returns the
// configuration, nil when no issuer is set.
func parseOIDC(o oidcSettings, publicURL string) (*api.OIDCConfig, error) {
	for _, f := range []struct {
		value      *string
		path, flag string
	}{
		{&o.clientSecret, o.clientSecretFile, "--oidc-client-secret-file"},
		{&o.roleMap, o.roleMapFile, "--oidc-role-map-file"},
	} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.flag, err)
		}
		*f.value = strings.TrimSpace(string(b))
	}
	if o.issuer == "" {
		if o.clientID != "" || o.clientSecret != "" || o.roleMap != "" {
			return nil, errors.New("single sign-on settings are given without an issuer: set --oidc-issuer (FLIGHTDECK_OIDC_ISSUER), such as https://sso.example.com/realms/platform")
		}
		return nil, nil
	}
	u, err := url.Parse(o.issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid OIDC issuer %q: want the provider's issuer URL, such as https://sso.example.com/realms/platform", o.issuer)
	}
	if o.clientID == "" {
		return nil, errors.New("single sign-on needs the client id Flightdeck is registered with at the provider: set --oidc-client-id (FLIGHTDECK_OIDC_CLIENT_ID)")
	}
	// The value is a secret, so errors describe it without repeating it.
	if o.clientSecret == "" {
		return nil, errors.New("single sign-on needs the client secret: set FLIGHTDECK_OIDC_CLIENT_SECRET or FLIGHTDECK_OIDC_CLIENT_SECRET_FILE")
	}
	if publicURL == "" {
		return nil, fmt.Errorf("single sign-on needs --public-url (FLIGHTDECK_PUBLIC_URL): the provider sends people back to the public URL followed by %s", api.OIDCCallbackPath)
	}
	roles, err := api.ParseRoleMap([]byte(o.roleMap))
	if err != nil {
		return nil, fmt.Errorf("FLIGHTDECK_OIDC_ROLE_MAP: %w", err)
	}
	return &api.OIDCConfig{
		Issuer: o.issuer, ClientID: o.clientID, ClientSecret: o.clientSecret,
		Scopes:      strings.Fields(strings.ReplaceAll(o.scopes, ",", " ")),
		RedirectURL: publicURL + api.OIDCCallbackPath, Name: o.name, RoleMap: roles,
	}, nil
}

// maskToken shows only the part of a token that token lists show too,
// enough to tell which one is configured.
func maskToken(s string) string {
	if s == "" {
		return ""
	}
	return auth.Prefix(s) + "…"
}

var keywordPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// maskDatabaseURL hides the password in a URL or keyword/value connection string.
func maskDatabaseURL(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(unparseable connection string)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return keywordPassword.ReplaceAllString(s, "${1}xxxxx")
}

// envOr returns the environment variable, or the contents of the file named
// by its _FILE variant (for secrets mounted as files), or fallback.
func envOr(getenv func(string) string, name, fallback string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	if path := getenv(name + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading %s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return fallback, nil
}

// parseConfig reads the configuration of a subcommand from its flags and
// the environment.
func parseConfig(name string, args []string, getenv func(string) string, output io.Writer) (Config, error) {
	return parseConfigWith(name, args, getenv, output, nil)
}

// parseConfigWith is parseConfig for a subcommand with flags of its own,
// which extra registers on the flag set.
func parseConfigWith(name string, args []string, getenv func(string) string, output io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	var c Config
	var errs []error
	get := func(env, fallback string) string {
		v, err := envOr(getenv, env, fallback)
		errs = append(errs, err)
		return v
	}
	fs := flag.NewFlagSet("flightdeck "+name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Addr, "addr", get("FLIGHTDECK_ADDR", ":8080"), "HTTP listen address (FLIGHTDECK_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", get("DATABASE_URL", ""), "Postgres connection string; empty starts the embedded database (DATABASE_URL, DATABASE_URL_FILE)")
	fs.StringVar(&c.DataDir, "data-dir", get("FLIGHTDECK_DATA_DIR", "./.flightdeck"), "directory of the embedded database (FLIGHTDECK_DATA_DIR)")
	fs.StringVar(&c.LogLevel, "log-level", get("FLIGHTDECK_LOG_LEVEL", "info"), "debug, info, warn or error (FLIGHTDECK_LOG_LEVEL)")
	fs.StringVar(&c.AdminToken, "admin-token", get("FLIGHTDECK_ADMIN_TOKEN", ""), "API token made an admin token at start; prefer the environment, which other users cannot read (FLIGHTDECK_ADMIN_TOKEN, FLIGHTDECK_ADMIN_TOKEN_FILE)")
	fs.StringVar(&c.AdminPassword, "admin-password", get("FLIGHTDECK_ADMIN_PASSWORD", ""), "password of the admin user, created if missing; prefer the environment or a file (FLIGHTDECK_ADMIN_PASSWORD, FLIGHTDECK_ADMIN_PASSWORD_FILE)")
	fs.StringVar(&c.Demo, "demo", get("FLIGHTDECK_DEMO", "auto"), "seed demo apps and runs into an empty database and keep them moving: auto (only on the embedded database), on or off (FLIGHTDECK_DEMO)")
	var proxies string
	fs.StringVar(&proxies, "trusted-proxies", get("FLIGHTDECK_TRUSTED_PROXIES", ""), "comma-separated networks of reverse proxies (such as 10.0.0.0/8) whose X-Forwarded-For names the client (FLIGHTDECK_TRUSTED_PROXIES)")
	fs.StringVar(&c.PublicURL, "public-url", get("FLIGHTDECK_PUBLIC_URL", ""), "address people reach Flightdeck at, such as https://deploy.example.com; https makes cookies Secure (FLIGHTDECK_PUBLIC_URL)")
	var sso oidcSettings
	fs.StringVar(&sso.issuer, "oidc-issuer", get("FLIGHTDECK_OIDC_ISSUER", ""), "issuer URL of the OpenID Connect provider for single sign-on, such as https://sso.example.com/realms/platform; empty turns single sign-on off (FLIGHTDECK_OIDC_ISSUER)")
	fs.StringVar(&sso.clientID, "oidc-client-id", get("FLIGHTDECK_OIDC_CLIENT_ID", ""), "client id Flightdeck is registered with at the provider (FLIGHTDECK_OIDC_CLIENT_ID)")
	fs.StringVar(&sso.clientSecret, "oidc-client-secret", get("FLIGHTDECK_OIDC_CLIENT_SECRET", ""), "client secret; prefer the environment or a file (FLIGHTDECK_OIDC_CLIENT_SECRET, FLIGHTDECK_OIDC_CLIENT_SECRET_FILE)")
	fs.StringVar(&sso.clientSecretFile, "oidc-client-secret-file", "", "file holding the client secret")
	fs.StringVar(&sso.roleMap, "oidc-role-map", get("FLIGHTDECK_OIDC_ROLE_MAP", ""), `JSON mapping a claim's values to roles, such as {"claim": "groups", "rules": [{"value": "sre", "app": "*", "env": "*", "role": "deployer"}, {"value": "platform-admins", "admin": true}]}; without a matching rule a person is a viewer (FLIGHTDECK_OIDC_ROLE_MAP, FLIGHTDECK_OIDC_ROLE_MAP_FILE)`)
	fs.StringVar(&sso.roleMapFile, "oidc-role-map-file", "", "file holding the role map JSON")
	fs.StringVar(&sso.name, "oidc-name", get("FLIGHTDECK_OIDC_NAME", ""), `provider name on the sign-in button, such as Keycloak (FLIGHTDECK_OIDC_NAME, default "single sign-on")`)
	fs.StringVar(&sso.scopes, "oidc-scopes", get("FLIGHTDECK_OIDC_SCOPES", ""), "scopes asked for, space or comma separated (FLIGHTDECK_OIDC_SCOPES, default openid email profile groups)")
	interval := get("FLIGHTDECK_ANALYSIS_INTERVAL", "15s")
	fs.Func("analysis-interval", "how often the engine judges a phase (FLIGHTDECK_ANALYSIS_INTERVAL, default 15s)", func(v string) error {
		interval = v
		return nil
	})
	timeout := get("FLIGHTDECK_SHUTDOWN_TIMEOUT", "15s")
	retention := get("FLIGHTDECK_METRICS_RETENTION", "720h")
	fs.Func("metrics-retention", "how long metric windows are kept (FLIGHTDECK_METRICS_RETENTION, default 720h)", func(v string) error {
		retention = v
		return nil
	})
	fs.Func("shutdown-timeout", "time allowed for each shutdown step (FLIGHTDECK_SHUTDOWN_TIMEOUT, default 15s)", func(s string) error {
		timeout = s
		return nil
	})
	if extra != nil {
		extra(fs)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	d, err := time.ParseDuration(timeout)
	if err != nil || d <= 0 {
		return Config{}, fmt.Errorf("invalid shutdown timeout %q: want a positive duration such as 15s", timeout)
	}
	c.ShutdownTimeout = d
	r, err := time.ParseDuration(retention)
	if err != nil || r < time.Hour {
		return Config{}, fmt.Errorf("invalid metrics retention %q: want a duration of at least 1h, such as 720h", retention)
	}
	c.MetricsRetention = r
	ai, err := time.ParseDuration(interval)
	if err != nil || ai < 500*time.Millisecond || ai > 10*time.Minute {
		return Config{}, fmt.Errorf("invalid analysis interval %q: want a duration from 500ms to 10m, such as 15s", interval)
	}
	c.AnalysisInterval = ai
	switch c.Demo {
	case "auto", "on", "off":
	default:
		return Config{}, fmt.Errorf("invalid demo setting %q: want auto, on or off", c.Demo)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("invalid public URL %q: want an address such as https://deploy.example.com", c.PublicURL)
		}
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
	if c.OIDC, err = parseOIDC(sso, c.PublicURL); err != nil {
		return Config{}, err
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		_, network, err := net.ParseCIDR(p)
		if err != nil {
			return Config{}, fmt.Errorf("invalid trusted proxy %q: want an address or network such as 10.0.0.0/8", p)
		}
		c.TrustedProxies = append(c.TrustedProxies, network)
	}
	// The value is a secret, so the error describes it without repeating it.
	if c.AdminPassword != "" {
		if err := auth.CheckPasswordRules(c.AdminPassword); err != nil {
			return Config{}, fmt.Errorf("FLIGHTDECK_ADMIN_PASSWORD is not usable: %w", err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return Config{}, err
	}
	if c.Addr == "" {
		return Config{}, errors.New("the listen address must not be empty")
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		return Config{}, errors.New("set DATABASE_URL, or a data directory for the embedded database")
	}
	// The value is a secret, so the error describes it without repeating it.
	if c.AdminToken != "" && auth.CheckFormat(c.AdminToken) != nil {
		return Config{}, fmt.Errorf("FLIGHTDECK_ADMIN_TOKEN is not a Flightdeck API token: %s, such as fdk_$(openssl rand -hex 32)", auth.ErrTokenFormat)
	}
	return c, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("invalid log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
