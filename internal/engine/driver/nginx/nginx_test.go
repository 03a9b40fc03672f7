package nginx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/pgcluster"
)

// nginxBinary finds nginx. Outside CI a machine without it skips the
// real-server tests; in CI a missing binary fails, so the tests can never be
// skipped without anyone noticing.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the nginx binary is needed in CI: install it with apt-get install nginx-light")
	}
	t.Skip("nginx is not installed (apt-get install nginx-light); skipping the real-server test")
	return ""
}

// newDriver returns a driver logging into the test's output.
func newDriver(t *testing.T) *Driver {
	return New(Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
}

// testWriter hands log lines to t.Log, so they show only for failing tests.
type testWriter struct{ t *testing.T }

// Write logs one line.
func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// backend is a tiny app instance answering every request with its version,
// counting what it receives.
type backend struct {
	version string
	addr    string
	hits    atomic.Int64
}

// startBackend serves one version on a loopback port until the test ends.
func startBackend(t *testing.T, version string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &backend{version: version, addr: l.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Version", version)
		_, _ = io.WriteString(w, version)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// stack is one private nginx with the driver's include directory, and the
// backends of two versions behind it.
type stack struct {
	t       *testing.T
	binary  string
	prefix  string
	dir     string
	url     string
	reloads string
	pidFile string
	v1, v2  *backend
	client  *http.Client
}

// startStack starts nginx with a private prefix on a free loopback port,
// including the driver's files by wildcard so it starts before the first
// apply. nginx is stopped when the test ends.
func startStack(t *testing.T) *stack {
	t.Helper()
	binary := nginxBinary(t)
	prefix := t.TempDir()
	s := &stack{
		t:       t,
		binary:  binary,
		prefix:  prefix,
		dir:     filepath.Join(prefix, "flightdeck"),
		reloads: filepath.Join(prefix, "reloads"),
		pidFile: filepath.Join(prefix, "nginx.pid"),
		v1:      startBackend(t, "v1"),
		v2:      startBackend(t, "v2"),
		client:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	require.NoError(t, os.MkdirAll(s.dir, 0o755))
	port, err := pgcluster.FreePort()
	require.NoError(t, err)
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	conf := fmt.Sprintf(`daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s/http*.conf;
    server {
        listen 127.0.0.1:%[3]d;
        include %[2]s/server*.conf;
    }
}
`, prefix, s.dir, port)
	confPath := filepath.Join(prefix, "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))

	cmd := exec.Command(binary, "-p", prefix, "-c", confPath)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	require.Eventually(t, func() bool {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		conn.Close()
		// nginx creates the pid file before it writes the pid.
		pid, err := os.ReadFile(s.pidFile)
		return err == nil && strings.HasSuffix(string(pid), "\n")
	}, 10*time.Second, 20*time.Millisecond, "nginx did not start; see %s/error.log", prefix)
	return s
}

// config returns the driver configuration for this stack, with the given
// fields added or replaced.
func (s *stack) config(extra map[string]any) json.RawMessage {
	nginx := fmt.Sprintf("%s -p %s -c %s", s.binary, s.prefix, filepath.Join(s.prefix, "nginx.conf"))
	cfg := map[string]any{
		"type":            Type,
		"dir":             s.dir,
		"servers":         map[string][]string{"v1": {s.v1.addr}, "v2": {s.v2.addr}},
		"test_command":    nginx + " -t",
		"reload_command":  fmt.Sprintf("echo reload >> %s && %s -s reload", s.reloads, nginx),
		"command_timeout": "20s",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	require.NoError(s.t, err)
	return raw
}

// reloadCount is how many times the driver ran the reload command.
func (s *stack) reloadCount() int {
	content, err := os.ReadFile(s.reloads)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(s.t, err)
	return strings.Count(string(content), "reload")
}

// workers lists nginx's worker processes.
func (s *stack) workers() map[string]bool {
	pid, err := os.ReadFile(s.pidFile)
	require.NoError(s.t, err)
	master := strings.TrimSpace(string(pid))
	children, err := os.ReadFile(fmt.Sprintf("/proc/%s/task/%s/children", master, master))
	require.NoError(s.t, err)
	out := map[string]bool{}
	for _, c := range strings.Fields(string(children)) {
		out[c] = true
	}
	return out
}

// applyAndSettle applies req and, when nginx reloaded, waits until the
// workers of the previous configuration have exited, so every request
// afterwards is routed by the new files.
func (s *stack) applyAndSettle(d *Driver, req driver.Request) error {
	s.t.Helper()
	before := s.workers()
	reloads := s.reloadCount()
	err := d.Apply(context.Background(), req)
	if s.reloadCount() == reloads {
		return err
	}
	require.Eventually(s.t, func() bool {
		now := s.workers()
		if len(now) == 0 {
			return false
		}
		for w := range before {
			if now[w] {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "the workers of the previous nginx configuration did not exit")
	return err
}

// get sends one request through nginx and returns the version that answered.
func (s *stack) get(header http.Header) string {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+"/orders?x=1", nil)
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusOK, resp.StatusCode, "body: %s", body)
	return string(body)
}

// count sends n requests through nginx from several goroutines and counts
// the answers by version.
func (s *stack) count(n int) map[string]int {
	s.t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := s.client.Get(s.url + "/")
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				counts[string(body)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(s.t, err)
	}
	return counts
}

// request builds a driver request for the test app's environment.
func request(cfg json.RawMessage, runID, generation int64, desired plan.DesiredState) driver.Request {
	return driver.Request{
		RunID: runID, Generation: generation, App: "checkout", Environment: "production",
		PhaseIndex: int(generation) - 1, Phase: "step " + strconv.FormatInt(generation, 10),
		Desired: desired, Config: cfg,
	}
}

// weights is a desired state with one instance of v1 and v2 at the given
// weights.
func weights(v1, v2 int) plan.DesiredState {
	return plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 1, Weight: v1},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 1, Weight: v2},
	}}
}

// readFiles returns the two include files.
func (s *stack) readFiles() (string, string) {
	s.t.Helper()
	h, err := os.ReadFile(filepath.Join(s.dir, HTTPFile))
	require.NoError(s.t, err)
	srv, err := os.ReadFile(filepath.Join(s.dir, ServerFile))
	require.NoError(s.t, err)
	return string(h), string(srv)
}

func TestWeightedSplitServesExactShares(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)

	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, weights(75, 25))))
	counts := s.count(2000)
	require.Equal(t, 2000, counts["v1"]+counts["v2"], "every response comes from v1 or v2: %v", counts)
	share := float64(counts["v2"]) / 2000
	t.Logf("2,000 responses at 75/25: %v", counts)
	require.InDelta(t, 0.25, share, 0.04, "canary share of 2,000 responses: %v", counts)

	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 2, weights(0, 100))))
	counts = s.count(400)
	require.Equal(t, map[string]int{"v2": 400}, counts, "after the switch every response comes from v2")
}

