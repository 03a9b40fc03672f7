package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// tokenLine is all `token create` may print on stdout.
var tokenLine = regexp.MustCompile(`^fdk_[A-Za-z0-9]{40,}\n$`)

// storeAt opens a store on the database at url, closed with the test.
func storeAt(t *testing.T, url string) *store.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return store.New(pool, store.Options{})
}

func TestTokenCreatePrintsOnlyTheToken(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	getenv := env(map[string]string{"DATABASE_URL": url})
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"token", "create", "--name", "ci", "--scopes", "deploy, read"}, &stdout, &stderr, getenv))
	require.Regexp(t, tokenLine, stdout.String())
	plaintext := strings.TrimSpace(stdout.String())
	require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line of hint: %q", stderr.String())
	require.Contains(t, stderr.String(), `Created token "ci" (`+auth.Prefix(plaintext)+`…) with scopes read,deploy; it never expires.`)
	require.NotContains(t, stderr.String(), plaintext)

	st := storeAt(t, url)
	ctx := context.Background()
	tok, err := st.TokenByHash(ctx, auth.Hash(plaintext))
	require.NoError(t, err)
	require.Equal(t, "ci", tok.Name)
	require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeDeploy}, tok.Scopes)
	require.Nil(t, tok.ExpiresAt)
	owner, err := st.UserByID(ctx, tok.UserID)
	require.NoError(t, err)
	require.Equal(t, "admin", owner.Username)

	// A limited token that expires.
	stdout.Reset()
	stderr.Reset()
	before := time.Now()
	require.NoError(t, run(context.Background(), []string{"token", "create", "--name", "agent", "--scopes", "metrics",
		"--expires", "30d", "--apps", "checkout", "--environments", "staging,production"}, &stdout, &stderr, getenv))
	require.Regexp(t, tokenLine, stdout.String())
	tok, err = st.TokenByHash(ctx, auth.Hash(strings.TrimSpace(stdout.String())))
	require.NoError(t, err)
	require.Equal(t, []auth.Scope{auth.ScopeMetrics}, tok.Scopes)
	require.Equal(t, []string{"checkout"}, tok.Apps)
	require.Equal(t, []string{"staging", "production"}, tok.Environments)
	require.NotNil(t, tok.ExpiresAt)
	require.WithinDuration(t, before.Add(30*24*time.Hour), *tok.ExpiresAt, time.Minute)
	require.Contains(t, stderr.String(), "it expires "+tok.ExpiresAt.Format(time.RFC3339))

	// A name in use is refused, and nothing is printed on stdout.
	stdout.Reset()
	err = run(context.Background(), []string{"token", "create", "--name", "ci", "--scopes", "read"}, &stdout, io.Discard, getenv)
	require.EqualError(t, err, `a token named "ci" already exists: revoke it or choose another name`)
	require.Empty(t, stdout.String())
}

func TestTokenCreateRefusesBadRequestsBeforeOpeningTheDatabase(t *testing.T) {
	t.Parallel()
	// The database address is unreachable: every refusal must come first.
	getenv := env(map[string]string{"DATABASE_URL": "postgres://fd@127.0.0.1:1/fd"})
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no subcommand":   {[]string{"token"}, "the token command needs a subcommand: server token create --name NAME --scopes SCOPES"},
		"bad subcommand":  {[]string{"token", "list"}, `unknown token command "list": want create`},
		"no name":         {[]string{"token", "create", "--scopes", "read"}, "token create needs --name"},
		"bad name":        {[]string{"token", "create", "--name", " ci", "--scopes", "read"}, "invalid --name: a token name must not start or end with a space"},
		"no scopes":       {[]string{"token", "create", "--name", "ci"}, "token create needs --scopes, one or more of read, deploy, approve, metrics, flags, admin"},
		"bad scope":       {[]string{"token", "create", "--name", "ci", "--scopes", "deploy,deplyo"}, `unknown scope "deplyo": want one or more of read, deploy, approve, metrics, flags, admin`},
		"empty scope":     {[]string{"token", "create", "--name", "ci", "--scopes", "deploy,"}, `unknown scope "": want one or more of`},
		"bad expiry":      {[]string{"token", "create", "--name", "ci", "--scopes", "read", "--expires", "soon"}, `invalid --expires "soon": want a positive duration such as 720h or 90d`},
		"negative expiry": {[]string{"token", "create", "--name", "ci", "--scopes", "read", "--expires", "-1h"}, `invalid --expires "-1h"`},
		"bad app":         {[]string{"token", "create", "--name", "ci", "--scopes", "read", "--apps", "Checkout"}, `app limit "Checkout"`},
		"stray argument":  {[]string{"token", "create", "--name", "ci", "--scopes", "read", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, io.Discard, getenv)
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, stdout.String())
		})
	}
	var stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"token", "create", "--help"}, io.Discard, &stderr, getenv))
	require.Contains(t, stderr.String(), "-scopes")
}

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"": 0, "720h": 720 * time.Hour, "90d": 90 * 24 * time.Hour, "45m": 45 * time.Minute} {
		got, err := parseLifetime(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"d", "1.5d", "-3d", "0d", "0s", "99999d", "tomorrow"} {
		_, err := parseLifetime(bad)
		require.Error(t, err, bad)
	}
}

func TestTokenCreateWithABadScopeExitsWithOneLine(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "token", "create", "--name", "ci", "--scopes", "deploy,root")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://fd:s3cret@127.0.0.1:1/fd")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Empty(t, stdout.String())
	require.Equal(t, "flightdeck: unknown scope \"root\": want one or more of read, deploy, approve, metrics, flags, admin\n", stderr.String())
}

func TestBootstrapAdminToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	first, _, _, err := auth.Generate()
	require.NoError(t, err)

	require.NoError(t, ensureBootstrapToken(ctx, st, first, logger))
	created, err := st.TokenByHash(ctx, auth.Hash(first))
	require.NoError(t, err)
	require.Equal(t, "bootstrap-admin", created.Name)
	require.Equal(t, []auth.Scope{auth.ScopeAdmin}, created.Scopes)
	require.Equal(t, auth.Prefix(first), created.Prefix)
	require.Nil(t, created.ExpiresAt)
	owner, err := st.UserByID(ctx, created.UserID)
	require.NoError(t, err)
	require.Equal(t, "admin", owner.Username)
	require.True(t, owner.IsAdmin)
	require.Contains(t, logs.String(), `"outcome":"created"`)
	require.NotContains(t, logs.String(), first[12:], "the log never holds the secret part")

	// The same value at the next start changes nothing.
	require.NoError(t, ensureBootstrapToken(ctx, st, first, logger))
	kept, err := st.TokenByHash(ctx, auth.Hash(first))
	require.NoError(t, err)
	require.Equal(t, created, kept)
	require.Contains(t, logs.String(), `"outcome":"kept"`)

	// A new value replaces the old token, which stops working.
	second, _, _, err := auth.Generate()
	require.NoError(t, err)
	require.NoError(t, ensureBootstrapToken(ctx, st, second, logger))
	_, err = st.TokenByHash(ctx, auth.Hash(first))
	require.ErrorIs(t, err, store.ErrNotFound)
	replaced, err := st.TokenByHash(ctx, auth.Hash(second))
	require.NoError(t, err)
	require.Equal(t, "bootstrap-admin", replaced.Name)
	require.Equal(t, created.UserID, replaced.UserID)
	require.Contains(t, logs.String(), `"outcome":"replaced"`)
	list, err := st.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)

	// Going back to the revoked value is refused, and the current token
	// stays; the server still starts.
	logs.Reset()
	require.NoError(t, ensureBootstrapToken(ctx, st, first, logger))
	require.Contains(t, logs.String(), "FLIGHTDECK_ADMIN_TOKEN is ignored")
	require.Contains(t, logs.String(), "revoked")
	_, err = st.TokenByHash(ctx, auth.Hash(first))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.TokenByHash(ctx, auth.Hash(second))
	require.NoError(t, err)

	// The value of another token is not taken over.
	third, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = st.CreateToken(ctx, store.NewToken{Name: "ci", Hash: hash, Prefix: prefix, Scopes: []auth.Scope{auth.ScopeRead}, UserID: created.UserID})
	require.NoError(t, err)
	logs.Reset()
	require.NoError(t, ensureBootstrapToken(ctx, st, third, logger))
	require.Contains(t, logs.String(), `it is already the token \"ci\"`)
	ci, err := st.TokenByHash(ctx, auth.Hash(third))
	require.NoError(t, err)
	require.Equal(t, "ci", ci.Name)
	require.Equal(t, []auth.Scope{auth.ScopeRead}, ci.Scopes)
}

func TestBootstrapAdminTokenSurvivesConcurrentStarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	token, _, _, err := auth.Generate()
	require.NoError(t, err)
	const replicas = 4
	errs := make(chan error, replicas)
	for range replicas {
		go func() { errs <- ensureBootstrapToken(ctx, st, token, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	}
	for range replicas {
		require.NoError(t, <-errs)
	}
	tok, err := st.TokenByHash(ctx, auth.Hash(token))
	require.NoError(t, err)
	require.Equal(t, "bootstrap-admin", tok.Name)
	list, err := st.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func TestServeCreatesTheBootstrapToken(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	token, _, _, err := auth.Generate()
	require.NoError(t, err)
	getenv := env(map[string]string{"DATABASE_URL": url, "FLIGHTDECK_ADMIN_TOKEN": token})
	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	// Read only after run returns, so no lock is needed.
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port)}, &logs, io.Discard, getenv)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not shut down")
	}

	tok, err := storeAt(t, url).TokenByHash(context.Background(), auth.Hash(token))
	require.NoError(t, err)
	require.Equal(t, "bootstrap-admin", tok.Name)
	out := logs.String()
	require.Contains(t, out, `"admin_token":"`+auth.Prefix(token)+`…"`)
	require.Contains(t, out, `"msg":"admin token is ready"`)
	require.NotContains(t, out, token[12:])
}

func TestServeRefusesAMalformedAdminToken(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://fd@127.0.0.1:1/fd", "FLIGHTDECK_ADMIN_TOKEN=hunter2hunter2")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
	require.True(t, strings.HasPrefix(stderr.String(), "flightdeck: FLIGHTDECK_ADMIN_TOKEN is not a Flightdeck API token"), stderr.String())
	require.NotContains(t, stderr.String()+stdout.String(), "hunter2")
}

func TestTokenCreateLeavesARunningEmbeddedDatabaseRunning(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := startServer(t, []string{"DATABASE_URL="}, "--data-dir", dir)

	cmd := exec.Command(binary, "token", "create", "--data-dir", dir, "--name", "ci", "--scopes", "deploy")
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.Regexp(t, tokenLine, stdout.String())

	// The serving Flightdeck still has its database.
	code, body := s.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code, body)
}
