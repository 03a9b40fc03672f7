// Command server runs Flightdeck: the HTTP server, the engine and, when no
// DATABASE_URL is given, a private PostgreSQL cluster in its data directory.
//
// Usage:
//
//	server [serve] [flags]   run Flightdeck (default)
//	server migrate [flags]   apply database migrations and exit
//	server token create --name NAME --scopes SCOPES [--expires 720h] [flags]
//	                         create an API token and print it
//	server version           print the version
//
// When FLIGHTDECK_ADMIN_TOKEN (or FLIGHTDECK_ADMIN_TOKEN_FILE) is set, serve
// makes it a working admin API token named bootstrap-admin, replacing the
// one made from an earlier value.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/promql"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/demo"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/nginx"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/webhook"
	"github.com/flightdeckhq/flightdeck/internal/flags/cache"
	"github.com/flightdeckhq/flightdeck/internal/flags/rollout"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/notify"
	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "flightdeck: %s\n", oneLine(err.Error()))
		os.Exit(1)
	}
}

// run is the whole program; main only turns its error into an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "flightdeck", version())
		return nil
	case "serve", "migrate":
	case "token":
		return runToken(ctx, args, stdout, stderr, getenv)
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate, token or version", cmd)
	}

	cfg, err := parseConfig(cmd, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))
	logger.InfoContext(ctx, "starting flightdeck", slog.String("command", cmd), slog.String("version", version()), slog.Any("config", cfg))

	db, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.close(cfg.ShutdownTimeout)

	if err := store.Migrate(ctx, db.pool, logger); err != nil {
		return err
	}
	if cmd == "migrate" {
		logger.InfoContext(ctx, "database is up to date")
		return nil
	}
	if cfg.AdminToken != "" {
		if err := ensureBootstrapToken(ctx, store.New(db.pool, store.Options{}), cfg.AdminToken, logger); err != nil {
			return err
		}
	}
	st := store.New(db.pool, store.Options{})
	outcome, password, err := ensureAdminPassword(ctx, st, cfg.AdminPassword, db.cluster != nil)
	if err != nil {
		return fmt.Errorf("setting up the admin password: %w", err)
	}
	logAdminPassword(ctx, logger, outcome, password)
	return serve(ctx, cfg, db, logger, password)
}

