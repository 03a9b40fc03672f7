package live

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

const (
	// coalesceInterval is the shortest time between two renderings of one
	// topic: changes within it are shown together.
	coalesceInterval = 100 * time.Millisecond
	// resumeTimeout is how long a new connection has to say how far it
	// has seen.
	resumeTimeout = 10 * time.Second
	// renderTimeout bounds one call of Feed.Frames.
	renderTimeout = 15 * time.Second
	// maxClientMessage is the largest message a browser may send; the
	// resume message is far smaller.
	maxClientMessage = 4096
	// stopGrace is how long Stop lets connections say goodbye before it
	// cuts short writes to viewers that do not read.
	stopGrace = 2 * time.Second
	// readBufferSize is small because browsers send one short message.
	readBufferSize = 512
)

// HubConfig is what a Hub is built from. Only Pool and Feed are required;
// zero durations and sizes take the defaults given.
type HubConfig struct {
	// Pool is the database the hub LISTENs on; one connection is taken
	// out of it for as long as the hub runs.
	Pool *pgxpool.Pool
	// Feed renders the topics.
	Feed Feed
	// Logger receives the hub's warnings. Default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, registers the hub's metrics.
	Registerer prometheus.Registerer
	// SendQueue is how many frames may wait to be written to a subscriber
	// before it is dropped as too slow; one that has caught up takes a
	// rendering of any size. Default 64.
	SendQueue int
	// PingInterval is how often each connection is pinged. Default 25s.
	PingInterval time.Duration
	// PongTimeout is how long a connection may go without answering a
	// ping before it is closed. Default 60s.
	PongTimeout time.Duration
	// WriteTimeout bounds each write to a connection. Default 10s.
	WriteTimeout time.Duration
	// Refresh is how often every watched topic is rendered again even
	// without a notification, covering notifications lost while the
	// listening connection was down. Default 5s.
	Refresh time.Duration
	// CheckOrigin decides whether the browser's Origin may open a socket.
	// Default: the Origin's host must equal the request's Host; a request
	// without Origin is refused, since browsers always send it on
	// websockets.
	CheckOrigin func(*http.Request) bool
}

// Hub streams topics to the websockets watching them. See the package
// documentation for how.
type Hub struct {
	cfg      HubConfig
	upgrader websocket.Upgrader
	metrics  hubMetrics
	// viewers counts the open connections, as the viewers gauge does.
	viewers atomic.Int64
	// seed keys the digests of repeated states.
	seed maphash.Seed

	mu     sync.RWMutex
	topics map[string]*topic
	// conns is every open connection, joined to a topic or not yet.
	conns   map[*subscriber]struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	stopped bool

	// wg counts every goroutine of the hub: the listener, the refresher,
	// one per watched topic and two per connection.
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// topic is a watched topic and its viewers, grouped by class. Its fields
// other than name, wake and gone are guarded by Hub.mu.
type topic struct {
	name    string
	classes map[string]*class
	viewers int
	// wake asks the topic's goroutine to render it again.
	wake chan struct{}
	// gone is closed when the last viewer leaves.
	gone chan struct{}
}

// class is the viewers of a topic who see the same frames. member is one of
// them, the one frames are rendered for; cursor is how far the hub has
// rendered the topic for the class. Fields but primeMu are guarded by
// Hub.mu.
type class struct {
	name   string
	member auth.Member
	cursor Cursor
	primed bool
	subs   map[*subscriber]struct{}
	// lastState is the digest of the last frames sent to the class when
	// they all showed states; see repeatsState.
	lastState uint64
	// tail is where the class's next rendering goes, and fanned how many
	// frames the class has been sent since it was created.
	tail   *logNode
	fanned int64
	// primeMu makes the first viewers of a class wait until the hub's
	// cursor is set, so that none of them misses what happens meanwhile.
	primeMu sync.Mutex
}

// batch is the frames of one rendering, shared by every subscriber of
// the class.
type batch struct {
	msgs []*message
}

// logNode is a place in a class's log of renderings. It is empty until
// the next rendering fills it and closes ready, which wakes every
// subscriber waiting there at once: one close, rather than a channel send
// per subscriber, so that the hub hands a rendering to ten thousand
// viewers in about a millisecond and is never left waiting behind their
// writes for the processor. Each subscriber walks the log at its own pace;
// nodes behind the slowest are garbage.
type logNode struct {
	ready chan struct{}
	// start is how many frames the class had been sent before this node.
	start int64
	// batch and next are set before ready is closed.
	batch *batch
	next  *logNode
}

func newLogNode(start int64) *logNode {
	return &logNode{ready: make(chan struct{}), start: start}
}

// message is a frame encoded once for every subscriber of a class.
type message struct {
	eventID   int64
	windowEnd time.Time
	prepared  *websocket.PreparedMessage
}

// hubMetrics are what the hub reports to Prometheus.
type hubMetrics struct {
	viewers    prometheus.Gauge
	framesSent prometheus.Counter
	dropped    prometheus.Counter
	renderErrs prometheus.Counter
}

func newHubMetrics() hubMetrics {
	return hubMetrics{
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "flightdeck", Subsystem: "live", Name: "viewers",
			Help: "Websocket connections open to the pages' live updates.",
		}),
		framesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flightdeck", Subsystem: "live", Name: "frames_sent_total",
			Help: "Frames written to websocket connections.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flightdeck", Subsystem: "live", Name: "slow_viewers_dropped_total",
			Help: "Connections closed because they did not keep up with the frames sent to them.",
		}),
		renderErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flightdeck", Subsystem: "live", Name: "render_errors_total",
			Help: "Failed renderings of a watched topic; the topic is rendered again at the next change or refresh.",
		}),
	}
}

