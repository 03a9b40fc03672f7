package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
)

// installHint is how to get the programs the stack needs.
const installHint = "apt-get install nginx-light prometheus"

// findTool returns the path of a program the stack needs. Outside CI a
// machine without it skips the test; with CI=true it fails, so the
// end-to-end suite is never skipped without anyone noticing.
func findTool(t *testing.T, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err == nil && !info.IsDir() {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is needed for the end-to-end tests in CI: %s", name, installHint)
	}
	t.Skipf("%s is not installed; skipping the end-to-end test (%s)", name, installHint)
	return ""
}

// sharedDir makes a temporary directory that nginx workers and the server
// can read, unlike t.TempDir, whose parent is private to the user running
// the tests. It is removed when the test ends.
func sharedDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// process is a program started for a test, with its output collected so a
// failure can show it.
type process struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	output bytes.Buffer
	done   chan struct{}
	err    error
}

// Write collects the process's output.
func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

// Output returns what the process wrote so far.
func (p *process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startProcess runs a program until the test ends, then stops it with
// stopSignal and, if it has not exited within 10s, kills it.
func startProcess(t *testing.T, name string, stopSignal syscall.Signal, env []string, binary string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start(), "starting %s", name)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(stopSignal)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.Output())
		}
	})
	return p
}

// waitReady polls url until it answers 200, failing the test when the
// process exits first or the deadline passes.
func waitReady(t *testing.T, p *process, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if p.exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, p.Output())
		}
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready at %s within %s:\n%s", p.name, url, within, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// appVersion is one running version of the sample app.
type appVersion struct {
	Version string
	Addr    string
}

// startSampleApp runs one version of the sample app on a free loopback
// port. extra are further flags, such as "--error-rate", "0.2".
func startSampleApp(t *testing.T, version string, extra ...string) appVersion {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"--version", version, "--listen", addr}, extra...)
	p := startProcess(t, "sampleapp "+version, syscall.SIGTERM, nil, sampleAppBinary, args...)
	waitReady(t, p, "http://"+addr+"/healthz", 15*time.Second)
	return appVersion{Version: version, Addr: addr}
}

// proxy is an nginx with a private prefix, serving one location that a
// Flightdeck environment routes through the nginx driver.
type proxy struct {
	// URL is where users reach the app through nginx.
	URL string
	// Dir is the directory the driver writes its include files to.
	Dir string
	// Prefix and Config are nginx's -p and -c.
	Prefix, Config string
	// Binary is the nginx executable.
	Binary string
}

