package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// benchSecondsVar shortens the fixed-duration load of BenchmarkOFREPBulk,
// in whole seconds; a small number makes a quick run.
const benchSecondsVar = "FLIGHTDECK_BENCH_SECONDS"

// The shape of BenchmarkOFREPBulk: the flags of one environment, the
// concurrent clients asking for all of them, and the users those clients
// evaluate for.
const (
	ofrepBenchFlags   = 100
	ofrepBenchWorkers = 32
	ofrepBenchUsers   = 4096
	ofrepBenchSeconds = 15
)

// The goal BenchmarkOFREPBulk reports against, on a 2-core machine that
// also runs Postgres and the load generator.
const (
	ofrepGoalEvalsPerSecond = 20000
	ofrepGoalP99            = 20 * time.Millisecond
)

// The app, environment and flag of the feature flag tests and benchmarks.
const (
	flagApp        = "checkout"
	flagEnv        = "production"
	killSwitchFlag = "checkout-redesign"
)

// The rounds of BenchmarkKillSwitchPropagation: one every killRoundEvery,
// starting at a random point of its first half, so that the kills meet the
// replicas' polling and periodic reloads at every phase.
const (
	killRounds     = 30
	killRoundEvery = 200 * time.Millisecond
)

// ofrepPollEvery is how often a watcher asks a replica for the flag: a
// client polling as fast as it usefully can, which bounds the resolution
// of the propagation times.
const ofrepPollEvery = time.Millisecond

