package api

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// How a stream of run events is kept. New events are looked for every
// eventPoll, which is quick enough for a person watching a rollout and
// cheap on an indexed query; a comment every eventHeartbeat keeps proxies
// from closing a connection that has had nothing to say.
var (
	eventPoll      = 250 * time.Millisecond
	eventHeartbeat = 15 * time.Second
)

// eventBatch is how many events one query of a stream reads.
const eventBatch = 500

// ListRunEvents handles GET /api/v1/runs/{id}/events: the run's events
// after a point as a JSON list, or, for clients that accept
// text/event-stream, as a stream of server-sent events that follows the
// run until it finishes.
func (h *restHandlers) ListRunEvents(c echo.Context, id apigen.RunID, params apigen.ListRunEventsParams) error {
	stream := acceptsEventStream(c.Request().Header.Get(echo.HeaderAccept))
	var errs []plan.FieldError
	var after int64
	if params.After != nil {
		if *params.After < 0 {
			errs = append(errs, plan.FieldError{Field: "after", Message: fmt.Sprintf("must be 0 or more, got %d", *params.After)})
		}
		after = *params.After
	}
	if stream && params.LastEventID != nil && strings.TrimSpace(*params.LastEventID) != "" {
		last, err := strconv.ParseInt(strings.TrimSpace(*params.LastEventID), 10, 64)
		if err != nil || last < 0 {
			errs = append(errs, plan.FieldError{Field: "Last-Event-ID", Message: fmt.Sprintf("must be the id of an event, got %q", *params.LastEventID)})
		}
		after = last
	}
	limit := defaultPageSize
	if params.Limit != nil {
		if *params.Limit < 1 || *params.Limit > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, got %d", maxPageSize, *params.Limit)})
		}
		limit = *params.Limit
	}
	if len(errs) > 0 {
		return badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	if _, _, _, err := h.run(c, id); err != nil {
		return err
	}
	if stream {
		return h.streamRunEvents(c, id, after)
	}
	events, err := h.runStore.ListRunEvents(c.Request().Context(), id, after, limit)
	if err != nil {
		return fmt.Errorf("listing events of run %d: %w", id, err)
	}
	list := apigen.RunEventList{Items: make([]apigen.RunEvent, 0, len(events))}
	for _, ev := range events {
		item, err := runEventBody(ev)
		if err != nil {
			return err
		}
		list.Items = append(list.Items, item)
	}
	return c.JSON(http.StatusOK, list)
}

// streamRunEvents sends the run's events after the id as server-sent
// events until the run has finished and every event was sent, or the
// client goes away. The run's state is read before its events, so an event
// written together with the final state is always sent before the stream
// ends.
func (h *restHandlers) streamRunEvents(c echo.Context, id, after int64) error {
	ctx := c.Request().Context()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	// Proxies such as nginx would otherwise hold events back in a buffer.
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	poll := time.NewTicker(eventPoll)
	defer poll.Stop()
	heartbeat := time.NewTicker(eventHeartbeat)
	defer heartbeat.Stop()
	for {
		run, err := h.runStore.Run(ctx, id)
		if err != nil {
			return streamEnded(ctx.Err(), fmt.Errorf("reading run %d for its event stream: %w", id, err))
		}
		for {
			events, err := h.runStore.ListRunEvents(ctx, id, after, eventBatch)
			if err != nil {
				return streamEnded(ctx.Err(), fmt.Errorf("listing events of run %d: %w", id, err))
			}
			for _, ev := range events {
				item, err := runEventBody(ev)
				if err != nil {
					return err
				}
				data, err := json.Marshal(item)
				if err != nil {
					return fmt.Errorf("encoding event %d: %w", ev.ID, err)
				}
				if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ev.ID, data); err != nil {
					return nil // the client went away
				}
				after = ev.ID
			}
			if len(events) > 0 {
				w.Flush()
			}
			if len(events) < eventBatch {
				break
			}
		}
		if run.State.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case <-poll.C:
		}
	}
}

// streamEnded turns a failed query into nil when the client has gone away,
// which cancels the query and is not a fault. The stream is committed
// already, so any other error can only be logged.
func streamEnded(ctxErr, err error) error {
	if ctxErr != nil {
		return nil
	}
	return err
}

// runEventBody is the event as the API shows it.
func runEventBody(ev store.RunEvent) (apigen.RunEvent, error) {
	item := apigen.RunEvent{Id: ev.ID, At: ev.At, Type: ev.Type, Actor: ev.Actor, Payload: map[string]any{}}
	if len(ev.Payload) > 0 {
		if err := json.Unmarshal(ev.Payload, &item.Payload); err != nil {
			return apigen.RunEvent{}, fmt.Errorf("reading the payload of event %d: %w", ev.ID, err)
		}
	}
	return item, nil
}

// acceptsEventStream reports whether an Accept header asks for
// text/event-stream, as EventSource sends it.
func acceptsEventStream(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mediaType == "text/event-stream" {
			return true
		}
	}
	return false
}
