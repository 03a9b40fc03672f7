package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// eventPage is how many events one poll asks for.
const eventPage = 200

// streamFailuresBeforePolling is how many event streams in a row may end
// in an error, with no event received, before deployctl gives up on
// streaming and polls instead. A proxy that buffers or cuts streams
// should cost a few seconds, not the whole wait.
const streamFailuresBeforePolling = 3

// errNoStream says the server answered the event request with a plain
// list rather than a stream, so following goes on by polling.
var errNoStream = errors.New("the server does not stream events")

// follower follows one run: it prints each new event and decision once.
type follower struct {
	cli *cli
	api *apiclient.ClientWithResponses
	id  int64
	// last is the id of the last event printed.
	last int64
	// decisions are the ids of decisions printed; decisionsOff is set
	// when the server cannot list them, which then are not asked for.
	decisions    map[int64]bool
	decisionsOff bool
}

// follow prints the run's events and decisions as they happen, by the
// event stream when the server offers one and by polling otherwise, until
// the run finishes; then it returns the run's outcome. The run is also
// read every poll interval, which tells when it has finished whatever
// events the server writes, and feeds the progress line.
func (c *cli) follow(ctx context.Context, api *apiclient.ClientWithResponses, id int64, timeout time.Duration) error {
	f := &follower{cli: c, api: api, id: id, decisions: map[int64]bool{}}
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan apiclient.RunEvent)
	streamDone := make(chan error, 1)
	streaming, failures := true, 0
	startStream := func() {
		after := f.last
		go func() { streamDone <- f.stream(streamCtx, after, events) }()
	}
	startStream()
	var reconnect <-chan time.Time
	tick := time.NewTicker(c.pollInterval)
	defer tick.Stop()
	start := time.Now()
	var lastState string
	for {
		select {
		case ev := <-events:
			failures = 0
			f.print(ev)
		case err := <-streamDone:
			switch {
			case errors.Is(err, errNoStream):
				streaming = false
			case err != nil:
				failures++
				if failures >= streamFailuresBeforePolling {
					fmt.Fprintf(c.stderr, "deployctl: following run %d by polling, as its event stream keeps failing: %v\n", id, err)
					streaming = false
					break
				}
				reconnect = time.After(c.retryBackoff)
			default:
				// The server ends the stream when the run has finished; the
				// next tick reads the run and sees that.
				reconnect = time.After(c.retryBackoff)
			}
		case <-reconnect:
			reconnect = nil
			if streaming {
				startStream()
			}
		case <-tick.C:
			if !streaming {
				if err := f.poll(ctx); err != nil {
					return f.stopped(ctx, err, lastState, timeout)
				}
			}
			run, err := f.run(ctx)
			if err != nil {
				return f.stopped(ctx, err, lastState, timeout)
			}
			f.printDecisions(ctx)
			state := describeState(run)
			if isFinal(run.State) {
				// Events written since the last one seen are printed before
				// the outcome, so the log ends with how the run ended.
				cancel()
				if err := f.poll(ctx); err != nil {
					return f.stopped(ctx, err, lastState, timeout)
				}
				c.printf("run %d %s\n", id, state)
				return outcome(run)
			}
			if state != lastState {
				if !c.tty {
					c.printf("run %d: %s\n", id, state)
				}
				lastState = state
			}
			if c.tty {
				c.progress(fmt.Sprintf("run %d: %s · %s", id, state, time.Since(start).Round(time.Second)))
			}
		case <-ctx.Done():
			return f.stopped(ctx, ctx.Err(), lastState, timeout)
		}
	}
}

// stopped is the error of a follow that ended before the run did: exit 3
// when deployctl stopped waiting, the request's own error otherwise.
func (f *follower) stopped(ctx context.Context, err error, state string, timeout time.Duration) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return withCode(exitTimeout, fmt.Errorf("run %d is still %s after %s; it goes on without deployctl (see deployctl status %d)",
			f.id, orUnknown(state), timeout, f.id))
	case errors.Is(ctx.Err(), context.Canceled):
		return withCode(exitTimeout, fmt.Errorf("stopped following run %d, which is %s and goes on without deployctl", f.id, orUnknown(state)))
	}
	return err
}

func orUnknown(state string) string {
	if state == "" {
		return "in a state not read yet"
	}
	return state
}

// run reads the run.
func (f *follower) run(ctx context.Context) (apiclient.Run, error) {
	what := fmt.Sprintf("reading run %d", f.id)
	resp, err := f.api.GetRunWithResponse(ctx, f.id)
	if err != nil {
		return apiclient.Run{}, requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return apiclient.Run{}, err
	}
	return *resp.JSON200, nil
}

// poll prints the events after the last one printed.
func (f *follower) poll(ctx context.Context) error {
	for {
		items, err := pollEvents(ctx, f.api, f.id, f.last)
		if err != nil {
			return err
		}
		for _, ev := range items {
			f.print(ev)
		}
		if len(items) < eventPage {
			return nil
		}
	}
}

