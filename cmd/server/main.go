// Command server runs Flightdeck: the HTTP server, the engine and, when no
// DATABASE_URL is given, a private PostgreSQL cluster in its data directory.
//
// Usage:
//
//	server [serve] [flags]   run Flightdeck (default)
//	server migrate [flags]   apply database migrations and exit
//	server version           print the version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/promql"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
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
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate or version", cmd)
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
	return serve(ctx, cfg, db.pool, logger)
}

// serve runs the HTTP server and background services until ctx ends, then
// shuts them down in order: HTTP first, then the services that write.
func serve(ctx context.Context, cfg Config, pool *pgxpool.Pool, logger *slog.Logger) error {
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
	eng, err := engine.New(engine.Config{
		Store:    st,
		Drivers:  drivers,
		Analyzer: &analysis.Analyzer{Sources: metricSources(st, fleet)},
		Logger:   logger,
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

	handler := api.New(api.Config{Logger: logger, Readiness: st, Catalog: st, Ingest: push.NewIngester(st, nil), Gatherer: reg, Registerer: reg})

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
	logger.InfoContext(ctx, "flightdeck is ready", slog.String("url", publicURL(ln.Addr())))

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
}

func (d *database) close(timeout time.Duration) {
	if d.pool != nil {
		d.pool.Close()
	}
	if d.cluster != nil {
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
