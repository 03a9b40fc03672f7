package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// auditTables are the records of who did what, which nobody may change
// or remove.
var auditTables = []string{"run_events", "audit_events", "flag_events", "approvals", "decisions"}

// auditRecords writes one row into each audit table.
func auditRecords(t *testing.T, f fixture) {
	t.Helper()
	ctx := context.Background()
	run := f.newRun(t, "v2")
	_, err := f.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "run.note", Actor: "user:alice", Payload: map[string]any{"comment": "watching"}})
	require.NoError(t, err)
	_, err = f.store.RecordAudit(ctx, store.AuditEvent{Actor: "alice", Action: "user.signed_in", RemoteAddr: "10.0.0.1"})
	require.NoError(t, err)
	for _, q := range []string{
		`INSERT INTO flag_events (app_id, actor, type) VALUES ($1, 'alice', 'segment.created')`,
		`INSERT INTO approvals (run_id, phase_index, outcome, actor) SELECT id, 0, 'approved', 'alice' FROM runs WHERE app_id = $1`,
		`INSERT INTO decisions (run_id, phase_index, verdict, explanation, record) SELECT id, 0, 'continue', 'healthy', '{}' FROM runs WHERE app_id = $1`,
	} {
		_, err := f.pool.Exec(ctx, q, f.app.ID)
		require.NoError(t, err)
	}
}

// tableDigest is a digest of every row of a table, to show that a refused
// change left each row as it was.
func tableDigest(t *testing.T, pool *pgxpool.Pool, table string) (rows int, digest string) {
	t.Helper()
	err := pool.QueryRow(context.Background(),
		`SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x.id)), '') FROM `+table+` x`).Scan(&rows, &digest)
	require.NoError(t, err)
	return rows, digest
}

func TestAuditRecordsCannotBeChangedOrRemoved(t *testing.T) {
	t.Parallel()
	f := setup(t)
	auditRecords(t, f)
	ctx := context.Background()
	for _, table := range auditTables {
		rows, digest := tableDigest(t, f.pool, table)
		require.Positive(t, rows, table)
		for _, stmt := range []string{
			"UPDATE " + table + " SET at = at - interval '1 day'",
			"DELETE FROM " + table,
			"TRUNCATE " + table,
			"TRUNCATE " + table + " CASCADE",
		} {
			_, err := f.pool.Exec(ctx, stmt)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, stmt)
			require.Equal(t, "23001", pgErr.Code, "%s: restrict_violation", stmt)
			require.Contains(t, pgErr.Message, table, stmt)
			require.Contains(t, pgErr.Message, "append-only", stmt)
		}
		after, afterDigest := tableDigest(t, f.pool, table)
		require.Equal(t, rows, after, "%s keeps every row", table)
		require.Equal(t, digest, afterDigest, "%s keeps every row as it was", table)
	}
}

// superuserPool connects to the test database as the cluster's bootstrap
// role, which can create roles; the test database itself is reached as a
// role that cannot. It returns nil when that is not possible, as on a
// database given by TEST_DATABASE_URL.
func superuserPool(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return nil
	}
	cfg := pool.Config().Copy()
	cfg.ConnConfig.User, cfg.ConnConfig.Password = "flightdeck", ""
	cfg.MaxConns = 2
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	su, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil
	}
	var super bool
	if err := su.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
		su.Close()
		return nil
	}
	t.Cleanup(su.Close)
	return su
}

