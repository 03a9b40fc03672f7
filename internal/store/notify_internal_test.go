package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPayloadsStayUnderTheNotifyLimit(t *testing.T) {
	t.Parallel()
	ids := make([]int64, 3000)
	for i := range ids {
		ids[i] = int64(1_000_000_000 + i)
	}
	out := payloads(ids)
	require.Greater(t, len(out), 1)
	var back []int64
	for _, p := range out {
		require.LessOrEqual(t, len(p), maxPayload)
		require.False(t, strings.HasSuffix(p, ","))
		back = append(back, ParseRunIDs(p)...)
	}
	require.Equal(t, ids, back)
	require.Empty(t, payloads(nil))
}
