// Package cache keeps the compiled feature flags of every app and
// environment in the memory of one server replica, so that evaluations
// never wait on the database.
//
// The cache LISTENs on store.FlagsChannel on a connection of its own and
// rebuilds only the app and environment named by each notification. It
// reloads everything when the listening connection is (re)established and
// every ReloadInterval, so a notification lost while the connection was down
// costs latency, never correctness. One goroutine does every load in turn;
// a load always starts after the notification that asked for it arrived, so
// it sees at least the change that was announced, and a later load can never
// be overtaken by an earlier one.
//
// Snapshot, the hot path, reads one atomic pointer and one map: it never
// touches the database, takes no lock and allocates nothing, so flags keep
// evaluating from memory while Postgres is unreachable.
package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Loader reads what snapshots are built from; *store.Store implements it.
type Loader interface {
	// FlagConfigs returns the flag configuration of every environment when
	// appID is 0, of every environment of the app when envID is 0, and of
	// that one environment otherwise.
	FlagConfigs(ctx context.Context, appID, envID int64) ([]store.FlagConfig, error)
}

// Config tunes a Cache. The zero value is ready to use.
type Config struct {
	// ReloadInterval is how often everything is reloaded to cover lost
	// notifications. Default 30s.
	ReloadInterval time.Duration
	// LoadTimeout bounds one load from the database. Default 10s.
	LoadTimeout time.Duration
	// StartTimeout bounds how long Start waits for the first full load.
	// Default 15s.
	StartTimeout time.Duration
	// Logger receives load and connection failures. Default slog.Default().
	Logger *slog.Logger
}

// scopeKey names a snapshot the way SDKs ask for it.
type scopeKey struct{ app, env string }

// scopeIDs names a snapshot the way notifications do.
type scopeIDs struct{ app, env int64 }

// Cache serves flag snapshots from memory. Create it with New, then Start.
type Cache struct {
	pool   *pgxpool.Pool
	loader Loader
	cfg    Config
	logger *slog.Logger

	// snapshots is replaced as a whole on every change; readers never lock.
	snapshots atomic.Pointer[map[scopeKey]*flags.Snapshot]
	// names maps environment ids to their snapshot key; only the load loop
	// touches it.
	names map[int64]scopeIDsKey

	mu      sync.Mutex
	full    bool
	pending map[scopeIDs]struct{}
	wake    chan struct{}

	ready     chan struct{}
	readyOnce sync.Once

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// scopeIDsKey remembers which app an environment's snapshot belongs to.
type scopeIDsKey struct {
	appID int64
	key   scopeKey
}

// New returns a Cache that listens on the pool and loads through loader.
func New(pool *pgxpool.Pool, loader Loader, cfg Config) *Cache {
	cfg.ReloadInterval = cmp.Or(cfg.ReloadInterval, 30*time.Second)
	cfg.LoadTimeout = cmp.Or(cfg.LoadTimeout, 10*time.Second)
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, 15*time.Second)
	c := &Cache{
		pool:    pool,
		loader:  loader,
		cfg:     cfg,
		logger:  cmp.Or(cfg.Logger, slog.Default()),
		names:   map[int64]scopeIDsKey{},
		pending: map[scopeIDs]struct{}{},
		wake:    make(chan struct{}, 1),
		ready:   make(chan struct{}),
	}
	empty := map[scopeKey]*flags.Snapshot{}
	c.snapshots.Store(&empty)
	return c
}

// Snapshot returns the compiled flags of the app (by slug) in the
// environment (by name). It reads memory only, never the database; ok is
// false when the cache knows no such environment.
func (c *Cache) Snapshot(app, env string) (*flags.Snapshot, bool) {
	s, ok := (*c.snapshots.Load())[scopeKey{app, env}]
	return s, ok
}

// Ready is closed once the first full load has finished.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// Start begins listening and loading, and waits until the first full load
// has finished, at most StartTimeout; after that it stops the cache and
// returns an error.
func (c *Cache) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.done.Add(2)
	go func() {
		defer c.done.Done()
		c.listen(ctx)
	}()
	go func() {
		defer c.done.Done()
		c.loop(ctx)
	}()
	// Load at once, not only when the listener connects, so that a slow
	// connection does not delay the first snapshot.
	c.request(0, 0)
	timer := time.NewTimer(c.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		c.Stop()
		return fmt.Errorf("starting flag cache: %w", ctx.Err())
	case <-timer.C:
		c.Stop()
		return fmt.Errorf("starting flag cache: flags not loaded within %s", c.cfg.StartTimeout)
	}
}

// Stop ends listening and loading. It is safe to call twice; snapshots
// already loaded stay readable.
func (c *Cache) Stop() {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			c.done.Wait()
		}
	})
}

