package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// eventFeed renders a run's events, as they are stored, one frame each,
// followed by a state frame with the run's state. Only members with a
// binding (or administrators) may watch, so that refusals can be tested;
// the class is the member's role on the run's environment.
type eventFeed struct {
	st *store.Store
}

func topicRun(topic string) (int64, bool) {
	kind, arg, _ := strings.Cut(topic, ":")
	id, err := strconv.ParseInt(arg, 10, 64)
	return id, kind == "run" && err == nil && id > 0
}

func (f *eventFeed) Class(ctx context.Context, topic string, m auth.Member) (string, error) {
	id, ok := topicRun(topic)
	if !ok {
		return "", fmt.Errorf("%w: %q", live.ErrUnknownTopic, topic)
	}
	run, err := f.st.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: run %d", live.ErrUnknownTopic, id)
	}
	if err != nil {
		return "", err
	}
	app, err := f.st.AppByID(ctx, run.AppID)
	if err != nil {
		return "", err
	}
	env, err := f.st.EnvironmentByID(ctx, run.EnvironmentID)
	if err != nil {
		return "", err
	}
	if !m.IsAdmin && len(m.Bindings) == 0 {
		return "", fmt.Errorf("%w: %s has no role on %s/%s", live.ErrForbidden, m.Username, app.Slug, env.Name)
	}
	return string(m.RoleOn(app.Slug, env.Name)), nil
}

func (f *eventFeed) Frames(ctx context.Context, topic, class string, m auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error) {
	id, _ := topicRun(topic)
	run, err := f.st.Run(ctx, id)
	if err != nil {
		return nil, cur, err
	}
	events, err := f.st.ListRunEvents(ctx, id, cur.EventID, 500)
	if err != nil {
		return nil, cur, err
	}
	var frames []live.Frame
	for _, ev := range events {
		data, err := json.Marshal(map[string]any{"event": ev.ID, "type": ev.Type, "payload": ev.Payload, "class": class})
		if err != nil {
			return nil, cur, err
		}
		frames = append(frames, live.Frame{EventID: ev.ID, Data: data})
		cur.EventID = ev.ID
	}
	if len(events) > 0 {
		frames = append(frames, live.Frame{Data: fmt.Appendf(nil, `{"state": %q}`, run.State)})
	}
	return frames, cur, nil
}

func (f *eventFeed) Affected(topic string, runID int64) bool {
	id, ok := topicRun(topic)
	return ok && id == runID
}

// fixture is a hub on one connection pool and, as another replica would,
// a writer with its own pool and notifier on the same database.
type fixture struct {
	t       *testing.T
	hub     *live.Hub
	reg     *prometheus.Registry
	writer  *store.Store
	run     store.Run
	srv     *httptest.Server
	members map[string]auth.Member
}

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// setup starts a hub with the configuration adjusted by tune, serving
// ws://…/?topic=run:<id>&user=<name> for the members alice (deployer on
// checkout/production), root (administrator) and mallory (no role).
func setup(t *testing.T, tune func(*live.HubConfig)) *fixture {
	t.Helper()
	ctx := context.Background()
	url := dbtest.URL(t)
	hubPool, writerPool := newPool(t, url), newPool(t, url)

	notifier := store.NewNotifier(writerPool, store.NotifierConfig{Interval: 10 * time.Millisecond})
	require.NoError(t, notifier.Start(ctx))
	t.Cleanup(notifier.Stop)
	writer := store.New(writerPool, store.Options{Notifier: notifier})
	app, err := writer.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := writer.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	run, _, err := writer.CreateRun(ctx, store.NewRun{AppID: app.ID, EnvironmentID: env.ID, ToVersion: "v2", Strategy: "canary", CreatedBy: "user:alice"})
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	cfg := live.HubConfig{
		Pool: hubPool, Feed: &eventFeed{st: store.New(hubPool, store.Options{})},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
	}
	if tune != nil {
		tune(&cfg)
	}
	hub, err := live.NewHub(cfg)
	require.NoError(t, err)
	require.NoError(t, hub.Start(ctx))
	t.Cleanup(hub.Stop)

	f := &fixture{t: t, hub: hub, reg: reg, writer: writer, run: run, members: map[string]auth.Member{
		"alice":   {UserID: 1, Username: "alice", Bindings: []auth.Binding{{App: "checkout", Environment: "production", Role: auth.RoleDeployer}}},
		"root":    {UserID: 2, Username: "root", IsAdmin: true},
		"mallory": {UserID: 3, Username: "mallory"},
	}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, r.URL.Query().Get("topic"), f.members[r.URL.Query().Get("user")])
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) topic() string { return fmt.Sprintf("run:%d", f.run.ID) }

