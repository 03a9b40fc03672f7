package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
)

// binary is the server built once for the tests that run it as a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flightdeck-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The postgres system user must be able to reach data dirs created below.
	_ = os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "flightdeck")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building server: %v\n%s", err, out)
		os.Exit(1)
	}
	dbtest.Main(m)
}

// server is a running server binary whose JSON log lines are collected.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs []map[string]any
	// done is closed when the process has exited; err is then its result.
	done chan struct{}
	err  error
}

func startServer(t testing.TB, env []string, args ...string) *server {
	t.Helper()
	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	cmd := exec.Command(binary, append([]string{"serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			if line["msg"] == "flightdeck is ready" {
				ready <- line["url"].(string)
			}
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case s.url = <-ready:
	case <-s.done:
		t.Fatalf("server exited before it was ready: %v\n%s", s.err, stderr.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("server not ready within 60s\n%s", stderr.String())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return s
}

func (s *server) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (s *server) logLines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range s.logs {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func dataDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is private to root, and when the tests run
	// as root the embedded cluster runs as the postgres user.
	dir, err := os.MkdirTemp("", "flightdeck-server-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return filepath.Join(dir, "data")
}

func TestEmbeddedDatabaseServesAndSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	env := []string{"DATABASE_URL=", "FLIGHTDECK_LOG_LEVEL=debug"}
	s := startServer(t, env, "--data-dir", dir)
	require.True(t, strings.HasPrefix(s.url, "http://127.0.0.1:"), s.url)

	code, body := s.get(t, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, body)
	code, body = s.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code, body)

	code, body = s.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `flightdeck_http_requests_total{method="GET",route="/readyz",status="200"} 1`)
	require.Contains(t, body, "flightdeck_http_request_duration_seconds_bucket")
	require.Contains(t, body, "flightdeck_db_pool_max_connections")
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "flightdeck_engine_step_lag_seconds_bucket")

	code, body = s.get(t, "/no-such-page")
	require.Equal(t, http.StatusNotFound, code)
	require.JSONEq(t, `{"type":"about:blank","title":"Not Found","status":404}`, body)

	// Every request is logged with its request id.
	requests := s.logLines("http request")
	require.NotEmpty(t, requests)
	for _, l := range requests {
		require.NotEmpty(t, l["request_id"], "%v", l)
	}
	// The configuration is printed at start.
	starts := s.logLines("starting flightdeck")
	require.Len(t, starts, 1)
	require.Contains(t, starts[0]["config"].(map[string]any)["database"], "embedded")

	// A SIGKILL leaves the embedded Postgres running; the next start copes.
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.done
	s2 := startServer(t, env, "--data-dir", dir)
	code, body = s2.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code, body)

	// A clean stop also stops the embedded Postgres.
	require.NoError(t, s2.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s2.done:
		require.NoError(t, s2.err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s of SIGTERM")
	}
	_, err := os.Stat(filepath.Join(dir, "pg", "postmaster.pid"))
	require.ErrorIs(t, err, os.ErrNotExist, "postgres must be stopped with the server")
}

func TestUnreachableDatabaseExitsWithOneLine(t *testing.T) {
	t.Parallel()
	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), fmt.Sprintf("DATABASE_URL=postgres://fd:s3cret@127.0.0.1:%d/fd", port))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())

	msg := stderr.String()
	require.Equal(t, 1, strings.Count(msg, "\n"), "one line: %q", msg)
	require.Contains(t, msg, fmt.Sprintf("127.0.0.1:%d", port))
	require.True(t, strings.HasPrefix(msg, "flightdeck: cannot connect to the database at"), msg)
	require.NotContains(t, msg+stdout.String(), "s3cret")
	require.NotContains(t, msg, "goroutine")
}

func TestInvalidDatabaseURLNeverEchoesThePassword(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://fd:s3cret@db:notaport/fd")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "DATABASE_URL is not a valid Postgres connection string")
	require.NotContains(t, string(out), "s3cret")
}

func TestMigrateThenServeInProcess(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	getenv := env(map[string]string{"DATABASE_URL": url})
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate"}, &out, io.Discard, getenv))
	require.Contains(t, out.String(), "database is up to date")

	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port)}, io.Discard, io.Discard, getenv)
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
		require.NoError(t, err, "a signal is a clean shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("server did not shut down")
	}
}

func TestSubcommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"version"}, &out, io.Discard, env(nil)))
	require.True(t, strings.HasPrefix(out.String(), "flightdeck "), out.String())
	err := run(context.Background(), []string{"deploy"}, io.Discard, io.Discard, env(nil))
	require.EqualError(t, err, `unknown command "deploy": want serve, migrate, token or version`)
}