// serve runs the HTTP server and background services until ctx ends, then
// shuts them down in order: HTTP first, then the services that write.
func serve(ctx context.Context, cfg Config, db *database, logger *slog.Logger, adminPassword string) error {
	pool := db.pool
	notifier := store.NewNotifier(pool, store.NotifierConfig{Logger: logger})
	if err := notifier.Start(ctx); err != nil {
		return fmt.Errorf("starting notifier: %w", err)
	}
	defer notifier.Stop()
	st := store.New(pool, store.Options{Notifier: notifier})

	// The simulator is built in: a modelled fleet for demos and trials,
	// so Flightdeck runs end to end with no deploy system attached.
	fleet := simulator.New(simulator.Options{Seed: time.Now().UnixNano()})
	drivers := driver.NewRegistry()
	drivers.Register(simulator.Type, fleet)
	// nginx moves real traffic on a single server by rewriting include
	// files and reloading nginx.
	drivers.Register(nginx.Type, nginx.New(nginx.Options{Logger: logger}))
	// webhook POSTs signed desired states to any deploy system; delivery
	// state is kept in the database so every replica sees completions.
	drivers.Register(webhook.Type, webhook.New(webhook.Options{Store: st, Logger: logger}))
	eng, err := engine.New(engine.Config{
		Store:    st,
		Drivers:  drivers,
		Analyzer: &analysis.Analyzer{Sources: metricSources(st, fleet), Recorder: st},
		Logger:   logger,

		AnalysisInterval: cfg.AnalysisInterval,
	})
	if err != nil {
		return fmt.Errorf("creating engine: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		store.NewPoolCollector(pool),
	)
	reg.MustRegister(eng.Collectors()...)
	if err := eng.Start(ctx); err != nil {
		return fmt.Errorf("starting engine: %w", err)
	}
	// Stopped after the HTTP server (deferred calls run last first) and
	// before the notifier and the pool.
	defer eng.Stop()

	if cfg.Demo == "on" || (cfg.Demo == "auto" && db.cluster != nil) {
		stopDemo := startDemo(ctx, demo.Config{Store: st, Runs: eng, Logger: logger, DemoPassword: adminPassword})
		// Stopped before the engine, which its runs go through.
		defer stopDemo()
	}

	// Outgoing notifications: run and flag events to subscribed webhooks,
	// Slack and Teams, signed and retried; each event is sent once across
	// replicas.
	notifications := notify.New(st, notify.Config{PublicURL: cfg.PublicURL, Logger: logger})
	if err := notifications.Start(ctx); err != nil {
		return fmt.Errorf("starting notifications: %w", err)
	}
	defer notifications.Stop()

	// Approval gates nobody answered within their environment's timeout are
	// rejected or escalated.
	approvalTimeouts := engine.NewApprovalTimeouts(eng, time.Minute)
	approvalTimeouts.Start(ctx)
	defer approvalTimeouts.Stop()

	// Guarded flag rollouts step through their percentages judged by the
	// same decision as runs; each due check is leased to one replica.
	guard := rollout.New(st, rollout.Config{Interval: cfg.AnalysisInterval, Logger: logger})
	if err := guard.Start(ctx); err != nil {
		return fmt.Errorf("starting flag rollouts: %w", err)
	}
	defer guard.Stop()

	retention := store.NewRetention(st, store.RetentionConfig{MetricWindows: cfg.MetricsRetention, Logger: logger})
	if err := retention.Start(ctx); err != nil {
		return fmt.Errorf("starting retention: %w", err)
	}
	defer retention.Stop()

	// The live hub streams page updates over websockets; it hears every
	// replica's run changes through Postgres, so any replica serves any
	// viewer.
	hub, err := live.NewHub(live.HubConfig{
		Pool: pool, Feed: api.NewFeed(st), Logger: logger, Registerer: reg,
		CheckOrigin: sameOrigin(cfg.PublicURL),
	})
	if err != nil {
		return fmt.Errorf("creating the live hub: %w", err)
	}
	if err := hub.Start(ctx); err != nil {
		return fmt.Errorf("starting the live hub: %w", err)
	}
	defer hub.Stop()

	// Expired sessions are removed by the retention pass, not by a
	// goroutine of the session store.
	// Feature flags are evaluated from a per-replica cache of compiled
	// snapshots, kept current through Postgres NOTIFY; evaluations never
	// wait on the database.
	flagCache := cache.New(pool, st, cache.Config{Logger: logger})
	if err := flagCache.Start(ctx); err != nil {
		return fmt.Errorf("loading feature flags: %w", err)
	}
	defer flagCache.Stop()

	// Links to approvals for chat messages are signed with a key every
	// replica shares.
	linkKey, err := st.SigningKey(ctx, "approval-links")
	if err != nil {
		return err
	}
	sessionStore := pgxstore.NewWithCleanupInterval(pool, 0)
	handler := api.New(api.Config{
		Logger: logger, Readiness: st, Resources: st, Tokens: st, TokenAdmin: st,
		Runs: eng, RunStore: st, Ingest: push.NewIngester(st, nil), Gatherer: reg, Registerer: reg,
		Sessions: api.NewSessionManager(sessionStore, secureCookies(cfg.PublicURL)), Members: st, Pages: st,
		SecureCookies: secureCookies(cfg.PublicURL), Live: hub, Flags: flagCache,
		ApprovalLinks: api.NewApprovalLinks(linkKey, cfg.PublicURL, nil),
		OIDC:          cfg.OIDC, TrustedProxies: cfg.TrustedProxies,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "flightdeck is ready", slog.String("url", cmp.Or(cfg.PublicURL, publicURL(ln.Addr()))))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving http: %w", err)
	case <-ctx.Done():
	}
	logger.InfoContext(ctx, "shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.WarnContext(ctx, "http server did not stop cleanly", slog.String("error", err.Error()))
	}
	return nil
}

// database is the pool and, when Flightdeck runs its own, the cluster.
type database struct {
	pool    *pgxpool.Pool
	cluster *pgcluster.Cluster
	logger  *slog.Logger
	// keepCluster leaves the embedded PostgreSQL running at close, because
	// it was running before this process, serving another one.
	keepCluster bool
}

func (d *database) close(timeout time.Duration) {
	if d.pool != nil {
		d.pool.Close()
	}
	if d.cluster != nil && !d.keepCluster {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := d.cluster.Stop(ctx); err != nil {
			d.logger.Error("stopping embedded database", slog.String("error", err.Error()))
		}
	}
}

// openDatabase connects to DATABASE_URL, or starts the embedded cluster.
func openDatabase(ctx context.Context, cfg Config, logger *slog.Logger) (*database, error) {
	db := &database{logger: logger}
	connString := cfg.DatabaseURL
	if connString == "" {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("resolving data directory: %w", err)
		}
		db.cluster, err = pgcluster.Start(ctx, pgcluster.Config{DataDir: dir, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("starting embedded database: %w", err)
		}
		connString = db.cluster.ConnString("flightdeck")
	}
	pcfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		db.close(cfg.ShutdownTimeout)
		return nil, errors.New("DATABASE_URL is not a valid Postgres connection string (want postgres://user:password@host:5432/dbname)")
	}
	where := describeTarget(pcfg)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err == nil {
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = pool.Ping(pingCtx)
		cancel()
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		if db.cluster != nil {
			db.close(cfg.ShutdownTimeout)
		}
		return nil, fmt.Errorf("cannot connect to the database at %s: %s", where, rootCause(err))
	}
	db.pool = pool
	return db, nil
}

