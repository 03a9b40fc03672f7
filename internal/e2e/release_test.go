package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scenario is one release on its own app, environment, nginx and app
// processes, sharing Prometheus and the Flightdeck server with the others.
type scenario struct {
	name string
	// app is the app's slug, also the app label of its metrics.
	app string
	// versions are started before the stack; v1 is released first and
	// becomes stable.
	versions []sampleVersion
	// release runs the scenario once v1 is stable and traffic flows.
	release func(t *testing.T, s *stage)
}

// sampleVersion is a version of the sample app with its fault flags.
type sampleVersion struct {
	version string
	flags   []string
}

// stage is what a scenario works with.
type stage struct {
	fd    flightdeck
	app   string
	env   string
	proxy proxy
	users *users
	apps  map[string]appVersion
}

// thresholds judge a release within seconds: two seconds of warm-up after
// each traffic change, then two-second windows. Windows lie on a grid of
// their length, so the first whole window after the warm-up can end up to
// a window later than the warm-up plus one window; until it does, each
// evaluation (every second) finds no requests and is inconclusive. A
// window of two seconds keeps that to two evaluations in a row, below the
// engine's limit of three.
var thresholds = map[string]any{"warmup": "2s", "window": "2s"}

func TestReleasesOnRealStack(t *testing.T) {
	// Registered first, so it runs after every process of the stack ended.
	t.Cleanup(func() { _ = os.RemoveAll(binDir) })
	findTool(t, "nginx")
	findTool(t, "prometheus")

	scenarios := []scenario{
		{
			name: "good canary is promoted to all users", app: "shop-canary",
			versions: []sampleVersion{{version: "v1"}, {version: "v2"}},
			release:  goodCanary,
		},
		{
			name: "bad canary is rolled back on its error rate", app: "shop-bad-canary",
			versions: []sampleVersion{{version: "v1"}, {version: "v2", flags: []string{"--error-rate", "0.2"}}},
			release:  badCanary,
		},
		{
			name: "blue-green switches all traffic and back", app: "shop-blue-green",
			versions: []sampleVersion{{version: "v1"}, {version: "v2"}},
			release:  blueGreen,
		},
		{
			name: "shadow receives copies while users see stable", app: "shop-shadow",
			versions: []sampleVersion{{version: "v1"}, {version: "v2"}},
			release:  shadow,
		},
		{
			name: "A/B test keeps every user on one arm", app: "shop-ab",
			versions: []sampleVersion{{version: "v1"}, {version: "v2"}},
			release:  abTest,
		},
	}

	// Every app process first, so Prometheus can scrape all of them from
	// its start.
	started := map[string]map[string]appVersion{}
	var targets []scrapeTarget
	for _, sc := range scenarios {
		started[sc.app] = map[string]appVersion{}
		for _, v := range sc.versions {
			a := startSampleApp(t, v.version, v.flags...)
			started[sc.app][v.version] = a
			targets = append(targets, scrapeTarget{App: sc.app, Addr: a.Addr})
		}
	}
	promURL := startPrometheus(t, targets)
	fd := startFlightdeck(t)

	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := &stage{fd: fd, app: sc.app, env: "production", proxy: startNginx(t), apps: started[sc.app]}
			s.create(t, promURL)
			s.users = newUsers(s.proxy.URL)
			s.users.start(t, 40)
			s.releaseStable(t)
			sc.release(t, s)
		})
	}
}

// create makes the app and its production environment through the REST
// API: the nginx driver routing the app's versions, Prometheus judging
// them by version.
func (s *stage) create(t *testing.T, promURL string) {
	t.Helper()
	s.fd.mustCall(t, http.MethodPost, "/api/v1/apps", map[string]any{"slug": s.app, "name": s.app}, http.StatusCreated, nil)

	servers := map[string][]string{}
	for version, a := range s.apps {
		servers[version] = []string{a.Addr}
	}
	const (
		requests = `http_requests_total{app="{{.App}}",version="{{.Version}}"}`
		failed   = `http_requests_total{app="{{.App}}",version="{{.Version}}",code=~"5.."}`
		duration = `http_request_duration_seconds_%s{app="{{.App}}",version="{{.Version}}"}`
	)
	increase := func(selector string) string { return "sum(increase(" + selector + "[{{.Step}}]))" }
	env := map[string]any{
		"name": s.env,
		"tier": "production",
		"driver": map[string]any{
			"type":            "nginx",
			"dir":             s.proxy.Dir,
			"servers":         servers,
			"test_command":    s.proxy.command("-t", "-q"),
			"reload_command":  s.proxy.command("-s", "reload"),
			"command_timeout": "20s",
		},
		"metrics": map[string]any{
			"type": "prometheus", "url": promURL, "timeout": "5s", "step": "2s",
			"queries": map[string]any{
				"error_rate": map[string]string{
					"count": increase(requests),
					"sum":   increase(failed),
				},
				"latency": map[string]string{
					"count": increase(fmt.Sprintf(duration, "count")),
					"sum":   increase(fmt.Sprintf(duration, "sum")) + " * 1000",
					"p99":   "histogram_quantile(0.99, sum by (le) (increase(" + fmt.Sprintf(duration, "bucket") + "[{{.Step}}]))) * 1000",
				},
			},
		},
		"default_strategy": "canary",
		"thresholds":       thresholds,
	}
	status, body := s.fd.call(t, http.MethodPost, "/api/v1/apps/"+s.app+"/environments", env)
	require.Equal(t, http.StatusCreated, status, "creating the environment: %s", body)
}