func TestAnApplicationRoleCannotChangeAuditRecordsEvenWithoutTriggers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	auditRecords(t, f)
	su := superuserPool(t, f.pool)
	if su == nil {
		t.Skip("no role that may create roles in this test database")
	}
	ctx := context.Background()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	role := "flightdeck_app_" + hex.EncodeToString(suffix)

	// Everything happens in one transaction that is rolled back, the role
	// and the disabled triggers included, so nothing outlives the test.
	tx, err := su.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, stmt := range []string{
		"CREATE ROLE " + role + " NOLOGIN",
		// The grants the migration's comment tells operators to give.
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + role,
		"REVOKE UPDATE, DELETE, TRUNCATE ON run_events, audit_events, flag_events, approvals, decisions FROM " + role,
	} {
		_, err := tx.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	for _, table := range auditTables {
		_, err := tx.Exec(ctx, "ALTER TABLE "+table+" DISABLE TRIGGER USER")
		require.NoError(t, err)
	}
	_, err = tx.Exec(ctx, "SET LOCAL ROLE "+role)
	require.NoError(t, err)

	attempt := func(stmt string) error {
		_, err := tx.Exec(ctx, "SAVEPOINT attempt")
		require.NoError(t, err)
		_, stmtErr := tx.Exec(ctx, stmt)
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT attempt")
		require.NoError(t, err)
		return stmtErr
	}
	for _, table := range auditTables {
		var rows int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&rows), "the role reads %s", table)
		require.Positive(t, rows)
		for _, stmt := range []string{
			"UPDATE " + table + " SET at = at - interval '1 day'",
			"DELETE FROM " + table,
			"TRUNCATE " + table,
		} {
			err := attempt(stmt)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%s as %s: %v", stmt, role, err)
			require.Equal(t, "42501", pgErr.Code, "%s is refused by privilege: %s", stmt, pgErr.Message)
		}
		var after int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&after))
		require.Equal(t, rows, after, "%s keeps every row", table)
	}
	// The role still does what the server needs: it appends.
	require.NoError(t, attempt(`INSERT INTO audit_events (actor, action) VALUES ('alice', 'user.signed_out')`))
	_, err = tx.Exec(ctx, "RESET ROLE")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
}

func TestEventsRecordWhereTheyCameFrom(t *testing.T) {
	t.Parallel()
	f := setup(t)
	run := f.newRun(t, "v2")
	ctx := store.WithOrigin(context.Background(), store.Origin{Addr: "203.0.113.9", UserAgent: "deployctl/1.4 (linux)"})

	_, err := f.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "run.note", Actor: "token:ci"})
	require.NoError(t, err)
	_, err = f.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "driver.output", Actor: "engine"})
	require.NoError(t, err)
	_, err = f.store.AppendRunEvent(context.Background(), run.ID, store.Event{Type: "run.note", Actor: "user:bob"})
	require.NoError(t, err)

	entries, err := f.store.ListAudit(context.Background(), store.AuditFilter{Limit: 10})
	require.NoError(t, err)
	byActor := map[string]store.AuditEntry{}
	for _, e := range entries {
		if e.Action != "run.created" {
			byActor[e.Actor] = e
		}
	}
	require.Equal(t, "203.0.113.9", byActor["token:ci"].RemoteAddr)
	require.Equal(t, "deployctl/1.4 (linux)", byActor["token:ci"].UserAgent)
	require.Empty(t, byActor["engine"].RemoteAddr, "the engine's own steps come from no request")
	require.Empty(t, byActor["engine"].UserAgent)
	require.Empty(t, byActor["user:bob"].RemoteAddr, "without an origin there is none")

	long := store.WithOrigin(context.Background(), store.Origin{Addr: "198.51.100.1", UserAgent: string(make([]byte, 500))})
	o, ok := store.OriginFrom(long)
	require.True(t, ok)
	require.Len(t, o.UserAgent, 300, "a long user agent is shortened to what is kept")
}