// describeTarget names where a connection goes, never with the password.
func describeTarget(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	if strings.HasPrefix(c.Host, "/") {
		return fmt.Sprintf("unix socket %s (database %s)", c.Host, c.Database)
	}
	return fmt.Sprintf("%s (database %s)", net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), c.Database)
}

// rootCause keeps the innermost, most specific part of a connection error.
func rootCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return oneLine(msg)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// publicURL turns a listen address into a URL a person can open.
func publicURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// version reports the module version or VCS revision the binary was built from.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// metricSources returns the metric source each environment is configured
// with: the simulated fleet, samples pushed through the API, or Prometheus.
func metricSources(st *store.Store, fleet *simulator.Fleet) analysis.SourceFor {
	return func(env store.Environment) (analysis.Source, error) {
		var cfg struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(env.Metrics, &cfg); err != nil {
			return nil, fmt.Errorf("reading the metrics configuration of %s: %w", env.Name, err)
		}
		switch cfg.Type {
		case "simulator":
			return analysis.SimulatorSource{Fleet: fleet}, nil
		case push.SourceType:
			return push.NewSource(st), nil
		case "prometheus":
			pc, err := promql.ParseConfig(env.Metrics)
			if err != nil {
				return nil, fmt.Errorf("the Prometheus settings of %s: %w", env.Name, err)
			}
			return promql.New(pc)
		}
		return nil, fmt.Errorf("metric source %q of environment %s is not available", cfg.Type, env.Name)
	}
}

// adminUsername is the user that owns the tokens made at start and on the
// command line: whoever controls the server's configuration or its
// database administers it.
const adminUsername = "admin"

// bootstrapTokenName names the admin token made from FLIGHTDECK_ADMIN_TOKEN.
const bootstrapTokenName = "bootstrap-admin"

// unusableTokenError says why FLIGHTDECK_ADMIN_TOKEN cannot become the
// bootstrap token. The server then starts without it: the other tokens
// still work, and refusing to start would turn a revoked token into an
// outage.
type unusableTokenError struct{ reason string }

func (e *unusableTokenError) Error() string { return e.reason }

// ensureBootstrapToken makes plaintext a working admin token named
// bootstrap-admin, owned by the admin user, who is created if missing. The
// same value at every start leaves the token as it is; a new value revokes
// the token made from the old one, so rotating the secret takes a restart.
// A value that was revoked is never accepted again, since a revoked token
// may have leaked.
func ensureBootstrapToken(ctx context.Context, st *store.Store, plaintext string, logger *slog.Logger) error {
	outcome, err := bootstrapToken(ctx, st, plaintext)
	var unusable *unusableTokenError
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		// The hash is stored, but not as a token that works: the value
		// was revoked or has expired.
		logger.WarnContext(ctx, "FLIGHTDECK_ADMIN_TOKEN is ignored",
			slog.String("reason", "it was revoked or has expired, and such a token never works again; set a new one"))
		return nil
	case errors.As(err, &unusable):
		logger.WarnContext(ctx, "FLIGHTDECK_ADMIN_TOKEN is ignored", slog.String("reason", unusable.reason))
		return nil
	case err != nil:
		return fmt.Errorf("setting up the admin token from FLIGHTDECK_ADMIN_TOKEN: %w", err)
	}
	logger.InfoContext(ctx, "admin token is ready", slog.String("name", bootstrapTokenName),
		slog.String("prefix", auth.Prefix(plaintext)), slog.String("outcome", outcome))
	return nil
}