// BenchmarkOFREPBulk measures bulk OFREP evaluation, POST
// /ofrep/v1/evaluate/flags, as client-side SDKs call it: 32 clients at once
// for 15 s (FLIGHTDECK_BENCH_SECONDS), each request for another user
// (distinct targeting keys, emails and plans) and each answered with all 100
// flags of checkout/production, a realistic mix of rules, rollouts,
// segments and plain switches. The server runs as its own process, built
// from this package, with the SDK token a service would use (flags scope,
// limited to the app and environment); this process is the clients.
//
// "evaluate" sends no ETag, so every request evaluates every flag, as fast
// as the clients can: the throughput, and the latency of a saturated
// machine. "at-goal-rate" sends the goal's rate (20,000 flag evaluations a
// second, 200 requests) on a schedule and measures the latency then.
// "if-none-match" is a client polling with the ETag of its last answer:
// nothing changes meanwhile, so every answer should be 304.
func BenchmarkOFREPBulk(b *testing.B) {
	d := benchLoadDuration(b)
	token, _, _, err := auth.Generate()
	require.NoError(b, err)
	s := startServer(b, []string{"DATABASE_URL=" + dbtest.URL(b), "FLIGHTDECK_ADMIN_TOKEN=" + token}, "--demo", "off")
	rest := &benchREST{t: b, base: s.url, token: token}
	createFlagApp(b, rest)
	seedBenchFlags(b, rest)
	sdk := createSDKToken(b, rest, "checkout-web")
	bodies := ofrepBenchContexts(ofrepBenchUsers)
	checkBulkAnswers(b, s.url, sdk, bodies)

	b.Run("evaluate", func(b *testing.B) {
		cpu := startCPUWatch(b, s)
		b.ResetTimer()
		lat, errs := load(b, ofrepBenchWorkers, d, func(c *http.Client, w, i int) (int, error) {
			res, err := postOFREP(c, s.url, sdk, bodies[ofrepUser(w, i)], "")
			if err != nil {
				return 0, err
			}
			return res.status, checkBulkBody(res)
		})
		b.StopTimer()
		perSecond := float64(len(lat)) / d.Seconds()
		p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
		b.ReportMetric(perSecond*ofrepBenchFlags, "flag_evals/s")
		b.ReportMetric(perSecond, "req/s")
		b.ReportMetric(ms(p50), "p50_ms")
		b.ReportMetric(ms(p99), "p99_ms")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d clients as fast as they can for %s: %d requests of %d flags, %.0f flag evaluations/s (%.1f times the goal of %d), p50 %s, p99 %s, max %s, %d errors; %s",
			ofrepBenchWorkers, d, len(lat), ofrepBenchFlags, perSecond*ofrepBenchFlags, perSecond*ofrepBenchFlags/ofrepGoalEvalsPerSecond,
			ofrepGoalEvalsPerSecond, p50, p99, quantile(lat, 1), errs, cpu.report(b))
		require.Zero(b, errs, "requests that failed or whose answer was not every flag evaluated without error")
	})

	// The goal's rate, sent on a schedule whatever the answers' pace (an
	// open loop, as independent clients do), with each latency counted
	// from the moment its request was due, so a stall shows in full.
	b.Run("at-goal-rate", func(b *testing.B) {
		rate := float64(ofrepGoalEvalsPerSecond) / ofrepBenchFlags
		cpu := startCPUWatch(b, s)
		b.ResetTimer()
		lat, errs := paced(b, ofrepBenchWorkers, rate, d, func(c *http.Client, w, i int) error {
			res, err := postOFREP(c, s.url, sdk, bodies[ofrepUser(w, i)], "")
			if err != nil {
				return err
			}
			return checkBulkBody(res)
		})
		b.StopTimer()
		perSecond := float64(len(lat)) / d.Seconds()
		p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
		b.ReportMetric(perSecond*ofrepBenchFlags, "flag_evals/s")
		b.ReportMetric(perSecond, "req/s")
		b.ReportMetric(ms(p50), "p50_ms")
		b.ReportMetric(ms(p99), "p99_ms")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(0, "ns/op")
		met := "met"
		if perSecond < 0.98*rate || p99 > ofrepGoalP99 {
			met = "missed"
		}
		b.Logf("%.0f requests/s of %d flags due on a schedule for %s: %d answered, %.0f flag evaluations/s, p50 %s, p99 %s, max %s, %d errors; goal of %d flag evaluations/s at p99 <= %s %s; %s",
			rate, ofrepBenchFlags, d, len(lat), perSecond*ofrepBenchFlags, p50, p99, quantile(lat, 1), errs,
			ofrepGoalEvalsPerSecond, ofrepGoalP99, met, cpu.report(b))
		require.Zero(b, errs, "requests that failed or whose answer was not every flag evaluated without error")
	})

	b.Run("if-none-match", func(b *testing.B) {
		// Each client's first answer, whose ETag it then polls with.
		etags := make([]string, len(bodies))
		primeETags(b, s.url, sdk, bodies, etags)
		var modified atomic.Int64
		cpu := startCPUWatch(b, s)
		b.ResetTimer()
		lat, errs := load(b, ofrepBenchWorkers, d, func(c *http.Client, w, i int) (int, error) {
			u := ofrepUser(w, i)
			res, err := postOFREP(c, s.url, sdk, bodies[u], etags[u])
			if err != nil {
				return 0, err
			}
			switch res.status {
			case http.StatusNotModified:
				return http.StatusOK, nil
			case http.StatusOK:
				modified.Add(1)
				return res.status, checkBulkBody(res)
			}
			return res.status, nil
		})
		b.StopTimer()
		perSecond := float64(len(lat)) / d.Seconds()
		p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
		notModified := 0.0
		if len(lat) > 0 {
			notModified = 100 * float64(len(lat)-int(modified.Load())) / float64(len(lat))
		}
		b.ReportMetric(perSecond, "req/s")
		b.ReportMetric(notModified, "not_modified_%")
		b.ReportMetric(ms(p50), "p50_ms")
		b.ReportMetric(ms(p99), "p99_ms")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d clients polling with their ETag for %s: %d requests, %.0f/s, %.2f%% answered 304, p50 %s, p99 %s, max %s, %d errors; %s",
			ofrepBenchWorkers, d, len(lat), perSecond, notModified, p50, p99, quantile(lat, 1), errs, cpu.report(b))
		require.Zero(b, errs, "requests that failed")
		require.Zero(b, modified.Load(), "answers with the flags although no flag changed: the ETag of an unchanged environment must stay the same")
	})
}