func TestStickyCohortsKeepEachUserOnOneVersion(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)

	// An A/B split: half of the users by hash of their user id to v2.
	ab := weights(50, 50)
	ab.Cohorts = []plan.CohortRule{
		{Name: "arm_b", Version: "v2", Match: plan.Match{Kind: plan.MatchHash, Key: "user_id", Percent: 50}},
		{Name: "arm_a", Version: "v1", Match: plan.Match{Kind: plan.MatchAll}},
	}
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, ab)))

	onB := 0
	const users = 300
	for u := range users {
		header := http.Header{"Cookie": {fmt.Sprintf("user_id=user-%d", u)}}
		if u%2 == 1 {
			// Clients without the cookie send the id in a header.
			header = http.Header{"X-User-Id": {fmt.Sprintf("user-%d", u)}}
		}
		first := s.get(header)
		for range 4 {
			require.Equal(t, first, s.get(header), "user-%d must stay on one version", u)
		}
		if first == "v2" {
			onB++
		}
	}
	require.InDelta(t, 0.5, float64(onB)/users, 0.1, "share of users on arm B: %d of %d", onB, users)
	// The same id in a cookie or a header lands on the same arm.
	require.Equal(t, s.get(http.Header{"Cookie": {"user_id=user-7"}}), s.get(http.Header{"X-User-Id": {"user-7"}}))
	// Users without an id match no hash rule and stay on arm A.
	for range 20 {
		require.Equal(t, "v1", s.get(nil))
	}

	// A ring for employees by header, everyone else on v1.
	ring := weights(99, 1)
	ring.Cohorts = []plan.CohortRule{
		{Name: "employees", Version: "v2", Match: plan.Match{Kind: plan.MatchHeader, Key: "X-User-Group", Values: []string{"employees", "staff"}}},
		{Name: "rest", Version: "v1", Match: plan.Match{Kind: plan.MatchAll}},
	}
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 2, ring)))
	for range 20 {
		require.Equal(t, "v2", s.get(http.Header{"X-User-Group": {"employees"}}))
		require.Equal(t, "v2", s.get(http.Header{"X-User-Group": {"staff"}}))
		require.Equal(t, "v1", s.get(http.Header{"X-User-Group": {"customers"}}))
		require.Equal(t, "v1", s.get(nil))
	}

	// A cookie rule.
	beta := weights(90, 10)
	beta.Cohorts = []plan.CohortRule{
		{Name: "beta", Version: "v2", Match: plan.Match{Kind: plan.MatchCookie, Key: "beta", Values: []string{"yes"}}},
		{Name: "rest", Version: "v1", Match: plan.Match{Kind: plan.MatchAll}},
	}
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 3, beta)))
	for range 10 {
		require.Equal(t, "v2", s.get(http.Header{"Cookie": {"theme=dark; beta=yes"}}))
		require.Equal(t, "v1", s.get(http.Header{"Cookie": {"beta=no"}}))
	}
}

