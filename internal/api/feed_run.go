package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/a-h/templ"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/live"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// runFeedEvents bounds the events one refresh sends; a viewer far behind
// gets the rest on the next refresh, from the cursor this one returns.
const runFeedEvents = 2000

// runFeedQuiet is how long after a run finished its charts are still
// looked at for new windows; after that nothing more arrives.
const runFeedQuiet = 2 * time.Minute

// runFeedWindowSpan is the longest metric window the charts expect; a
// window ending after a cursor started at most this long before it.
const runFeedWindowSpan = 15 * time.Minute

// runFeed renders the topic "run:<id>", which a run's page follows.
type runFeed struct {
	store RunPageStore
	now   func() time.Time
}

// newRunFeed returns the feed of run pages.
func newRunFeed(pages PageStore) topicFeed {
	return &runFeed{store: pages, now: time.Now}
}

// Class is the member's role on the run's environment, which decides the
// action buttons; everyone may watch every run.
func (f *runFeed) Class(ctx context.Context, arg string, m auth.Member) (string, error) {
	id, ok := runParseID(arg)
	if !ok {
		return "", fmt.Errorf("%w: run %q", live.ErrUnknownTopic, arg)
	}
	run, err := f.store.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: there is no run %d", live.ErrUnknownTopic, id)
	}
	if err != nil {
		return "", fmt.Errorf("reading run %d: %w", id, err)
	}
	app, err := f.store.AppByID(ctx, run.AppID)
	if err != nil {
		return "", fmt.Errorf("reading the app of run %d: %w", id, err)
	}
	env, err := f.store.EnvironmentByID(ctx, run.EnvironmentID)
	if err != nil {
		return "", fmt.Errorf("reading the environment of run %d: %w", id, err)
	}
	return string(m.RoleOn(app.Slug, env.Name)), nil
}

// Frames renders what a viewer who has seen up to cur lacks: each new run
// event as its own frame, for the top of the event log; when anything
// happened (every change of a run is an event), one frame re-rendering
// the state of the page for the class's role; and one JSON frame with the
// chart points of the metric windows that ended after cur.WindowEnd.
//
// A refresh with nothing new costs two queries, plus one per chart metric
// and cohort while the run can still gain metric windows.
func (f *runFeed) Frames(ctx context.Context, arg, class string, m auth.Member, cur live.Cursor) ([]live.Frame, live.Cursor, error) {
	id, ok := runParseID(arg)
	if !ok {
		return nil, cur, fmt.Errorf("%w: run %q", live.ErrUnknownTopic, arg)
	}
	role, err := auth.ParseRole(class)
	if err != nil {
		return nil, cur, fmt.Errorf("run %d: viewer class: %w", id, err)
	}
	now := f.now()
	next := cur
	events, err := runEventsAfter(ctx, f.store, id, cur.EventID, runFeedEvents)
	if err != nil {
		return nil, cur, err
	}
	var frames []live.Frame
	var d runData
	changed := len(events) > 0 || cur.EventID == 0
	if changed {
		if d, err = runLoad(ctx, f.store, id); err != nil {
			return nil, cur, runTopicError(id, err)
		}
	} else if d.run, err = f.store.Run(ctx, id); err != nil {
		return nil, cur, runTopicError(id, err)
	}

	for _, view := range runEventViews(events, d, now) {
		data, err := runRender(ctx, templates.RunEventFragment([]templates.RunEventView{view}))
		if err != nil {
			return nil, cur, err
		}
		frames = append(frames, live.Frame{EventID: view.ID, Data: data})
		next.EventID = view.ID
	}
	if changed {
		v := d.view(role, true, now)
		data, err := runRender(ctx, templates.RunStateFragments(v))
		if err != nil {
			return nil, cur, err
		}
		frames = append(frames, live.Frame{Data: data})
	}

	// A run that finished a while ago gains no more metric windows; a
	// viewer that has its chart points needs nothing more.
	r := d.run
	if r.FinishedAt != nil && now.Sub(*r.FinishedAt) > runFeedQuiet && !cur.WindowEnd.IsZero() {
		return frames, next, nil
	}
	from, to := d.chartRange(now)
	if !cur.WindowEnd.IsZero() {
		from = cur.WindowEnd.Add(-runFeedWindowSpan)
	}
	points, newest, err := runPoints(ctx, f.store, id, from, to, cur.WindowEnd)
	if err != nil {
		return nil, cur, err
	}
	if newest.After(next.WindowEnd) {
		next.WindowEnd = newest
	}
	if len(points) == 0 && !changed {
		return frames, next, nil
	}
	msg := runPointsMessage{Type: "points", Points: points}
	if changed {
		msg.Charts = d.chartSettings(points)
	}
	if msg.Points == nil {
		msg.Points = []runPoint{}
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, cur, fmt.Errorf("encoding the chart points of run %d: %w", id, err)
	}
	frames = append(frames, live.Frame{Data: data})
	return frames, next, nil
}

// runPointsMessage is the JSON frame of new chart points, with each
// chart's threshold and warm-up when the run's state changed.
type runPointsMessage struct {
	Type   string                     `json:"type"`
	Points []runPoint                 `json:"points"`
	Charts map[string]runChartSetting `json:"charts,omitempty"`
}

// runTopicError wraps a missing run as an unknown topic.
func runTopicError(id int64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: there is no run %d", live.ErrUnknownTopic, id)
	}
	return err
}

// runRender renders a fragment for a frame.
func runRender(ctx context.Context, c templ.Component) ([]byte, error) {
	var b bytes.Buffer
	if err := c.Render(ctx, &b); err != nil {
		return nil, fmt.Errorf("rendering a run page fragment: %w", err)
	}
	return b.Bytes(), nil
}
