package cache_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/flags/cache"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// quiet drops the warnings the tests provoke on purpose (cut connections,
// closed pools).
var quiet = slog.New(slog.DiscardHandler)

// servingOn serves "on" to everybody.
var servingOn = flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "on"}}

type fixture struct {
	// writer is a store on a pool of its own, as another replica would be.
	writer    *store.Store
	cachePool *pgxpool.Pool
	cache     *cache.Cache
	app       store.App
	env       store.Environment
	flag      store.Flag
}

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// setup creates checkout/production with the flag new-checkout serving "on"
// and starts a cache on its own pool.
func setup(t testing.TB) fixture {
	t.Helper()
	ctx := context.Background()
	url := dbtest.URL(t)
	writer := store.New(newPool(t, url), store.Options{})
	app, err := writer.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := writer.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	flag, err := writer.CreateFlag(ctx, app.ID, flags.Flag{
		Key:            "new-checkout",
		Type:           flags.TypeBoolean,
		Variants:       map[string]json.RawMessage{"on": json.RawMessage(`true`), "off": json.RawMessage(`false`)},
		DefaultVariant: "off",
	}, "user:alice")
	require.NoError(t, err)
	_, err = writer.SetFlagState(ctx, flag.ID, env.ID, servingOn, 0, "user:alice")
	require.NoError(t, err)

	cachePool := newPool(t, url)
	c := cache.New(cachePool, store.New(cachePool, store.Options{}), cache.Config{Logger: quiet})
	require.NoError(t, c.Start(ctx))
	t.Cleanup(c.Stop)
	return fixture{writer: writer, cachePool: cachePool, cache: c, app: app, env: env, flag: flag}
}

// evaluate evaluates new-checkout for one user from the cache.
func (f fixture) evaluate(t testing.TB) flags.Result {
	t.Helper()
	snap, ok := f.cache.Snapshot("checkout", "production")
	require.True(t, ok, "the cache has no snapshot for checkout/production")
	return snap.Evaluate("new-checkout", flags.EvalContext{"targetingKey": "user-1"})
}

// waitFor polls the cache until cond holds and returns how long it took.
func waitFor(t testing.TB, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("the cache did not show the change within %s", within)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(start)
}

func TestCommittedChangeIsServedWithinASecond(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	require.Equal(t, "on", f.evaluate(t).Variant)
	_, ok := f.cache.Snapshot("checkout", "staging")
	require.False(t, ok)

	_, err := f.writer.SetFlagState(ctx, f.flag.ID, f.env.ID,
		flags.EnvState{Enabled: true, DefaultRollout: flags.Serve{Variant: "off"}}, 1, "user:bob")
	require.NoError(t, err)
	latency := waitFor(t, time.Second, func() bool { return f.evaluate(t).Variant == "off" })
	t.Logf("a committed state change reached the cache in %s", latency)

	// A new flag of the app (environment 0: every environment) arrives too.
	_, err = f.writer.CreateFlag(ctx, f.app.ID, flags.Flag{
		Key: "dark-mode", Type: flags.TypeString,
		Variants:       map[string]json.RawMessage{"dark": json.RawMessage(`"dark"`), "light": json.RawMessage(`"light"`)},
		DefaultVariant: "light",
	}, "user:bob")
	require.NoError(t, err)
	waitFor(t, time.Second, func() bool {
		snap, _ := f.cache.Snapshot("checkout", "production")
		return slices.Contains(snap.Keys(), "dark-mode")
	})

	// So does a new environment once a flag is configured there.
	staging, err := f.writer.CreateEnvironment(ctx, store.Environment{AppID: f.app.ID, Name: "staging"})
	require.NoError(t, err)
	_, err = f.writer.SetFlagState(ctx, f.flag.ID, staging.ID, servingOn, 0, "user:bob")
	require.NoError(t, err)
	waitFor(t, time.Second, func() bool {
		snap, ok := f.cache.Snapshot("checkout", "staging")
		return ok && snap.Evaluate("new-checkout", flags.EvalContext{"targetingKey": "user-1"}).Variant == "on"
	})
	// Production kept its own state.
	require.Equal(t, "off", f.evaluate(t).Variant)
}

func TestKillSwitchFlipsTheServedValue(t *testing.T) {
	t.Parallel()
	f := setup(t)
	before := f.evaluate(t)
	require.Equal(t, "on", before.Variant)
	require.JSONEq(t, `true`, string(before.Value))

	_, err := f.writer.KillFlag(context.Background(), f.flag.ID, f.env.ID, "user:oncall")
	require.NoError(t, err)
	latency := waitFor(t, time.Second, func() bool { return f.evaluate(t).Reason == flags.ReasonDisabled })
	t.Logf("a kill reached the cache in %s", latency)
	after := f.evaluate(t)
	require.Equal(t, "off", after.Variant)
	require.JSONEq(t, `false`, string(after.Value))
}

