package governance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func loc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func at(l *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, l)
}

func TestWindowEdgesAcrossZonesAndDST(t *testing.T) {
	t.Parallel()
	berlin, ny := loc(t, "Europe/Berlin"), loc(t, "America/New_York")
	monThu := Window{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday}, Start: 9 * 60, End: 16 * 60, Location: berlin}
	// Sunday 01:00–03:30: the night the clocks change in Europe.
	sundayNight := Window{Days: []time.Weekday{time.Sunday}, Start: 60, End: 3*60 + 30, Location: berlin}
	nyMorning := Window{Days: []time.Weekday{time.Sunday, time.Monday}, Start: 60, End: 4 * 60, Location: ny}
	// Friday 22:00 to Saturday 02:00, and Sunday 20:00 to Monday 06:00.
	overnight := Window{Days: []time.Weekday{time.Friday, time.Sunday}, Start: 22 * 60, End: 2 * 60, Location: berlin}
	sunMon := Window{Days: []time.Weekday{time.Sunday}, Start: 20 * 60, End: 6 * 60, Location: ny}

	tests := []struct {
		name      string
		w         Window
		t         time.Time
		contains  bool
		nextOpen  time.Time
		nextClose time.Time
	}{
		{"start is inside", monThu, at(berlin, 2026, 3, 30, 9, 0), true, at(berlin, 2026, 3, 30, 9, 0), at(berlin, 2026, 3, 30, 16, 0)},
		{"end is outside", monThu, at(berlin, 2026, 3, 30, 16, 0), false, at(berlin, 2026, 3, 31, 9, 0), at(berlin, 2026, 3, 30, 16, 0)},
		{"one minute before opening", monThu, at(berlin, 2026, 3, 30, 8, 59), false, at(berlin, 2026, 3, 30, 9, 0), at(berlin, 2026, 3, 30, 8, 59)},
		{"thursday evening waits for monday", monThu, at(berlin, 2026, 3, 26, 17, 0), false, at(berlin, 2026, 3, 30, 9, 0), at(berlin, 2026, 3, 26, 17, 0)},
		{"same instant seen from new york", monThu, at(ny, 2026, 3, 30, 3, 30), true, at(ny, 2026, 3, 30, 3, 30), at(berlin, 2026, 3, 30, 16, 0)},
		// 29 March 2026: Berlin skips 02:00–03:00; the window is 90 minutes long, not 150.
		{"berlin spring forward: inside after the gap", sundayNight, at(berlin, 2026, 3, 29, 3, 10), true, at(berlin, 2026, 3, 29, 3, 10), at(berlin, 2026, 3, 29, 3, 30)},
		{"berlin spring forward: length", sundayNight, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), true, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		// 25 October 2026: Berlin repeats 02:00–03:00; the window lasts 210 minutes.
		{"berlin fall back: second 02:30 is inside", sundayNight, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC)},
		{"berlin fall back: opens at 01:00 CEST", sundayNight, time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC), false, time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC)},
		// 8 March 2026: New York skips 02:00–03:00 (01:00 EST = 06:00 UTC, 04:00 EDT = 08:00 UTC).
		{"new york spring forward", nyMorning, time.Date(2026, 3, 8, 7, 59, 0, 0, time.UTC), true, time.Date(2026, 3, 8, 7, 59, 0, 0, time.UTC), time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)},
		{"new york spring forward: closed after 04:00 EDT", nyMorning, time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), false, time.Date(2026, 3, 9, 5, 0, 0, 0, time.UTC), time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)},
		// 1 November 2026: New York repeats 01:00–02:00 (01:00 EDT = 05:00 UTC, 04:00 EST = 09:00 UTC).
		{"new york fall back", nyMorning, time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC), true, time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC), time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)},
		{"new york fall back: opens 01:00 EDT", nyMorning, time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC)},
		{"overnight: friday 23:00", overnight, at(berlin, 2026, 4, 3, 23, 0), true, at(berlin, 2026, 4, 3, 23, 0), at(berlin, 2026, 4, 4, 2, 0)},
		{"overnight: saturday 01:59 belongs to friday", overnight, at(berlin, 2026, 4, 4, 1, 59), true, at(berlin, 2026, 4, 4, 1, 59), at(berlin, 2026, 4, 4, 2, 0)},
		{"overnight: saturday 22:00 is closed", overnight, at(berlin, 2026, 4, 4, 22, 0), false, at(berlin, 2026, 4, 5, 22, 0), at(berlin, 2026, 4, 4, 22, 0)},
		{"sunday to monday wrap: monday 05:00", sunMon, at(ny, 2026, 4, 6, 5, 0), true, at(ny, 2026, 4, 6, 5, 0), at(ny, 2026, 4, 6, 6, 0)},
		{"sunday to monday wrap: monday 06:00 waits a week", sunMon, at(ny, 2026, 4, 6, 6, 0), false, at(ny, 2026, 4, 12, 20, 0), at(ny, 2026, 4, 6, 6, 0)},
		{"saturday waits for sunday evening", sunMon, at(ny, 2026, 4, 4, 12, 0), false, at(ny, 2026, 4, 5, 20, 0), at(ny, 2026, 4, 4, 12, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.contains, tc.w.Contains(tc.t), "Contains")
			require.True(t, tc.nextOpen.Equal(tc.w.NextOpen(tc.t)), "NextOpen: got %s want %s", tc.w.NextOpen(tc.t), tc.nextOpen)
			require.True(t, tc.nextClose.Equal(tc.w.NextClose(tc.t)), "NextClose: got %s want %s", tc.w.NextClose(tc.t), tc.nextClose)
		})
	}
}