// bootstrapToken does the work of ensureBootstrapToken in one
// transaction, so that the old token is never revoked without the new one
// in place. outcome is kept, created or replaced.
func bootstrapToken(ctx context.Context, st *store.Store, plaintext string) (outcome string, err error) {
	hash := auth.Hash(plaintext)
	err = st.WithTx(ctx, func(tx *store.Store) error {
		// The upsert locks the admin user's row until commit, so replicas
		// starting together take turns here, and the later ones find the
		// token the first one made.
		user, err := tx.EnsureAdminUser(ctx, adminUsername)
		if err != nil {
			return fmt.Errorf("ensuring the %s user: %w", adminUsername, err)
		}
		if user.DisabledAt != nil {
			return &unusableTokenError{reason: fmt.Sprintf("the %s user, who would own it, is disabled", adminUsername)}
		}
		existing, err := tx.TokenByHash(ctx, hash)
		switch {
		case err == nil && existing.Name == bootstrapTokenName:
			outcome = "kept"
			return nil
		case err == nil:
			return &unusableTokenError{reason: fmt.Sprintf("it is already the token %q; give the bootstrap admin a token of its own", existing.Name)}
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("looking up the token: %w", err)
		}
		outcome = "created"
		old, err := tx.TokenByName(ctx, bootstrapTokenName)
		switch {
		case err == nil:
			if err := tx.RevokeToken(ctx, old.ID); err != nil {
				return fmt.Errorf("revoking the previous %s token: %w", bootstrapTokenName, err)
			}
			outcome = "replaced"
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("looking up the previous %s token: %w", bootstrapTokenName, err)
		}
		_, err = tx.CreateToken(ctx, store.NewToken{
			Name: bootstrapTokenName, Hash: hash, Prefix: auth.Prefix(plaintext),
			Scopes: []auth.Scope{auth.ScopeAdmin}, UserID: user.ID,
		})
		return err
	})
	return outcome, err
}

// tokenUsage is the synopsis of the token command.
const tokenUsage = "server token create --name NAME --scopes SCOPES [--expires 720h] [--apps A,B] [--environments E,F]"

// tokenRequest holds the flags of `server token create`.
type tokenRequest struct {
	name, scopes, expires, apps, environments string
}

func (r *tokenRequest) register(fs *flag.FlagSet) {
	fs.StringVar(&r.name, "name", "", "name of the token, unique among tokens not revoked (required)")
	fs.StringVar(&r.scopes, "scopes", "", "comma-separated scopes: read, deploy, approve, metrics, flags, admin (required)")
	fs.StringVar(&r.expires, "expires", "", "lifetime, such as 720h or 90d; empty for a token that does not expire")
	fs.StringVar(&r.apps, "apps", "", "comma-separated slugs of the only apps the token may act on; empty for all")
	fs.StringVar(&r.environments, "environments", "", "comma-separated names of the only environments the token may act on; empty for all")
}

// newToken validates the request, before any database is opened, into the
// token to store without its hash and prefix, and its lifetime (0 for
// none).
func (r *tokenRequest) newToken() (store.NewToken, time.Duration, error) {
	if r.name == "" {
		return store.NewToken{}, 0, errors.New("token create needs --name: " + tokenUsage)
	}
	if err := auth.CheckName(r.name); err != nil {
		return store.NewToken{}, 0, fmt.Errorf("invalid --name: %w", err)
	}
	if strings.TrimSpace(r.scopes) == "" {
		return store.NewToken{}, 0, errors.New("token create needs --scopes, one or more of read, deploy, approve, metrics, flags, admin: " + tokenUsage)
	}
	scopes, err := auth.ParseScopes(strings.Split(r.scopes, ","))
	if err != nil {
		return store.NewToken{}, 0, err
	}
	lifetime, err := parseLifetime(r.expires)
	if err != nil {
		return store.NewToken{}, 0, err
	}
	apps, envs := splitList(r.apps), splitList(r.environments)
	if err := auth.CheckLimits(apps, envs); err != nil {
		return store.NewToken{}, 0, err
	}
	return store.NewToken{Name: r.name, Scopes: scopes, Apps: apps, Environments: envs}, lifetime, nil
}