// releaseStable releases v1 as the first deploy, after which every user
// is served by it.
func (s *stage) releaseStable(t *testing.T) {
	t.Helper()
	r := s.fd.startRun(t, s.app, s.env, "v1", "canary", map[string]any{"step_bake": "3s"})
	s.finished(t, r.ID, 60*time.Second, "succeeded")
	got := s.users.measure(1500 * time.Millisecond)
	require.Positive(t, got.total(), "%s", got)
	require.Equal(t, 1.0, got.share("v1"), "after the first deploy v1 serves everyone: %s", got)
}

// reloadSettle is how long nginx takes after a reload until no worker
// with the old configuration accepts connections any more: the reload
// command returns once the signal is sent, and the old workers finish
// gracefully.
const reloadSettle = time.Second

// baking waits until the run's current phase is of kind and baking, and
// until nginx serves that phase's routing to every new connection.
func (s *stage) baking(t *testing.T, id int64, kind string) run {
	t.Helper()
	r := s.fd.waitRun(t, id, 60*time.Second, "phase "+kind+" baking", func(r run) bool {
		return r.State == "running" && r.phaseKind() == kind && r.Phases[r.PhaseIndex].Status == "baking"
	})
	time.Sleep(reloadSettle)
	return r
}

// finished waits until the run ends in want, and until nginx serves the
// final routing to every new connection.
func (s *stage) finished(t *testing.T, id int64, within time.Duration, want string) run {
	t.Helper()
	r := s.fd.waitFinal(t, id, within, want)
	time.Sleep(reloadSettle)
	return r
}

func goodCanary(t *testing.T, s *stage) {
	r := s.fd.startRun(t, s.app, s.env, "v2", "canary", map[string]any{"steps": []int{25, 100}, "step_bake": "6s"})

	s.baking(t, r.ID, "shift")
	got := s.users.measure(2 * time.Second)
	require.InDelta(t, 0.25, got.share("v2"), 0.15, "a quarter of users on the canary: %s", got)
	require.Zero(t, got.Codes[http.StatusInternalServerError], "%s", got)

	s.finished(t, r.ID, 90*time.Second, "succeeded")
	got = s.users.measure(2 * time.Second)
	require.Greater(t, got.total(), 20, "%s", got)
	require.Equal(t, 1.0, got.share("v2"), "after promotion every response comes from v2: %s", got)
	require.Zero(t, got.Failed, "%s", got)
}

func badCanary(t *testing.T, s *stage) {
	r := s.fd.startRun(t, s.app, s.env, "v2", "canary", map[string]any{"steps": []int{50, 100}, "step_bake": "60s"})

	s.baking(t, r.ID, "shift")
	got := s.users.measure(1500 * time.Millisecond)
	require.Positive(t, got.Versions["v2"], "the canary serves users before it is judged: %s", got)

	final := s.finished(t, r.ID, 60*time.Second, "rolled_back")
	var rollback *decision
	for _, d := range s.fd.decisions(t, r.ID) {
		if d.Verdict == "rollback" {
			rollback = &d
		}
	}
	require.NotNil(t, rollback, "the rollback was decided by the analysis: %s", final)
	t.Logf("rollback decision: %s", rollback.Explanation)
	require.Contains(t, rollback.Explanation, "error rate")
	var errorRate bool
	for _, m := range rollback.Record.Metrics {
		if m.Metric == "error_rate" && m.Outcome == "degraded" {
			errorRate = true
			require.Greater(t, m.Candidate, m.Baseline, "%+v", m)
			require.Positive(t, m.CandidateN, "%+v", m)
		}
	}
	require.True(t, errorRate, "the decision record names the error rate as degraded: %+v", rollback.Record)
	require.True(t, rollback.Record.Path["degraded"], "%+v", rollback.Record.Path)

	got = s.users.measure(2 * time.Second)
	require.Greater(t, got.total(), 20, "%s", got)
	require.Zero(t, got.Versions["v2"], "after the rollback no response comes from v2: %s", got)
	require.Zero(t, got.Codes[http.StatusInternalServerError], "%s", got)
}

