package templates

import (
	"math"
	"strconv"
	"strings"
)

// Share writes a share from 0 to 1 as a percentage, with a decimal only
// where it matters ("0.5%", "25%", "100%").
func Share(share float64) string {
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

// Rate writes a rate such as an error rate (a ratio) as a percentage, with
// the precision small rates need ("0.25%", "1.2%", "20%").
func Rate(ratio float64) string {
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

// Count writes a count with thousands separators, as people read them.
func Count(n int64) string {
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
