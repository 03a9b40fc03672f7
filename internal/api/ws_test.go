package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// withLive gives the pages a started hub on the page server's database,
// rendering the pages' own feed. It is returned through *hub.
func withLive(t *testing.T, hub **live.Hub) pageServerOption {
	return func(cfg *api.Config) {
		st := cfg.Pages.(*store.Store)
		h, err := live.NewHub(live.HubConfig{
			Pool: st.Pool(), Feed: api.NewFeed(st), Registerer: cfg.Registerer,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		require.NoError(t, h.Start(context.Background()))
		t.Cleanup(h.Stop)
		cfg.Live = h
		*hub = h
	}
}

// liveWriter is a store on the page server's database that announces the
// runs it changes, as the engine of any replica does.
func liveWriter(t *testing.T, s *pageServer) *store.Store {
	t.Helper()
	n := store.NewNotifier(s.Store.Pool(), store.NotifierConfig{Interval: 10 * time.Millisecond})
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(n.Stop)
	return store.New(s.Store.Pool(), store.Options{Notifier: n})
}

// wsRun is a run for the sockets to watch.
func wsRun(t *testing.T, st *store.Store) store.Run {
	t.Helper()
	ctx := context.Background()
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	run, _, err := st.CreateRun(ctx, store.NewRun{AppID: app.ID, EnvironmentID: env.ID, ToVersion: "v1.4.3", Strategy: "canary", CreatedBy: "alice"})
	require.NoError(t, err)
	return run
}

// socket is a page's websocket as the browser opened it.
type socket struct {
	t    testing.TB
	conn *websocket.Conn
}

// dial opens a websocket at path with the browser's cookies and the
// Origin given, and returns the handshake's answer when it is refused.
func (b *browser) dial(path, origin string) (*socket, *http.Response, string) {
	b.t.Helper()
	d := websocket.Dialer{Jar: b.client.Jar, HandshakeTimeout: 5 * time.Second}
	header := http.Header{}
	if origin != "" {
		header.Set("Origin", origin)
	}
	conn, res, err := d.Dial("ws"+strings.TrimPrefix(b.base, "http")+path, header)
	if err != nil {
		require.ErrorIs(b.t, err, websocket.ErrBadHandshake)
		defer res.Body.Close()
		body, rerr := io.ReadAll(res.Body)
		require.NoError(b.t, rerr)
		return nil, res, string(body)
	}
	b.t.Cleanup(func() { _ = conn.Close() })
	return &socket{t: b.t, conn: conn}, res, ""
}

// open opens a websocket that must be accepted and sends the resume
// message.
func (b *browser) open(path, resume string) *socket {
	b.t.Helper()
	s, res, body := b.dial(path, b.base)
	require.NotNil(b.t, s, "opening %s: %d %s", path, res.StatusCode, body)
	require.NoError(b.t, s.conn.WriteMessage(websocket.TextMessage, []byte(resume)))
	return s
}

// await reads frames until one contains want, and returns it.
func (s *socket) await(want string) string {
	s.t.Helper()
	require.NoError(s.t, s.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	var seen []string
	for {
		_, data, err := s.conn.ReadMessage()
		require.NoError(s.t, err, "waiting for a frame with %q; got %d frames", want, len(seen))
		if strings.Contains(string(data), want) {
			return string(data)
		}
		seen = append(seen, string(data))
	}
}

func TestRunPageSocketStreamsTheRunToASignedInBrowser(t *testing.T) {
	t.Parallel()
	var hub *live.Hub
	s := newPageServer(t, withLive(t, &hub))
	writer := liveWriter(t, s)
	run := wsRun(t, s.Store)
	created, err := s.Store.ListRunEvents(context.Background(), run.ID, 0, 1)
	require.NoError(t, err)
	s.addUser("alice", false, "checkout/production=deployer")
	b := s.signIn("alice")

	path := fmt.Sprintf("/ws/runs/%d", run.ID)
	ws := b.open(path, `{}`)
	ws.await(fmt.Sprintf(`data-testid="event-%d"`, created[0].ID))
	ws.await(`data-testid="run-header"`)

	// An event committed elsewhere reaches the open page.
	ev, err := writer.AppendRunEvent(context.Background(), run.ID, store.Event{Type: "driver.output", Actor: "engine"})
	require.NoError(t, err)
	ws.await(fmt.Sprintf(`data-testid="event-%d"`, ev.ID))
	require.NoError(t, ws.conn.Close())

	// A page that reconnects gets only what it missed.
	missed, err := writer.AppendRunEvent(context.Background(), run.ID, store.Event{Type: "driver.output", Actor: "engine"})
	require.NoError(t, err)
	again := b.open(path, fmt.Sprintf(`{"resume": {"event": %d}}`, ev.ID))
	frame := again.await(`data-testid="event-`)
	require.Contains(t, frame, fmt.Sprintf(`data-testid="event-%d"`, missed.ID))
	require.NotContains(t, frame, fmt.Sprintf(`data-testid="event-%d"`, ev.ID))

	require.Eventually(t, func() bool { return hub.Viewers() == 1 }, 5*time.Second, 10*time.Millisecond)
	res, err := http.Get(s.URL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), "flightdeck_live_viewers 1")
	require.Contains(t, string(body), `flightdeck_http_requests_total{method="GET",route="/ws/runs/:id",status="101"} 2`)
}

func TestLiveAndOverviewSocketsOpenForMembers(t *testing.T) {
	t.Parallel()
	var hub *live.Hub
	s := newPageServer(t, withLive(t, &hub))
	wsRun(t, s.Store)
	s.addUser("bob", false)
	b := s.signIn("bob")
	b.open("/ws/live", `{}`).await(`data-testid="live-table"`)
	b.open("/ws/overview", `{}`).await(`data-testid="app-checkout"`)
	require.Eventually(t, func() bool { return hub.Viewers() == 2 }, 5*time.Second, 10*time.Millisecond)
}

func TestSocketsRefuseBeforeUpgrading(t *testing.T) {
	t.Parallel()
	var hub *live.Hub
	s := newPageServer(t, withLive(t, &hub))
	run := wsRun(t, s.Store)
	s.addUser("alice", false)
	alice := s.signIn("alice")
	path := fmt.Sprintf("/ws/runs/%d", run.ID)

	forged := s.anonymous()
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	forged.client.Jar.SetCookies(u, []*http.Cookie{{Name: "flightdeck_session", Value: "not-a-session"}})

	cases := map[string]struct {
		b            *browser
		path, origin string
		status       int
		says         string
	}{
		"no session cookie":    {s.anonymous(), path, s.URL, http.StatusUnauthorized, "not signed in"},
		"a made-up session":    {forged, path, s.URL, http.StatusUnauthorized, "not signed in"},
		"another site's page":  {alice, path, "https://evil.example", http.StatusForbidden, "Origin"},
		"no origin":            {alice, path, "", http.StatusForbidden, "Origin"},
		"a run id that is not": {alice, "/ws/runs/latest", s.URL, http.StatusBadRequest, `not \"latest\"`},
		"a run that never was": {alice, "/ws/runs/999999", s.URL, http.StatusNotFound, "there is no run 999999"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ws, res, body := c.b.dial(c.path, c.origin)
			require.Nil(t, ws, "the socket must not open")
			require.Equal(t, c.status, res.StatusCode, body)
			require.Empty(t, res.Header.Get("Upgrade"))
			require.Contains(t, body, c.says)
		})
	}
	require.Zero(t, hub.Viewers())
}

func TestSocketRoutesNeedAHub(t *testing.T) {
	t.Parallel()
	s := newPageServer(t)
	s.addUser("alice", false)
	ws, res, _ := s.signIn("alice").dial("/ws/live", s.URL)
	require.Nil(t, ws, "a server without a hub opens no sockets")
	require.NotEqual(t, http.StatusSwitchingProtocols, res.StatusCode)
}
