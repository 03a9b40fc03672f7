package live

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseResumeReadsHowFarTheBrowserHasSeen(t *testing.T) {
	t.Parallel()
	noon := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for msg, want := range map[string]Cursor{
		`{}`:                          {},
		`{"resume": null}`:            {},
		`{"resume": {}}`:              {},
		`{"resume": {"event": 0}}`:    {},
		`{"resume": {"event": 1234}}`: {EventID: 1234},
		`{"resume": {"event": 7, "window": "2025-06-01T12:00:00Z"}}`:      {EventID: 7, WindowEnd: noon},
		`{"resume": {"window": "2025-06-01T14:00:00.000+02:00"}}`:         {WindowEnd: noon},
		`{"resume": {"event": 3}, "page": "run", "client": "htmx 2.0.4"}`: {EventID: 3},
	} {
		got, err := parseResume([]byte(msg))
		require.NoError(t, err, msg)
		require.Equal(t, want.EventID, got.EventID, msg)
		require.True(t, want.WindowEnd.Equal(got.WindowEnd), "%s: window %s", msg, got.WindowEnd)
	}
	for msg, says := range map[string]string{
		``:                                    "must be a JSON object",
		`[1, 2]`:                              "must be a JSON object",
		`{"resume": [12]}`:                    `"resume" must be an object`,
		`{"resume": {"event": 1.5}}`:          "resume.event must be a run event id",
		`{"resume": {"event": "12"}}`:         "resume.event must be a run event id",
		`{"resume": {"window": 1717243200}}`:  "resume.window must be an RFC 3339 time",
		`{"resume": {"window": "yesterday"}}`: "resume.window must be an RFC 3339 time",
	} {
		_, err := parseResume([]byte(msg))
		require.ErrorContains(t, err, says, msg)
		require.LessOrEqual(t, len(err.Error()), 123, "a close frame's reason is at most 123 bytes")
	}
}

func TestCursorPassesOnlyWhatWasNotSent(t *testing.T) {
	t.Parallel()
	noon := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	sent := Cursor{EventID: 10, WindowEnd: noon}
	require.True(t, sent.passes(0, time.Time{}), "a state is always passed")
	require.False(t, sent.passes(10, time.Time{}))
	require.False(t, sent.passes(9, time.Time{}))
	require.True(t, sent.passes(11, time.Time{}))
	require.False(t, sent.passes(0, noon), "chart windows already sent")
	require.False(t, sent.passes(0, noon.Add(-time.Minute)))
	require.True(t, sent.passes(0, noon.Add(time.Minute)))

	sent.advance(12, time.Time{})
	sent.advance(11, noon.Add(time.Minute))
	require.Equal(t, int64(12), sent.EventID, "never moves back")
	require.Equal(t, noon.Add(time.Minute), sent.WindowEnd)
}
