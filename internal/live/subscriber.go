package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flightdeckhq/flightdeck/internal/auth"
)

// subscriber is one websocket connection watching one topic. It lives on
// two goroutines: read, which takes the resume message and then only keeps
// the connection's control frames flowing, and write, which owns every
// write to the connection.
type subscriber struct {
	hub  *Hub
	conn *websocket.Conn
	// net is the connection under conn, which gathers a rendering's
	// frames into one write.
	net       *batchConn
	topicName string
	className string
	member    auth.Member
	// pos is the subscriber's place in its class's log of renderings:
	// the first it has not written. consumed is how many frames of the
	// class it has written (or skipped), for the hub to see who lags.
	pos      *logNode
	consumed atomic.Int64
	// resume carries the cursor from the first message to the writer.
	resume chan Cursor
	// done is closed when the connection is to end; closeCode and
	// closeText, set before, say why to the browser (0: without saying).
	done      chan struct{}
	endOnce   sync.Once
	closeCode int
	closeText string
}

// Serve answers a request to watch the topic as the member. A request the
// hub refuses gets its answer before any upgrade: 503 when the hub is not
// running, 403 when the Origin is not this server, 404 for a topic that
// does not exist, 403 for a member who may not watch it, 400 for a request
// that is not a websocket handshake. Otherwise the connection is upgraded
// and Serve returns at once: the connection lives on the hub's goroutines
// until either side closes it or the hub stops, so that nothing the
// request's goroutine held stays in memory for the life of the socket. The
// request's context is therefore not used once Serve returns.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, topicName string, m auth.Member) {
	h.mu.RLock()
	running := h.started && !h.stopped && h.ctx.Err() == nil
	h.mu.RUnlock()
	if !running {
		http.Error(w, "Live updates are not running on this server right now; reload the page in a moment.", http.StatusServiceUnavailable)
		return
	}
	if !h.cfg.CheckOrigin(r) {
		http.Error(w, "This websocket was not opened by a page of this server (its Origin header is missing or names another site); open Flightdeck at its own address.", http.StatusForbidden)
		return
	}
	className, err := h.cfg.Feed.Class(r.Context(), topicName, m)
	switch {
	case errors.Is(err, ErrUnknownTopic):
		http.Error(w, fmt.Sprintf("There is nothing to watch here: %s.", err), http.StatusNotFound)
		return
	case errors.Is(err, ErrForbidden):
		http.Error(w, fmt.Sprintf("%s may not watch this page: %s.", m.Name(), err), http.StatusForbidden)
		return
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "checking a live viewer",
			slog.String("topic", topicName), slog.String("member", m.Username), slog.String("error", err.Error()))
		http.Error(w, "The server could not check whether you may watch this page; the error is in its log.", http.StatusInternalServerError)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "This address streams live updates to Flightdeck's pages over a websocket; open the page itself instead.", http.StatusBadRequest)
		return
	}
	hijacker := &batchHijacker{ResponseWriter: w}
	conn, err := h.upgrader.Upgrade(hijacker, r, nil)
	if err != nil {
		// The upgrader has answered the request with what was wrong.
		return
	}
	s := &subscriber{
		hub: h, conn: conn, net: hijacker.conn, topicName: topicName, className: className, member: m,
		resume: make(chan Cursor, 1),
		done:   make(chan struct{}),
	}
	h.mu.Lock()
	if h.stopped || h.ctx.Err() != nil {
		h.mu.Unlock()
		s.sayGoodbye(websocket.CloseGoingAway, "the server is stopping; reconnect")
		_ = conn.Close()
		return
	}
	h.wg.Add(2)
	h.conns[s] = struct{}{}
	h.mu.Unlock()
	h.viewers.Add(1)
	h.metrics.viewers.Inc()
	go s.read()
	go s.write()
}

// end asks the connection to close, telling the browser why when code is
// not 0. Only the first call counts.
func (s *subscriber) end(code int, reason string) {
	s.endOnce.Do(func() {
		s.closeCode, s.closeText = code, reason
		close(s.done)
	})
}