// pollEvents reads one page of a run's events after the event after.
func pollEvents(ctx context.Context, api *apiclient.ClientWithResponses, id, after int64) ([]apiclient.RunEvent, error) {
	what := fmt.Sprintf("reading the events of run %d", id)
	limit := eventPage
	resp, err := api.ListRunEventsWithResponse(ctx, id, &apiclient.ListRunEventsParams{After: &after, Limit: &limit})
	if err != nil {
		return nil, requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return nil, err
	}
	return resp.JSON200.Items, nil
}

// print prints an event unless it was printed already, which happens when
// a stream is reopened or a poll overlaps a stream.
func (f *follower) print(ev apiclient.RunEvent) {
	if ev.Id <= f.last {
		return
	}
	f.last = ev.Id
	f.cli.printf("%s\n", formatEvent(ev))
}

// printDecisions prints the run's decisions not printed yet. Decisions are
// the verdicts of the rollback analysis, which a pipeline's log should
// show as they come; a server that cannot list them is not asked again.
func (f *follower) printDecisions(ctx context.Context) {
	if f.decisionsOff {
		return
	}
	resp, err := f.api.ListRunDecisionsWithResponse(ctx, f.id)
	if err != nil || resp.JSON200 == nil {
		f.decisionsOff = err == nil
		return
	}
	for _, d := range resp.JSON200.Items {
		if f.decisions[d.Id] {
			continue
		}
		f.decisions[d.Id] = true
		f.cli.printf("%s  decision  phase=%d verdict=%s  %s\n", d.At.UTC().Format(time.TimeOnly), d.PhaseIndex, d.Verdict, oneLine(d.Explanation))
	}
}

// stream reads the run's events as server-sent events after the event
// after and sends each on out, until the stream ends. A server that
// answers with a plain list instead has its events sent and errNoStream
// returned.
func (f *follower) stream(ctx context.Context, after int64, out chan<- apiclient.RunEvent) error {
	raw, ok := f.api.ClientInterface.(*apiclient.Client)
	if !ok {
		return errNoStream
	}
	req, err := apiclient.NewListRunEventsRequest(raw.Server, f.id, &apiclient.ListRunEventsParams{After: &after})
	if err != nil {
		return errNoStream
	}
	req = req.WithContext(ctx)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	resp, err := raw.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return statusError(fmt.Sprintf("streaming the events of run %d", f.id), resp, body)
	}
	send := func(ev apiclient.RunEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mediaType != "text/event-stream" {
		var list apiclient.RunEventList
		if err := json.NewDecoder(resp.Body).Decode(&list); err == nil {
			for _, ev := range list.Items {
				if !send(ev) {
					break
				}
			}
		}
		return errNoStream
	}
	return readEventStream(resp.Body, func(id, data string) bool {
		var ev apiclient.RunEvent
		if json.Unmarshal([]byte(data), &ev) != nil {
			return true
		}
		if ev.Id == 0 {
			ev.Id, _ = strconv.ParseInt(id, 10, 64)
		}
		return send(ev)
	})
}

// readEventStream parses server-sent events from r and calls dispatch with
// each event's id and data, until r ends or dispatch returns false.
// Comments (the server's keep-alives) and fields other than id and data
// are skipped, as the specification says.
func readEventStream(r io.Reader, dispatch func(id, data string) bool) error {
	br := bufio.NewReader(r)
	var id string
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(data) > 0 && !dispatch(id, strings.Join(data, "\n")) {
				return nil
			}
			data = data[:0]
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			data = append(data, value)
		}
	}
}

// payloadKeys are the payload fields shown in an event's line, in order;
// others are left out to keep the line short.
var payloadKeys = []string{"phase", "name", "verdict", "state", "final_state", "reason", "explanation", "comment", "error", "retry_at"}

// formatEvent writes an event as one line: its time, its type, who caused
// it when that is a person or a token, and the telling parts of its
// payload.
func formatEvent(ev apiclient.RunEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s", ev.At.UTC().Format(time.TimeOnly), ev.Type)
	if ev.Actor != "" && ev.Actor != "engine" {
		fmt.Fprintf(&b, "  by %s", ev.Actor)
	}
	var parts []string
	for _, k := range payloadKeys {
		v, ok := ev.Payload[k]
		if !ok || v == nil || v == "" {
			continue
		}
		switch v := v.(type) {
		case string:
			if strings.ContainsAny(v, " \t\n") {
				parts = append(parts, k+"="+strconv.Quote(oneLine(v)))
			} else {
				parts = append(parts, k+"="+v)
			}
		case float64:
			parts = append(parts, k+"="+strconv.FormatFloat(v, 'f', -1, 64))
		default:
			j, _ := json.Marshal(v)
			parts = append(parts, k+"="+string(j))
		}
	}
	if len(parts) > 0 {
		b.WriteString("  " + strings.Join(parts, " "))
	}
	return b.String()
}

// oneLine folds text onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// progress shows text on the live progress line of a terminal.
func (c *cli) progress(text string) {
	fmt.Fprint(c.stdout, "\r\033[K"+text)
	c.progressShown = true
}

// clearProgress removes the progress line, so that the next line printed
// starts at the left margin.
func (c *cli) clearProgress() {
	if c.progressShown {
		fmt.Fprint(c.stdout, "\r\033[K")
		c.progressShown = false
	}
}
