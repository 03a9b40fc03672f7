package api

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// liveFeed renders the "live" topic: the incident view's table, whole,
// each time any run changes. The table is a state, not a sequence of
// events, so a frame is always safe to send again and the cursor is not
// needed.
type liveFeed struct {
	store LiveStore
}

// newLiveFeed returns the feed of the incident view.
func newLiveFeed(pages PageStore) topicFeed {
	return &liveFeed{store: pages}
}

// Class implements topicFeed. Every member may watch the incident view,
// but the abort and rollback buttons depend on the member's roles across
// every environment, so members share frames only with themselves.
func (f *liveFeed) Class(_ context.Context, arg string, m auth.Member) (string, error) {
	if arg != "" {
		return "", fmt.Errorf("%w: %q", live.ErrUnknownTopic, "live:"+arg)
	}
	return "member:" + m.Username, nil
}

// Frames implements topicFeed: one frame replacing the table by its id.
func (f *liveFeed) Frames(ctx context.Context, _, _ string, m auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error) {
	v, err := buildLiveView(ctx, f.store, m, time.Now())
	if err != nil {
		return nil, cur, err
	}
	var buf bytes.Buffer
	if err := templates.LiveTable(v, true).Render(ctx, &buf); err != nil {
		return nil, cur, fmt.Errorf("rendering the incident view: %w", err)
	}
	return []live.Frame{{Data: buf.Bytes()}}, cur, nil
}
