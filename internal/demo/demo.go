// Package demo fills an empty Flightdeck with apps, environments, people
// and deployment runs, so that someone trying it out sees every strategy
// at work in the first minute. Everything runs for real: the environments
// use the simulator driver and metric source, the runs are started through
// the engine and judged by the analysis like any other, and the only thing
// arranged on purpose is that one version is configured to fail more of
// its requests, so the rollback decision has something to catch.
//
// Seed runs once, on a database without apps. Loop then keeps the demo
// moving: every minute it starts a new run in each demo environment that
// has none in flight, with the next version number and the next strategy
// of the environment's rotation, and now and then a version with a fault.
package demo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Actor is who the demo's runs and changes are recorded as.
const Actor = "demo"

// Runs starts deployment runs; the engine implements it.
type Runs interface {
	CreateRun(ctx context.Context, n engine.NewRun) (store.Run, bool, error)
}

// Config is what Seed and Loop need.
type Config struct {
	// Store holds the demo's apps, environments and users.
	Store *store.Store
	// Runs starts the demo's runs: the engine the server runs.
	Runs Runs
	// Logger tells the person running the server what the demo did.
	// Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// DemoPassword, when set, becomes the password of the demo's users, so
	// that each role can be tried by signing in as its user. The server
	// passes the admin password it was given or generated. Without it the
	// demo users cannot sign in until an admin gives them a password.
	DemoPassword string
	// Interval is how often Loop looks for idle demo environments.
	// Default: one minute.
	Interval time.Duration
	// Rest is how long an environment keeps its finished run on show
	// before Loop starts the next one. Default: 30 seconds.
	Rest time.Duration
}

// withDefaults checks the configuration and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Store == nil || c.Runs == nil {
		return c, errors.New("the demo needs a store and the engine")
	}
	if c.DemoPassword != "" {
		if err := auth.CheckPasswordRules(c.DemoPassword); err != nil {
			return c, fmt.Errorf("the demo users' password is not usable: %w", err)
		}
	}
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.Rest = cmp.Or(c.Rest, 30*time.Second)
	return c, nil
}

// user is a demo user who holds one role on every environment.
type user struct {
	username, displayName string
	role                  auth.Role
}

// users are the people to try the roles as; the admin is the server's own.
var users = []user{
	{"release-manager", "Release manager (demo)", auth.RoleApprover},
	{"oncall", "On-call engineer (demo)", auth.RoleDeployer},
	{"viewer", "Viewer (demo)", auth.RoleViewer},
}