// startNginx runs nginx in the foreground with its own prefix, pid file,
// logs and temp paths, including the files the nginx driver writes. Before
// the first release there is nothing to route, and nginx answers 404.
func startNginx(t *testing.T) proxy {
	t.Helper()
	binary := findTool(t, "nginx")
	prefix := sharedDir(t, "flightdeck-e2e-nginx-")
	p := proxy{Prefix: prefix, Config: filepath.Join(prefix, "nginx.conf"), Dir: filepath.Join(prefix, "flightdeck"), Binary: binary}
	require.NoError(t, os.Mkdir(p.Dir, 0o755))
	addr := freeAddr(t)
	p.URL = "http://" + addr
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 1024; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s/http*.conf;
    server {
        listen %[3]s;
        location = /_nginx_ready { return 200 "ready\n"; }
        include %[2]s/server*.conf;
    }
}
`, prefix, p.Dir, addr)
	require.NoError(t, os.WriteFile(p.Config, []byte(conf), 0o644))
	proc := startProcess(t, "nginx", syscall.SIGQUIT, nil, binary, "-p", prefix, "-c", p.Config)
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(prefix, "error.log")); err == nil {
				t.Logf("nginx error log:\n%s", log)
			}
		}
	})
	waitReady(t, proc, p.URL+"/_nginx_ready", 15*time.Second)
	return p
}

// command is the shell command that runs nginx with this proxy's prefix
// and configuration and the given extra arguments.
func (p proxy) command(args ...string) string {
	return strings.Join(append([]string{p.Binary, "-p", p.Prefix, "-c", p.Config}, args...), " ")
}

// scrapeTarget is one app instance Prometheus scrapes, labelled with the
// app slug Flightdeck's queries select on.
type scrapeTarget struct {
	App  string
	Addr string
}

// startPrometheus runs Prometheus on a free loopback port, scraping the
// targets every second with their app label, and returns its URL once it
// is ready.
func startPrometheus(t *testing.T, targets []scrapeTarget) string {
	t.Helper()
	binary := findTool(t, "prometheus")
	dir := sharedDir(t, "flightdeck-e2e-prometheus-")
	var config strings.Builder
	config.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1m\nscrape_configs:\n  - job_name: sampleapp\n    static_configs:\n")
	for _, target := range targets {
		fmt.Fprintf(&config, "      - targets: [%q]\n        labels: {app: %q}\n", target.Addr, target.App)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configPath, []byte(config.String()), 0o644))
	addr := freeAddr(t)
	proc := startProcess(t, "prometheus", syscall.SIGTERM, nil, binary,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--web.max-connections=64",
		"--query.max-concurrency=8",
		"--log.level=warn",
	)
	base := "http://" + addr
	waitReady(t, proc, base+"/-/ready", 30*time.Second)
	waitScraped(t, base, len(targets))
	return base
}

// waitScraped waits until Prometheus has scraped every one of the n
// targets several times, so the first release is judged on data rather than
// found inconclusive because Prometheus had only just started.
func waitScraped(t *testing.T, promURL string, n int) {
	t.Helper()
	query := promURL + "/api/v1/query?query=" + url.QueryEscape(`count(count_over_time(up{job="sampleapp"}[5s]) >= 3)`)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(query)
		if err == nil {
			var answer struct {
				Data struct {
					Result []struct {
						Value [2]any `json:"value"`
					} `json:"result"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&answer)
			_ = resp.Body.Close()
			if err == nil && len(answer.Data.Result) == 1 {
				last = fmt.Sprint(answer.Data.Result[0].Value[1])
				if last == strconv.Itoa(n) {
					return
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Prometheus did not scrape all %d sample app instances three times within 30s (last count %q)", n, last)
}

// flightdeck is a running Flightdeck server and the admin API token CI
// would use.
type flightdeck struct {
	URL   string
	Token string
}

// startFlightdeck runs the server binary on a fresh database with the
// engine judging every second and no demo, and returns once it is ready.
func startFlightdeck(t *testing.T) flightdeck {
	t.Helper()
	token, _, _, err := auth.Generate()
	require.NoError(t, err)
	env := []string{
		"DATABASE_URL=" + dbtest.URL(t),
		"FLIGHTDECK_ADMIN_TOKEN=" + token,
		"FLIGHTDECK_LOG_LEVEL=info",
	}
	addr := freeAddr(t)
	cmd := exec.Command(serverBinary, "serve", "--addr", addr, "--analysis-interval", "1s", "--demo", "off")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())

	var mu sync.Mutex
	var logs []string
	ready := make(chan string, 1)
	done := make(chan struct{})
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				switch line["msg"] {
				case "flightdeck is ready":
					if url, ok := line["url"].(string); ok {
						ready <- url
					}
				case "http request":
					// The tests poll runs several times a second; those
					// lines would bury the engine's and the driver's.
					continue
				}
			}
			mu.Lock()
			logs = append(logs, sc.Text())
			mu.Unlock()
		}
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("flightdeck log:\n%s\n%s", strings.Join(logs, "\n"), stderr.String())
			mu.Unlock()
		}
	})
	select {
	case url := <-ready:
		return flightdeck{URL: strings.TrimSuffix(url, "/"), Token: token}
	case <-done:
		t.Fatalf("flightdeck exited before it was ready: %v\n%s", waitErr, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("flightdeck was not ready within 60s\n%s", stderr.String())
	}
	return flightdeck{}
}
