package flags

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Entry is one flag with its state in the snapshot's environment.
type Entry struct {
	Flag  Flag     `json:"flag"`
	State EnvState `json:"state"`
}

// Snapshot is the immutable set of compiled flags of one app in one
// environment. It is safe for concurrent use; a cache replaces a snapshot
// as a whole when anything in it changes.
type Snapshot struct {
	keys   []string // sorted
	flags  map[string]*Compiled
	errors map[string]error
	etag   string
}

// NewSnapshot compiles entries against the app's segments. A flag that fails
// to compile does not take the others down: it evaluates to an ERROR result
// with PARSE_ERROR, and Errors reports why so the caller can log it.
func NewSnapshot(entries []Entry, segments []Segment) *Snapshot {
	s := &Snapshot{
		flags:  make(map[string]*Compiled, len(entries)),
		errors: map[string]error{},
	}
	segIndex := indexSegments(segments)
	cache := map[string]*compiledSegment{}
	for _, e := range entries {
		key := e.Flag.Key
		if _, dup := s.flags[key]; dup {
			err := fmt.Errorf("flag %q appears more than once in the snapshot", key)
			s.errors[key] = err
			s.flags[key] = brokenFlag(key, err)
			continue
		}
		s.keys = append(s.keys, key)
		var errs []FieldError
		p := problems{errs: &errs}
		validateFlag(p, e.Flag)
		validateState(p, e.Flag, e.State, segIndex, map[string]bool{})
		err := p.err()
		var c *Compiled
		if err == nil {
			c, err = compileValid(e.Flag, e.State, segIndex, cache)
		}
		if err != nil {
			s.errors[key] = err
			c = brokenFlag(key, err)
		}
		s.flags[key] = c
	}
	slices.Sort(s.keys)
	s.etag = contentTag(entries, segments)
	return s
}

func brokenFlag(key string, err error) *Compiled {
	return &Compiled{key: key, broken: &EvalError{Code: ErrorParse, Message: "the flag's stored configuration is invalid: " + err.Error()}}
}

// contentTag hashes everything evaluation depends on: every flag, its state
// (with its version) and every segment, in key order.
func contentTag(entries []Entry, segments []Segment) string {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Flag.Key, b.Flag.Key) })
	segs := slices.Clone(segments)
	slices.SortStableFunc(segs, func(a, b Segment) int { return strings.Compare(a.Key, b.Key) })
	h := sha256.New()
	write := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			// Only a variant that is not valid JSON fails to encode; such a
			// flag is broken, and its Go form still identifies its content.
			b = fmt.Appendf(nil, "%#v", v)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	for _, e := range sorted {
		write(e)
	}
	h.Write([]byte{0})
	for _, sg := range segs {
		write(sg)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// ETag identifies the snapshot's content, quoted for an HTTP ETag header.
// Two snapshots with the same flags, states and segments share it.
func (s *Snapshot) ETag() string { return s.etag }

// Len returns the number of flags.
func (s *Snapshot) Len() int { return len(s.keys) }

// Keys returns the flag keys in order.
func (s *Snapshot) Keys() []string { return slices.Clone(s.keys) }

// Flag returns the compiled flag for key.
func (s *Snapshot) Flag(key string) (*Compiled, bool) {
	c, ok := s.flags[key]
	return c, ok
}

// Errors returns, by flag key, why flags failed to compile.
func (s *Snapshot) Errors() map[string]error {
	out := make(map[string]error, len(s.errors))
	for k, err := range s.errors {
		out[k] = err
	}
	return out
}

// Evaluate evaluates one flag; an unknown key is FLAG_NOT_FOUND.
func (s *Snapshot) Evaluate(key string, ctx EvalContext) Result {
	c, ok := s.flags[key]
	if !ok {
		return errorResult(key, ErrorFlagNotFound, "there is no flag "+key+" in this environment")
	}
	return c.Evaluate(ctx)
}

// EvaluateAll evaluates every flag in key order, for OFREP bulk evaluation.
func (s *Snapshot) EvaluateAll(ctx EvalContext) []Result {
	return s.AppendEvaluateAll(make([]Result, 0, len(s.keys)), ctx)
}

// AppendEvaluateAll appends the results of EvaluateAll to dst, letting a
// caller reuse a slice between requests.
func (s *Snapshot) AppendEvaluateAll(dst []Result, ctx EvalContext) []Result {
	for _, k := range s.keys {
		dst = append(dst, s.flags[k].Evaluate(ctx))
	}
	return dst
}