func (s *subscriber) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// read takes the resume message, then reads and discards whatever else the
// browser sends, which keeps pongs and close frames flowing, until the
// connection fails or stays silent past PongTimeout.
func (s *subscriber) read() {
	h := s.hub
	defer h.wg.Done()
	c := s.conn
	c.SetReadLimit(maxClientMessage)
	_ = c.SetReadDeadline(time.Now().Add(resumeTimeout))
	kind, data, err := c.ReadMessage()
	if err != nil {
		s.end(readFailure(err, "no resume message within 10 s; send {\"resume\": {...}} first"))
		return
	}
	if kind != websocket.TextMessage {
		s.end(websocket.CloseUnsupportedData, `the first message must be JSON text: {"resume": {"event": 12}}`)
		return
	}
	cur, err := parseResume(data)
	if err != nil {
		s.end(websocket.ClosePolicyViolation, err.Error())
		return
	}
	s.resume <- cur

	pongTimeout := h.cfg.PongTimeout
	_ = c.SetReadDeadline(time.Now().Add(pongTimeout))
	c.SetPongHandler(func(string) error {
		return c.SetReadDeadline(time.Now().Add(pongTimeout))
	})
	for {
		_, r, err := c.NextReader()
		if err == nil {
			// io.Discard reads through a shared buffer, not one per
			// connection.
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			s.end(readFailure(err, fmt.Sprintf("no answer to ping within %s", pongTimeout)))
			return
		}
	}
}

// readFailure turns a failed read into the close frame to send: a timeout
// gets the reason given, a message over the limit says so, and a
// connection the browser closed or lost gets none.
func readFailure(err error, timeoutReason string) (int, string) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return websocket.ClosePolicyViolation, timeoutReason
	case errors.Is(err, websocket.ErrReadLimit):
		return websocket.CloseMessageTooBig, fmt.Sprintf("messages to the server are at most %d bytes", maxClientMessage)
	default:
		return 0, ""
	}
}

// write joins the topic when the resume message arrives, sends what the
// browser missed, then the live frames, and pings; it closes the
// connection when done.
func (s *subscriber) write() {
	h := s.hub
	defer h.wg.Done()
	defer func() {
		_ = s.conn.Close()
		h.mu.Lock()
		delete(h.conns, s)
		h.mu.Unlock()
		h.viewers.Add(-1)
		h.metrics.viewers.Dec()
	}()

	var cur Cursor
	select {
	case cur = <-s.resume:
	case <-s.done:
		s.sayGoodbye(s.closeCode, s.closeText)
		return
	}

	t, cl, err := h.join(s)
	if err != nil {
		s.sayGoodbye(websocket.CloseGoingAway, "the server is restarting; reconnect")
		return
	}
	defer h.leave(s, t, cl)
	sent, ok := s.backfill(t, cl, cur)
	if !ok {
		return
	}

	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-s.pos.ready:
			if !s.sendLogged(&sent) {
				return
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.cfg.WriteTimeout)); err != nil {
				return
			}
		case <-s.done:
			// The hub stopping ends every subscriber this way too, rather
			// than through a channel all of them would wait on.
			s.sayGoodbye(s.closeCode, s.closeText)
			return
		}
	}
}

// sendLogged writes every rendering logged since the subscriber's place,
// in one write, leaving out the event frames and chart windows the browser
// has been sent, and moves sent on.
func (s *subscriber) sendLogged(sent *Cursor) bool {
	h := s.hub
	_ = s.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	s.net.gather()
	written := 0
	pos := s.pos
	for ready(pos) {
		for _, m := range pos.batch.msgs {
			if !sent.passes(m.eventID, m.windowEnd) {
				continue
			}
			if err := s.conn.WritePreparedMessage(m.prepared); err != nil {
				_ = s.net.send()
				return false
			}
			sent.advance(m.eventID, m.windowEnd)
			written++
		}
		pos = pos.next
	}
	if err := s.net.send(); err != nil {
		return false
	}
	s.pos = pos
	s.consumed.Store(pos.start)
	h.metrics.framesSent.Add(float64(written))
	return true
}

// ready reports whether the log node has been filled.
func ready(n *logNode) bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// passes reports whether a frame about the event (0 for a state) and the
// chart window (zero for none) shows something not yet sent.
func (c Cursor) passes(eventID int64, windowEnd time.Time) bool {
	if eventID != 0 && eventID <= c.EventID {
		return false
	}
	return windowEnd.IsZero() || windowEnd.After(c.WindowEnd)
}