// NewHub returns a hub; call Start before serving connections.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Pool == nil {
		return nil, errors.New("live hub: a database pool is required")
	}
	if cfg.Feed == nil {
		return nil, errors.New("live hub: a feed is required")
	}
	for name, d := range map[string]time.Duration{
		"PingInterval": cfg.PingInterval, "PongTimeout": cfg.PongTimeout,
		"WriteTimeout": cfg.WriteTimeout, "Refresh": cfg.Refresh,
	} {
		if d < 0 {
			return nil, fmt.Errorf("live hub: %s must be positive, not %s", name, d)
		}
	}
	if cfg.SendQueue < 0 {
		return nil, fmt.Errorf("live hub: SendQueue must be positive, not %d", cfg.SendQueue)
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.SendQueue = cmp.Or(cfg.SendQueue, 64)
	cfg.PingInterval = cmp.Or(cfg.PingInterval, 25*time.Second)
	cfg.PongTimeout = cmp.Or(cfg.PongTimeout, 60*time.Second)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, 10*time.Second)
	cfg.Refresh = cmp.Or(cfg.Refresh, 5*time.Second)
	if cfg.PongTimeout <= cfg.PingInterval {
		return nil, fmt.Errorf("live hub: PongTimeout (%s) must be longer than PingInterval (%s), or every connection would time out", cfg.PongTimeout, cfg.PingInterval)
	}
	if cfg.CheckOrigin == nil {
		cfg.CheckOrigin = SameOrigin
	}
	h := &Hub{
		cfg:     cfg,
		metrics: newHubMetrics(),
		topics:  map[string]*topic{},
		conns:   map[*subscriber]struct{}{},
		seed:    maphash.MakeSeed(),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.WriteTimeout,
			ReadBufferSize:   readBufferSize,
			// One pool for every connection: a buffer is held only while
			// a message is being written, never while a viewer idles.
			WriteBufferPool: &sync.Pool{},
			// The Origin was checked before the upgrade.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	if cfg.Registerer != nil {
		m := h.metrics
		for _, c := range []prometheus.Collector{m.viewers, m.framesSent, m.dropped, m.renderErrs} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("live hub: registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

// SameOrigin reports whether the request's Origin header names the host the
// request was sent to. A request without Origin is refused.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// Start begins listening for run changes and returns once the hub
// listens, so that no change committed afterwards goes unseen. The hub runs
// until Stop or until ctx ends.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return errors.New("live hub: already started")
	}
	conn, err := h.listenConn(ctx)
	if err != nil {
		return fmt.Errorf("live hub: listening for run changes: %w", err)
	}
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.started = true
	h.wg.Add(2)
	go h.listen(conn)
	go h.refreshEvery()
	return nil
}

