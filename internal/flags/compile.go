package flags

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// Reason says why an evaluation returned its variant; the values are
// OpenFeature's resolution reasons.
type Reason string

// The evaluation reasons.
const (
	// ReasonStatic: the flag has no rules and a fixed default, so the
	// value does not depend on the context.
	ReasonStatic Reason = "STATIC"
	// ReasonTargetingMatch: a rule serving a fixed variant matched.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonSplit: the variant came from a percentage rollout, of a
	// matching rule (RuleName is set) or of the default rollout.
	ReasonSplit Reason = "SPLIT"
	// ReasonDefault: rules exist but none matched; the fixed default was
	// served.
	ReasonDefault Reason = "DEFAULT"
	// ReasonDisabled: the kill switch is off in this environment.
	ReasonDisabled Reason = "DISABLED"
	// ReasonError: the flag could not be evaluated; see ErrorCode.
	ReasonError Reason = "ERROR"
)

// ErrorCode classifies an evaluation error; the values are OFREP's.
type ErrorCode string

// The evaluation error codes.
const (
	ErrorFlagNotFound        ErrorCode = "FLAG_NOT_FOUND"
	ErrorParse               ErrorCode = "PARSE_ERROR"
	ErrorTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	ErrorInvalidContext      ErrorCode = "INVALID_CONTEXT"
	ErrorTypeMismatch        ErrorCode = "TYPE_MISMATCH"
	ErrorGeneral             ErrorCode = "GENERAL"
)

// TargetingKeyAttribute is the context attribute that identifies the user,
// as OpenFeature names it.
const TargetingKeyAttribute = "targetingKey"

// EvalContext is an OpenFeature evaluation context: attributes of the user or
// request, with the user's identity under "targetingKey".
type EvalContext map[string]any

// ParseContext decodes an OFREP context. Anything other than a JSON object
// (or null, meaning an empty context) is an *EvalError with
// ErrorInvalidContext.
func ParseContext(raw []byte) (EvalContext, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return EvalContext{}, nil
	}
	if raw[0] != '{' {
		return nil, &EvalError{Code: ErrorInvalidContext, Message: "the evaluation context must be a JSON object"}
	}
	var ctx EvalContext
	if err := json.Unmarshal(raw, &ctx); err != nil {
		return nil, &EvalError{Code: ErrorInvalidContext, Message: "the evaluation context is not valid JSON: " + err.Error()}
	}
	if msg := checkTargetingKey(ctx); msg != "" {
		return nil, &EvalError{Code: ErrorInvalidContext, Message: msg}
	}
	return ctx, nil
}

// EvalError is an evaluation failure with its OFREP error code.
type EvalError struct {
	Code    ErrorCode
	Message string
}

func (e *EvalError) Error() string { return string(e.Code) + ": " + e.Message }

func checkTargetingKey(ctx EvalContext) string {
	if v, ok := ctx[TargetingKeyAttribute]; ok && v != nil {
		if _, isString := v.(string); !isString {
			return "targetingKey must be a string, not " + jsonKind(v)
		}
	}
	return ""
}

