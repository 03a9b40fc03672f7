package templates

import "testing"

func TestNumbersAreWrittenAsPeopleReadThem(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Share(0), "0%"}, {Share(0.005), "0.5%"}, {Share(0.25), "25%"}, {Share(1), "100%"}, {Share(0.0501), "5%"},
		{Rate(0), "0%"}, {Rate(0.0025), "0.25%"}, {Rate(0.012), "1.2%"}, {Rate(0.2), "20%"},
		{Count(0), "0"}, {Count(999), "999"}, {Count(1000), "1,000"}, {Count(1234567), "1,234,567"}, {Count(-4500), "-4,500"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