func TestMirrorCopiesRequestsToShadowWhileUsersGetStable(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)

	mirrored := weights(100, 0)
	mirrored.Mirror = &plan.Mirror{From: "v1", To: "v2", Percent: 100}
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, mirrored)))
	counts := s.count(300)
	require.Equal(t, map[string]int{"v1": 300}, counts, "users only get the stable version's responses")
	require.Eventually(t, func() bool { return s.v2.hits.Load() >= 300 }, 5*time.Second, 20*time.Millisecond,
		"the shadow receives a copy of every request, got %d", s.v2.hits.Load())

	// Half of the requests mirrored.
	mirrored.Mirror.Percent = 50
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 2, mirrored)))
	time.Sleep(200 * time.Millisecond)
	before := s.v2.hits.Load()
	counts = s.count(1000)
	require.Equal(t, map[string]int{"v1": 1000}, counts)
	time.Sleep(300 * time.Millisecond)
	copies := s.v2.hits.Load() - before
	require.InDelta(t, 500, copies, 100, "about half of 1,000 requests are copied to the shadow")
}

func TestRejectedFilesAreRestoredAndTrafficUnchanged(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, weights(100, 0))))
	goodHTTP, goodServer := s.readFiles()
	reloads := s.reloadCount()

	// An address nginx cannot resolve passes the driver's checks but not
	// nginx's.
	broken := s.config(map[string]any{"servers": map[string][]string{"v1": {s.v1.addr}, "v2": {"no-such-host.invalid:8080"}}})
	err := d.Apply(context.Background(), request(broken, 1, 2, weights(50, 50)))
	require.Error(t, err)
	require.ErrorIs(t, err, driver.ErrPermanent)
	require.Contains(t, err.Error(), "nginx rejected the new files")
	require.Contains(t, err.Error(), "no-such-host.invalid")

	h, srv := s.readFiles()
	require.Equal(t, goodHTTP, h, "the previous http.conf is back")
	require.Equal(t, goodServer, srv, "the previous server.conf is back")
	require.Equal(t, reloads, s.reloadCount(), "nothing was reloaded")
	require.Equal(t, map[string]int{"v1": 200}, s.count(200), "traffic still goes to v1 only")

	// The failed generation was not recorded, so a fixed retry applies.
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 2, weights(50, 50))))
	counts := s.count(200)
	require.Equal(t, 100, counts["v2"], "v2 serves exactly half: %v", counts)
}

func TestFailedReloadRestoresPreviousFiles(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, weights(100, 0))))
	goodHTTP, goodServer := s.readFiles()

	failing := s.config(map[string]any{"reload_command": "echo 'nginx: [error] open() nginx.pid failed' >&2; exit 1"})
	err := d.Apply(context.Background(), request(failing, 1, 2, weights(0, 100)))
	require.Error(t, err)
	require.NotErrorIs(t, err, driver.ErrPermanent, "a failed reload may succeed on a retry")
	require.Contains(t, err.Error(), "open() nginx.pid failed")
	require.Contains(t, err.Error(), "previous files restored")

	h, srv := s.readFiles()
	require.Equal(t, goodHTTP, h)
	require.Equal(t, goodServer, srv)
	require.Equal(t, map[string]int{"v1": 100}, s.count(100))

	// The retry with a working reload goes through.
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 2, weights(0, 100))))
	require.Equal(t, map[string]int{"v2": 100}, s.count(100))
}

