package templates

import (
	"fmt"
	"strings"
	"time"
)

// liveSpan writes a length of time the way people say it on a wall screen:
// the two largest units, "3d 4h", "2h 05m", "4m 12s", "38s".
func liveSpan(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	hours := (d % (24 * time.Hour)) / time.Hour
	minutes := (d % time.Hour) / time.Minute
	seconds := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %02dm", hours, minutes)
	case minutes > 0:
		return fmt.Sprintf("%dm %02ds", minutes, seconds)
	default:
		return fmt.Sprintf("%ds", seconds)
	}
}

// liveClock writes an instant in UTC, to the second, for every reader to
// agree on when something happened whatever their time zone.
func liveClock(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// liveISO is an instant for a <time datetime> attribute.
func liveISO(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// liveAgo says how long before now an instant was.
func liveAgo(now, t time.Time) string {
	if now.Before(t) {
		return "just now"
	}
	return liveSpan(now.Sub(t)) + " ago"
}

// liveVerdictWords names a decision's verdict for people.
func liveVerdictWords(verdict string) string {
	switch verdict {
	case "warming_up":
		return "warming up"
	case "continue":
		return "healthy"
	case "monitor_longer":
		return "monitor longer"
	case "rollback":
		return "roll back"
	case "inconclusive":
		return "inconclusive"
	case "":
		return "not judged yet"
	}
	return strings.ReplaceAll(verdict, "_", " ")
}

// liveStateWords names a run state for people.
func liveStateWords(state string) string {
	return strings.ReplaceAll(state, "_", " ")
}