// request asks the load loop to rebuild the app's environment; app 0 means
// everything, environment 0 every environment of the app.
func (c *Cache) request(appID, envID int64) {
	c.mu.Lock()
	if appID == 0 {
		c.full = true
	} else {
		c.pending[scopeIDs{appID, envID}] = struct{}{}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// listen keeps a LISTEN open on a dedicated connection, reconnecting with
// backoff, and asks for a full reload after each (re)connect because
// notifications sent while it was down are lost.
func (c *Cache) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			pooled, err := c.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			// The connection carries a LISTEN; it never goes back to the pool.
			conn := pooled.Hijack()
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+store.FlagsChannel); err != nil {
				return err
			}
			backoff = 100 * time.Millisecond
			c.request(0, 0)
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return err
				}
				appID, envID, ok := store.ParseFlagScope(n.Payload)
				if !ok {
					c.logger.WarnContext(ctx, "ignoring malformed flag notification", slog.String("payload", n.Payload))
					continue
				}
				c.request(appID, envID)
			}
		}()
		if ctx.Err() != nil {
			return
		}
		c.logger.WarnContext(ctx, "listening for flag changes", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// loop does every load, one at a time: on request, on the reload interval,
// and again after a failure.
func (c *Cache) loop(ctx context.Context) {
	ticker := time.NewTicker(c.cfg.ReloadInterval)
	defer ticker.Stop()
	retry := 100 * time.Millisecond
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-ticker.C:
			c.mu.Lock()
			c.full = true
			c.mu.Unlock()
		case <-retryC:
			retryC = nil
		}
		c.mu.Lock()
		full, scopes := c.full, c.pending
		c.full, c.pending = false, map[scopeIDs]struct{}{}
		c.mu.Unlock()

		err := c.load(ctx, full, scopes)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.logger.WarnContext(ctx, "loading flags; serving the last snapshots", slog.String("error", err.Error()))
			// Ask again for what failed and try after a pause.
			c.mu.Lock()
			c.full = c.full || full
			for s := range scopes {
				c.pending[s] = struct{}{}
			}
			c.mu.Unlock()
			retryC = time.After(retry)
			retry = min(2*retry, 5*time.Second)
			continue
		}
		retry = 100 * time.Millisecond
	}
}

// load rebuilds everything (full) or the given scopes and publishes the
// result with one atomic swap.
func (c *Cache) load(ctx context.Context, full bool, scopes map[scopeIDs]struct{}) error {
	if !full && len(scopes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	if full {
		configs, err := c.loader.FlagConfigs(ctx, 0, 0)
		if err != nil {
			return fmt.Errorf("loading all flags: %w", err)
		}
		next := make(map[scopeKey]*flags.Snapshot, len(configs))
		names := make(map[int64]scopeIDsKey, len(configs))
		for _, cfg := range configs {
			k := scopeKey{cfg.AppSlug, cfg.EnvironmentName}
			next[k] = c.build(ctx, cfg)
			names[cfg.EnvironmentID] = scopeIDsKey{cfg.AppID, k}
		}
		c.names = names
		c.snapshots.Store(&next)
		c.readyOnce.Do(func() { close(c.ready) })
		return nil
	}
	current := *c.snapshots.Load()
	next := make(map[scopeKey]*flags.Snapshot, len(current))
	for k, v := range current {
		next[k] = v
	}
	var errs []error
	for s := range scopes {
		configs, err := c.loader.FlagConfigs(ctx, s.app, s.env)
		if err != nil {
			errs = append(errs, fmt.Errorf("loading flags of app %d environment %d: %w", s.app, s.env, err))
			continue
		}
		// Forget what the scope held, so that deleted environments go.
		for envID, n := range c.names {
			if n.appID == s.app && (s.env == 0 || envID == s.env) {
				delete(next, n.key)
				delete(c.names, envID)
			}
		}
		for _, cfg := range configs {
			k := scopeKey{cfg.AppSlug, cfg.EnvironmentName}
			next[k] = c.build(ctx, cfg)
			c.names[cfg.EnvironmentID] = scopeIDsKey{cfg.AppID, k}
		}
	}
	c.snapshots.Store(&next)
	return errors.Join(errs...)
}

// build compiles one environment's flags and logs those that are broken;
// a broken flag evaluates to an error result without taking the others down.
func (c *Cache) build(ctx context.Context, cfg store.FlagConfig) *flags.Snapshot {
	snap := flags.NewSnapshot(cfg.Entries, cfg.Segments)
	for key, err := range snap.Errors() {
		c.logger.WarnContext(ctx, "flag does not compile; it evaluates to an error",
			slog.String("app", cfg.AppSlug), slog.String("environment", cfg.EnvironmentName),
			slog.String("flag", key), slog.String("error", err.Error()))
	}
	return snap
}