// BenchmarkKillSwitchPropagation measures how long the kill switch takes to
// reach every replica. Two servers run against one database, as behind a
// load balancer; checkout-redesign is on in checkout/production. Each
// round, the kill switch is clicked through the REST API on replica A, as a
// release manager's click or CI does, while a watcher on each replica
// evaluates the flag over OFREP every millisecond; the time from sending the
// kill to the moment the last replica serves false is one sample. The flag
// is then turned on again through the REST API (with the state's version,
// as a client that read it would) and the time until both serve true is a
// sample of the way back. The servers run as their own processes, built
// from this package.
func BenchmarkKillSwitchPropagation(b *testing.B) {
	token, _, _, err := auth.Generate()
	require.NoError(b, err)
	env := []string{"DATABASE_URL=" + dbtest.URL(b), "FLIGHTDECK_ADMIN_TOKEN=" + token}
	a := startServer(b, env, "--demo", "off")
	other := startServer(b, env, "--demo", "off")
	replicas := []*server{a, other}
	rest := &benchREST{t: b, base: a.url, token: token}
	createFlagApp(b, rest)
	version := createKillSwitchFlag(b, rest)
	sdk := createSDKToken(b, rest, "checkout-web")
	_, err = watchServed(replicas, sdk, true, 10*time.Second)()
	require.NoError(b, err, "the flag, turned on, did not reach both replicas")

	var kills, ons, requests []time.Duration
	perReplica := [2][]time.Duration{}
	b.ResetTimer()
	begin := time.Now()
	for round := range killRounds {
		time.Sleep(time.Until(begin.Add(time.Duration(round)*killRoundEvery + rand.N(killRoundEvery/2))))
		wait := watchServed(replicas, sdk, false, 10*time.Second)
		at := time.Now()
		version = killFlag(b, rest)
		requests = append(requests, time.Since(at))
		served, err := wait()
		require.NoError(b, err, "round %d: the kill switch", round)
		kills = append(kills, lastOf(served).Sub(at))
		for i, t := range served {
			perReplica[i] = append(perReplica[i], t.Sub(at))
		}

		time.Sleep(rand.N(killRoundEvery / 4))
		wait = watchServed(replicas, sdk, true, 10*time.Second)
		at = time.Now()
		version = turnFlagOn(b, rest, version)
		served, err = wait()
		require.NoError(b, err, "round %d: turning the flag on again", round)
		ons = append(ons, lastOf(served).Sub(at))
	}
	b.StopTimer()
	took := time.Since(begin)

	for _, l := range [][]time.Duration{kills, ons, requests, perReplica[0], perReplica[1]} {
		slices.Sort(l)
	}
	b.ReportMetric(ms(quantile(kills, 0.5)), "kill_p50_ms")
	b.ReportMetric(ms(quantile(kills, 0.99)), "kill_p99_ms")
	b.ReportMetric(ms(quantile(kills, 1)), "kill_max_ms")
	b.ReportMetric(ms(quantile(ons, 0.5)), "on_p50_ms")
	b.ReportMetric(ms(quantile(ons, 0.99)), "on_p99_ms")
	b.ReportMetric(ms(quantile(ons, 1)), "on_max_ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d rounds in %s, polling every %s: kill -> every replica p50 %s, p99 %s, max %s (the kill request itself p50 %s, max %s; replica A p50 %s, max %s; replica B p50 %s, max %s); turn on -> every replica p50 %s, p99 %s, max %s; goal: at most 1s",
		killRounds, took.Round(time.Millisecond), ofrepPollEvery,
		quantile(kills, 0.5), quantile(kills, 0.99), quantile(kills, 1), quantile(requests, 0.5), quantile(requests, 1),
		quantile(perReplica[0], 0.5), quantile(perReplica[0], 1), quantile(perReplica[1], 0.5), quantile(perReplica[1], 1),
		quantile(ons, 0.5), quantile(ons, 0.99), quantile(ons, 1))
}

// paced sends rate requests a second, spread evenly over the workers and
// over time, for d, and returns each request's latency counted from when it
// was due. A worker that falls behind sends at once, so the time it was
// late is counted.
func paced(b *testing.B, workers int, rate float64, d time.Duration, do func(client *http.Client, worker, i int) error) (lat []time.Duration, errs int) {
	b.Helper()
	every := time.Duration(float64(time.Second) * float64(workers) / rate)
	begin := time.Now()
	end := begin.Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			var mine []time.Duration
			bad := 0
			for i := 0; ; i++ {
				due := begin.Add(time.Duration(w)*every/time.Duration(workers) + time.Duration(i)*every)
				if !due.Before(end) {
					break
				}
				time.Sleep(time.Until(due))
				if err := do(client, w, i); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(due))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, errs
}

// benchLoadDuration is how long BenchmarkOFREPBulk loads the server.
func benchLoadDuration(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv(benchSecondsVar)
	if v == "" {
		return ofrepBenchSeconds * time.Second
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		// Below a second the benchmark framework would run the whole load
		// again and again to fill its default benchmark time.
		t.Fatalf("%s must be a whole number of seconds, at least 1; got %q", benchSecondsVar, v)
	}
	return time.Duration(n) * time.Second
}

