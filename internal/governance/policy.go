package governance

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Outside says what happens to a run that is asked to start outside the
// environment's windows or during a freeze.
type Outside string

const (
	// OutsideWait creates the run; it waits, pending, until deploys are
	// allowed again.
	OutsideWait Outside = "wait"
	// OutsideRefuse refuses to create the run, saying when it may run.
	OutsideRefuse Outside = "refuse"
)

// WindowSpec is a window as the API and the database write it.
type WindowSpec struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	TimeZone string   `json:"time_zone"`
}

// Settings are an environment's deploy windows and what happens outside
// them, as stored.
type Settings struct {
	Windows []WindowSpec `json:"windows"`
	Outside Outside      `json:"outside"`
}

// FieldError names a bad field of Settings and says what is wrong.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every bad field.
type ValidationError struct{ Errors []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return "invalid deploy windows: " + strings.Join(parts, "; ")
}

// MaxWindows bounds how many windows an environment has.
const MaxWindows = 20

// Compile checks the settings and returns the schedule; a bad field is a
// *ValidationError naming it (windows[0].time_zone, windows[1].end, ...).
// An end before the start is an overnight window; an end equal to the
// start is refused as ambiguous.
func (s Settings) Compile() (Schedule, error) {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch s.Outside {
	case OutsideWait, OutsideRefuse:
	case "":
		add("outside", "is required: wait or refuse")
	default:
		add("outside", "%q is not a policy; use wait or refuse", s.Outside)
	}
	if len(s.Windows) > MaxWindows {
		add("windows", "at most %d windows, got %d", MaxWindows, len(s.Windows))
	}
	sched := make(Schedule, 0, len(s.Windows))
	for i, ws := range s.Windows {
		f := fmt.Sprintf("windows[%d].", i)
		var w Window
		if len(ws.Days) == 0 {
			add(f+"days", "name at least one weekday")
		}
		for _, d := range ws.Days {
			day, err := ParseDay(d)
			if err != nil {
				add(f+"days", "%s", err.Error())
				continue
			}
			w.Days = append(w.Days, day)
		}
		var err error
		if w.Start, err = ParseClock(ws.Start); err != nil {
			add(f+"start", "%s", err.Error())
		} else if w.Start == 24*60 {
			add(f+"start", "a window cannot open at 24:00; write 00:00")
		}
		endOK := true
		if w.End, err = ParseClock(ws.End); err != nil {
			add(f+"end", "%s", err.Error())
			endOK = false
		}
		if endOK && w.End == w.Start && err == nil {
			add(f+"end", "must differ from the start (%s); an end before the start is a window running overnight", ws.Start)
		}
		switch {
		case strings.TrimSpace(ws.TimeZone) == "":
			add(f+"time_zone", "is required: an IANA time zone such as Europe/Berlin or UTC")
		case strings.EqualFold(ws.TimeZone, "local"):
			add(f+"time_zone", "Local depends on the server; name an IANA time zone such as Europe/Berlin")
		default:
			loc, err := time.LoadLocation(ws.TimeZone)
			if err != nil {
				add(f+"time_zone", "%q is not an IANA time zone (such as Europe/Berlin, America/New_York or UTC)", ws.TimeZone)
			}
			w.Location = loc
		}
		sched = append(sched, w)
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return sched, nil
}

// Normalize writes the settings the way they are stored: days in short
// lower-case names, Monday first, without repeats.
func (s Settings) Normalize() Settings {
	out := Settings{Outside: s.Outside, Windows: make([]WindowSpec, len(s.Windows))}
	for i, ws := range s.Windows {
		var on [7]bool
		for _, d := range ws.Days {
			if day, err := ParseDay(d); err == nil {
				on[day] = true
			}
		}
		var days []string
		for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
			if on[d] {
				days = append(days, DayName(d))
			}
		}
		out.Windows[i] = WindowSpec{Days: days, Start: ws.Start, End: ws.End, TimeZone: ws.TimeZone}
	}
	return out
}

// Freeze stops runs from starting in an environment between From and Until.
type Freeze struct {
	ID     int64
	Reason string
	By     string
	From   time.Time
	Until  time.Time
}

// ActiveAt reports whether the freeze holds at t.
func (f Freeze) ActiveAt(t time.Time) bool { return !t.Before(f.From) && t.Before(f.Until) }

// Halt is the installation-wide stop.
type Halt struct {
	Reason string
	By     string
	Since  time.Time
}

