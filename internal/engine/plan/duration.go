package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time in plans and strategy parameters. It is
// written in JSON as a string ("90s", "5m", "24h", "3d") rather than as
// nanoseconds, because release managers read and write these values in
// environment settings and run records, and bakes of several days are common
// enough that a "d" suffix for days is accepted on input.
type Duration time.Duration

// Common durations used by strategy defaults. They are named so the defaults
// read like the strategy table in the design.
const (
	second = Duration(time.Second)
	minute = Duration(time.Minute)
	hour   = Duration(time.Hour)
	day    = 24 * hour
)

// maxDays bounds the day count accepted by ParseDuration so that multiplying
// it out can never overflow; anything near it is far beyond MaxDuration.
const maxDays = 100_000

// errDurationSyntax is returned for text that is not a duration. Its message
// is shown to people, so it gives examples of the accepted forms.
var errDurationSyntax = errors.New(`must be a duration such as "90s", "5m", "24h" or "3d"`)

// ParseDuration reads a duration written as Go writes them ("1h30m", "90s",
// "0") or with a leading whole number of days ("3d", "1d12h"). Days are
// always 24 hours: Flightdeck bakes are measured in elapsed time, not in
// calendar days.
func ParseDuration(text string) (Duration, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, errDurationSyntax
	}
	if !strings.Contains(s, "d") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errDurationSyntax
		}
		return Duration(d), nil
	}
	negative := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		negative, s = true, rest
	}
	var total Duration
	if digits, rest, ok := strings.Cut(s, "d"); ok {
		days, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || days > maxDays {
			return 0, errDurationSyntax
		}
		total = Duration(days) * day
		s = rest
	}
	if s != "" {
		if s[0] == '-' || s[0] == '+' {
			return 0, errDurationSyntax
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errDurationSyntax
		}
		if Duration(d) > Duration(1<<63-1)-total {
			return 0, errDurationSyntax
		}
		total += Duration(d)
	}
	if negative {
		total = -total
	}
	return total, nil
}

// String writes the duration in the shortest form ParseDuration reads back:
// two or more whole days as "3d", otherwise hours, minutes and seconds
// without zero units ("24h", "1h30m", "36h"), and Go's own form when there are fractions of a
// second. Keeping it short makes run records and pages easy to read.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	if d < 0 {
		if d == Duration(-1<<63) {
			return time.Duration(d).String()
		}
		return "-" + (-d).String()
	}
	if d%second != 0 {
		return time.Duration(d).String()
	}
	if d%day == 0 && d >= 2*day {
		return fmt.Sprintf("%dd", d/day)
	}
	var b strings.Builder
	if h := d / hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m := d % hour / minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s := d % minute / second; s > 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

// MarshalText writes the duration as String does, which also makes JSON
// encode it as a string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalText reads a duration as ParseDuration does, which also makes JSON
// decode it from a string.
func (d *Duration) UnmarshalText(text []byte) error {
	parsed, err := ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("duration %q: %w", text, err)
	}
	*d = parsed
	return nil
}