// append records an event on the run through the writer and returns its id.
func (f *fixture) append(payload any) int64 {
	f.t.Helper()
	ev, err := f.writer.AppendRunEvent(context.Background(), f.run.ID, store.Event{Type: "driver.output", Actor: "engine", Payload: payload})
	require.NoError(f.t, err)
	return ev.ID
}

func (f *fixture) wsURL(topic, user string) string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/?topic=" + topic + "&user=" + user
}

func (f *fixture) origin() http.Header {
	return http.Header{"Origin": {f.srv.URL}}
}

// stalled opens a socket that sends its resume message and never reads
// again, with a receive buffer so small that the server's writes to it
// soon block.
func (f *fixture) stalled() {
	f.t.Helper()
	dialer := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			return errors.Join(err, serr)
		}}
		return d.Dial(network, addr)
	}}
	conn, _, err := dialer.Dial(f.wsURL(f.topic(), "alice"), f.origin())
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = conn.Close() })
	require.NoError(f.t, conn.WriteMessage(websocket.TextMessage, []byte(`{}`)))
}

// received is one frame as a viewer got it.
type received struct {
	at    time.Time
	event int64
	state string
	class string
}

// viewer is a browser watching a topic; a goroutine collects its frames.
type viewer struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan received
	// closed receives the error that ended reading.
	closed chan error
}

// watch opens a socket as the user and sends the resume message.
func (f *fixture) watch(user, resume string) *viewer {
	f.t.Helper()
	conn, res, err := websocket.DefaultDialer.Dial(f.wsURL(f.topic(), user), f.origin())
	require.NoError(f.t, err)
	require.Equal(f.t, http.StatusSwitchingProtocols, res.StatusCode)
	require.NoError(f.t, conn.WriteMessage(websocket.TextMessage, []byte(resume)))
	v := &viewer{t: f.t, conn: conn, frames: make(chan received, 10000), closed: make(chan error, 1)}
	f.t.Cleanup(func() { _ = conn.Close() })
	go v.collect()
	return v
}

func (v *viewer) collect() {
	for {
		_, data, err := v.conn.ReadMessage()
		if err != nil {
			v.closed <- err
			return
		}
		var frame struct {
			Event int64  `json:"event"`
			State string `json:"state"`
			Class string `json:"class"`
		}
		if json.Unmarshal(data, &frame) != nil {
			v.closed <- fmt.Errorf("frame is not JSON: %.100s", data)
			return
		}
		v.frames <- received{at: time.Now(), event: frame.Event, state: frame.State, class: frame.Class}
	}
}

// nextEvent returns the next event frame, skipping state frames.
func (v *viewer) nextEvent(within time.Duration) received {
	v.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case r := <-v.frames:
			if r.event != 0 {
				return r
			}
		case err := <-v.closed:
			v.t.Fatalf("the connection ended while waiting for an event: %v", err)
		case <-deadline:
			v.t.Fatalf("no event frame within %s", within)
		}
	}
}

// events returns the ids of the next n event frames.
func (v *viewer) events(n int, within time.Duration) []int64 {
	v.t.Helper()
	ids := make([]int64, 0, n)
	for range n {
		ids = append(ids, v.nextEvent(within).event)
	}
	return ids
}

// quiet checks that no event frame arrives for d.
func (v *viewer) quiet(d time.Duration) {
	v.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-v.frames:
			require.Zero(v.t, r.event, "an event frame arrived that was already sent or never happened")
		case err := <-v.closed:
			v.t.Fatalf("the connection ended: %v", err)
		case <-deadline:
			return
		}
	}
}

// closedWith waits for the connection to end and returns the close frame
// the server sent.
func (v *viewer) closedWith(within time.Duration) *websocket.CloseError {
	v.t.Helper()
	select {
	case err := <-v.closed:
		var ce *websocket.CloseError
		require.ErrorAs(v.t, err, &ce, "the server closed the connection without a close frame")
		return ce
	case <-time.After(within):
		v.t.Fatalf("the connection is still open after %s", within)
		return nil
	}
}

