package flags

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Operator is the comparison a clause applies to an attribute.
type Operator string

// The clause operators. Equality operators compare strings, numbers and
// booleans; text operators compare strings; numeric ones numbers; semver ones
// version strings such as "2.4.0" or "v3.0.0-beta.2" by semantic-versioning
// precedence.
const (
	OpEquals     Operator = "equals"      // the attribute equals the one value
	OpNotEquals  Operator = "not_equals"  // the attribute differs from the one value
	OpIn         Operator = "in"          // the attribute equals one of the values
	OpNotIn      Operator = "not_in"      // the attribute equals none of the values
	OpStartsWith Operator = "starts_with" // the text starts with one of the values
	OpEndsWith   Operator = "ends_with"   // the text ends with one of the values
	OpContains   Operator = "contains"    // the text contains one of the values
	OpMatches    Operator = "matches"     // the text matches one of the RE2 expressions
	OpGT         Operator = "gt"          // the number is greater than the value
	OpGTE        Operator = "gte"         // the number is at least the value
	OpLT         Operator = "lt"          // the number is less than the value
	OpLTE        Operator = "lte"         // the number is at most the value
	OpSemverGT   Operator = "semver_gt"   // the version is later than the value
	OpSemverGTE  Operator = "semver_gte"  // the version is the value or later
	OpSemverLT   Operator = "semver_lt"   // the version is earlier than the value
	OpSemverLTE  Operator = "semver_lte"  // the version is the value or earlier
)

// Operators lists every operator in the order the pages offer them.
var Operators = []Operator{
	OpEquals, OpNotEquals, OpIn, OpNotIn,
	OpStartsWith, OpEndsWith, OpContains, OpMatches,
	OpGT, OpGTE, OpLT, OpLTE,
	OpSemverGT, OpSemverGTE, OpSemverLT, OpSemverLTE,
}

// opKind groups operators that take the same kind of values.
type opKind int

const (
	kindUnknown opKind = iota
	kindEquality
	kindText
	kindRegexp
	kindNumber
	kindSemver
)

func (op Operator) kind() opKind {
	switch op {
	case OpEquals, OpNotEquals, OpIn, OpNotIn:
		return kindEquality
	case OpStartsWith, OpEndsWith, OpContains:
		return kindText
	case OpMatches:
		return kindRegexp
	case OpGT, OpGTE, OpLT, OpLTE:
		return kindNumber
	case OpSemverGT, OpSemverGTE, OpSemverLT, OpSemverLTE:
		return kindSemver
	}
	return kindUnknown
}

// singleValued reports whether op compares with exactly one value.
func (op Operator) singleValued() bool {
	switch op.kind() {
	case kindNumber, kindSemver:
		return true
	}
	return op == OpEquals || op == OpNotEquals
}

func (op Operator) negated() bool { return op == OpNotEquals || op == OpNotIn }

// compiledClause is a clause ready for evaluation: values sorted by type,
// regular expressions and versions parsed.
type compiledClause struct {
	attribute string
	op        Operator
	negate    bool

	strs     []string
	strSet   map[string]struct{} // for long lists such as user keys
	nums     []float64
	hasTrue  bool
	hasFalse bool
	regexps  []*regexp.Regexp
	num      float64
	version  semver
}

// setThreshold is the list length from which equality uses a map.
const setThreshold = 16

// validateClause reports every problem with c under path.
func validateClause(p problems, path string, c Clause) {
	if strings.TrimSpace(c.Attribute) == "" {
		p.add(join(path, "attribute"), "name the context attribute to compare, such as email or plan")
	} else if len(c.Attribute) > 256 {
		p.add(join(path, "attribute"), "is %d characters long; at most 256 are allowed", len(c.Attribute))
	}
	kind := c.Op.kind()
	if kind == kindUnknown {
		names := make([]string, len(Operators))
		for i, op := range Operators {
			names[i] = string(op)
		}
		if c.Op == "" {
			p.add(join(path, "op"), "choose an operator: %s", strings.Join(names, ", "))
		} else {
			p.add(join(path, "op"), "unknown operator %q; use one of %s", c.Op, strings.Join(names, ", "))
		}
		return
	}
	valuesPath := join(path, "values")
	switch {
	case len(c.Values) == 0:
		p.add(valuesPath, "%s needs at least one value to compare with", c.Op)
		return
	case c.Op.singleValued() && len(c.Values) != 1:
		p.add(valuesPath, "%s compares with exactly one value, not %d", c.Op, len(c.Values))
		return
	}
	for i, v := range c.Values {
		vp := index(valuesPath, i)
		switch kind {
		case kindEquality:
			switch v.(type) {
			case string, bool:
			default:
				if _, ok := toNumber(v); !ok {
					p.add(vp, "%s compares text, numbers or booleans; %s is %s", c.Op, describe(v), jsonKind(v))
				}
			}
		case kindText:
			s, ok := v.(string)
			switch {
			case !ok:
				p.add(vp, "%s compares text; %s is %s", c.Op, describe(v), jsonKind(v))
			case s == "":
				p.add(vp, "an empty text would match everyone; give the text to compare with")
			}
		case kindRegexp:
			s, ok := v.(string)
			if !ok {
				p.add(vp, "matches takes a regular expression as text; %s is %s", describe(v), jsonKind(v))
				continue
			}
			if _, err := regexp.Compile(s); err != nil {
				p.add(vp, "is not a valid RE2 regular expression: %v", err)
			}
		case kindNumber:
			if _, ok := toNumber(v); !ok {
				p.add(vp, "%s compares numbers; %s is %s", c.Op, describe(v), jsonKind(v))
			}
		case kindSemver:
			s, ok := v.(string)
			if !ok {
				p.add(vp, "%s compares versions written as text such as \"2.4.0\"; %s is %s", c.Op, describe(v), jsonKind(v))
				continue
			}
			if _, ok := parseSemver(s); !ok {
				p.add(vp, "%q is not a semantic version such as 2.4.0 or 3.0.0-beta.1", s)
			}
		}
	}
}