// listenerPIDs returns the backends listening for flag changes on the
// current database.
func listenerPIDs(t *testing.T, pool *pgxpool.Pool) []int32 {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1`, "LISTEN "+store.FlagsChannel)
	require.NoError(t, err)
	var pids []int32
	for rows.Next() {
		var pid int32
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(t, rows.Err())
	return pids
}

func TestChangesArriveAfterTheListenerLosesItsConnection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	pool := f.writer.Pool()

	var pids []int32
	waitFor(t, 5*time.Second, func() bool { pids = listenerPIDs(t, pool); return len(pids) == 1 })
	var terminated bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pids[0]).Scan(&terminated))
	require.True(t, terminated)

	// Changed while nobody listens: the reload after reconnecting finds it.
	_, err := f.writer.KillFlag(ctx, f.flag.ID, f.env.ID, "user:oncall")
	require.NoError(t, err)
	waitFor(t, 10*time.Second, func() bool { return f.evaluate(t).Reason == flags.ReasonDisabled })

	// And notifications flow again on the new connection.
	waitFor(t, 10*time.Second, func() bool {
		now := listenerPIDs(t, pool)
		return len(now) == 1 && now[0] != pids[0]
	})
	_, err = f.writer.SetFlagState(ctx, f.flag.ID, f.env.ID, servingOn, 2, "user:oncall")
	require.NoError(t, err)
	latency := waitFor(t, time.Second, func() bool { return f.evaluate(t).Variant == "on" })
	t.Logf("after reconnecting, a change reached the cache in %s", latency)
}

// TestEvaluationGoesOnWithoutTheDatabase shows that Snapshot only reads
// memory: with the cache's pool closed and its listener cut off, the last
// snapshots are still served. By construction Snapshot is one atomic load
// and one map lookup; BenchmarkSnapshot shows it allocates nothing.
func TestEvaluationGoesOnWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, "on", f.evaluate(t).Variant)

	f.cachePool.Close()
	for _, pid := range listenerPIDs(t, f.writer.Pool()) {
		_, err := f.writer.Pool().Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
	}
	// A change the cache cannot hear about or load.
	_, err := f.writer.KillFlag(context.Background(), f.flag.ID, f.env.ID, "user:oncall")
	require.NoError(t, err)
	for range 20 {
		require.Equal(t, "on", f.evaluate(t).Variant)
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkSnapshot measures the hot path every evaluation takes.
func BenchmarkSnapshot(b *testing.B) {
	f := setup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := f.cache.Snapshot("checkout", "production"); !ok {
			b.Fatal("no snapshot for checkout/production")
		}
	}
}

func TestStartFailsWhenTheDatabaseIsUnreachable(t *testing.T) {
	t.Parallel()
	pool := newPool(t, dbtest.URL(t))
	pool.Close()
	c := cache.New(pool, store.New(pool, store.Options{}), cache.Config{StartTimeout: 300 * time.Millisecond, Logger: quiet})
	require.Error(t, c.Start(context.Background()))
	c.Stop()
	_, ok := c.Snapshot("checkout", "production")
	require.False(t, ok)
}

// BenchmarkKillSwitchPropagation measures the time from the commit of a kill
// (through another pool, as on another replica) to this replica's cache
// serving the disabled value. Each iteration kills the flag 50 times, so
// ns/op is the time for 50 kills; p50-ms and p99-ms are over every kill.
func BenchmarkKillSwitchPropagation(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	version := int64(1)
	var latencies []time.Duration
	for b.Loop() {
		for range 50 {
			b.StopTimer()
			_, err := f.writer.SetFlagState(ctx, f.flag.ID, f.env.ID, servingOn, version, "user:bench")
			require.NoError(b, err)
			waitFor(b, 5*time.Second, func() bool { return f.evaluate(b).Reason != flags.ReasonDisabled })
			b.StartTimer()
			killed, err := f.writer.KillFlag(ctx, f.flag.ID, f.env.ID, "user:bench")
			require.NoError(b, err)
			committed := time.Now()
			waitFor(b, 5*time.Second, func() bool { return f.evaluate(b).Reason == flags.ReasonDisabled })
			latencies = append(latencies, time.Since(committed))
			version = killed.State.Version
		}
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		i := min(len(latencies)-1, int(p*float64(len(latencies))))
		return float64(latencies[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
