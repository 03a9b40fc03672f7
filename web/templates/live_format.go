package templates

import (
	"fmt"
	"math"
	"strconv"
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

// livePercent writes a share from 0 to 1 as a percentage, with a decimal
// only where it matters ("0.5%", "25%", "100%").
func livePercent(share float64) string {
	v := share * 100
	switch {
	case v == 0:
		return "0%"
	case math.Abs(v) < 10 && math.Abs(v-math.Round(v)) >= 0.05:
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	default:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + "%"
	}
}

// liveRate writes an error rate (a ratio) as a percentage with two
// significant decimals where rates are small.
func liveRate(ratio float64) string {
	v := ratio * 100
	switch {
	case v == 0:
		return "0%"
	case math.Abs(v) < 1:
		return strconv.FormatFloat(v, 'f', 2, 64) + "%"
	case math.Abs(v) < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + "%"
	}
}

// liveCount writes a count with thousands separators.
func liveCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
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
