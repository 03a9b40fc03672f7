package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// fanoutViewersVar sets how many browsers BenchmarkWebsocketFanout opens;
// a small number makes a quick run.
const fanoutViewersVar = "FLIGHTDECK_BENCH_VIEWERS"

// fileHeadroom is the descriptors a process needs beside its sockets to
// the viewers: the database, its log files, the listener.
const fileHeadroom = 1024

// fanoutRounds is how many updates the benchmark sends, one a second.
const fanoutRounds = 15

// BenchmarkWebsocketFanout opens the page of one run in 10,000 browsers
// (FLIGHTDECK_BENCH_VIEWERS) and changes the run once a second, pausing
// and resuming it through the REST API as CI or a release manager would.
// It reports how long each change took to reach each browser (from the
// request that made it to the browser's first frame showing its event, at
// the 50th and 99th percentile) and what each open page costs the server
// in memory (the growth of its resident set while the browsers connected,
// divided by their number). The server runs as its own process, built from
// this package, and this process is the browsers.
func BenchmarkWebsocketFanout(b *testing.B) {
	viewers := 10000
	if v := os.Getenv(fanoutViewersVar); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "%s must be a number of viewers", fanoutViewersVar)
		require.Positive(b, n, "%s must be a number of viewers", fanoutViewersVar)
		viewers = n
	}
	// Each viewer is a descriptor here and one in the server, whose
	// limit is this process's.
	raiseFileLimit(b, uint64(viewers+fileHeadroom))

	token, _, _, err := auth.Generate()
	require.NoError(b, err)
	password := "fanout-" + token[len(token)-24:]
	s := startServer(b, []string{"DATABASE_URL=" + dbtest.URL(b), "FLIGHTDECK_ADMIN_TOKEN=" + token, "FLIGHTDECK_ADMIN_PASSWORD=" + password})
	rest := &benchREST{t: b, base: s.url, token: token}

	rest.must("POST", "/api/v1/apps", `{"slug": "storefront", "name": "Storefront"}`, http.StatusCreated)
	rest.must("POST", "/api/v1/apps/storefront/environments",
		`{"name": "production", "driver": {"type": "simulator"}, "strategy_defaults": {"canary": {"step_bake": "1h"}}}`, http.StatusCreated)
	var run struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	rest.decode(rest.must("POST", "/api/v1/apps/storefront/environments/production/runs", `{"version": "v2.0.0", "strategy": "canary"}`, http.StatusCreated), &run)
	require.Eventually(b, func() bool {
		rest.decode(rest.must("GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), "", http.StatusOK), &run)
		return run.State == "running"
	}, 30*time.Second, 100*time.Millisecond, "the engine did not start the run")

	cookie := sessionCookie(b, s.url, "admin", password)
	page := &fanoutPage{
		base:   s.url,
		url:    "ws" + strings.TrimPrefix(s.url, "http") + fmt.Sprintf("/ws/runs/%d", run.ID),
		header: http.Header{"Origin": {s.url}, "Cookie": {cookie.String()}},
		resume: fmt.Sprintf(`{"resume": {"event": %d, "window": %q}}`, rest.lastEvent(run.ID), time.Now().UTC().Format(time.RFC3339Nano)),
		dialer: &websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 512, WriteBufferPool: &sync.Pool{}},
	}
	page.checkServed(b)

	before := residentKB(b, s.cmd.Process.Pid)
	start := time.Now()
	all := page.open(b, viewers)
	b.Cleanup(func() {
		for _, v := range all {
			_ = v.conn.Close()
		}
	})
	require.Eventually(b, func() bool { return serverViewers(b, s.url) == viewers }, 60*time.Second, 250*time.Millisecond,
		"the server does not count %d viewers", viewers)
	b.Logf("%d viewers connected in %s", viewers, time.Since(start).Round(time.Millisecond))
	// Let the connection burst's garbage be collected before measuring.
	time.Sleep(3 * time.Second)
	after := residentKB(b, s.cmd.Process.Pid)

	serverCPU, ownCPU := cpuSeconds(b, s.cmd.Process.Pid), cpuSeconds(b, os.Getpid())
	b.ResetTimer()
	sent := make(map[int64]time.Time, fanoutRounds)
	last := rest.lastEvent(run.ID)
	// A change every second, at a random point of it, so that the changes
	// meet the server's periodic work (the coalescing of notifications
	// among it) at every phase, as real ones do.
	begin := time.Now()
	for round := range fanoutRounds {
		time.Sleep(time.Until(begin.Add(time.Duration(round)*time.Second + rand.N(500*time.Millisecond))))
		action, want := "pause", "run.paused"
		if round%2 == 1 {
			action, want = "resume", "run.resumed"
		}
		at := time.Now()
		rest.must("POST", fmt.Sprintf("/api/v1/runs/%d/actions/%s", run.ID, action), "", http.StatusOK)
		id, newest := rest.eventOf(run.ID, last, want)
		sent[id], last = at, newest
	}
	b.StopTimer()
	serverCPU = cpuSeconds(b, s.cmd.Process.Pid) - serverCPU
	ownCPU = cpuSeconds(b, os.Getpid()) - ownCPU

	// Wait for stragglers, then take every viewer's delay for every change.
	var lat []time.Duration
	perChange := map[int64][]time.Duration{}
	missed, closed := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for _, v := range all {
		for {
			got, done := v.arrivals(sent)
			if len(got) == len(sent) || done || time.Now().After(deadline) {
				for id, at := range sent {
					if t, ok := got[id]; ok {
						lat = append(lat, t.Sub(at))
						perChange[id] = append(perChange[id], t.Sub(at))
					} else {
						missed++
					}
				}
				if done {
					closed++
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var each []string
	for _, id := range slices.Sorted(maps.Keys(perChange)) {
		l := perChange[id]
		slices.Sort(l)
		each = append(each, fmt.Sprintf("%d-%d", quantile(l, 0).Milliseconds(), quantile(l, 0.99).Milliseconds()))
	}
	b.Logf("first viewer to p99, in ms, for each change: %s", strings.Join(each, " "))
	slices.Sort(lat)
	p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
	kb := float64(after-before) / float64(viewers)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(kb, "kb_per_conn")
	b.ReportMetric(float64(viewers), "viewers")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(serverCPU*1000/float64(len(sent)), "server_cpu_ms/change")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d viewers, %d changes: p50 %s, p99 %s, max %s; server resident set %d KiB before, %d KiB after connecting (%.1f KiB per viewer); CPU while changing: server %.2fs, viewers %.2fs",
		viewers, len(sent), p50, p99, quantile(lat, 1), before, after, kb, serverCPU, ownCPU)
	require.Zero(b, closed, "connections the server closed during the run")
	require.Zero(b, missed, "changes that never reached a viewer")
}

// fanoutPage is the run page the viewers open.
type fanoutPage struct {
	base   string
	url    string
	header http.Header
	resume string
	dialer *websocket.Dialer
}

// checkServed fails the benchmark, saying why, when the server does not
// serve the page's websocket.
func (p *fanoutPage) checkServed(b *testing.B) {
	conn, res, err := p.dialer.Dial(p.url, p.header)
	if err != nil {
		status := "no answer"
		if res != nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			status = fmt.Sprintf("%d %s", res.StatusCode, bytes.TrimSpace(body))
		}
		b.Fatalf("the server does not serve the run page's websocket %s (%s: %v); it needs the live hub in api.Config.Live", p.url, status, err)
	}
	_ = conn.Close()
	// Until the server has seen that socket go, it counts it.
	require.Eventually(b, func() bool { return serverViewers(b, p.base) == 0 }, 10*time.Second, 50*time.Millisecond)
}

// open connects n viewers, a few at a time as browsers arriving would.
func (p *fanoutPage) open(b *testing.B, n int) []*fanoutViewer {
	all := make([]*fanoutViewer, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conn, _, err := p.dialer.Dial(p.url, p.header)
				if err == nil {
					err = conn.WriteMessage(websocket.TextMessage, []byte(p.resume))
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("viewer %d: %w", i, err):
					default:
					}
					return
				}
				v := &fanoutViewer{conn: conn, seen: map[int64]time.Time{}}
				all[i] = v
				go v.read()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("opening the viewers: %v", err)
	}
	return all
}

// fanoutViewer is one browser; it notes when each run event first
// reached it.
type fanoutViewer struct {
	conn *websocket.Conn
	mu   sync.Mutex
	seen map[int64]time.Time
	done bool
}

var eventIDAttr = []byte(`data-event-id="`)

// messageBuffers hold one message while a viewer looks for event ids in
// it, so that ten thousand viewers do not each keep a buffer.
var messageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (v *fanoutViewer) read() {
	for {
		_, r, err := v.conn.NextReader()
		now := time.Now()
		if err == nil {
			buf := messageBuffers.Get().(*bytes.Buffer)
			buf.Reset()
			if _, err = buf.ReadFrom(r); err == nil {
				v.note(buf.Bytes(), now)
			}
			messageBuffers.Put(buf)
		}
		if err != nil {
			v.mu.Lock()
			v.done = true
			v.mu.Unlock()
			return
		}
	}
}

// note records the arrival of the events a message shows.
func (v *fanoutViewer) note(data []byte, at time.Time) {
	for {
		i := bytes.Index(data, eventIDAttr)
		if i < 0 {
			return
		}
		data = data[i+len(eventIDAttr):]
		end := bytes.IndexByte(data, '"')
		if end < 0 {
			return
		}
		if id, err := strconv.ParseInt(string(data[:end]), 10, 64); err == nil {
			v.mu.Lock()
			if _, ok := v.seen[id]; !ok {
				v.seen[id] = at
			}
			v.mu.Unlock()
		}
	}
}

// arrivals returns when each of the events reached the viewer, and
// whether its connection has ended.
func (v *fanoutViewer) arrivals(events map[int64]time.Time) (map[int64]time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	got := make(map[int64]time.Time, len(events))
	for id := range events {
		if at, ok := v.seen[id]; ok {
			got[id] = at
		}
	}
	return got, v.done
}

// benchREST calls the REST API with the admin token.
type benchREST struct {
	t     testing.TB
	base  string
	token string
}

// must sends the request and requires the status, returning the body.
func (c *benchREST) must(method, path, body string, status int) []byte {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, status, res.StatusCode, "%s %s: %s", method, path, out)
	return out
}

