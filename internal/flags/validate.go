package flags

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// keyPattern is what flag keys, segment keys and variant names look like:
// safe in URLs, SDK calls and JSON paths.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const keyRule = "use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"

// Validate checks a flag and its state in one environment against the app's
// segments and returns a *ValidationError listing every problem, or nil.
func Validate(flag Flag, state EnvState, segments []Segment) error {
	var errs []FieldError
	p := problems{errs: &errs}
	validateFlag(p, flag)
	validateState(p, flag, state, indexSegments(segments), map[string]bool{})
	return p.err()
}

// ValidateSegment checks one segment and returns a *ValidationError listing
// every problem, or nil.
func ValidateSegment(s Segment) error {
	var errs []FieldError
	p := problems{errs: &errs}
	validateSegment(p, "", s)
	return p.err()
}

func indexSegments(segments []Segment) map[string]*Segment {
	idx := make(map[string]*Segment, len(segments))
	for i := range segments {
		idx[segments[i].Key] = &segments[i]
	}
	return idx
}

func validateFlag(p problems, f Flag) {
	if !keyPattern.MatchString(f.Key) {
		if f.Key == "" {
			p.add("key", "a flag needs a key; "+keyRule)
		} else {
			p.add("key", "%q is not a valid flag key; "+keyRule, f.Key)
		}
	}
	switch f.Type {
	case TypeBoolean, TypeString, TypeNumber, TypeObject:
	case "":
		p.add("type", "choose the type of the flag's values: boolean, string, number or object")
	default:
		p.add("type", "unknown type %q; use boolean, string, number or object", f.Type)
	}
	if len(f.Description) > 2000 {
		p.add("description", "is %d characters long; at most 2000 are allowed", len(f.Description))
	}
	if len(f.Variants) == 0 {
		p.add("variants", "a flag needs at least one variant")
	}
	for _, name := range f.duplicateVariants {
		p.add(named("variants", name), "the variant name %q is used twice; variant names must be unique", name)
	}
	names := make([]string, 0, len(f.Variants))
	for name := range f.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := named("variants", name)
		if !keyPattern.MatchString(name) {
			p.add(path, "%q is not a valid variant name; "+keyRule, name)
			continue
		}
		if msg := checkValue(f.Type, f.Variants[name]); msg != "" {
			p.add(path, "%s", msg)
		}
	}
	switch {
	case f.DefaultVariant == "":
		p.add("default_variant", "choose the variant served by default")
	case f.Variants[f.DefaultVariant] == nil:
		p.add("default_variant", "there is no variant named %q", f.DefaultVariant)
	}
	if f.OffVariant != "" && f.Variants[f.OffVariant] == nil {
		p.add("off_variant", "there is no variant named %q", f.OffVariant)
	}
	if len(f.Salt) > 128 {
		p.add("salt", "is %d characters long; at most 128 are allowed", len(f.Salt))
	}
}

// checkValue says what is wrong with a variant value for a flag of type t,
// or returns "".
func checkValue(t Type, raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "the variant has no value"
	}
	if !json.Valid(trimmed) {
		return "the value is not valid JSON"
	}
	var got string
	switch trimmed[0] {
	case 't', 'f':
		got = "a boolean"
	case '"':
		got = "a string"
	case '{':
		got = "an object"
	case '[':
		got = "a list"
	case 'n':
		got = "null"
	default:
		got = "a number"
	}
	var want string
	switch t {
	case TypeBoolean:
		want = "a boolean"
	case TypeString:
		want = "a string"
	case TypeNumber:
		want = "a number"
	case TypeObject:
		want = "an object"
	default:
		return "" // the type itself is reported
	}
	if got != want {
		return "the value " + abbreviate(string(trimmed)) + " is " + got + "; every variant of a " + string(t) + " flag must be " + want
	}
	if t == TypeNumber {
		var f float64
		if json.Unmarshal(trimmed, &f) != nil || math.IsInf(f, 0) {
			return "the value " + abbreviate(string(trimmed)) + " is out of the range of a number"
		}
	}
	return ""
}