func TestViewerSeesEventsCommittedByAnotherReplica(t *testing.T) {
	t.Parallel()
	// Without the periodic refresh only notifications can bring the events.
	f := setup(t, func(c *live.HubConfig) { c.Refresh = time.Hour })
	v := f.watch("alice", `{}`)
	created := v.nextEvent(5 * time.Second)
	require.Equal(t, "deployer", created.class, "frames are rendered for the viewer's class")

	for i := range 3 {
		sent := time.Now()
		id := f.append(map[string]any{"line": i})
		got := v.nextEvent(3 * time.Second)
		require.Equal(t, id, got.event)
		require.Less(t, got.at.Sub(sent), time.Second, "an event committed elsewhere reaches the viewer promptly")
	}
	v.quiet(200 * time.Millisecond)
	require.Positive(t, metricValue(t, f.reg, "flightdeck_live_frames_sent_total"))
	require.Equal(t, 1.0, metricValue(t, f.reg, "flightdeck_live_viewers"))
}

func TestPeriodicRefreshCoversALostNotification(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *live.HubConfig) { c.Refresh = 200 * time.Millisecond })
	v := f.watch("alice", `{}`)
	v.nextEvent(5 * time.Second)

	// A writer that announces nothing, as if its notification were lost.
	silent := store.New(f.writer.Pool(), store.Options{})
	ev, err := silent.AppendRunEvent(context.Background(), f.run.ID, store.Event{Type: "driver.output", Payload: map[string]any{"line": "unannounced"}})
	require.NoError(t, err)
	require.Equal(t, ev.ID, v.nextEvent(3*time.Second).event)
	v.quiet(500 * time.Millisecond)
}

func TestReconnectResumesWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	v := f.watch("alice", `{}`)
	created := v.nextEvent(5 * time.Second)
	seen := f.append(map[string]any{"line": "before the disconnect"})
	require.Equal(t, seen, v.nextEvent(5*time.Second).event)
	require.NoError(t, v.conn.Close())

	var missed []int64
	for i := range 3 {
		missed = append(missed, f.append(map[string]any{"line": i}))
	}
	// Events keep coming while the browser reconnects, so some are
	// committed between its registration and its backfill.
	more := make(chan []int64)
	go func() {
		var ids []int64
		for i := range 30 {
			ev, err := f.writer.AppendRunEvent(context.Background(), f.run.ID, store.Event{Type: "driver.output", Payload: map[string]any{"during": i}})
			if err != nil {
				break
			}
			ids = append(ids, ev.ID)
			time.Sleep(3 * time.Millisecond)
		}
		more <- ids
	}()
	again := f.watch("alice", fmt.Sprintf(`{"resume": {"event": %d}}`, seen))
	during := <-more
	require.Len(t, during, 30)
	want := append(missed, during...)
	require.Equal(t, want, again.events(len(want), 5*time.Second), "exactly the missed events, in order")
	require.NotContains(t, want, created.event)

	live := f.append(map[string]any{"line": "after the reconnect"})
	require.Equal(t, live, again.nextEvent(5*time.Second).event)
	again.quiet(300 * time.Millisecond)
}

func TestTheSameClassSharesRenderingsAndOtherClassesGetTheirOwn(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	alice1, alice2, root := f.watch("alice", `{}`), f.watch("alice", `{}`), f.watch("root", `{}`)
	for _, v := range []*viewer{alice1, alice2, root} {
		v.nextEvent(5 * time.Second)
	}
	id := f.append(map[string]any{"line": 1})
	require.Equal(t, "deployer", alice1.nextEvent(5*time.Second).class)
	require.Equal(t, "deployer", alice2.nextEvent(5*time.Second).class)
	got := root.nextEvent(5 * time.Second)
	require.Equal(t, id, got.event)
	require.Equal(t, "admin", got.class)
	require.Equal(t, 1, f.hub.Topics())

	for _, v := range []*viewer{alice1, alice2, root} {
		require.NoError(t, v.conn.Close())
	}
	require.Eventually(t, func() bool { return f.hub.Topics() == 0 && f.hub.Viewers() == 0 },
		5*time.Second, 10*time.Millisecond, "a topic nobody watches is forgotten")
}

