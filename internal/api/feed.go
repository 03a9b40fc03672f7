package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/live"
)

// topicFeed renders one kind of topic; arg is what follows the kind in the
// topic ("42" in "run:42"), empty for topics without one.
type topicFeed interface {
	Class(ctx context.Context, arg string, m auth.Member) (string, error)
	Frames(ctx context.Context, arg, class string, m auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error)
}

// pageFeed renders every live topic of the pages: "run:<id>" for a run's
// page, "live" for the incident view and "overview" for the overview.
type pageFeed struct {
	kinds map[string]topicFeed
}

// NewFeed returns the feed of the pages' live topics.
func NewFeed(pages PageStore) live.Feed {
	return &pageFeed{kinds: map[string]topicFeed{
		"overview": newOverviewFeed(pages),
		"live":     newLiveFeed(pages),
		"run":      newRunFeed(pages),
	}}
}

func (f *pageFeed) split(topic string) (topicFeed, string, error) {
	kind, arg, _ := strings.Cut(topic, ":")
	tf, ok := f.kinds[kind]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", live.ErrUnknownTopic, topic)
	}
	return tf, arg, nil
}

// Class implements live.Feed.
func (f *pageFeed) Class(ctx context.Context, topic string, m auth.Member) (string, error) {
	tf, arg, err := f.split(topic)
	if err != nil {
		return "", err
	}
	return tf.Class(ctx, arg, m)
}

// Frames implements live.Feed.
func (f *pageFeed) Frames(ctx context.Context, topic, class string, m auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error) {
	tf, arg, err := f.split(topic)
	if err != nil {
		return nil, cur, err
	}
	return tf.Frames(ctx, arg, class, m, cur)
}

// Affected implements live.Feed: a run's topic is about that run, the
// others about every run.
func (f *pageFeed) Affected(topic string, runID int64) bool {
	kind, arg, _ := strings.Cut(topic, ":")
	if kind == "run" {
		return arg == fmt.Sprint(runID)
	}
	return true
}