func abbreviate(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// validateState checks an environment state against its flag. checked
// remembers the segments already validated so each is reported once.
func validateState(p problems, f Flag, st EnvState, segments map[string]*Segment, checked map[string]bool) {
	if st.Version < 0 {
		p.add("version", "must not be negative")
	}
	ruleNames := map[string]int{}
	for i, r := range st.Rules {
		path := index("rules", i)
		name := strings.TrimSpace(r.Name)
		switch {
		case name == "":
			p.add(join(path, "name"), "name the rule; evaluation results report which rule matched")
		case len(r.Name) > 100:
			p.add(join(path, "name"), "is %d characters long; at most 100 are allowed", len(r.Name))
		default:
			if first, dup := ruleNames[r.Name]; dup {
				p.add(join(path, "name"), "rule %d is already named %q; rule names must be unique", first, r.Name)
			} else {
				ruleNames[r.Name] = i
			}
		}
		if r.Segment != "" {
			seg, ok := segments[r.Segment]
			switch {
			case !ok:
				p.add(join(path, "segment"), "unknown segment %q", r.Segment)
			case !checked[r.Segment]:
				checked[r.Segment] = true
				validateSegment(p, named("segments", r.Segment), *seg)
			}
		}
		for j, c := range r.Clauses {
			validateClause(p, index(join(path, "clauses"), j), c)
		}
		if r.Serve.IsZero() {
			p.add(join(path, "variant"), "choose the variant or the rollout this rule serves")
		}
		validateServe(p, path, f, r.Serve)
	}
	validateServe(p, "default_rollout", f, st.DefaultRollout)
}

// validateServe checks a fixed variant or a rollout under path.
func validateServe(p problems, path string, f Flag, s Serve) {
	if s.Variant != "" && len(s.Rollout) > 0 {
		p.add(join(path, "rollout"), "serve either the variant %q or a rollout, not both", s.Variant)
		return
	}
	if s.Variant != "" && f.Variants[s.Variant] == nil {
		p.add(join(path, "variant"), "there is no variant named %q", s.Variant)
	}
	if len(s.Rollout) == 0 {
		return
	}
	seen := map[string]bool{}
	var total int64
	valid := true
	for i, wv := range s.Rollout {
		wp := index(join(path, "rollout"), i)
		switch {
		case wv.Variant == "":
			p.add(join(wp, "variant"), "choose a variant")
		case f.Variants[wv.Variant] == nil:
			p.add(join(wp, "variant"), "there is no variant named %q", wv.Variant)
		case seen[wv.Variant]:
			p.add(join(wp, "variant"), "%q is already in this rollout; list each variant once", wv.Variant)
		}
		seen[wv.Variant] = true
		bp, ok := basisPoints(wv.Weight)
		switch {
		case wv.Weight < 0 || wv.Weight > 100 || math.IsNaN(wv.Weight):
			p.add(join(wp, "weight"), "%v is not a percentage between 0 and 100", wv.Weight)
			valid = false
		case !ok:
			p.add(join(wp, "weight"), "%v has more than two decimals; weights are in steps of 0.01%%", wv.Weight)
			valid = false
		}
		total += bp
	}
	if valid && total != bucketCount {
		p.add(join(path, "rollout"), "the weights add up to %s%%; they must total 100%%", formatBasisPoints(total))
	}
}

// basisPoints converts a percentage to basis points, reporting whether it has
// at most two decimals.
func basisPoints(pct float64) (int64, bool) {
	x := pct * 100
	r := math.Round(x)
	return int64(r), math.Abs(x-r) < 1e-6
}

func formatBasisPoints(bp int64) string {
	whole, frac := bp/100, bp%100
	s := strconv.FormatInt(whole, 10)
	if frac != 0 {
		f := strconv.FormatInt(100+frac, 10)[1:]
		s += "." + strings.TrimRight(f, "0")
	}
	return s
}

// validateSegment checks a segment; prefix is "" for a segment on its own
// and segments["key"] when reached from a flag's rule.
func validateSegment(p problems, prefix string, s Segment) {
	if !keyPattern.MatchString(s.Key) {
		if s.Key == "" {
			p.add(join(prefix, "key"), "a segment needs a key; "+keyRule)
		} else {
			p.add(join(prefix, "key"), "%q is not a valid segment key; "+keyRule, s.Key)
		}
	}
	if len(s.Name) > 200 {
		p.add(join(prefix, "name"), "is %d characters long; at most 200 are allowed", len(s.Name))
	}
	for i, c := range s.Clauses {
		validateClause(p, index(join(prefix, "clauses"), i), c)
	}
	for i, k := range s.IncludedKeys {
		if k == "" {
			p.add(index(join(prefix, "included_keys"), i), "a user key must not be empty")
		}
	}
	for i, k := range s.ExcludedKeys {
		if k == "" {
			p.add(index(join(prefix, "excluded_keys"), i), "a user key must not be empty")
		}
	}
}