// Result is the outcome of evaluating one flag for one context. Value shares
// memory with the compiled flag and must not be modified.
type Result struct {
	Key          string          `json:"key"`
	Variant      string          `json:"variant,omitempty"`
	Value        json.RawMessage `json:"value,omitempty"`
	Reason       Reason          `json:"reason"`
	RuleName     string          `json:"rule_name,omitempty"`
	ErrorCode    ErrorCode       `json:"error_code,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
}

// bucketCount is the number of buckets: one per basis point.
const bucketCount = 10000

// Bucket returns the user's bucket in [0, 10000) for a flag, as described in
// the package documentation.
func Bucket(flagKey, salt, targetingKey string) int {
	return bucketOf(flagKey+"."+salt+".", targetingKey)
}

// bucketOf hashes prefix (flagKey + "." + salt + ".") and the targeting key.
func bucketOf(prefix, targetingKey string) int {
	var buf [192]byte
	b := append(buf[:0], prefix...)
	b = append(b, targetingKey...)
	sum := sha1.Sum(b)
	return int(binary.BigEndian.Uint64(sum[:8]) % bucketCount)
}

// Compiled is a flag prepared for evaluation in one environment. It is
// immutable and safe for concurrent use.
type Compiled struct {
	key     string
	typ     Type
	version int64
	enabled bool
	prefix  string // flagKey + "." + salt + "."

	variants []variant
	off      int
	rules    []compiledRule
	fallback compiledServe
	static   bool

	broken *EvalError // set for flags a Snapshot could not compile
}

type variant struct {
	name  string
	value json.RawMessage
}

type compiledRule struct {
	name    string
	segment *compiledSegment
	clauses []compiledClause
	serve   compiledServe
}

// compiledServe is a fixed variant (split == nil) or bucket ranges.
type compiledServe struct {
	variant int
	split   []bucketRange
}

// bucketRange serves variant to buckets below upTo not taken by an earlier
// range.
type bucketRange struct {
	upTo    int
	variant int
}

type compiledSegment struct {
	included map[string]struct{}
	excluded map[string]struct{}
	clauses  []compiledClause
}

// Compile validates a flag with its state in one environment and prepares it
// for evaluation. Invalid input returns a *ValidationError.
func Compile(flag Flag, state EnvState, segments []Segment) (*Compiled, error) {
	if err := Validate(flag, state, segments); err != nil {
		return nil, err
	}
	return compileValid(flag, state, indexSegments(segments), map[string]*compiledSegment{})
}

// compileValid compiles a validated flag, sharing compiled segments through
// cache.
func compileValid(f Flag, st EnvState, segments map[string]*Segment, cache map[string]*compiledSegment) (*Compiled, error) {
	c := &Compiled{
		key:     f.Key,
		typ:     f.Type,
		version: st.Version,
		enabled: st.Enabled,
		prefix:  f.Key + "." + f.Salt + ".",
	}
	names := make([]string, 0, len(f.Variants))
	for name := range f.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	pos := make(map[string]int, len(names))
	for i, name := range names {
		var compact bytes.Buffer
		if err := json.Compact(&compact, f.Variants[name]); err != nil {
			return nil, fmt.Errorf("variant %q: %w", name, err)
		}
		c.variants = append(c.variants, variant{name: name, value: compact.Bytes()})
		pos[name] = i
	}
	off := f.OffVariant
	if off == "" {
		off = f.DefaultVariant
	}
	c.off = pos[off]
	compileServe := func(s Serve) compiledServe {
		if len(s.Rollout) == 0 {
			name := s.Variant
			if name == "" {
				name = f.DefaultVariant
			}
			return compiledServe{variant: pos[name]}
		}
		cs := compiledServe{}
		upTo := 0
		for _, wv := range s.Rollout {
			bp, _ := basisPoints(wv.Weight)
			if bp == 0 {
				continue
			}
			upTo += int(bp)
			cs.split = append(cs.split, bucketRange{upTo: upTo, variant: pos[wv.Variant]})
		}
		return cs
	}
	for _, r := range st.Rules {
		cr := compiledRule{name: r.Name, serve: compileServe(r.Serve)}
		if r.Segment != "" {
			seg, ok := cache[r.Segment]
			if !ok {
				var err error
				seg, err = compileSegment(*segments[r.Segment])
				if err != nil {
					return nil, err
				}
				cache[r.Segment] = seg
			}
			cr.segment = seg
		}
		for _, cl := range r.Clauses {
			cc, err := compileClause(cl)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", r.Name, err)
			}
			cr.clauses = append(cr.clauses, cc)
		}
		c.rules = append(c.rules, cr)
	}
	c.fallback = compileServe(st.DefaultRollout)
	c.static = len(c.rules) == 0 && c.fallback.split == nil
	return c, nil
}

func compileSegment(s Segment) (*compiledSegment, error) {
	cs := &compiledSegment{}
	if len(s.IncludedKeys) > 0 {
		cs.included = make(map[string]struct{}, len(s.IncludedKeys))
		for _, k := range s.IncludedKeys {
			cs.included[k] = struct{}{}
		}
	}
	if len(s.ExcludedKeys) > 0 {
		cs.excluded = make(map[string]struct{}, len(s.ExcludedKeys))
		for _, k := range s.ExcludedKeys {
			cs.excluded[k] = struct{}{}
		}
	}
	for _, cl := range s.Clauses {
		cc, err := compileClause(cl)
		if err != nil {
			return nil, fmt.Errorf("segment %q: %w", s.Key, err)
		}
		cs.clauses = append(cs.clauses, cc)
	}
	return cs, nil
}

// matches: excluded keys never match, included keys always do, and
// otherwise all clauses must match (a segment without clauses matches only
// its included keys).
func (s *compiledSegment) matches(ctx EvalContext, targetingKey string, hasKey bool) bool {
	if hasKey {
		if _, out := s.excluded[targetingKey]; out {
			return false
		}
		if _, in := s.included[targetingKey]; in {
			return true
		}
	}
	if len(s.clauses) == 0 {
		return false
	}
	for i := range s.clauses {
		if !s.clauses[i].matches(ctx) {
			return false
		}
	}
	return true
}

func (r *compiledRule) matches(ctx EvalContext, targetingKey string, hasKey bool) bool {
	if r.segment != nil && !r.segment.matches(ctx, targetingKey, hasKey) {
		return false
	}
	for i := range r.clauses {
		if !r.clauses[i].matches(ctx) {
			return false
		}
	}
	return true
}

// Key returns the flag key.
func (c *Compiled) Key() string { return c.key }

// Type returns the type of the flag's values.
func (c *Compiled) Type() Type { return c.typ }

// Version returns the version of the environment state it was compiled from.
func (c *Compiled) Version() int64 { return c.version }

// Evaluate decides the variant for ctx. It never panics on user input:
// problems come back as results with reason ERROR and an error code.
func (c *Compiled) Evaluate(ctx EvalContext) Result {
	if c.broken != nil {
		return errorResult(c.key, c.broken.Code, c.broken.Message)
	}
	var targetingKey string
	hasKey := false
	if v, ok := ctx[TargetingKeyAttribute]; ok && v != nil {
		s, isString := v.(string)
		if !isString {
			return errorResult(c.key, ErrorInvalidContext, "targetingKey must be a string, not "+jsonKind(v))
		}
		targetingKey, hasKey = s, s != ""
	}
	if !c.enabled {
		return c.result(c.off, ReasonDisabled, "")
	}
	for i := range c.rules {
		r := &c.rules[i]
		if r.matches(ctx, targetingKey, hasKey) {
			return c.serve(&r.serve, ReasonTargetingMatch, r.name, targetingKey, hasKey)
		}
	}
	reason := ReasonDefault
	if c.static {
		reason = ReasonStatic
	}
	return c.serve(&c.fallback, reason, "", targetingKey, hasKey)
}

func (c *Compiled) serve(s *compiledServe, reason Reason, rule, targetingKey string, hasKey bool) Result {
	if s.split == nil {
		return c.result(s.variant, reason, rule)
	}
	if !hasKey {
		msg := "this flag serves a percentage rollout and needs a targetingKey in the context"
		if rule != "" {
			msg = "rule " + rule + " serves a percentage rollout and needs a targetingKey in the context"
		}
		return errorResult(c.key, ErrorTargetingKeyMissing, msg)
	}
	b := bucketOf(c.prefix, targetingKey)
	for _, br := range s.split {
		if b < br.upTo {
			return c.result(br.variant, ReasonSplit, rule)
		}
	}
	// Unreachable for validated weights, which total 10000 basis points.
	return errorResult(c.key, ErrorGeneral, "the rollout does not cover every bucket")
}

func (c *Compiled) result(v int, reason Reason, rule string) Result {
	return Result{Key: c.key, Variant: c.variants[v].name, Value: c.variants[v].value, Reason: reason, RuleName: rule}
}

func errorResult(key string, code ErrorCode, msg string) Result {
	return Result{Key: key, Reason: ReasonError, ErrorCode: code, ErrorMessage: msg}
}