func (c *benchREST) decode(body []byte, v any) {
	c.t.Helper()
	require.NoError(c.t, json.Unmarshal(body, v))
}

// events returns the run's events after the id, oldest first.
func (c *benchREST) events(runID, after int64) []struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
} {
	c.t.Helper()
	var list struct {
		Items []struct {
			ID   int64  `json:"id"`
			Type string `json:"type"`
		} `json:"items"`
	}
	c.decode(c.must("GET", fmt.Sprintf("/api/v1/runs/%d/events?after=%d", runID, after), "", http.StatusOK), &list)
	return list.Items
}

// lastEvent returns the id of the run's newest event.
func (c *benchREST) lastEvent(runID int64) int64 {
	c.t.Helper()
	var last int64
	for {
		items := c.events(runID, last)
		if len(items) == 0 {
			return last
		}
		last = items[len(items)-1].ID
	}
}

// eventOf returns the id of the first event of the type after the id,
// and the newest event's id.
func (c *benchREST) eventOf(runID, after int64, typ string) (id, newest int64) {
	c.t.Helper()
	for _, ev := range c.events(runID, after) {
		if ev.Type == typ && id == 0 {
			id = ev.ID
		}
		newest = ev.ID
	}
	require.NotZero(c.t, id, "no %s event after event %d", typ, after)
	return id, newest
}