// compileClause prepares a clause that validateClause accepted.
func compileClause(c Clause) (compiledClause, error) {
	cc := compiledClause{attribute: c.Attribute, op: c.Op, negate: c.Op.negated()}
	for _, v := range c.Values {
		switch c.Op.kind() {
		case kindEquality:
			switch v := v.(type) {
			case string:
				cc.strs = append(cc.strs, v)
			case bool:
				if v {
					cc.hasTrue = true
				} else {
					cc.hasFalse = true
				}
			default:
				n, ok := toNumber(v)
				if !ok {
					return cc, fmt.Errorf("clause on %s: value %v cannot be compared", c.Attribute, v)
				}
				cc.nums = append(cc.nums, n)
			}
		case kindText:
			cc.strs = append(cc.strs, v.(string))
		case kindRegexp:
			re, err := regexp.Compile(v.(string))
			if err != nil {
				return cc, fmt.Errorf("clause on %s: %w", c.Attribute, err)
			}
			cc.regexps = append(cc.regexps, re)
		case kindNumber:
			cc.num, _ = toNumber(v)
		case kindSemver:
			ver, ok := parseSemver(v.(string))
			if !ok {
				return cc, fmt.Errorf("clause on %s: %q is not a semantic version", c.Attribute, v)
			}
			cc.version = ver
		}
	}
	if len(cc.strs) >= setThreshold && c.Op.kind() == kindEquality {
		cc.strSet = make(map[string]struct{}, len(cc.strs))
		for _, s := range cc.strs {
			cc.strSet[s] = struct{}{}
		}
	}
	return cc, nil
}

// matches reports whether the clause matches the context. A missing or null
// attribute, or one of a type the operator does not compare, never matches.
func (c *compiledClause) matches(ctx EvalContext) bool {
	v, ok := ctx[c.attribute]
	if !ok || v == nil {
		return false
	}
	var hit, typed bool
	switch list := v.(type) {
	case []any:
		for _, e := range list {
			h, t := c.matchOne(e)
			hit, typed = hit || h, typed || t
		}
	case []string:
		for _, e := range list {
			h, t := c.matchOne(e)
			hit, typed = hit || h, typed || t
		}
	default:
		hit, typed = c.matchOne(v)
	}
	if !typed {
		return false
	}
	return hit != c.negate
}

// matchOne applies the positive form of the operator to one value. typed
// reports whether the value is of a type the operator compares.
func (c *compiledClause) matchOne(v any) (hit, typed bool) {
	switch c.op.kind() {
	case kindEquality:
		switch v := v.(type) {
		case string:
			if len(c.strs) == 0 {
				return false, false
			}
			if c.strSet != nil {
				_, ok := c.strSet[v]
				return ok, true
			}
			for _, s := range c.strs {
				if s == v {
					return true, true
				}
			}
			return false, true
		case bool:
			if !c.hasTrue && !c.hasFalse {
				return false, false
			}
			return (v && c.hasTrue) || (!v && c.hasFalse), true
		default:
			n, ok := toNumber(v)
			if !ok || len(c.nums) == 0 {
				return false, false
			}
			for _, x := range c.nums {
				if x == n {
					return true, true
				}
			}
			return false, true
		}
	case kindText:
		s, ok := v.(string)
		if !ok {
			return false, false
		}
		for _, x := range c.strs {
			switch c.op {
			case OpStartsWith:
				hit = strings.HasPrefix(s, x)
			case OpEndsWith:
				hit = strings.HasSuffix(s, x)
			case OpContains:
				hit = strings.Contains(s, x)
			}
			if hit {
				return true, true
			}
		}
		return false, true
	case kindRegexp:
		s, ok := v.(string)
		if !ok {
			return false, false
		}
		for _, re := range c.regexps {
			if re.MatchString(s) {
				return true, true
			}
		}
		return false, true
	case kindNumber:
		n, ok := toNumber(v)
		if !ok {
			return false, false
		}
		switch c.op {
		case OpGT:
			return n > c.num, true
		case OpGTE:
			return n >= c.num, true
		case OpLT:
			return n < c.num, true
		default:
			return n <= c.num, true
		}
	case kindSemver:
		s, ok := v.(string)
		if !ok {
			return false, false
		}
		ver, ok := parseSemver(s)
		if !ok {
			return false, false
		}
		cmp := compareSemver(ver, c.version)
		switch c.op {
		case OpSemverGT:
			return cmp > 0, true
		case OpSemverGTE:
			return cmp >= 0, true
		case OpSemverLT:
			return cmp < 0, true
		default:
			return cmp <= 0, true
		}
	}
	return false, false
}

// toNumber converts the numeric types a context may hold (float64 from JSON,
// integers from Go callers, json.Number from decoders using UseNumber).
func toNumber(v any) (float64, bool) {
	var n float64
	switch v := v.(type) {
	case float64:
		n = v
	case float32:
		n = float64(v)
	case int:
		n = float64(v)
	case int8:
		n = float64(v)
	case int16:
		n = float64(v)
	case int32:
		n = float64(v)
	case int64:
		n = float64(v)
	case uint:
		n = float64(v)
	case uint8:
		n = float64(v)
	case uint16:
		n = float64(v)
	case uint32:
		n = float64(v)
	case uint64:
		n = float64(v)
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return 0, false
		}
		n = f
	default:
		return 0, false
	}
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

// describe renders a value for an error message.
func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// jsonKind names the JSON type of a value for an error message.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "text"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	if _, ok := toNumber(v); ok {
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}