func TestScheduleFollowsTouchingWindows(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	s := Schedule{
		{Days: []time.Weekday{time.Monday}, Start: 9 * 60, End: 12 * 60, Location: utc},
		{Days: []time.Weekday{time.Monday}, Start: 12 * 60, End: 16 * 60, Location: utc},
		{Days: []time.Weekday{time.Wednesday}, Start: 9 * 60, End: 10 * 60, Location: utc},
	}
	mon := at(utc, 2026, 4, 6, 10, 0)
	require.True(t, s.Contains(mon))
	require.Equal(t, at(utc, 2026, 4, 6, 16, 0), s.NextClose(mon))
	require.Equal(t, at(utc, 2026, 4, 8, 9, 0), s.NextOpen(at(utc, 2026, 4, 6, 16, 0)))
	require.True(t, Schedule(nil).Contains(mon), "no windows means always allowed")
}

func TestCompileRefusesBadSettings(t *testing.T) {
	t.Parallel()
	_, err := Settings{Outside: "sometimes", Windows: []WindowSpec{
		{Days: []string{"mon", "funday"}, Start: "25:00", End: "16:00", TimeZone: "Mars/Olympus"},
		{Days: nil, Start: "09:00", End: "09:00", TimeZone: ""},
	}}.Compile()
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	fields := map[string]string{}
	for _, fe := range v.Errors {
		fields[fe.Field] = fe.Message
	}
	require.Contains(t, fields, "outside")
	require.Contains(t, fields["windows[0].days"], "funday")
	require.Contains(t, fields["windows[0].start"], "25:00")
	require.Contains(t, fields["windows[0].time_zone"], "Mars/Olympus")
	require.Contains(t, fields, "windows[1].days")
	require.Contains(t, fields, "windows[1].end")
	require.Contains(t, fields, "windows[1].time_zone")

	s, err := Settings{Outside: OutsideRefuse, Windows: []WindowSpec{{Days: []string{"Monday", "tue", "WED", "thu"}, Start: "09:00", End: "16:00", TimeZone: "Europe/Berlin"}}}.Compile()
	require.NoError(t, err)
	require.Equal(t, "Mon–Thu 09:00–16:00 Europe/Berlin", s.String())
}

func TestGateMessages(t *testing.T) {
	t.Parallel()
	berlin := loc(t, "Europe/Berlin")
	s, err := Settings{Outside: OutsideRefuse, Windows: []WindowSpec{{Days: []string{"mon", "tue", "wed", "thu"}, Start: "09:00", End: "16:00", TimeZone: "Europe/Berlin"}}}.Compile()
	require.NoError(t, err)
	g := Gate{Environment: "production", Schedule: s, Outside: OutsideRefuse}
	// Saturday 06:00 in Berlin, winter time.
	now := at(berlin, 2026, 1, 3, 6, 0)
	v := g.Check(now, false)
	require.False(t, v.Open)
	require.True(t, v.Refuse)
	require.Equal(t, CauseWindow, v.Cause)
	require.Equal(t, "production deploys only Mon–Thu 09:00–16:00 Europe/Berlin; the next window opens Monday 09:00 CET (in 2 days 3 h)", v.Message(now))
	require.True(t, g.Check(now, true).Open, "an override passes a closed window")

	g.Freezes = []Freeze{{Reason: "year-end freeze", By: "user:carol", From: now.Add(-time.Hour), Until: at(berlin, 2026, 1, 6, 12, 0)}}
	v = g.Check(at(berlin, 2026, 1, 5, 10, 0), false)
	require.Equal(t, CauseFreeze, v.Cause)
	require.Contains(t, v.Reason, "year-end freeze")
	require.Contains(t, v.Reason, "user:carol")
	require.True(t, v.Until.Equal(at(berlin, 2026, 1, 6, 12, 0)))

	g.Halt = &Halt{Reason: "incident 42", By: "user:dave", Since: now}
	v = g.Check(now, true)
	require.False(t, v.Open, "an override never passes a halt")
	require.Equal(t, CauseHalt, v.Cause)
	require.True(t, v.Until.IsZero())
}

func TestHumanize(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		30 * time.Second:             "less than a minute",
		12 * time.Minute:             "12 min",
		4*time.Hour + 10*time.Minute: "4 h 10 min",
		3 * time.Hour:                "3 h",
		51 * time.Hour:               "2 days 3 h",
		24 * time.Hour:               "1 day",
	} {
		require.Equal(t, want, Humanize(d))
	}
}
