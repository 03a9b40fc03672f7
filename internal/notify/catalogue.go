// Package notify sends outgoing notifications: webhooks that tell chat
// rooms and other systems about run and flag events. Admins subscribe a URL
// to the events of an app and environment (or every one) in one of three
// formats: Flightdeck's JSON envelope, a Slack incoming-webhook message or
// a Microsoft Teams MessageCard. Every request is signed like the webhook
// driver's (Flightdeck-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">) and carries the delivery's id in Flightdeck-Delivery.
//
// A Dispatcher runs on every replica. It turns new run_events and
// flag_events rows into deliveries under a row lock on a cursor kept in
// Postgres, so each event is enqueued once, and sends due deliveries that
// it claims with FOR UPDATE SKIP LOCKED, retrying with backoff.
package notify

import (
	"slices"
	"strings"
)

// EventType is one kind of event a subscription can ask for.
type EventType struct {
	Type        string
	Description string
}

// Catalogue lists the event types notifications are sent for. Run and
// approval events come from run_events, flag events from flag_events. A
// subscription names types exactly, or by group with a wildcard ("run.*",
// "approval.*", "flag.*"), or every type with "*".
var Catalogue = []EventType{
	{"run.created", "A run of a new version was requested."},
	{"run.queued", "A run waits, for example for its deploy window."},
	{"run.started", "A run began its first phase."},
	{"run.paused", "A run was paused by a person or by its failure policy."},
	{"run.resumed", "A paused run was resumed."},
	{"run.promoted", "A phase was ended early and the run moved on."},
	{"run.rolling_back", "A run started rolling back."},
	{"run.succeeded", "A run finished: the new version is stable."},
	{"run.rolled_back", "A run finished rolled back to the previous version."},
	{"run.aborted", "A run was aborted."},
	{"run.failed", "A run failed."},
	{"approval.requested", "A phase is done and waits for a person's approval."},
	{"approval.recorded", "An approval was recorded; more are needed before the run continues."},
	{"approval.approved", "A phase was approved and the run continues."},
	{"approval.rejected", "A phase was rejected."},
	{"approval.escalated", "An approval waited too long and was escalated."},
	{"flag.created", "A feature flag was created."},
	{"flag.updated", "A feature flag's definition changed."},
	{"flag.state_changed", "A flag's state in an environment changed (on, off, rules, rollout)."},
	{"flag.killed", "A flag was turned off by its kill switch."},
	{"flag.rollout_started", "A guarded rollout of a flag started."},
	{"flag.rollout_advanced", "A guarded rollout moved to its next step."},
	{"flag.rollout_completed", "A guarded rollout reached 100%."},
	{"flag.rollout_rolled_back", "A guarded rollout was rolled back by its decision."},
	{"flag.rollout_cancelled", "A guarded rollout was cancelled."},
}

// TestEventType is the type of the test notifications admins send.
const TestEventType = "test"

// runEventTypes maps the run_events types that are notified to their
// notification types; the others (driver output, analysis steps) are not.
var runEventTypes = map[string]string{
	"run.created":             "run.created",
	"run.queued":              "run.queued",
	"run.started":             "run.started",
	"run.paused":              "run.paused",
	"run.resumed":             "run.resumed",
	"run.promoted":            "run.promoted",
	"run.rolling_back":        "run.rolling_back",
	"run.succeeded":           "run.succeeded",
	"run.rolled_back":         "run.rolled_back",
	"run.aborted":             "run.aborted",
	"run.failed":              "run.failed",
	"phase.awaiting_approval": "approval.requested",
	"run.approval_recorded":   "approval.recorded",
	"run.approved":            "approval.approved",
	"run.rejected":            "approval.rejected",
	"approval.escalated":      "approval.escalated",
}

// known reports whether t is in the catalogue.
func known(t string) bool {
	return slices.ContainsFunc(Catalogue, func(e EventType) bool { return e.Type == t })
}

// notificationType returns the notification type of a stored event, and
// false when events of its type are not notified.
func notificationType(source, raw string) (string, bool) {
	if source == "run_events" {
		t, ok := runEventTypes[raw]
		return t, ok
	}
	return raw, strings.HasPrefix(raw, "flag.") && known(raw)
}

// ValidPattern reports whether p names an event type of the catalogue, a
// group of them ("run.*") or all ("*").
func ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	if group, ok := strings.CutSuffix(p, ".*"); ok {
		return slices.ContainsFunc(Catalogue, func(e EventType) bool { return strings.HasPrefix(e.Type, group+".") })
	}
	return known(p)
}

// Matches reports whether the event type t is one of the patterns.
func Matches(patterns []string, t string) bool {
	for _, p := range patterns {
		if p == "*" || p == t {
			return true
		}
		if group, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(t, group+".") {
			return true
		}
	}
	return false
}

// Groups lists the wildcard patterns of the catalogue, for forms.
func Groups() []string {
	var out []string
	for _, e := range Catalogue {
		g := e.Type[:strings.IndexByte(e.Type, '.')] + ".*"
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}
