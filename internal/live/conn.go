package live

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// batchConn is a viewer's network connection that can gather the frames
// of one rendering and send them with a single write. A rendering of a run
// page is several frames (the new event, the page's state, the chart
// points); one write instead of one per frame is one TCP segment instead
// of several, which is most of the cost of a fan-out to thousands of
// viewers.
//
// While gathering, writes are copied into a buffer borrowed from a shared
// pool, so the caller may reuse what it wrote at once, and the buffer goes
// back to the pool when sent: an idle viewer holds none.
type batchConn struct {
	net.Conn
	// mu makes writes, whether gathered or direct, one at a time, as the
	// websocket library's own writes from another goroutine (an answer to
	// a ping) must not cut into a batch being sent.
	mu       sync.Mutex
	gathered *[]byte
	// deadline is the write deadline asked for while gathering, applied
	// when the batch is sent rather than once per frame; armed is the one
	// set on the network connection.
	deadline time.Time
	armed    time.Time
}

// batchBuffers are the buffers of batches being gathered.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledBatch keeps buffers grown by an unusually large batch, such as
// a long backfill, out of the pool.
const maxPooledBatch = 256 << 10

// Write sends p, or adds it to the batch being gathered.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gathered != nil {
		*c.gathered = append(*c.gathered, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline bounds the next write; while gathering, the batch's
// write.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gathered != nil {
		c.deadline = t
		return nil
	}
	c.armed = t
	return c.Conn.SetWriteDeadline(t)
}

// arm applies the deadline asked for while gathering. Setting a deadline
// costs a timer update, so one already set is kept while it leaves at
// least half the time asked for: a batch's write is then bounded by
// between half and all of the write timeout.
func (c *batchConn) arm() error {
	want := c.deadline
	c.deadline = time.Time{}
	if want.IsZero() {
		return nil
	}
	if !c.armed.After(want) && !c.armed.Before(want.Add(-time.Until(want)/2)) {
		return nil
	}
	c.armed = want
	return c.Conn.SetWriteDeadline(want)
}

// gather starts a batch: writes are held until send.
func (c *batchConn) gather() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gathered == nil {
		c.gathered = batchBuffers.Get().(*[]byte)
	}
}

// send writes the batch gathered since gather in one write.
func (c *batchConn) send() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.gathered
	if b == nil {
		return nil
	}
	c.gathered = nil
	var err error
	if len(*b) > 0 {
		if err = c.arm(); err == nil {
			_, err = c.Conn.Write(*b)
		}
	}
	if cap(*b) <= maxPooledBatch {
		*b = (*b)[:0]
		batchBuffers.Put(b)
	}
	return err
}

// batchHijacker hands the websocket library a batchConn when it takes
// over the connection of an upgraded request.
type batchHijacker struct {
	http.ResponseWriter
	conn *batchConn
}

// Hijack takes over the connection from the HTTP server.
func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if conn == nil {
		return nil, nil, errors.New("the HTTP server gave no connection to take over")
	}
	h.conn = &batchConn{Conn: conn}
	return h.conn, rw, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *batchHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