// sessionCookie signs in to the pages as a browser does and returns the session
// cookie.
func sessionCookie(t testing.TB, base, username, password string) *http.Cookie {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(base + "/login")
	require.NoError(t, err)
	res.Body.Close()
	var csrf *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "flightdeck_csrf" {
			csrf = c
		}
	}
	require.NotNil(t, csrf, "the sign-in page set no form token")
	form := url.Values{"username": {username}, "password": {password}, "_csrf": {csrf.Value}}
	req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(csrf)
	res, err = client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode, "signing in as %s", username)
	for _, c := range res.Cookies() {
		if c.Name == "flightdeck_session" {
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatalf("signing in as %s set no session cookie", username)
	return nil
}

// serverViewers reads the flightdeck_live_viewers gauge of the server.
func serverViewers(t testing.TB, base string) int {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "flightdeck_live_viewers "); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	t.Fatalf("the server reports no flightdeck_live_viewers")
	return 0
}

// residentKB reads the process's resident set size in KiB.
func residentKB(t testing.TB, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return kb
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// cpuSeconds reads the processor time a process has used, in seconds.
func cpuSeconds(t testing.TB, pid int) float64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// The fields after the command name, which is in parentheses and may
	// hold spaces; utime and stime are the 12th and 13th of them, in
	// clock ticks of 1/100 s.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	require.Greater(t, len(fields), 12, "/proc/%d/stat", pid)
	utime, err := strconv.ParseFloat(fields[11], 64)
	require.NoError(t, err)
	stime, err := strconv.ParseFloat(fields[12], 64)
	require.NoError(t, err)
	return (utime + stime) / 100
}

// raiseFileLimit lets this process, and the server it starts, open n
// descriptors. Setting the limit explicitly also makes children inherit
// it rather than the limit the process started with.
func raiseFileLimit(t testing.TB, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= n {
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Fatalf("%d viewers need %d file descriptors in this process and in the server, and the limit is %d (at most %d): %v; raise the hard limit or lower %s",
			n-fileHeadroom, n, lim.Cur, lim.Max, err, fanoutViewersVar)
	}
}
