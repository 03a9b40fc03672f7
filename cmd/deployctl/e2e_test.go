package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// TestDeployAgainstTheServer builds the server, starts it on a fresh
// database and deploys through deployctl as a pipeline would: a healthy
// version succeeds (exit 0) and one the simulator makes fail half its
// requests is rolled back (exit 1).
func TestDeployAgainstTheServer(t *testing.T) {
	t.Parallel()
	url, token := startServer(t)

	api := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := api(http.MethodPost, "/api/v1/apps", `{"slug": "shop", "name": "Shop"}`)
	require.Equal(t, http.StatusCreated, status, body)
	status, body = api(http.MethodPost, "/api/v1/apps/shop/environments", `{
		"name": "staging", "tier": "staging",
		"driver": {"type": "simulator", "instances": 4, "requests_per_second": 400, "faults": {"v3": {"error_rate": 0.5}}},
		"metrics": {"type": "simulator"},
		"default_strategy": "canary",
		"strategy_defaults": {"canary": {"steps": [50, 100], "step_bake": "3s"}},
		"thresholds": {"warmup": "0s", "window": "1s"}
	}`)
	require.Equal(t, http.StatusCreated, status, body)

	// A run without a version is refused before anything starts, which
	// also shows the run endpoints are served.
	status, body = api(http.MethodPost, "/api/v1/apps/shop/environments/staging/runs", `{}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, body)

	deploy := func(version string) (int, string) {
		var out bytes.Buffer
		c := newCLI(&out, &out, env{"FLIGHTDECK_URL": url, "FLIGHTDECK_TOKEN": token}.get)
		code := c.run(context.Background(), []string{"deploy", "--app", "shop", "--env", "staging", "--version", version,
			"--param", "step_bake=3s", "--wait", "--timeout", "3m"})
		return code, out.String()
	}
	code, out := deploy("v2")
	t.Logf("deploying v2:\n%s", out)
	require.Equal(t, exitSucceeded, code, out)
	require.Contains(t, out, "run.succeeded")
	require.Contains(t, out, "succeeded")

	code, out = deploy("v3")
	t.Logf("deploying v3:\n%s", out)
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, "rolled back")
}

// startServer builds and starts the server with an admin token on a free
// port, waits until it is ready and returns its URL and the token.
func startServer(t *testing.T) (url, token string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flightdeck")
	build := exec.Command("go", "build", "-o", bin, "github.com/flightdeckhq/flightdeck/cmd/server")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the server: %s", out)

	token = adminToken(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "serve", "--addr", addr)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.URL(t), "FLIGHTDECK_ADMIN_TOKEN="+token, "FLIGHTDECK_LOG_LEVEL=warn")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	url = "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, token
			}
		}
		select {
		case <-done:
			t.Fatalf("the server exited before it was ready:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not ready within a minute:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer collects the server's output, which the process writes
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// adminToken returns a random token in Flightdeck's format: fdk_ and 43
// letters and digits.
func adminToken(t *testing.T) string {
	t.Helper()
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	b.WriteString("fdk_")
	for range 43 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(base62))))
		require.NoError(t, err)
		b.WriteByte(base62[n.Int64()])
	}
	return b.String()
}