// Stop closes every connection (with a close frame saying the server is
// going away, so browsers reconnect, possibly to another replica) and
// waits for the hub's goroutines. It is safe to call twice.
func (h *Hub) Stop() {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		h.stopped = true
		cancel := h.cancel
		h.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		// The refresher ends the connections when the context ends; this
		// covers connections that a Serve under way adds meanwhile.
		h.endAll()
		finished := make(chan struct{})
		go func() {
			h.wg.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-time.After(stopGrace):
			// Writes stuck on viewers that stopped reading would hold
			// the stop for up to WriteTimeout; cut them short.
			h.mu.Lock()
			for s := range h.conns {
				_ = s.net.Conn.SetWriteDeadline(time.Now())
			}
			h.mu.Unlock()
			<-finished
		}
	})
}

// listenConn takes a connection out of the pool for good and LISTENs on it.
func (h *Hub) listenConn(ctx context.Context) (*pgx.Conn, error) {
	pooled, err := h.cfg.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// The connection carries a LISTEN; it never goes back to the pool.
	conn := pooled.Hijack()
	if _, err := conn.Exec(ctx, "LISTEN "+store.RunsChannel); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// listen marks the topics a notification concerns dirty, reconnecting with
// backoff when the connection fails. After a reconnection every topic is
// rendered again, since notifications sent meanwhile were lost.
func (h *Hub) listen(conn *pgx.Conn) {
	defer h.wg.Done()
	ctx := h.ctx
	backoff := 100 * time.Millisecond
	for {
		if conn != nil {
			err := h.receive(ctx, conn)
			_ = conn.Close(context.WithoutCancel(ctx))
			conn = nil
			if ctx.Err() != nil {
				return
			}
			h.cfg.Logger.WarnContext(ctx, "live updates stopped listening for run changes; reconnecting",
				slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		var err error
		conn, err = h.listenConn(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.cfg.Logger.WarnContext(ctx, "live updates cannot listen for run changes",
				slog.String("error", err.Error()), slog.Duration("retry_in", backoff))
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		h.wakeAll()
	}
}

// receive handles notifications until the connection fails.
func (h *Hub) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h.runsChanged(store.ParseRunIDs(n.Payload))
	}
}

// runsChanged wakes every topic that one of the runs concerns.
func (h *Hub) runsChanged(ids []int64) {
	if len(ids) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for name, t := range h.topics {
		for _, id := range ids {
			if h.cfg.Feed.Affected(name, id) {
				t.wakeUp()
				break
			}
		}
	}
}

// refreshEvery renders every watched topic again every Refresh.
func (h *Hub) refreshEvery() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			h.endAll()
			return
		case <-t.C:
			h.wakeAll()
		}
	}
}

// endAll closes every connection, telling browsers to reconnect, possibly
// to another replica.
func (h *Hub) endAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.conns {
		s.end(websocket.CloseGoingAway, "the server is restarting; reconnect")
	}
}

func (h *Hub) wakeAll() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, t := range h.topics {
		t.wakeUp()
	}
}

// wakeUp asks the topic's goroutine to render it; a request already
// pending covers this one too.
func (t *topic) wakeUp() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// watch renders the topic whenever it is woken, at most every
// coalesceInterval, until its last viewer leaves.
func (h *Hub) watch(t *topic) {
	defer h.wg.Done()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.gone:
			return
		case <-t.wake:
		}
		h.render(t)
		pause.Reset(coalesceInterval)
		select {
		case <-h.ctx.Done():
			return
		case <-t.gone:
			return
		case <-pause.C:
		}
	}
}

