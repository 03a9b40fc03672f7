package templates

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// envAgo says how long before now t was, in its largest unit, as people
// glance at it: "just now", "5m ago", "3h ago", "2d ago".
func envAgo(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

// envDuration writes a length of time in its two largest units: "45s",
// "4m 12s", "2h 5m", "3d 4h".
func envDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	minutes := int(d % time.Hour / time.Minute)
	seconds := int(d % time.Minute / time.Second)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, minutes)
	case minutes > 0:
		return fmt.Sprintf("%dm %ds", minutes, seconds)
	}
	return fmt.Sprintf("%ds", seconds)
}

// envStamp is the exact time, in UTC, for tooltips and datetime attributes.
func envStamp(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// envISO is the time for a <time datetime> attribute.
func envISO(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// envStateLabel is a run state as people read it.
func envStateLabel(s store.RunState) string {
	return strings.ReplaceAll(string(s), "_", " ")
}

// envStateClass is the badge class of a run state, styled by app.css.
func envStateClass(s store.RunState) string {
	return "badge state-" + string(s)
}

// envRunPath is the page of a run.
func envRunPath(id int64) templ.SafeURL {
	return templ.SafeURL(fmt.Sprintf("/runs/%d", id))
}

// envPath is the page of an app's environment.
func envPath(app, env string) templ.SafeURL {
	return templ.SafeURL("/apps/" + url.PathEscape(app) + "/environments/" + url.PathEscape(env))
}

// envStrategyTitle is the strategy as people read it: "blue_green" is
// "Blue-green".
func envStrategyTitle(s string) string {
	if info := plan.Describe(plan.Strategy(s)); info.Title != "" {
		return info.Title
	}
	return s
}

// envHealth says how a run in flight is doing, from its state and the
// verdict of the latest decision on it ("" before the first), with the
// class that colours it.
func envHealth(state store.RunState, verdict string) (label, class string) {
	switch state {
	case store.RunPending:
		return "queued", "health-idle"
	case store.RunPaused:
		return "paused", "health-warn"
	case store.RunRollingBack:
		return "rolling back", "health-bad"
	case store.RunAwaitingApproval:
		return "awaiting approval", "health-wait"
	}
	switch verdict {
	case "":
		return "no verdict yet", "health-idle"
	case "warming_up":
		return "warming up", "health-idle"
	case "continue":
		return "healthy", "health-ok"
	case "monitor_longer":
		return "monitoring longer", "health-warn"
	case "rollback":
		return "rolling back", "health-bad"
	case "inconclusive":
		return "inconclusive", "health-warn"
	}
	return strings.ReplaceAll(verdict, "_", " "), "health-idle"
}
