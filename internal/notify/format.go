package notify

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Envelope is Flightdeck's own notification document, the body of the
// json format and the source of the Slack and Teams messages.
type Envelope struct {
	// ID names the event: "run_events:123", "flag_events:45", or
	// "test:<subscription id>".
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	At          time.Time `json:"at"`
	App         string    `json:"app"`
	Environment string    `json:"environment,omitempty"`
	RunID       int64     `json:"run_id,omitempty"`
	Version     string    `json:"version,omitempty"`
	FlagKey     string    `json:"flag_key,omitempty"`
	Actor       string    `json:"actor"`
	// Summary is one sentence a person can read in a chat room.
	Summary string `json:"summary"`
	// URL opens the run or flag in Flightdeck; it is a path when the
	// server's public URL is not configured.
	URL string `json:"url"`
	// Data is the stored event's payload.
	Data json.RawMessage `json:"data,omitempty"`
}

// Title is the short headline of a chat message.
func (e Envelope) Title() string {
	where := e.App
	if e.Environment != "" {
		where += "/" + e.Environment
	}
	switch {
	case e.Type == TestEventType:
		return "Flightdeck test notification"
	case e.RunID != 0:
		return fmt.Sprintf("%s · %s %s", e.Type, where, e.Version)
	case e.FlagKey != "":
		return fmt.Sprintf("%s · %s · flag %s", e.Type, where, e.FlagKey)
	default:
		return e.Type + " · " + where
	}
}

// envelopeOf builds the envelope of a stored event.
func envelopeOf(ev store.NotificationEvent, typ, publicURL string) Envelope {
	e := Envelope{
		ID: ev.Source + ":" + strconv.FormatInt(ev.ID, 10), Type: typ, At: ev.At.UTC(), App: ev.App,
		Environment: ev.Environment, RunID: ev.RunID, Version: ev.Version, FlagKey: ev.FlagKey, Actor: ev.Actor,
		Data: ev.Payload,
	}
	if len(e.Data) == 0 || string(e.Data) == "{}" {
		e.Data = nil
	}
	e.Summary = summarize(ev, typ)
	switch {
	case ev.RunID != 0:
		e.URL = link(publicURL, "/runs/"+strconv.FormatInt(ev.RunID, 10))
	case ev.FlagKey != "":
		e.URL = link(publicURL, "/apps/"+url.PathEscape(ev.App)+"/flags/"+url.PathEscape(ev.FlagKey))
	default:
		e.URL = link(publicURL, "/apps/"+url.PathEscape(ev.App)+"/flags")
	}
	return e
}

// TestEnvelope is the envelope of a test notification for a subscription.
func TestEnvelope(sub store.NotificationSubscription, actor, publicURL string, at time.Time) Envelope {
	return Envelope{
		ID: testEventID(sub.ID), Type: TestEventType, At: at.UTC(), App: sub.App, Environment: sub.Environment,
		Actor: actor, URL: link(publicURL, "/notifications"),
		Summary: fmt.Sprintf("Test notification for subscription %q, sent by %s. Deliveries to this URL work.", sub.Name, actor),
	}
}

// testEventID is the envelope id of a subscription's tests.
func testEventID(subscriptionID int64) string {
	return store.NotificationSourceTest + ":" + strconv.FormatInt(subscriptionID, 10)
}

func link(publicURL, path string) string {
	return strings.TrimRight(publicURL, "/") + path
}

// payloadFields is what summaries read from run event payloads.
type payloadFields struct {
	Reason      string `json:"reason"`
	Comment     string `json:"comment"`
	Phase       *int   `json:"phase"`
	Explanation string `json:"explanation"`
}