// render renders what is new on the topic once per class and logs it for
// the class's subscribers.
func (h *Hub) render(t *topic) {
	type job struct {
		cl     *class
		member auth.Member
		cursor Cursor
	}
	h.mu.RLock()
	jobs := make([]job, 0, len(t.classes))
	for _, cl := range t.classes {
		if cl.primed {
			jobs = append(jobs, job{cl, cl.member, cl.cursor})
		}
	}
	h.mu.RUnlock()

	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(h.ctx, renderTimeout)
		frames, cur, err := h.cfg.Feed.Frames(ctx, t.name, j.cl.name, j.member, j.cursor)
		cancel()
		if err != nil {
			if h.ctx.Err() != nil {
				return
			}
			h.renderFailed(t, j.cl, err)
			continue
		}
		digest, repeated := h.repeatsState(j.cl, frames)
		if repeated || len(frames) == 0 {
			h.mu.Lock()
			j.cl.cursor = cur
			h.mu.Unlock()
			continue
		}
		b, err := prepare(frames)
		if err != nil {
			h.renderFailed(t, j.cl, err)
			continue
		}
		h.mu.Lock()
		j.cl.cursor = cur
		j.cl.lastState = digest
		h.publish(j.cl, b)
		h.mu.Unlock()
	}
}

// repeatsState reports whether the frames only show states, exactly as the
// class's viewers were last sent them, as a refresh without any change
// does: sending them again would cost every viewer a write for nothing. It
// returns the digest of the frames, or 0 when they show events.
func (h *Hub) repeatsState(cl *class, frames []Frame) (uint64, bool) {
	var d maphash.Hash
	d.SetSeed(h.seed)
	for _, f := range frames {
		if f.EventID != 0 || !f.WindowEnd.IsZero() {
			return 0, false
		}
		_, _ = d.Write(f.Data)
		_ = d.WriteByte(0)
	}
	digest := d.Sum64()
	h.mu.RLock()
	defer h.mu.RUnlock()
	return digest, len(frames) > 0 && digest == cl.lastState
}

// renderFailed logs a failed rendering. A topic that no longer exists, or
// that the class may no longer watch, closes its viewers' connections with
// the reason; any other failure is retried at the next change or refresh.
func (h *Hub) renderFailed(t *topic, cl *class, err error) {
	h.metrics.renderErrs.Inc()
	code, reason := 0, ""
	switch {
	case errors.Is(err, ErrUnknownTopic):
		code, reason = websocket.ClosePolicyViolation, "this page no longer exists"
	case errors.Is(err, ErrForbidden):
		code, reason = websocket.ClosePolicyViolation, "you may no longer watch this page"
	default:
		h.cfg.Logger.WarnContext(h.ctx, "rendering live updates",
			slog.String("topic", t.name), slog.String("class", cl.name), slog.String("error", err.Error()))
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range cl.subs {
		s.end(code, reason)
	}
}

// prepare encodes each frame once for all subscribers.
func prepare(frames []Frame) (*batch, error) {
	b := &batch{msgs: make([]*message, 0, len(frames))}
	for _, f := range frames {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, f.Data)
		if err != nil {
			return nil, fmt.Errorf("encoding a frame: %w", err)
		}
		b.msgs = append(b.msgs, &message{eventID: f.EventID, windowEnd: f.WindowEnd, prepared: pm})
	}
	return b, nil
}

// publish appends a rendering to the class's log, waking its
// subscribers, and drops those too slow to keep up: a subscriber that
// still had frames to write and now has more than SendQueue. One that has
// caught up takes a rendering of any size, so that a burst, such as the
// backlog after a database hiccup, drops nobody who keeps up. Fan-out
// never waits for a subscriber. The caller holds h.mu.
func (h *Hub) publish(cl *class, b *batch) {
	n := int64(len(b.msgs))
	if n == 0 {
		return
	}
	node := cl.tail
	cl.fanned += n
	node.batch, node.next = b, newLogNode(cl.fanned)
	cl.tail = node.next
	close(node.ready)
	for s := range cl.subs {
		if pending := cl.fanned - s.consumed.Load(); pending > n && pending > int64(h.cfg.SendQueue) && !s.ended() {
			h.drop(s)
		}
	}
}

