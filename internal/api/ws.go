package api

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/live"
)

// registerLive serves the websockets that keep the pages live: a run's
// page, the incident view and the overview. Without a hub the routes are
// left out.
func registerLive(e *echo.Echo, cfg Config) {
	if cfg.Live == nil || cfg.Sessions == nil || cfg.Members == nil {
		return
	}
	h := &socketHandlers{hub: cfg.Live, sessions: cfg.Sessions, members: cfg.Members}
	e.GET("/ws/runs/:id", h.run)
	e.GET("/ws/live", h.topic("live"))
	e.GET("/ws/overview", h.topic("overview"))
}

// socketHandlers open the pages' websockets. The routes are outside the
// session middleware, which would try to save the session on a connection
// that has become a websocket, so they read the session themselves.
type socketHandlers struct {
	hub      *live.Hub
	sessions *scs.SessionManager
	members  Members
}

// run opens the socket of a run's page.
func (h *socketHandlers) run(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("A run id is a positive whole number, not %q.", c.Param("id")))
	}
	return h.serve(c, fmt.Sprintf("run:%d", id))
}

// topic returns the handler of a page with one topic.
func (h *socketHandlers) topic(name string) echo.HandlerFunc {
	return func(c echo.Context) error { return h.serve(c, name) }
}

// serve hands the request to the hub as the signed-in member; the hub
// checks the Origin and the member's access before upgrading.
func (h *socketHandlers) serve(c echo.Context, topic string) error {
	m, err := h.member(c.Request())
	if err != nil {
		return err
	}
	h.hub.Serve(upgradeRecorder{c.Response()}, c.Request(), topic, m)
	return nil
}

// member returns the member signed in with the request's session cookie.
func (h *socketHandlers) member(r *http.Request) (auth.Member, error) {
	notSignedIn := echo.NewHTTPError(http.StatusUnauthorized,
		"You are not signed in (or your session has ended); sign in and reload the page to get live updates.")
	cookie, err := r.Cookie(h.sessions.Cookie.Name)
	if err != nil || cookie.Value == "" {
		return auth.Member{}, notSignedIn
	}
	ctx, err := h.sessions.Load(r.Context(), cookie.Value)
	if err != nil {
		return auth.Member{}, fmt.Errorf("loading the session of a live viewer: %w", err)
	}
	id := h.sessions.GetInt64(ctx, sessionUserKey)
	if id == 0 {
		return auth.Member{}, notSignedIn
	}
	m, err := memberByID(ctx, h.members, id)
	if errors.Is(err, errNoMember) {
		return auth.Member{}, notSignedIn
	}
	return m, err
}

// upgradeRecorder records a successful upgrade on echo's response, so
// that the request log and metrics show 101 rather than 200 and nothing
// writes to the connection the hub has taken over.
type upgradeRecorder struct {
	*echo.Response
}

// Hijack hands the connection over and marks the response as sent.
func (u upgradeRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := u.Response.Hijack()
	if err == nil {
		u.Response.Status = http.StatusSwitchingProtocols
		u.Response.Committed = true
	}
	return conn, rw, err
}
