package flags

import (
	"strconv"
	"strings"
)

// semver is a parsed semantic version. Build metadata is dropped because it
// does not take part in precedence.
type semver struct {
	major, minor, patch uint64
	pre                 string
}

// parseSemver parses MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] with an optional
// leading "v", without allocating.
func parseSemver(s string) (semver, bool) {
	var v semver
	s = strings.TrimPrefix(s, "v")
	if core, build, ok := strings.Cut(s, "+"); ok {
		if !validIdentifiers(build, false) {
			return v, false
		}
		s = core
	}
	if core, pre, ok := strings.Cut(s, "-"); ok {
		if !validIdentifiers(pre, true) {
			return v, false
		}
		v.pre = pre
		s = core
	}
	parts := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, dst := range parts {
		var part string
		if i < 2 {
			var ok bool
			part, s, ok = strings.Cut(s, ".")
			if !ok {
				return v, false
			}
		} else {
			part = s
		}
		n, ok := numericIdentifier(part)
		if !ok {
			return v, false
		}
		*dst = n
	}
	return v, true
}

// numericIdentifier parses a number without leading zeros.
func numericIdentifier(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// validIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]; in a
// pre-release, numeric identifiers must not have leading zeros.
func validIdentifiers(s string, pre bool) bool {
	if s == "" {
		return false
	}
	for s != "" {
		var id string
		id, s, _ = strings.Cut(s, ".")
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if pre && numeric && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// compareSemver orders versions by semantic-versioning precedence.
func compareSemver(a, b semver) int {
	for _, d := range [3][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	x, y := a.pre, b.pre
	for x != "" && y != "" {
		var ix, iy string
		ix, x, _ = strings.Cut(x, ".")
		iy, y, _ = strings.Cut(y, ".")
		nx, numX := numericIdentifier(ix)
		ny, numY := numericIdentifier(iy)
		switch {
		case numX && numY:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case numX:
			return -1
		case numY:
			return 1
		default:
			if c := strings.Compare(ix, iy); c != 0 {
				return c
			}
		}
	}
	switch {
	case x == "" && y == "":
		return 0
	case x == "":
		return -1
	}
	return 1
}