// lastOf returns the latest of the moments.
func lastOf(ts []time.Time) time.Time {
	return slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// createFlagApp creates the checkout app and its production environment.
func createFlagApp(t testing.TB, rest *benchREST) {
	t.Helper()
	rest.must("POST", "/api/v1/apps", `{"slug": "`+flagApp+`", "name": "Checkout"}`, http.StatusCreated)
	rest.must("POST", "/api/v1/apps/"+flagApp+"/environments",
		`{"name": "`+flagEnv+`", "driver": {"type": "simulator"}}`, http.StatusCreated)
}

// createSDKToken makes the token a service's OpenFeature provider is
// configured with: the flags scope, limited to checkout/production, so
// that requests need no header naming them.
func createSDKToken(t testing.TB, rest *benchREST, name string) string {
	t.Helper()
	var created struct {
		Token string `json:"token"`
	}
	rest.decode(rest.must("POST", "/api/v1/tokens", mustJSON(t, map[string]any{
		"name": name, "scopes": []string{"flags"}, "apps": []string{flagApp}, "environments": []string{flagEnv},
	}), http.StatusCreated), &created)
	require.NotEmpty(t, created.Token)
	return created.Token
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// flagPath is the REST path of the flag, or of its state in production.
func flagPath(key string, inEnv bool) string {
	p := "/api/v1/apps/" + flagApp + "/flags"
	if key != "" {
		p += "/" + key
	}
	if inEnv {
		p += "/environments/" + flagEnv
	}
	return p
}

// benchFlagType is one of the four flag types with its variants: the one
// served by default and the one rules and rollouts target.
type benchFlagType struct {
	name, prefix        string
	variants            map[string]any
	standard, treatment string
}

var benchFlagTypes = []benchFlagType{
	{name: "boolean", prefix: "new-cart", standard: "off", treatment: "on",
		variants: map[string]any{"on": true, "off": false}},
	{name: "string", prefix: "button-copy", standard: "classic", treatment: "streamlined",
		variants: map[string]any{"classic": "Buy now", "streamlined": "Pay", "one-page": "Check out in one step"}},
	{name: "number", prefix: "page-size", standard: "standard", treatment: "large",
		variants: map[string]any{"small": 10, "standard": 25, "large": 100}},
	{name: "object", prefix: "retry-policy", standard: "v1", treatment: "v2",
		variants: map[string]any{
			"v1": map[string]any{"timeout_ms": 800, "retries": 2},
			"v2": map[string]any{"timeout_ms": 400, "retries": 3, "hedge": true, "backoff": []float64{0.1, 0.4, 1.6}},
		}},
}

// seedBenchFlags creates the segments and the flags of checkout in
// production through the REST API: a third with targeting rules (staff
// emails, paying plans, half of them also a segment), a third rolled out to
// a percentage (some also to a segment first), and the rest plain switches,
// half on and half off.
func seedBenchFlags(t testing.TB, rest *benchREST) {
	t.Helper()
	rest.must("PUT", "/api/v1/apps/"+flagApp+"/segments/beta-testers", mustJSON(t, map[string]any{
		"name":          "Beta testers",
		"clauses":       []any{map[string]any{"attribute": "plan", "op": "in", "values": []string{"beta"}}},
		"included_keys": []string{"user-00007", "user-00042"},
		"excluded_keys": []string{"user-00013"},
		"version":       0,
	}), http.StatusCreated)
	rest.must("PUT", "/api/v1/apps/"+flagApp+"/segments/enterprise", mustJSON(t, map[string]any{
		"name":    "Enterprise accounts",
		"clauses": []any{map[string]any{"attribute": "plan", "op": "equals", "values": []string{"enterprise"}}},
		"version": 0,
	}), http.StatusCreated)

	weights := []int{5, 10, 25, 50}
	for i := range ofrepBenchFlags {
		ft := benchFlagTypes[i%len(benchFlagTypes)]
		key := fmt.Sprintf("%s-%02d", ft.prefix, i)
		rest.must("POST", flagPath("", false), mustJSON(t, map[string]any{
			"key": key, "type": ft.name, "variants": ft.variants,
			"default_variant": ft.standard, "off_variant": ft.standard,
			"description": "Release " + strconv.Itoa(i) + " of the checkout team",
		}), http.StatusCreated)

		state := map[string]any{"enabled": true, "version": 0}
		var rules []any
		switch i % 3 {
		case 0:
			if i%2 == 0 {
				rules = append(rules, map[string]any{"name": "beta testers", "segment": "beta-testers", "variant": ft.treatment})
			}
			rules = append(rules,
				map[string]any{"name": "staff", "variant": ft.treatment,
					"clauses": []any{map[string]any{"attribute": "email", "op": "ends_with", "values": []string{"@acme.com"}}}},
				map[string]any{"name": "paying plans", "variant": ft.treatment,
					"clauses": []any{map[string]any{"attribute": "plan", "op": "in", "values": []string{"pro", "enterprise"}}}})
			state["default_rollout"] = map[string]any{"variant": ft.standard}
		case 1:
			if i%2 == 0 {
				rules = append(rules, map[string]any{"name": "enterprise first", "segment": "enterprise", "variant": ft.treatment})
			}
			w := weights[(i/3)%len(weights)]
			state["default_rollout"] = map[string]any{"rollout": []any{
				map[string]any{"variant": ft.treatment, "weight": w},
				map[string]any{"variant": ft.standard, "weight": 100 - w},
			}}
		default:
			if (i/3)%2 == 0 {
				state["default_rollout"] = map[string]any{"variant": ft.treatment}
			} else {
				state["enabled"] = false
			}
		}
		if rules != nil {
			state["rules"] = rules
		}
		rest.must("PUT", flagPath(key, true), mustJSON(t, state), http.StatusOK)
	}
}

// ofrepBenchContexts returns the request bodies of n users, with the
// attributes the rules look at: a fifth on each plan, a tenth staff.
func ofrepBenchContexts(n int) [][]byte {
	plans := []string{"free", "free", "pro", "enterprise", "beta"}
	countries := []string{"NL", "DE", "US", "BR", "JP", "IN"}
	bodies := make([][]byte, n)
	for u := range n {
		domain := "mail.example"
		switch u % 10 {
		case 0:
			domain = "acme.com"
		case 1, 2:
			domain = "bigcorp.example"
		}
		key := fmt.Sprintf("user-%05d", u)
		b, _ := json.Marshal(map[string]any{"context": map[string]any{
			"targetingKey": key, "email": key + "@" + domain, "plan": plans[u%len(plans)],
			"country": countries[u%len(countries)], "app_version": fmt.Sprintf("4.%d.%d", u%7, u%3),
		}})
		bodies[u] = b
	}
	return bodies
}

// ofrepUser spreads the workers' requests over the users, each worker on a
// stride of its own.
func ofrepUser(worker, i int) int {
	return (worker*ofrepBenchUsers/ofrepBenchWorkers + i*7) % ofrepBenchUsers
}

// ofrepResult is an OFREP answer as a client received it.
type ofrepResult struct {
	status int
	etag   string
	body   []byte
}

// postOFREP asks for every flag with the body, and with If-None-Match when
// etag is set.
func postOFREP(c *http.Client, base, token string, body []byte, etag string) (ofrepResult, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/ofrep/v1/evaluate/flags", bytes.NewReader(body))
	if err != nil {
		return ofrepResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	res, err := c.Do(req)
	if err != nil {
		return ofrepResult{}, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return ofrepResult{}, err
	}
	return ofrepResult{status: res.StatusCode, etag: res.Header.Get("ETag"), body: out}, nil
}

var (
	ofrepKeyField   = []byte(`"key":`)
	ofrepErrorField = []byte(`"errorCode"`)
)

// checkBulkBody checks, cheaply enough to do for every answer under load,
// that a bulk answer holds every flag and no error.
func checkBulkBody(res ofrepResult) error {
	if res.status != http.StatusOK {
		return fmt.Errorf("status %d: %s", res.status, res.body)
	}
	if n := bytes.Count(res.body, ofrepKeyField); n != ofrepBenchFlags {
		return fmt.Errorf("the answer holds %d flags, not %d", n, ofrepBenchFlags)
	}
	if bytes.Contains(res.body, ofrepErrorField) {
		return fmt.Errorf("a flag evaluated to an error: %s", res.body)
	}
	return nil
}

// checkBulkAnswers waits until the server evaluates every flag, then checks
// that the users' answers take every path of evaluation: targeting rules,
// percentage splits, plain values and switched-off flags.
func checkBulkAnswers(t testing.TB, base, token string, bodies [][]byte) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := postOFREP(http.DefaultClient, base, token, bodies[0], "")
		return err == nil && checkBulkBody(res) == nil
	}, 10*time.Second, 20*time.Millisecond, "the server does not serve the %d flags", ofrepBenchFlags)
	reasons := map[string]int{}
	for _, body := range bodies[:50] {
		res, err := postOFREP(http.DefaultClient, base, token, body, "")
		require.NoError(t, err)
		require.NoError(t, checkBulkBody(res))
		require.NotEmpty(t, res.etag, "a bulk answer carries an ETag")
		var answer struct {
			Flags []struct {
				Key    string `json:"key"`
				Reason string `json:"reason"`
			} `json:"flags"`
		}
		require.NoError(t, json.Unmarshal(res.body, &answer))
		for _, f := range answer.Flags {
			reasons[f.Reason]++
		}
	}
	for _, want := range []string{"TARGETING_MATCH", "SPLIT", "STATIC", "DISABLED"} {
		require.Positive(t, reasons[want], "no flag evaluated with reason %s: %v", want, reasons)
	}
}

