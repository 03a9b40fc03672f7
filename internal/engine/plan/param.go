package plan

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// intParam reads an integer parameter between lo and hi, or returns def when
// it is absent or wrong.
func intParam(o *object, name string, def, lo, hi int) int {
	v, ok := value[int](o, name)
	if !ok {
		return def
	}
	if v < lo || v > hi {
		o.errs.add(o.field(name), "must be between %d and %d, got %d", lo, hi, v)
		return def
	}
	return v
}

// durationParam reads a duration parameter between 0 and MaxDuration, or
// returns def when it is absent or wrong. positive rejects zero, for
// durations that mean nothing when empty, such as a health check timeout.
func durationParam(o *object, name string, def Duration, positive bool) Duration {
	raw, ok := o.raw(name)
	if !ok {
		return def
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		// A bare number is a common slip; say which unit-bearing form is meant.
		o.errs.add(o.field(name), "%s, got %s", errDurationSyntax.Error(), jsonKind(raw))
		return def
	}
	return checkDuration(text, o.field(name), def, positive, o.errs)
}

// checkDuration parses and bounds a duration found at path.
func checkDuration(text, path string, def Duration, positive bool, errs *fieldErrors) Duration {
	d, err := ParseDuration(text)
	switch {
	case err != nil:
		errs.add(path, "%s, got %q", err.Error(), text)
	case d < 0:
		errs.add(path, "must not be negative, got %q", text)
	case d == 0 && positive:
		errs.add(path, "must be longer than 0s")
	case d > MaxDuration:
		errs.add(path, "must be at most %s, got %q", MaxDuration, text)
	default:
		return d
	}
	return def
}

// token matches an HTTP token (RFC 9110), the syntax of header and cookie
// names, so a routing rule always names something a proxy can match.
var token = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// readMatch reads a cohort rule given as a parameter: an A/B test's split_by
// or a ring's audience. kinds are the match kinds allowed; defaultKind
// applies when kind is left out ("" makes kind required). withPercent allows
// a percent on hash rules; without it the percent comes from elsewhere and a
// "percent" field is unknown.
func readMatch(o *object, kinds []string, defaultKind string, withPercent bool) Match {
	m := Match{Kind: defaultKind}
	if kind, ok := value[string](o, "kind"); ok {
		if slices.Contains(kinds, kind) {
			m.Kind = kind
		} else {
			o.errs.add(o.field("kind"), "must be one of %s, got %q", joinQuoted(kinds), kind)
			m.Kind = ""
		}
	} else if defaultKind == "" && !o.has("kind") {
		o.errs.add(o.field("kind"), "is required; one of %s", joinQuoted(kinds))
	}

	key, hasKey := value[string](o, "key")
	values, hasValues := stringList(o, "values")
	percent, hasPercent := 0, false
	if withPercent {
		percent, hasPercent = value[int](o, "percent")
	}

	switch m.Kind {
	case MatchHash:
		m.Key = "user_id"
		if hasKey {
			m.Key = key
		}
		if o.has("values") {
			o.errs.add(o.field("values"), "only header and cookie rules take values")
		}
		if withPercent {
			switch {
			case !o.has("percent"):
				o.errs.add(o.field("percent"), "is required for a hash rule")
			case hasPercent && (percent < 1 || percent > 99):
				o.errs.add(o.field("percent"), "must be between 1 and 99, got %d; use kind \"all\" for everyone", percent)
			default:
				m.Percent = percent
			}
		}
	case MatchHeader, MatchCookie:
		m.Key = key
		if !o.has("key") {
			o.errs.add(o.field("key"), "is required: the %s name to match", m.Kind)
		}
		switch {
		case !o.has("values"):
			o.errs.add(o.field("values"), "is required: the %s values to match", m.Kind)
		case hasValues && len(values) == 0:
			o.errs.add(o.field("values"), "must list at least one value")
		}
		m.Values = values
		if withPercent && o.has("percent") {
			o.errs.add(o.field("percent"), "only hash rules take a percent")
		}
	case MatchAll:
		for _, name := range []string{"key", "values", "percent"} {
			if o.has(name) {
				o.errs.add(o.field(name), "a rule for everyone takes no %s", name)
			}
		}
	}
	if hasKey && m.Kind != MatchAll && !token.MatchString(key) {
		o.errs.add(o.field("key"), "must be a header, cookie or key name made of letters, digits and !#$%%&'*+-.^_`|~, got %q", key)
	}
	o.finish()
	return m
}

// stringList reads an array of non-empty, distinct strings, checking each
// element under its own index.
func stringList(o *object, name string) ([]string, bool) {
	items, ok := o.list(name)
	if !ok {
		return nil, false
	}
	var out []string
	for i, raw := range items {
		path := indexPath(o.field(name), i)
		s, ok := decodeAt[string](raw, path, o.errs)
		switch {
		case !ok:
		case s == "":
			o.errs.add(path, "must not be empty")
		case slices.Contains(out, s):
			o.errs.add(path, "repeats %q", s)
		default:
			out = append(out, s)
		}
	}
	return out, true
}

// indexPath is the path of one element of an array field.
func indexPath(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// joinQuoted lists names for an error message, each quoted.
func joinQuoted(names []string) string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	return strings.Join(quoted, ", ")
}