// advance moves the cursor past a frame sent.
func (c *Cursor) advance(eventID int64, windowEnd time.Time) {
	c.EventID = max(c.EventID, eventID)
	if windowEnd.After(c.WindowEnd) {
		c.WindowEnd = windowEnd
	}
}

// backfill sends what the browser has not seen, from its cursor, in one
// write, and returns how far it has then been sent. Frames fanned out
// meanwhile wait in the class's log.
func (s *subscriber) backfill(t *topic, cl *class, cur Cursor) (Cursor, bool) {
	h := s.hub
	ctx, cancel := context.WithTimeout(h.ctx, renderTimeout)
	defer cancel()
	frames, next, primedNow, err := h.prime(ctx, t, cl)
	if err == nil && !(primedNow && cur.EventID == 0 && cur.WindowEnd.IsZero()) {
		frames, next, err = h.cfg.Feed.Frames(ctx, s.topicName, s.className, s.member, cur)
	}
	if err != nil {
		switch {
		case h.ctx.Err() != nil:
			s.sayGoodbye(websocket.CloseGoingAway, "the server is restarting; reconnect")
		case errors.Is(err, ErrUnknownTopic):
			s.sayGoodbye(websocket.ClosePolicyViolation, "this page no longer exists")
		case errors.Is(err, ErrForbidden):
			s.sayGoodbye(websocket.ClosePolicyViolation, "you may no longer watch this page")
		default:
			h.metrics.renderErrs.Inc()
			h.cfg.Logger.WarnContext(ctx, "rendering what a live viewer missed",
				slog.String("topic", s.topicName), slog.String("member", s.member.Username), slog.String("error", err.Error()))
			s.sayGoodbye(websocket.CloseInternalServerErr, "the server could not load the updates; reload the page")
		}
		return Cursor{}, false
	}
	sent := cur
	sent.advance(next.EventID, next.WindowEnd)
	_ = s.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	s.net.gather()
	for _, f := range frames {
		if err := s.conn.WriteMessage(websocket.TextMessage, f.Data); err != nil {
			_ = s.net.send()
			return Cursor{}, false
		}
		sent.advance(f.EventID, f.WindowEnd)
	}
	if err := s.net.send(); err != nil {
		return Cursor{}, false
	}
	h.metrics.framesSent.Add(float64(len(frames)))
	return sent, true
}

// sayGoodbye sends a close frame with the reason, when there is one. It
// waits at most a second: a browser that does not read gets none.
func (s *subscriber) sayGoodbye(code int, reason string) {
	if code == 0 {
		return
	}
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}

// parseResume reads the first message of a connection:
//
//	{"resume": {"event": 1234, "window": "2025-06-01T12:00:00Z"}}
//
// where both fields, and resume itself, are optional.
func parseResume(data []byte) (Cursor, error) {
	var msg struct {
		Resume json.RawMessage `json:"resume"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return Cursor{}, errors.New(`the first message must be a JSON object such as {"resume": {"event": 12}}`)
	}
	if len(msg.Resume) == 0 || string(msg.Resume) == "null" {
		return Cursor{}, nil
	}
	var r struct {
		Event  json.RawMessage `json:"event"`
		Window json.RawMessage `json:"window"`
	}
	if err := json.Unmarshal(msg.Resume, &r); err != nil {
		return Cursor{}, errors.New(`"resume" must be an object such as {"event": 12, "window": "2025-06-01T12:00:00Z"}`)
	}
	var cur Cursor
	if len(r.Event) > 0 && string(r.Event) != "null" {
		if err := json.Unmarshal(r.Event, &cur.EventID); err != nil || cur.EventID < 0 {
			return Cursor{}, errors.New("resume.event must be a run event id: a whole number, 0 or more")
		}
	}
	if len(r.Window) > 0 && string(r.Window) != "null" {
		var w string
		err := json.Unmarshal(r.Window, &w)
		if err == nil {
			cur.WindowEnd, err = time.Parse(time.RFC3339Nano, w)
		}
		if err != nil {
			return Cursor{}, errors.New("resume.window must be an RFC 3339 time such as 2025-06-01T12:00:00Z")
		}
	}
	return cur, nil
}