func TestAuditTimeRangeAndWalk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t).pool
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	s := store.New(pool, store.Options{Now: func() time.Time { return clock }})
	for i := range 7 {
		clock = now.Add(time.Duration(i) * time.Hour)
		_, err := s.RecordAudit(ctx, store.AuditEvent{Actor: "alice", Action: "environment.updated", App: "checkout"})
		require.NoError(t, err)
	}
	var seen []time.Time
	err := s.EachAudit(ctx, store.AuditFilter{App: "checkout", From: now.Add(2 * time.Hour), To: now.Add(5 * time.Hour), Limit: 1},
		func(e store.AuditEntry) error {
			seen = append(seen, e.At.UTC())
			return nil
		})
	require.NoError(t, err)
	require.Equal(t, []time.Time{now.Add(4 * time.Hour), now.Add(3 * time.Hour), now.Add(2 * time.Hour)}, seen,
		"from is inclusive, to exclusive, newest first")

	// A walk longer than a batch sees each entry once, entries recorded
	// at the same instant included.
	_, err = pool.Exec(ctx, `INSERT INTO audit_events (at, actor, action, app)
		SELECT timestamptz '2026-01-01 00:00:00Z' + (i / 3) * interval '1 second', 'bot', 'user.signed_in', 'bulk'
		FROM generate_series(1, 1234) i`)
	require.NoError(t, err)
	ids := map[int64]bool{}
	err = s.EachAudit(ctx, store.AuditFilter{App: "bulk"}, func(e store.AuditEntry) error {
		require.False(t, ids[e.ID], "entry %d seen twice", e.ID)
		ids[e.ID] = true
		return nil
	})
	require.NoError(t, err)
	require.Len(t, ids, 1234)

	stop := errors.New("enough")
	n := 0
	err = s.EachAudit(ctx, store.AuditFilter{}, func(store.AuditEntry) error {
		n++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)
}

func TestTheServerWorksAsAnApplicationRoleThatOnlyAppendsAuditRecords(t *testing.T) {
	t.Parallel()
	f := setup(t)
	su := superuserPool(t, f.pool)
	if su == nil {
		t.Skip("no role that may create roles in this test database")
	}
	ctx := context.Background()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	role := "flightdeck_app_" + hex.EncodeToString(suffix)
	_, err := su.Exec(ctx, "CREATE ROLE "+role+" LOGIN")
	require.NoError(t, err)
	t.Cleanup(func() {
		// The role's privileges live in the test database, which is
		// dropped after this; the role itself is the cluster's.
		_, _ = su.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = su.Exec(context.Background(), "DROP ROLE "+role)
	})
	// The operator's setup, as the migration's comment gives it.
	for _, stmt := range []string{
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + role,
		"REVOKE UPDATE, DELETE, TRUNCATE ON run_events, audit_events, flag_events, approvals, decisions FROM " + role,
	} {
		_, err := su.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	cfg := f.pool.Config().Copy()
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, ""
	cfg.MaxConns = 4
	app, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(app.Close)

	// The server checks its migrations at start; with none pending that
	// needs no ownership.
	require.NoError(t, store.Migrate(ctx, app, slog.New(slog.NewTextHandler(io.Discard, nil))))
	s := store.New(app, store.Options{})
	run, created, err := s.CreateRun(ctx, store.NewRun{
		AppID: f.app.ID, EnvironmentID: f.env.ID, FromVersion: "v1", ToVersion: "v3", Strategy: "canary", CreatedBy: "user:alice",
	})
	require.NoError(t, err)
	require.True(t, created)
	_, err = s.AppendRunEvent(ctx, run.ID, store.Event{Type: "run.note", Actor: "user:alice"})
	require.NoError(t, err)
	_, err = s.RecordAudit(ctx, store.AuditEvent{Actor: "alice", Action: "user.signed_in"})
	require.NoError(t, err)
	entries, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, entries, 3)

	for _, table := range auditTables {
		for _, stmt := range []string{"UPDATE " + table + " SET at = at", "DELETE FROM " + table, "TRUNCATE " + table} {
			_, err := app.Exec(ctx, stmt)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, stmt)
			require.Equal(t, "42501", pgErr.Code, "%s is refused by privilege: %s", stmt, pgErr.Message)
		}
	}
}