// summarize words an event as one sentence.
func summarize(ev store.NotificationEvent, typ string) string {
	if ev.Source == store.NotificationSourceFlags {
		where := ev.App
		if ev.Environment != "" {
			where += "/" + ev.Environment
		}
		detail := store.DescribeFlagEvent(store.FlagEvent{ID: ev.ID, Type: ev.Type, Payload: ev.Payload}, ev.FlagKey, "")
		return fmt.Sprintf("%s: %s (by %s).", where, detail, ev.Actor)
	}
	var p payloadFields
	_ = json.Unmarshal(ev.Payload, &p)
	run := fmt.Sprintf("%s %s in %s (run %d)", ev.App, ev.Version, ev.Environment, ev.RunID)
	phase := ""
	if p.Phase != nil {
		phase = fmt.Sprintf(" after phase %d", *p.Phase+1)
	}
	why := func(s string) string {
		if s = strings.TrimSpace(s); s == "" {
			return "."
		}
		return ": " + strings.TrimSuffix(s, ".") + "."
	}
	switch typ {
	case "run.created":
		return fmt.Sprintf("%s requested %s.", ev.Actor, run)
	case "run.queued":
		return fmt.Sprintf("%s is queued%s", run, why(p.Reason))
	case "run.started":
		return fmt.Sprintf("%s started.", run)
	case "run.paused":
		return fmt.Sprintf("%s was paused by %s%s", run, ev.Actor, why(p.Reason))
	case "run.resumed":
		return fmt.Sprintf("%s was resumed by %s.", run, ev.Actor)
	case "run.promoted":
		return fmt.Sprintf("%s was promoted%s by %s.", run, phase, ev.Actor)
	case "run.rolling_back":
		return fmt.Sprintf("%s is rolling back%s", run, why(p.Reason))
	case "run.succeeded":
		return fmt.Sprintf("%s succeeded.", run)
	case "run.rolled_back":
		return fmt.Sprintf("%s was rolled back%s", run, why(p.Reason))
	case "run.aborted":
		return fmt.Sprintf("%s was aborted by %s%s", run, ev.Actor, why(p.Reason))
	case "run.failed":
		return fmt.Sprintf("%s failed%s", run, why(p.Reason))
	case "approval.requested":
		return fmt.Sprintf("%s awaits approval to continue%s%s", run, phase, why(p.Explanation))
	case "approval.recorded":
		return fmt.Sprintf("%s approved %s%s; more approvals are needed.", ev.Actor, run, phase)
	case "approval.approved":
		return fmt.Sprintf("%s approved %s%s.", ev.Actor, run, phase)
	case "approval.rejected":
		return fmt.Sprintf("%s rejected %s%s%s", ev.Actor, run, phase, why(p.Comment))
	case "approval.escalated":
		return fmt.Sprintf("The approval of %s%s was escalated.", run, phase)
	}
	return fmt.Sprintf("%s: %s by %s.", run, typ, ev.Actor)
}

// Render returns the body sent in a subscription's format.
func Render(format string, e Envelope) ([]byte, error) {
	switch format {
	case FormatJSON:
		return json.Marshal(e)
	case FormatSlack:
		return json.Marshal(slackMessage(e))
	case FormatTeams:
		return json.Marshal(teamsCard(e))
	}
	return nil, fmt.Errorf("unknown notification format %q", format)
}

// color is the accent of a chat message: red for what went wrong, amber
// for what needs a person, green for the rest.
func color(t string) string {
	switch t {
	case "run.rolled_back", "run.failed", "run.aborted", "run.rolling_back", "approval.rejected",
		"flag.killed", "flag.rollout_rolled_back":
		return "D92D20"
	case "run.paused", "approval.requested", "approval.escalated", "approval.recorded", "run.queued":
		return "F5A524"
	}
	return "2EB67D"
}

// absolute reports whether a link can be opened from a chat message.
func absolute(u string) bool {
	return strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")
}

// slackEscape escapes the characters Slack's mrkdwn treats as markup.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackMessage is a Slack incoming-webhook payload: the summary as the
// notification text, a section with the title and summary, and a context
// line with the event type and a link to Flightdeck.
func slackMessage(e Envelope) map[string]any {
	title := "*" + slackEscape.Replace(e.Title()) + "*"
	contextText := "`" + e.Type + "` · by " + slackEscape.Replace(e.Actor)
	if absolute(e.URL) {
		title = "*<" + e.URL + "|" + slackEscape.Replace(e.Title()) + ">*"
		contextText += " · <" + e.URL + "|Open in Flightdeck>"
	}
	return map[string]any{
		"text": e.Summary,
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": title + "\n" + slackEscape.Replace(e.Summary)}},
			map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": contextText}}},
		},
	}
}

// teamsCard is a MessageCard, which Teams incoming webhooks accept.
func teamsCard(e Envelope) map[string]any {
	card := map[string]any{
		"@type":      "MessageCard",
		"@context":   "https://schema.org/extensions",
		"summary":    e.Summary,
		"themeColor": color(e.Type),
		"title":      e.Title(),
		"text":       e.Summary,
	}
	if absolute(e.URL) {
		card["potentialAction"] = []any{map[string]any{
			"@type": "OpenUri", "name": "Open in Flightdeck",
			"targets": []any{map[string]any{"os": "default", "uri": e.URL}},
		}}
	}
	return card
}