func TestSlowViewerIsDroppedWhileOthersKeepUp(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *live.HubConfig) {
		c.SendQueue = 16
		c.WriteTimeout = 5 * time.Second
	})
	fast := f.watch("alice", `{}`)
	fast.nextEvent(5 * time.Second)

	f.stalled()
	require.Eventually(t, func() bool { return f.hub.Viewers() == 2 }, 5*time.Second, 10*time.Millisecond)

	// Events are committed every 20 ms until the slow viewer has been
	// dropped and twenty more have followed; the fast viewer must get each
	// one, in order, promptly.
	type appended struct {
		id int64
		at time.Time
	}
	dropped := func() float64 { return metricValue(t, f.reg, "flightdeck_live_slow_viewers_dropped_total") }
	sent := make(chan appended, 1000)
	go func() {
		defer close(sent)
		pad := strings.Repeat("x", 64<<10)
		after := 0
		for i := 0; i < 500 && after < 20; i++ {
			at := time.Now()
			ev, err := f.writer.AppendRunEvent(context.Background(), f.run.ID, store.Event{Type: "driver.output", Payload: map[string]any{"pad": pad}})
			if err != nil {
				return
			}
			sent <- appended{ev.ID, at}
			if dropped() > 0 {
				after++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var worst time.Duration
	n := 0
	for a := range sent {
		got := fast.nextEvent(5 * time.Second)
		require.Equal(t, a.id, got.event, "the fast viewer gets every event, in order")
		worst = max(worst, got.at.Sub(a.at))
		n++
	}
	require.Equal(t, 1.0, dropped(), "the slow viewer was dropped")
	require.Less(t, worst, 2*time.Second, "the fast viewer kept receiving promptly while the slow one stalled")
	require.Eventually(t, func() bool { return f.hub.Viewers() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the slow viewer's connection is closed")
	t.Logf("%d events of 64 KiB; the fast viewer's slowest took %s", n, worst)
}

func TestRefusalsComeBeforeTheUpgrade(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	cases := map[string]struct {
		topic, user string
		header      http.Header
		status      int
		says        string
	}{
		"another site's origin": {f.topic(), "alice", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, "Origin"},
		"no origin":             {f.topic(), "alice", http.Header{}, http.StatusForbidden, "Origin"},
		"malformed origin":      {f.topic(), "alice", http.Header{"Origin": {"::"}}, http.StatusForbidden, "Origin"},
		"no topic":              {"", "alice", f.origin(), http.StatusNotFound, "nothing to watch"},
		"unknown kind":          {"nonsense", "alice", f.origin(), http.StatusNotFound, "nothing to watch"},
		"run that never was":    {"run:999999", "alice", f.origin(), http.StatusNotFound, "run 999999"},
		"member without a role": {f.topic(), "mallory", f.origin(), http.StatusForbidden, "mallory has no role on checkout/production"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			conn, res, err := websocket.DefaultDialer.Dial(f.wsURL(c.topic, c.user), c.header)
			require.ErrorIs(t, err, websocket.ErrBadHandshake)
			require.Nil(t, conn)
			defer res.Body.Close()
			require.Equal(t, c.status, res.StatusCode)
			require.Empty(t, res.Header.Get("Upgrade"), "not upgraded")
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Contains(t, string(body), c.says)
		})
	}

	// A plain request, as a person opening the address would make.
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/?topic="+f.topic()+"&user=alice", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", f.srv.URL)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Zero(t, f.hub.Viewers())
	require.Zero(t, f.hub.Topics())
}

func TestHubNotRunningRefusesWithServiceUnavailable(t *testing.T) {
	t.Parallel()
	hub, err := live.NewHub(live.HubConfig{Pool: dbtest.New(t), Feed: &eventFeed{}})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, "run:1", auth.Member{Username: "alice"})
	}))
	defer srv.Close()
	_, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), http.Header{"Origin": {srv.URL}})
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	defer res.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
}

