// Package dbtest gives each test its own freshly migrated Postgres database.
// It uses TEST_DATABASE_URL when set; otherwise it starts a private cluster
// from the machine's PostgreSQL binaries once per test process. Databases are
// cloned from a template that is migrated once, so each costs milliseconds.
package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"

	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

var (
	once     sync.Once
	base     pgtestdb.Config
	cluster  *pgcluster.Cluster
	dataDir  string
	setupErr error
)

// Main runs a package's tests and stops the private cluster afterwards.
// Call it from TestMain in every package that uses New.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = cluster.Stop(ctx)
		cancel()
		_ = os.RemoveAll(dataDir)
	}
	os.Exit(code)
}

func setup() {
	if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
		base, setupErr = configFromURL(url)
		return
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		setupErr = err
		return
	}
	dataDir, err = os.MkdirTemp("", "flightdeck-test-")
	if err != nil {
		setupErr = err
		return
	}
	// When tests run as root the cluster runs as the postgres user, which
	// must be able to enter the directory.
	if err := os.Chmod(dataDir, 0o755); err != nil {
		setupErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, setupErr = pgcluster.Start(ctx, pgcluster.Config{
		DataDir:   dataDir,
		Port:      port,
		Ephemeral: true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if setupErr != nil {
		return
	}
	base = pgtestdb.Config{
		DriverName: "pgx",
		Host:       "127.0.0.1",
		Port:       strconv.Itoa(port),
		User:       "flightdeck",
		Database:   "flightdeck",
		Options:    "sslmode=disable",
	}
}

func configFromURL(url string) (pgtestdb.Config, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return pgtestdb.Config{}, fmt.Errorf("parsing TEST_DATABASE_URL: %w", err)
	}
	return pgtestdb.Config{
		DriverName: "pgx",
		Host:       cfg.Host,
		Port:       strconv.Itoa(int(cfg.Port)),
		User:       cfg.User,
		Password:   cfg.Password,
		Database:   cfg.Database,
		Options:    "sslmode=disable",
	}, nil
}

// URL returns the connection string of a new migrated database that is
// dropped when the test passes.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		if errors.Is(setupErr, pgcluster.ErrNoBinaries) && os.Getenv("CI") != "true" {
			t.Skipf("no PostgreSQL available: %v", setupErr)
		}
		t.Fatalf("starting test database: %v", setupErr)
	}
	conf := pgtestdb.Custom(t, base, migrator{})
	return conf.URL()
}

// New returns a pool on a new migrated database, closed at the end of the test.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatalf("parsing test database url: %v", err)
	}
	cfg.MaxConns = 30
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connecting to test database: %v", err)
	}
	// Registered after pgtestdb's own cleanup, so it runs first and the
	// database can be dropped.
	t.Cleanup(pool.Close)
	return pool
}

// migrator prepares pgtestdb's template database with Flightdeck's migrations.
type migrator struct{}

func (migrator) Hash() (string, error) { return store.MigrationsHash() }

func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	return store.MigrateDB(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
}
