package live

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/auth"
)

// Cursor is how far a subscriber has seen a topic: the newest run event and
// the end of the newest metric window. The zero cursor has seen nothing.
type Cursor struct {
	EventID   int64     `json:"event,omitempty"`
	WindowEnd time.Time `json:"window,omitzero"`
}

// Frame is one websocket text message: an HTML fragment that htmx swaps
// into the page by its id, or a JSON object (starting with "{") for the
// page's script, such as new chart points.
type Frame struct {
	// EventID is the run event the frame shows, 0 for frames that show a
	// state (which can be sent again safely). A subscriber is never sent an
	// event frame at or before its cursor.
	EventID int64
	// WindowEnd is, for a frame of new chart points, the end of the newest
	// metric window it carries, and zero for every other frame. A
	// subscriber is never sent such a frame when it has already been sent
	// windows up to that end.
	WindowEnd time.Time
	Data      []byte
}

// Feed renders topics. A topic is a string such as "run:42", "live" or
// "overview".
type Feed interface {
	// Class checks that the member may watch the topic and returns the
	// class of viewers that see the same frames of it (for a run, the
	// member's role on its environment, which decides the action buttons).
	// An unknown topic or one the member may not watch is an error
	// wrapping ErrUnknownTopic or ErrForbidden.
	Class(ctx context.Context, topic string, m auth.Member) (string, error)
	// Frames renders what a viewer of the class who has seen up to cur has
	// not seen yet, and returns the cursor after those frames. m is one
	// member of the class.
	Frames(ctx context.Context, topic, class string, m auth.Member, cur Cursor) ([]Frame, Cursor, error)
	// Affected reports whether a change of the run concerns the topic.
	Affected(topic string, runID int64) bool
}