// Seed fills a database that has no apps with the demo and starts its
// runs. It reports false, changing nothing, when there are apps already,
// including when another server seeded the same database a moment before.
func Seed(ctx context.Context, cfg Config) (seeded bool, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return false, err
	}
	st := cfg.Store
	apps, err := st.ListApps(ctx, "", 1)
	if err != nil {
		return false, fmt.Errorf("looking for apps: %w", err)
	}
	if len(apps) > 0 {
		return false, nil
	}
	hash := ""
	if cfg.DemoPassword != "" {
		if hash, err = auth.HashPassword(cfg.DemoPassword); err != nil {
			return false, fmt.Errorf("hashing the demo users' password: %w", err)
		}
	}

	type pending struct {
		app store.App
		env store.Environment
		run runSpec
	}
	var runs []pending
	var created []string
	err = st.WithTx(ctx, func(tx *store.Store) error {
		runs, created = nil, nil
		for _, a := range catalog {
			app, err := tx.CreateApp(ctx, store.NewApp{Slug: a.slug, Name: a.name, Description: a.description})
			if err != nil {
				return fmt.Errorf("creating app %s: %w", a.slug, err)
			}
			envs := map[string]store.Environment{}
			for _, e := range a.envs {
				env, err := createEnvironment(ctx, tx, app, e)
				if err != nil {
					return err
				}
				envs[env.Name] = env
				if e.run != nil {
					runs = append(runs, pending{app: app, env: env, run: *e.run})
				}
			}
			if a.slug == flagsApp {
				if err := seedFlags(ctx, tx, app, envs); err != nil {
					return err
				}
			}
		}
		for _, u := range users {
			ok, err := createUser(ctx, tx, u, hash)
			if err != nil {
				return err
			}
			if ok {
				created = append(created, u.username)
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		// Another server seeded the database between the check and now.
		return false, nil
	}
	if err != nil {
		return false, err
	}

	for _, p := range runs {
		run, _, err := cfg.Runs.CreateRun(ctx, engine.NewRun{
			App: p.app, Environment: p.env, Version: p.run.version, Strategy: string(p.run.strategy),
			CreatedBy: Actor, IdempotencyKey: idempotencyKey(p.env, p.run.version),
		})
		if err != nil {
			return true, fmt.Errorf("starting the %s run of %s/%s: %w", p.run.strategy, p.app.Slug, p.env.Name, err)
		}
		cfg.Logger.DebugContext(ctx, "demo run started", slog.Int64("run_id", run.ID), slog.String("app", p.app.Slug),
			slog.String("environment", p.env.Name), slog.String("version", p.run.version), slog.String("strategy", string(p.run.strategy)))
	}
	signIn := "the demo users release-manager (approver), oncall (deployer) and viewer have no password yet; an admin can set one on the users page"
	switch {
	case len(created) == 0:
		signIn = "sign in as admin; the demo users existed already and were left as they are"
	case cfg.DemoPassword != "":
		signIn = "sign in as release-manager (approver), oncall (deployer) or viewer with the admin password to try each role"
	}
	cfg.Logger.InfoContext(ctx, "demo seeded", slog.Int("apps", len(catalog)), slog.Int("runs", len(runs)),
		slog.Any("users", created), slog.String("sign_in", signIn))
	return true, nil
}

// createEnvironment stores a demo environment with its stable version.
func createEnvironment(ctx context.Context, tx *store.Store, app store.App, e envSpec) (store.Environment, error) {
	faults := map[string]simulator.Fault{}
	if e.run != nil && e.run.fault != nil {
		faults[e.run.version] = *e.run.fault
	}
	driver, err := driverConfig(e, faults)
	if err != nil {
		return store.Environment{}, err
	}
	env, err := tx.CreateEnvironment(ctx, store.Environment{
		AppID: app.ID, Name: e.name, Tier: e.tier,
		Driver: driver, Metrics: json.RawMessage(`{"type": "simulator"}`),
		DefaultStrategy: string(e.rotation[0]), StrategyDefaults: strategyDefaults, Thresholds: thresholds,
		FailurePolicy: "rollback",
	})
	if err != nil {
		return store.Environment{}, fmt.Errorf("creating environment %s/%s: %w", app.Slug, e.name, err)
	}
	if err := tx.SetStableVersion(ctx, env.ID, e.stable); err != nil {
		return store.Environment{}, fmt.Errorf("setting the stable version of %s/%s: %w", app.Slug, e.name, err)
	}
	return tx.EnvironmentByID(ctx, env.ID)
}

// createUser adds a demo user with its role everywhere, and reports false
// when someone by that name exists already: that person is left as they
// are.
func createUser(ctx context.Context, tx *store.Store, u user, hash string) (bool, error) {
	_, err := tx.UserByUsername(ctx, u.username)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("looking up user %s: %w", u.username, err)
	}
	created, err := tx.CreateUser(ctx, store.NewUser{Username: u.username, DisplayName: u.displayName, PasswordHash: hash})
	if err != nil {
		return false, fmt.Errorf("creating user %s: %w", u.username, err)
	}
	if _, err := tx.SetRole(ctx, store.RoleBinding{UserID: created.ID, App: auth.Wildcard, Environment: auth.Wildcard, Role: string(u.role)}); err != nil {
		return false, fmt.Errorf("giving %s the %s role: %w", u.username, u.role, err)
	}
	return true, nil
}

// idempotencyKey makes a second server starting the same run get the
// first one's instead.
func idempotencyKey(env store.Environment, version string) string {
	return fmt.Sprintf("demo-%d-%s", env.ID, version)
}