// primeETags makes each user's first request, recording its ETag.
func primeETags(t testing.TB, base, token string, bodies [][]byte, etags []string) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, ofrepBenchWorkers)
	for range ofrepBenchWorkers {
		wg.Go(func() {
			for {
				u := int(next.Add(1)) - 1
				if u >= len(bodies) {
					return
				}
				res, err := postOFREP(http.DefaultClient, base, token, bodies[u], "")
				if err == nil {
					err = checkBulkBody(res)
				}
				if err == nil && res.etag == "" {
					err = errors.New("the answer has no ETag")
				}
				if err != nil {
					errs <- fmt.Errorf("user %d: %w", u, err)
					return
				}
				etags[u] = res.etag
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("asking for each user's flags once: %v", err)
	}
}

// cpuWatch measures where the machine's processor time goes during a load:
// the server, this process (the clients) and the machine as a whole, whose
// remainder is mostly Postgres.
type cpuWatch struct {
	pid         int
	cores       int
	server, own float64
	busy, total float64
	started     time.Time
}

func startCPUWatch(t testing.TB, s *server) *cpuWatch {
	t.Helper()
	w := &cpuWatch{pid: s.cmd.Process.Pid, cores: machineCores(t)}
	w.server, w.own = cpuSeconds(t, w.pid), cpuSeconds(t, os.Getpid())
	w.busy, w.total = machineCPU(t)
	w.started = time.Now()
	return w
}

// report describes the processor time used since the watch started.
func (w *cpuWatch) report(t testing.TB) string {
	t.Helper()
	elapsed := time.Since(w.started).Seconds()
	server := cpuSeconds(t, w.pid) - w.server
	own := cpuSeconds(t, os.Getpid()) - w.own
	busy, total := machineCPU(t)
	machine := 0.0
	if total > w.total {
		machine = (busy - w.busy) / (total - w.total) * float64(w.cores)
	}
	return fmt.Sprintf("processor time in cores: server %.2f, clients %.2f, whole machine %.2f of %d (the rest is mostly Postgres)",
		server/elapsed, own/elapsed, machine, w.cores)
}

// machineCPU reads the machine's busy and total processor time from
// /proc/stat, in clock ticks.
func machineCPU(t testing.TB) (busy, total float64) {
	t.Helper()
	stat, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	line, _, _ := strings.Cut(string(stat), "\n")
	fields := strings.Fields(line)
	require.Greater(t, len(fields), 5, "/proc/stat: %q", line)
	for i, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		require.NoError(t, err)
		total += v
		// idle and iowait are the 4th and 5th.
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total
}

// machineCores counts the processors /proc/stat lists.
func machineCores(t testing.TB) int {
	t.Helper()
	stat, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(string(stat), "\n") {
		if strings.HasPrefix(line, "cpu") && !strings.HasPrefix(line, "cpu ") {
			n++
		}
	}
	return max(n, 1)
}

// createKillSwitchFlag creates checkout-redesign, a boolean whose off
// variant is false, and turns it on in production. It returns the state's
// version.
func createKillSwitchFlag(t testing.TB, rest *benchREST) int64 {
	t.Helper()
	rest.must("POST", flagPath("", false), mustJSON(t, map[string]any{
		"key": killSwitchFlag, "type": "boolean", "variants": map[string]bool{"on": true, "off": false},
		"default_variant": "on", "off_variant": "off", "description": "The redesigned checkout",
	}), http.StatusCreated)
	return flagVersion(t, rest.must("PUT", flagPath(killSwitchFlag, true), `{"enabled": true, "version": 0}`, http.StatusOK), true)
}

// killFlag clicks the kill switch of checkout-redesign in production and
// returns the state's new version.
func killFlag(t testing.TB, rest *benchREST) int64 {
	t.Helper()
	return flagVersion(t, rest.must("POST", flagPath(killSwitchFlag, true)+"/kill", "", http.StatusOK), false)
}

// turnFlagOn turns checkout-redesign on again in production, from the
// state's version, and returns the new version.
func turnFlagOn(t testing.TB, rest *benchREST, version int64) int64 {
	t.Helper()
	return flagVersion(t, rest.must("PUT", flagPath(killSwitchFlag, true), fmt.Sprintf(`{"enabled": true, "version": %d}`, version), http.StatusOK), true)
}

// flagVersion reads the version of a flag state the REST API answered,
// checking that it is enabled or not as the change meant.
func flagVersion(t testing.TB, body []byte, enabled bool) int64 {
	t.Helper()
	var state struct {
		Enabled bool  `json:"enabled"`
		Version int64 `json:"version"`
	}
	require.NoError(t, json.Unmarshal(body, &state), string(body))
	require.Equal(t, enabled, state.Enabled, string(body))
	return state.Version
}

// ofrepAnswer is a single-flag OFREP answer.
type ofrepAnswer struct {
	Value   json.RawMessage `json:"value"`
	Reason  string          `json:"reason"`
	Variant string          `json:"variant"`
}

// evaluateKillSwitch asks the replica for checkout-redesign over OFREP,
// as a server-side SDK does.
func evaluateKillSwitch(ctx context.Context, s *server, token string) (ofrepAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/ofrep/v1/evaluate/flags/"+killSwitchFlag,
		strings.NewReader(`{"context": {"targetingKey": "kill-switch-watcher"}}`))
	if err != nil {
		return ofrepAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ofrepAnswer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return ofrepAnswer{}, err
	}
	if res.StatusCode != http.StatusOK {
		return ofrepAnswer{}, &ofrepRefusal{status: res.StatusCode, body: string(body)}
	}
	var a ofrepAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return ofrepAnswer{}, fmt.Errorf("%s answered %s: %w", s.url, body, err)
	}
	return a, nil
}