// Cause is what keeps a run from starting or moving on.
type Cause string

// The causes, strongest first.
const (
	CauseHalt   Cause = "halt"
	CauseFreeze Cause = "freeze"
	CauseWindow Cause = "window"
)

// Gate is everything that decides whether runs in one environment may go.
type Gate struct {
	// Environment names the environment in messages ("production").
	Environment string
	Schedule    Schedule
	Outside     Outside
	Freezes     []Freeze
	// Halt is set while the installation is halted.
	Halt *Halt
}

// Verdict is the gate's answer at one moment.
type Verdict struct {
	Open  bool
	Cause Cause
	// Reason says why runs may not go, without relative times, so it stays
	// the same sentence while the cause lasts.
	Reason string
	// Until is when the gate opens as far as is known: the next window, the
	// end of the freeze; zero when unknown (a halt ends when lifted).
	Until time.Time
	// Refuse is set when a new run is refused rather than kept waiting.
	Refuse bool
}

// Check answers whether runs may go at now. A halt wins over freezes, and
// freezes over windows; a run with an override passes freezes and windows
// but never a halt.
func (g Gate) Check(now time.Time, override bool) Verdict {
	if g.Halt != nil {
		return Verdict{Cause: CauseHalt, Reason: fmt.Sprintf("the line is stopped: %s (by %s since %s)",
			g.Halt.Reason, g.Halt.By, g.Halt.Since.UTC().Format("2006-01-02 15:04 UTC"))}
	}
	if override {
		return Verdict{Open: true}
	}
	refuse := g.Outside == OutsideRefuse
	var active *Freeze
	for i, f := range g.Freezes {
		if f.ActiveAt(now) && (active == nil || f.Until.After(active.Until)) {
			active = &g.Freezes[i]
		}
	}
	if active != nil {
		until := active.Until
		// A window closed at the end of the freeze keeps runs waiting longer.
		if !g.Schedule.Always() {
			until = g.Schedule.NextOpen(until)
		}
		return Verdict{Cause: CauseFreeze, Refuse: refuse, Until: until, Reason: fmt.Sprintf(
			"%s is frozen: %s (set by %s, ends %s)", g.Environment, active.Reason, active.By, active.Until.UTC().Format("2006-01-02 15:04 UTC"))}
	}
	if !g.Schedule.Contains(now) {
		next := g.Schedule.NextOpen(now)
		reason := fmt.Sprintf("%s deploys only %s", g.Environment, g.Schedule)
		if next.IsZero() {
			reason += "; no window ever opens"
		} else {
			reason += "; the next window opens " + next.In(locationOf(g.Schedule, next)).Format("Monday 15:04 MST")
		}
		return Verdict{Cause: CauseWindow, Refuse: refuse, Until: next, Reason: reason}
	}
	return Verdict{Open: true}
}

// Message is the reason with how long until the gate opens, as people read
// it: "…; the next window opens Monday 09:00 CET (in 2 days 3 h)".
func (v Verdict) Message(now time.Time) string {
	if v.Open || v.Until.IsZero() {
		return v.Reason
	}
	return fmt.Sprintf("%s (in %s)", v.Reason, Humanize(v.Until.Sub(now)))
}

// locationOf returns the location of the window that opens at t.
func locationOf(s Schedule, t time.Time) *time.Location {
	for _, w := range s {
		if w.NextOpen(t).Equal(t) {
			return w.Location
		}
	}
	return time.UTC
}

// Humanize writes a duration the way people say it: "2 days 3 h", "4 h
// 10 min", "12 min", "less than a minute".
func Humanize(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	mins := int(math.Ceil(d.Minutes()))
	days, hours, m := mins/(24*60), mins/60%24, mins%60
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("1 %s", one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	switch {
	case days > 0 && hours > 0:
		return plural(days, "day", "days") + fmt.Sprintf(" %d h", hours)
	case days > 0:
		return plural(days, "day", "days")
	case hours > 0 && m > 0:
		return fmt.Sprintf("%d h %d min", hours, m)
	case hours > 0:
		return fmt.Sprintf("%d h", hours)
	}
	return fmt.Sprintf("%d min", m)
}

// ClosedError refuses a run that may not be created now; the API answers
// it with 409 Conflict and its message.
type ClosedError struct {
	Verdict Verdict
	Message string
}

func (e *ClosedError) Error() string { return e.Message }
