package live

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// countingConn records what is done to a network connection.
type countingConn struct {
	net.Conn
	writes    [][]byte
	deadlines []time.Time
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

func TestBatchConnSendsAGatheredBatchInOneWrite(t *testing.T) {
	t.Parallel()
	under := &countingConn{}
	c := &batchConn{Conn: under}

	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	require.Len(t, under.writes, 1, "outside a batch a write goes straight out")

	c.gather()
	for _, frame := range []string{"event", "state", "points"} {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(10*time.Second)))
		_, err := c.Write([]byte(frame))
		require.NoError(t, err)
	}
	require.Len(t, under.writes, 1, "nothing is sent while gathering")
	require.NoError(t, c.send())
	require.Equal(t, [][]byte{[]byte("ping"), []byte("eventstatepoints")}, under.writes)
	require.Len(t, under.deadlines, 1, "one deadline for the whole batch")

	// The next batch soon after keeps the deadline already set.
	c.gather()
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("event"))
	require.NoError(t, err)
	require.NoError(t, c.send())
	require.Len(t, under.writes, 3)
	require.Len(t, under.deadlines, 1)

	// A deadline that leaves less than half the time asked for is renewed.
	c.armed = time.Now().Add(2 * time.Second)
	c.gather()
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("event"))
	require.NoError(t, err)
	require.NoError(t, c.send())
	require.Len(t, under.deadlines, 2)

	// An empty batch writes nothing.
	c.gather()
	require.NoError(t, c.send())
	require.Len(t, under.writes, 4)
}
