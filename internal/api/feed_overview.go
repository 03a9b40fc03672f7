package api

import (
	"bytes"
	"context"
	"fmt"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// overviewFeed renders the "overview" topic: the overview's table as it is
// now. Everyone sees the same table, so there is one class, and every
// change of a run re-renders it whole: one query, however many apps.
type overviewFeed struct {
	catalog Catalog
}

func newOverviewFeed(pages PageStore) topicFeed {
	return &overviewFeed{catalog: pages}
}

// Class implements topicFeed: every member may watch the overview.
func (f *overviewFeed) Class(_ context.Context, arg string, _ auth.Member) (string, error) {
	if arg != "" {
		return "", fmt.Errorf("%w: overview:%s", live.ErrUnknownTopic, arg)
	}
	return "", nil
}

// Frames implements topicFeed. The table is a state, not a history, so the
// cursor is ignored: one frame replaces the table in place, and sending it
// again is harmless.
func (f *overviewFeed) Frames(ctx context.Context, _, _ string, _ auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error) {
	o, err := loadOverview(ctx, f.catalog)
	if err != nil {
		return nil, cur, err
	}
	var buf bytes.Buffer
	if err := templates.OverviewTable(o, true).Render(ctx, &buf); err != nil {
		return nil, cur, fmt.Errorf("rendering the overview: %w", err)
	}
	return []live.Frame{{Data: buf.Bytes()}}, cur, nil
}