func TestRepeatedAndStaleGenerationsChangeNothing(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	cfg := s.config(nil)

	require.NoError(t, s.applyAndSettle(d, request(cfg, 5, 2, weights(75, 25))))
	require.Equal(t, 1, s.reloadCount())
	http1, server1 := s.readFiles()

	// The same delivery again: no reload, same bytes.
	require.NoError(t, s.applyAndSettle(d, request(cfg, 5, 2, weights(75, 25))))
	require.Equal(t, 1, s.reloadCount(), "a repeated generation does not reload")
	http2, server2 := s.readFiles()
	require.Equal(t, http1, http2)
	require.Equal(t, server1, server2)

	// A stale generation with other weights is ignored.
	require.NoError(t, s.applyAndSettle(d, request(cfg, 5, 1, weights(100, 0))))
	require.NoError(t, s.applyAndSettle(d, request(cfg, 4, 9, weights(100, 0))), "an older run is stale too")
	require.Equal(t, 1, s.reloadCount(), "a stale generation does not reload")
	h, srv := s.readFiles()
	require.Equal(t, http1, h)
	require.Equal(t, server1, srv)

	// A restarted server reads the generation back from the files.
	restarted := newDriver(t)
	require.NoError(t, s.applyAndSettle(restarted, request(cfg, 5, 1, weights(100, 0))))
	require.Equal(t, 1, s.reloadCount(), "after a restart a stale generation is still ignored")
	h, _ = s.readFiles()
	require.Equal(t, http1, h)

	// A new generation with the same routing records the generation
	// without a reload; the bodies stay byte-identical.
	require.NoError(t, s.applyAndSettle(restarted, request(cfg, 5, 3, weights(75, 25))))
	require.Equal(t, 1, s.reloadCount(), "same routing needs no reload")
	h, srv = s.readFiles()
	require.Contains(t, h, `"generation":3`)
	require.Equal(t, body(http1), body(h))
	require.Equal(t, body(server1), body(srv))

	counts := s.count(400)
	require.Equal(t, 100, counts["v2"], "traffic is still split 75/25: %v", counts)
}

// body drops a file's state line.
func body(content string) string {
	_, rest, _ := strings.Cut(content, "\n")
	return rest
}

func TestStartAndStopCommandsRunWithVersionFilledIn(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	d := newDriver(t)
	log := filepath.Join(s.prefix, "commands.log")
	cfg := s.config(map[string]any{
		"start_command": fmt.Sprintf("echo start {version} {instances} {app}/{environment} $FLIGHTDECK_VERSION >> %s", log),
		"stop_command":  fmt.Sprintf("echo stop {version} {instances} >> %s", log),
	})
	readLog := func() []string {
		content, err := os.ReadFile(log)
		require.NoError(t, err)
		return strings.Split(strings.TrimSpace(string(content)), "\n")
	}

	start := plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 1, Weight: 100},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 2, Weight: 0},
	}}
	require.NoError(t, s.applyAndSettle(d, request(cfg, 1, 1, start)))
	require.Equal(t, []string{
		"start v1 1 checkout/production v1",
		"start v2 2 checkout/production v2",
	}, readLog())

	// v2 takes all traffic; v1 stops after the switch, v2 is unchanged.
	switched := plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 0, Weight: 0},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 2, Weight: 100},
	}}
	var reported []string
	req := request(cfg, 1, 2, switched)
	req.Report = func(summary, detail string) { reported = append(reported, summary+" | "+detail) }
	require.NoError(t, s.applyAndSettle(d, req))
	require.Equal(t, []string{
		"start v1 1 checkout/production v1",
		"start v2 2 checkout/production v2",
		"stop v1 0",
	}, readLog())
	require.NotEmpty(t, reported, "the commands' output goes to the run's events")
	require.Contains(t, strings.Join(reported, "\n"), "ran echo stop v1 0", "each report names the command it ran")
	require.Equal(t, map[string]int{"v2": 50}, s.count(50))

	// A failing start command changes nothing and says what it printed.
	failing := s.config(map[string]any{"start_command": "echo cannot pull image app:{version} >&2; exit 3"})
	err := d.Apply(context.Background(), request(failing, 1, 3, weights(50, 50)))
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot pull image app:v1")
	require.Contains(t, err.Error(), "exit status 3")
	require.Equal(t, map[string]int{"v2": 50}, s.count(50))

	// A hanging command is ended by the timeout.
	hanging := s.config(map[string]any{"start_command": "echo starting {version}; sleep 30", "command_timeout": "1s"})
	began := time.Now()
	err = d.Apply(context.Background(), request(hanging, 1, 3, weights(50, 50)))
	require.Error(t, err)
	require.Contains(t, err.Error(), "timed out after 1s")
	require.Contains(t, err.Error(), "starting v1")
	require.Less(t, time.Since(began), 5*time.Second)
}
