// Package governance decides whether a run may start or move on: deploy
// windows per environment, freezes, and the installation-wide halt ("stop
// the line"). Everything here is pure: settings and a time in, a verdict out.
package governance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is a recurring period in which deploys are allowed: on each of
// Days, from Start to End wall-clock time in Location. When End is not
// after Start the window runs overnight and ends on the following day
// (Fri 22:00–02:00 is Friday night into Saturday). Days name the day a
// window opens.
type Window struct {
	Days []time.Weekday
	// Start and End are minutes after midnight; End may be 1440 (24:00).
	Start, End int
	Location   *time.Location
}

// overnight reports whether the window ends on the day after it opens.
func (w Window) overnight() bool { return w.End <= w.Start }

// occurrence returns the window that opens on the calendar day of d in the
// window's location. A wall-clock time that does not exist because of a
// daylight-saving change (02:30 on the night clocks go forward) is taken
// as the same number of minutes after midnight, as time.Date normalises it.
func (w Window) occurrence(year int, month time.Month, day int) (open, close time.Time) {
	open = time.Date(year, month, day, w.Start/60, w.Start%60, 0, 0, w.Location)
	endDay := day
	if w.overnight() {
		endDay++
	}
	close = time.Date(year, month, endDay, w.End/60, w.End%60, 0, 0, w.Location)
	return open, close
}

// occurrences calls fn for every opening of the window on the calendar days
// from `from` days before t's day to `to` days after it, in order.
func (w Window) occurrences(t time.Time, from, to int, fn func(open, close time.Time) bool) {
	local := t.In(w.Location)
	for i := -from; i <= to; i++ {
		d := time.Date(local.Year(), local.Month(), local.Day()+i, 12, 0, 0, 0, w.Location)
		if !slices.Contains(w.Days, d.Weekday()) {
			continue
		}
		open, close := w.occurrence(d.Year(), d.Month(), d.Day())
		if !fn(open, close) {
			return
		}
	}
}

// Contains reports whether t falls inside the window (its start included,
// its end excluded).
func (w Window) Contains(t time.Time) bool {
	in := false
	w.occurrences(t, 1, 0, func(open, close time.Time) bool {
		if !t.Before(open) && t.Before(close) {
			in = true
			return false
		}
		return true
	})
	return in
}

// NextOpen returns t when the window contains it, and otherwise the next
// time it opens. A window without days never opens: the zero time.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	var next time.Time
	w.occurrences(t, 0, 8, func(open, _ time.Time) bool {
		if !open.Before(t) {
			next = open
			return false
		}
		return true
	})
	return next
}

// NextClose returns when the occurrence containing t ends; t itself when
// the window does not contain t.
func (w Window) NextClose(t time.Time) time.Time {
	end := t
	w.occurrences(t, 1, 0, func(open, close time.Time) bool {
		if !t.Before(open) && t.Before(close) {
			end = close
			return false
		}
		return true
	})
	return end
}

// String describes the window: "Mon–Thu 09:00–16:00 Europe/Berlin".
func (w Window) String() string {
	return fmt.Sprintf("%s %s–%s %s", DaysString(w.Days), Clock(w.Start), Clock(w.End), w.Location)
}

// Schedule is every window of an environment; no windows means deploys are
// always allowed.
type Schedule []Window

// Always reports whether the schedule allows deploys at any time.
func (s Schedule) Always() bool { return len(s) == 0 }

// Contains reports whether any window contains t.
func (s Schedule) Contains(t time.Time) bool {
	if s.Always() {
		return true
	}
	return slices.ContainsFunc(s, func(w Window) bool { return w.Contains(t) })
}

// NextOpen returns t when the schedule allows deploys at t, otherwise the
// earliest time a window opens (the zero time if none ever does).
func (s Schedule) NextOpen(t time.Time) time.Time {
	if s.Contains(t) {
		return t
	}
	var next time.Time
	for _, w := range s {
		if o := w.NextOpen(t); !o.IsZero() && (next.IsZero() || o.Before(next)) {
			next = o
		}
	}
	return next
}

// NextClose returns when deploys stop being allowed, following windows that
// touch or overlap (Mon 09:00–12:00 and Mon 12:00–16:00 close at 16:00).
// It returns t when the schedule does not allow deploys at t, and the zero
// time when the schedule is always open.
func (s Schedule) NextClose(t time.Time) time.Time {
	if s.Always() {
		return time.Time{}
	}
	end := t
	for range 64 {
		next := end
		for _, w := range s {
			if c := w.NextClose(end); c.After(next) {
				next = c
			}
		}
		if !next.After(end) {
			return end
		}
		end = next
	}
	return end
}

// String describes every window: "Mon–Thu 09:00–16:00 Europe/Berlin or Sat
// 10:00–12:00 UTC".
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, w := range s {
		parts[i] = w.String()
	}
	return strings.Join(parts, " or ")
}

// Clock formats minutes after midnight as "09:00"; 1440 is "24:00".
func Clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// ParseClock reads "HH:MM" (00:00 to 24:00).
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not a time of day; write HH:MM, e.g. 09:00", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day; hours run 00 to 23 (or 24:00 for midnight at the end) and minutes 00 to 59", s)
	}
	return hh*60 + mm, nil
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDay reads a weekday: "mon", "Monday", "TUE".
func ParseDay(s string) (time.Weekday, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for i, n := range dayNames {
		full := strings.ToLower(time.Weekday(i).String())
		if l == n || l == full {
			return time.Weekday(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not a weekday; use mon, tue, wed, thu, fri, sat or sun", s)
}

// DayName is the short name of a weekday as the API writes it: "mon".
func DayName(d time.Weekday) string { return dayNames[d] }

// DaysString compresses weekdays into ranges, Monday first: "Mon–Thu",
// "Mon, Wed, Fri", "every day".
func DaysString(days []time.Weekday) string {
	if len(days) == 0 {
		return "no days"
	}
	// Order Monday..Sunday.
	var on [7]bool
	for _, d := range days {
		on[(int(d)+6)%7] = true
	}
	if on == [7]bool{true, true, true, true, true, true, true} {
		return "every day"
	}
	short := func(i int) string { return time.Weekday((i + 1) % 7).String()[:3] }
	var parts []string
	for i := 0; i < 7; {
		if !on[i] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && on[j+1] {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, short(i))
		case j == i+1:
			parts = append(parts, short(i), short(j))
		default:
			parts = append(parts, short(i)+"–"+short(j))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// LastClose returns the latest time at or before t at which a window of the
// schedule closed, and that window's location; the zero time when none
// closed in the week before t.
func (s Schedule) LastClose(t time.Time) (time.Time, *time.Location) {
	var last time.Time
	l := time.UTC
	for _, w := range s {
		w.occurrences(t, 8, 0, func(_, close time.Time) bool {
			if !close.After(t) && close.After(last) {
				last, l = close, w.Location
			}
			return true
		})
	}
	return last, l
}