// ofrepRefusal is an OFREP answer other than 200.
type ofrepRefusal struct {
	status int
	body   string
}

func (r *ofrepRefusal) Error() string { return fmt.Sprintf("answered %d: %s", r.status, r.body) }

// watchServed starts a watcher on each replica that evaluates
// checkout-redesign every ofrepPollEvery until the replica serves want.
// The function it returns waits for the watchers and returns, for each
// replica, when its first answer with want arrived; it fails when a
// replica answers an error or does not serve want within the time given.
// A 404 is not an error but a replica that has yet to learn of the flag or
// its environment, which a flag just created may be.
func watchServed(replicas []*server, token string, want bool, within time.Duration) func() ([]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	wantValue := strconv.FormatBool(want)
	served := make([]time.Time, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, s := range replicas {
		wg.Go(func() {
			last := "nothing"
			for {
				a, err := evaluateKillSwitch(ctx, s, token)
				now := time.Now()
				if ctx.Err() != nil {
					errs[i] = fmt.Errorf("replica %s still serves %s %s after the change, not %s", s.url, last, within, wantValue)
					return
				}
				var refusal *ofrepRefusal
				switch {
				case errors.As(err, &refusal) && refusal.status == http.StatusNotFound:
					last = "nothing (" + err.Error() + ")"
				case err != nil:
					errs[i] = fmt.Errorf("replica %s: %w", s.url, err)
					return
				case string(a.Value) == wantValue:
					served[i] = now
					return
				default:
					last = fmt.Sprintf("%s (reason %s)", a.Value, a.Reason)
				}
				time.Sleep(ofrepPollEvery)
			}
		})
	}
	return func() ([]time.Time, error) {
		wg.Wait()
		cancel()
		return served, errors.Join(errs...)
	}
}
