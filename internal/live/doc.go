// Package live streams what changes on Flightdeck's pages to the browsers
// watching them, over websockets: a release manager watching a canary bake,
// an on-call engineer on the incident view, everyone on the overview.
//
// # Topics, classes and feeds
//
// A browser watches one topic, such as "run:42" (a run's page), "live" (the
// incident view) or "overview". A Feed, written next to the pages, knows
// how to render a topic: Class checks that the member may watch it and puts
// the member in a class of viewers who see exactly the same frames (for a
// run, the member's role on its environment, which decides the buttons
// shown); Frames renders what is new since a Cursor; Affected tells which
// topics a changed run concerns.
//
// # The hub
//
// A Hub runs in every server replica. It LISTENs on store.RunsChannel on a
// connection of its own, so it hears of every change committed by any
// replica. A notification marks the affected topics dirty; each dirty topic
// is re-rendered at most every 100 ms, once per class of viewers (never once
// per viewer), from the cursor the hub keeps for that class. Each frame is
// encoded once into a websocket.PreparedMessage and the rendering is
// appended to the class's log, which wakes every viewer of the class at
// once; each viewer's goroutine then writes the frames it lacks in a single
// write. Ten thousand viewers of one run thus share one rendering and one
// encoding, and the hub hands a rendering to all of them in about a
// millisecond. Every topic is also re-rendered every HubConfig.Refresh, so a
// lost notification costs latency, never data; a rendering identical to the
// last one sent is not sent again, and a topic nobody watches any more is
// forgotten.
//
// Fan-out never waits for a viewer: one that has more than SendQueue frames
// waiting to be written is too slow and is dropped (its browser reconnects
// and resumes), so one slow viewer never delays the others. An idle viewer
// costs the server two parked goroutines and a few small buffers, about
// 7 KB.
//
// # The protocol of a connection
//
// Serve refuses, before upgrading, a request whose Origin is not this
// server (403), a topic that does not exist (404) and a member who may not
// watch it (403). After the upgrade the browser sends, within 10 s, one text
// message saying how far it has seen:
//
//	{"resume": {"event": 1234, "window": "2025-06-01T12:00:00Z"}}
//
// where event is the newest run event it shows and window the end of the
// newest chart window it shows; both are optional and {} means "from the
// start". The hub registers the subscriber first, so that its place in the
// class's log holds every live frame from then on, then sends what the
// browser missed (Frames from the browser's cursor), then the logged and
// later live frames, skipping event frames (and chart windows) it has
// already sent: no gaps and no duplicates. State frames, which show how
// things are now rather than an event, are always passed on. Messages the
// browser sends later are read and ignored. The server pings every
// PingInterval and closes a connection that has not answered within
// PongTimeout. A connection closed by the server carries a close frame whose
// reason says why (bad first message, too slow, topic gone, server stopping).
package live