// drop closes the connection of a subscriber that does not keep up.
func (h *Hub) drop(s *subscriber) {
	h.metrics.dropped.Inc()
	s.end(websocket.CloseTryAgainLater, "too slow to keep up; reconnect to resume")
	// Unblock a write stuck on a viewer that stopped reading; its
	// goroutine then closes the connection. The deadline is set on the
	// network connection itself, past the batchConn's lock, which that
	// write holds.
	_ = s.net.Conn.SetWriteDeadline(time.Now())
}

// join adds the subscriber to its topic and class, creating them (and the
// topic's goroutine) for the first viewer.
func (h *Hub) join(s *subscriber) (*topic, *class, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.ctx.Err() != nil {
		return nil, nil, errStopping
	}
	t := h.topics[s.topicName]
	if t == nil {
		t = &topic{name: s.topicName, classes: map[string]*class{}, wake: make(chan struct{}, 1), gone: make(chan struct{})}
		h.topics[s.topicName] = t
		h.wg.Add(1)
		go h.watch(t)
	}
	cl := t.classes[s.className]
	if cl == nil {
		cl = &class{name: s.className, member: s.member, subs: map[*subscriber]struct{}{}, tail: newLogNode(0)}
		t.classes[s.className] = cl
	}
	cl.subs[s] = struct{}{}
	// The subscriber gets every rendering from now on.
	s.pos = cl.tail
	s.consumed.Store(cl.fanned)
	// The newcomer is shown the state as of its own backfill, which may
	// differ from what the others were last sent.
	cl.lastState = 0
	t.viewers++
	return t, cl, nil
}

// leave removes the subscriber; a class or topic left without viewers is
// forgotten.
func (h *Hub) leave(s *subscriber, t *topic, cl *class) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := cl.subs[s]; !ok {
		return
	}
	delete(cl.subs, s)
	t.viewers--
	if len(cl.subs) == 0 && t.classes[cl.name] == cl {
		delete(t.classes, cl.name)
	}
	if t.viewers == 0 && h.topics[t.name] == t {
		delete(h.topics, t.name)
		close(t.gone)
	}
}

// prime sets the hub's cursor of a new class. It renders from the start
// rather than from the first viewer's cursor, which the hub cannot trust:
// a cursor ahead of the truth would hide events from the whole class. The
// frames are returned when the viewer's cursor is the start too, so they
// serve as its backfill.
func (h *Hub) prime(ctx context.Context, t *topic, cl *class) (frames []Frame, cur Cursor, primedNow bool, err error) {
	cl.primeMu.Lock()
	defer cl.primeMu.Unlock()
	h.mu.RLock()
	primed := cl.primed
	h.mu.RUnlock()
	if primed {
		return nil, Cursor{}, false, nil
	}
	frames, cur, err = h.cfg.Feed.Frames(ctx, t.name, cl.name, cl.member, Cursor{})
	if err != nil {
		return nil, Cursor{}, false, err
	}
	h.mu.Lock()
	cl.cursor, cl.primed = cur, true
	h.mu.Unlock()
	// A change announced while the class was being primed may have been
	// skipped by a rendering that found the class not yet primed.
	t.wakeUp()
	return frames, cur, true, nil
}

// errStopping refuses new connections while the hub stops.
var errStopping = errors.New("the server is stopping")

// Viewers returns how many connections the hub serves; the figure the
// flightdeck_live_viewers gauge reports.
func (h *Hub) Viewers() int {
	return int(h.viewers.Load())
}

// Topics returns how many topics are being watched.
func (h *Hub) Topics() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}