func TestBadResumeMessageClosesWithTheReason(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for msg, says := range map[string]string{
		`hello`:                           "must be a JSON object",
		`{"resume": {"event": "twelve"}}`: "resume.event must be a run event id",
		`{"resume": {"event": -1}}`:       "resume.event must be a run event id",
		`{"resume": {"window": "noon"}}`:  "resume.window must be an RFC 3339 time",
		`{"resume": 12}`:                  `"resume" must be an object`,
	} {
		v := f.watch("alice", msg)
		ce := v.closedWith(5 * time.Second)
		require.Equal(t, websocket.ClosePolicyViolation, ce.Code, msg)
		require.Contains(t, ce.Text, says, msg)
	}
	require.Eventually(t, func() bool { return f.hub.Viewers() == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, f.hub.Topics(), "a refused viewer never joined its topic")
}

func TestUnansweredPingsCloseTheConnection(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *live.HubConfig) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 300 * time.Millisecond
	})
	answers := f.watch("alice", `{}`)
	answers.nextEvent(5 * time.Second)

	conn, _, err := websocket.DefaultDialer.Dial(f.wsURL(f.topic(), "alice"), f.origin())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	conn.SetPingHandler(func(string) error { return nil }) // reads, but never answers pings
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(`{}`)))
	silent := &viewer{t: t, conn: conn, frames: make(chan received, 100), closed: make(chan error, 1)}
	start := time.Now()
	go silent.collect()

	ce := silent.closedWith(5 * time.Second)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	require.Contains(t, ce.Text, "no answer to ping")

	// The viewer that answers its pings outlives several timeouts.
	time.Sleep(700 * time.Millisecond)
	id := f.append(map[string]any{"line": "still here"})
	require.Equal(t, id, answers.nextEvent(5*time.Second).event)
	require.Equal(t, 1, f.hub.Viewers())
}

func TestStopClosesConnectionsSayingSo(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	v := f.watch("alice", `{}`)
	v.nextEvent(5 * time.Second)
	f.hub.Stop()
	ce := v.closedWith(5 * time.Second)
	require.Equal(t, websocket.CloseGoingAway, ce.Code)
	require.Zero(t, f.hub.Viewers())
	f.hub.Stop()
}

func TestStopDoesNotWaitForViewersThatStoppedReading(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *live.HubConfig) {
		c.SendQueue = 10000 // never dropped as slow
		c.WriteTimeout = time.Minute
	})
	f.stalled()
	reader := f.watch("alice", `{}`)
	reader.nextEvent(5 * time.Second)
	// More than the socket buffers hold, so the server's write blocks.
	pad := strings.Repeat("x", 256<<10)
	var last int64
	for range 40 {
		last = f.append(map[string]any{"pad": pad})
	}
	for reader.nextEvent(10*time.Second).event != last {
	}

	start := time.Now()
	f.hub.Stop()
	require.Less(t, time.Since(start), 10*time.Second, "Stop waited for a write to a viewer that does not read")
	require.Zero(t, f.hub.Viewers())
}

func TestNewHubRefusesAnIncompleteConfiguration(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	for name, c := range map[string]struct {
		cfg  live.HubConfig
		says string
	}{
		"no pool":          {live.HubConfig{Feed: &eventFeed{}}, "a database pool is required"},
		"no feed":          {live.HubConfig{Pool: pool}, "a feed is required"},
		"negative queue":   {live.HubConfig{Pool: pool, Feed: &eventFeed{}, SendQueue: -1}, "SendQueue must be positive"},
		"negative refresh": {live.HubConfig{Pool: pool, Feed: &eventFeed{}, Refresh: -time.Second}, "Refresh must be positive"},
		"pong before ping": {live.HubConfig{Pool: pool, Feed: &eventFeed{}, PingInterval: time.Minute, PongTimeout: time.Second}, "PongTimeout (1s) must be longer than PingInterval (1m0s)"},
		"metrics twice":    {live.HubConfig{Pool: pool, Feed: &eventFeed{}, Registerer: registered(t)}, "registering metrics"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := live.NewHub(c.cfg)
			require.ErrorContains(t, err, c.says)
		})
	}
}

// registered returns a registry that already holds a hub's metrics.
func registered(t *testing.T) prometheus.Registerer {
	reg := prometheus.NewRegistry()
	_, err := live.NewHub(live.HubConfig{Pool: dbtest.New(t), Feed: &eventFeed{}, Registerer: reg})
	require.NoError(t, err)
	return reg
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	for origin, want := range map[string]bool{
		"http://flightdeck.example:8080":  true,
		"https://FLIGHTDECK.example:8080": true,
		"http://flightdeck.example":       false,
		"http://evil.example:8080":        false,
		"null":                            false,
		"":                                false,
	} {
		r := httptest.NewRequest(http.MethodGet, "http://flightdeck.example:8080/ws/live", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		require.Equal(t, want, live.SameOrigin(r), origin)
	}
}

// metricValue reads the named counter or gauge from the registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