// parseLifetime reads --expires: a Go duration, or whole days such as 90d,
// since token lifetimes are mostly thought of in days.
func parseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
		if n > 100*365 {
			err = errors.New("too long")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid --expires %q: want a positive duration such as 720h or 90d", s)
	}
	return d, nil
}

// splitList splits a comma-separated flag value; empty is no entries.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// runToken runs `server token create`: it opens and migrates the database
// as serve does, stores a new token owned by the admin user and prints the
// token, and only the token, on stdout, so a script can capture it. The
// token is shown this once; Flightdeck keeps only its hash.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("the token command needs a subcommand: " + tokenUsage)
	}
	switch args[0] {
	case "create":
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stderr, "usage: "+tokenUsage)
		return nil
	default:
		return fmt.Errorf("unknown token command %q: want create", args[0])
	}
	var req tokenRequest
	cfg, err := parseConfigWith("token create", args[1:], getenv, stderr, req.register)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	nt, lifetime, err := req.newToken()
	if err != nil {
		return err
	}

	// Stdout carries the token alone, so the log goes to stderr, and only
	// what needs attention: a script should not have to sift through it.
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: max(level, slog.LevelWarn)}))
	// An embedded database already running belongs to a serving
	// Flightdeck; stopping it at exit would pull it from under that server.
	keep := cfg.DatabaseURL == "" && postmasterRunning(cfg.DataDir)
	db, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	db.keepCluster = keep
	defer db.close(cfg.ShutdownTimeout)
	if err := store.Migrate(ctx, db.pool, logger); err != nil {
		return err
	}

	st := store.New(db.pool, store.Options{})
	user, err := st.EnsureAdminUser(ctx, adminUsername)
	if err != nil {
		return fmt.Errorf("ensuring the %s user: %w", adminUsername, err)
	}
	plaintext, prefix, hash, err := auth.Generate()
	if err != nil {
		return fmt.Errorf("generating a token: %w", err)
	}
	nt.Hash, nt.Prefix, nt.UserID = hash, prefix, user.ID
	if lifetime > 0 {
		expires := st.Now().Add(lifetime)
		nt.ExpiresAt = &expires
	}
	tok, err := st.CreateToken(ctx, nt)
	if errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("a token named %q already exists: revoke it or choose another name", nt.Name)
	}
	if err != nil {
		return fmt.Errorf("storing the token: %w", err)
	}

	fmt.Fprintln(stdout, plaintext)
	expiry := "never expires"
	if tok.ExpiresAt != nil {
		expiry = "expires " + tok.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "Created token %q (%s…) with scopes %s; it %s. It is shown only this once, so store it now.\n",
		tok.Name, tok.Prefix, strings.Join(auth.ScopeStrings(tok.Scopes), ","), expiry)
	return nil
}

// postmasterRunning reports whether a PostgreSQL server runs on the
// embedded cluster in dataDir, judged by the pid in its lock file.
func postmasterRunning(dataDir string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg", "postmaster.pid"))
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	// Signal 0 only checks that the process exists; EPERM means it does
	// but belongs to another user, as when PostgreSQL runs as postgres.
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// secureCookies reports whether people reach the server over TLS, so that
// its cookies must be Secure.
func secureCookies(publicURL string) bool {
	return strings.HasPrefix(publicURL, "https://")
}

// sameOrigin accepts websockets opened by pages of this server: the
// Origin must be the public URL when one is configured, or have the host
// the request was sent to.
func sameOrigin(publicURL string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return false
		}
		if publicURL != "" && origin == publicURL {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
}

// startDemo seeds the demo into an empty database and keeps its runs
// moving until the returned function is called. A demo that cannot be
// seeded is logged: it never stops the server.
func startDemo(ctx context.Context, cfg demo.Config) (stop func()) {
	// Seed logs what it seeded and how to sign in.
	if _, err := demo.Seed(ctx, cfg); err != nil {
		cfg.Logger.WarnContext(ctx, "the demo could not be seeded", slog.String("error", err.Error()))
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := demo.Loop(ctx, cfg); err != nil {
			cfg.Logger.WarnContext(ctx, "the demo stopped", slog.String("error", err.Error()))
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