func blueGreen(t *testing.T, s *stage) {
	r := s.fd.startRun(t, s.app, s.env, "v2", "blue_green", map[string]any{"pre_switch_checks": "3s", "scale_down_delay": "60s"})

	s.baking(t, r.ID, "pre_switch")
	got := s.users.measure(1500 * time.Millisecond)
	require.Equal(t, 1.0, got.share("v1"), "green gets no users before the switch: %s", got)

	s.baking(t, r.ID, "keep_warm")
	got = s.users.measure(2 * time.Second)
	require.Greater(t, got.total(), 20, "%s", got)
	require.Equal(t, 1.0, got.share("v2"), "the switch moves every user at once: %s", got)

	s.fd.act(t, r.ID, "rollback", "flip back to blue")
	s.finished(t, r.ID, 60*time.Second, "rolled_back")
	got = s.users.measure(2 * time.Second)
	require.Greater(t, got.total(), 20, "%s", got)
	require.Equal(t, 1.0, got.share("v1"), "the rollback flips every user back to blue: %s", got)
}

func shadow(t *testing.T, s *stage) {
	r := s.fd.startRun(t, s.app, s.env, "v2", "shadow", map[string]any{"mirror_percent": 100, "duration": "60s"})

	s.baking(t, r.ID, "mirror")
	before := requestCount(t, s.apps["v2"])
	got := s.users.measure(3 * time.Second)
	// The last mirrored copies may still be on their way.
	time.Sleep(200 * time.Millisecond)
	mirrored := requestCount(t, s.apps["v2"]) - before
	require.Greater(t, got.total(), 20, "%s", got)
	require.Equal(t, 1.0, got.share("v1"), "users are only answered by stable: %s", got)
	require.GreaterOrEqual(t, mirrored, float64(got.total())/2,
		"the shadow received copies of the traffic: %v copies for %s", mirrored, got)

	s.fd.act(t, r.ID, "rollback", "stop the shadow")
	s.finished(t, r.ID, 60*time.Second, "rolled_back")
	s.users.measure(time.Second)
	before = requestCount(t, s.apps["v2"])
	got = s.users.measure(2 * time.Second)
	require.Equal(t, 1.0, got.share("v1"), "%s", got)
	require.Equal(t, before, requestCount(t, s.apps["v2"]), "no copies reach the shadow once it is stopped")
}

func abTest(t *testing.T, s *stage) {
	r := s.fd.startRun(t, s.app, s.env, "v2", "ab_test", map[string]any{"split_percent": 50, "min_duration": "1m", "max_duration": "2m"})

	s.baking(t, r.ID, "split")
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("ab-user-%d", i)
	}
	seen, err := s.users.stickiness(t.Context(), ids, 4)
	require.NoError(t, err)
	arms := map[string]int{}
	for _, id := range ids {
		versions := versionsOf(seen[id])
		require.Len(t, versions, 1, "user %s is always answered by the same arm: %v", id, seen[id])
		arms[versions[0]]++
	}
	require.Positive(t, arms["v1"], "some users are on arm A: %v", arms)
	require.Positive(t, arms["v2"], "some users are on arm B: %v", arms)

	s.fd.act(t, r.ID, "rollback", "end the experiment")
	s.finished(t, r.ID, 60*time.Second, "rolled_back")
	seen, err = s.users.stickiness(t.Context(), ids, 1)
	require.NoError(t, err)
	for _, id := range ids {
		require.Equal(t, []string{"v1"}, versionsOf(seen[id]), "after the experiment user %s is back on v1", id)
	}
}

// requestCount reads the number of requests a version of the sample app
// answered from its own metrics.
func requestCount(t *testing.T, a appVersion) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "http_requests_total{") {
			continue
		}
		fields := strings.Fields(line)
		n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		require.NoError(t, err, line)
		total += n
	}
	require.NoError(t, sc.Err())
	return total
}
