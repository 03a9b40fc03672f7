package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Batch is the body agents and CI post: a list of samples of one run.
type Batch struct {
	Samples []Sample `json:"samples"`
}

// Sample is one report of one metric of one cohort at one moment. It
// carries its measurement in one of three forms:
//
//   - Value: a single observation (count 1, sum Value), such as one
//     request's latency or 1 for one failed request;
//   - Count and Sum: many observations already added up;
//   - Buckets (latency only): a histogram whose keys are upper bounds in
//     milliseconds ("+Inf" for the overflow bucket) and whose values are the
//     number of observations in that bucket alone, not cumulative counts.
//     Count and Sum may accompany Buckets to give exact figures.
//
// The cohort is named directly or through the version it runs.
type Sample struct {
	Cohort    string            `json:"cohort,omitempty"`
	Version   string            `json:"version,omitempty"`
	Variant   string            `json:"variant,omitempty"`
	Metric    string            `json:"metric"`
	Timestamp string            `json:"timestamp"`
	Count     Number            `json:"count,omitzero"`
	Sum       Number            `json:"sum,omitzero"`
	Value     Number            `json:"value,omitzero"`
	Buckets   map[string]Number `json:"buckets,omitempty"`

	// decodeErr says why the entry could not be read at all, so it can be
	// rejected on its own instead of failing the whole batch.
	decodeErr string
}

// Number is a sample's numeric field. Besides JSON numbers it accepts
// numbers written as strings ("0.25", "NaN", "+Inf"), because agents in
// languages whose JSON has no NaN send them that way. Whatever it is given,
// decoding succeeds, so that validation can reject the one bad entry by
// name instead of refusing the whole batch.
type Number struct {
	// Value is the number; meaningful when Set.
	Value float64
	// Set is true when the field held a number (NaN and infinities
	// included).
	Set bool
	// Null is true when the field was JSON null, which is how JavaScript
	// encodes NaN.
	Null bool
	// Invalid holds the text of a value that is not a number at all.
	Invalid string
}

// Num returns a Number holding v.
func Num(v float64) Number { return Number{Value: v, Set: true} }

// present reports whether the field appeared in the entry at all.
func (n Number) present() bool { return n.Set || n.Null || n.Invalid != "" }

// IsZero reports an absent field, so encoding leaves it out.
func (n Number) IsZero() bool { return !n.present() }

// UnmarshalJSON reads a number, a string holding a number, or null, and
// records anything else as invalid. It never fails.
func (n *Number) UnmarshalJSON(b []byte) error {
	*n = Number{}
	switch {
	case len(b) == 0:
		return nil
	case string(b) == "null":
		n.Null = true
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			n.Invalid = truncate(string(b))
			return nil
		}
		return n.parse(strings.TrimSpace(s), string(b))
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		return n.parse(string(b), string(b))
	default:
		n.Invalid = truncate(string(b))
		return nil
	}
}

func (n *Number) parse(s, raw string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		n.Invalid = truncate(raw)
		return nil
	}
	// A number too large for float64 parses as an infinity, which
	// validation rejects with a clear reason.
	n.Value, n.Set = v, true
	return nil
}

// MarshalJSON writes a number, null, or a string for NaN and infinities,
// which JSON numbers cannot express.
func (n Number) MarshalJSON() ([]byte, error) {
	switch {
	case n.Set && (math.IsNaN(n.Value) || math.IsInf(n.Value, 0)):
		return json.Marshal(strconv.FormatFloat(n.Value, 'g', -1, 64))
	case n.Set:
		return strconv.AppendFloat(nil, n.Value, 'g', -1, 64), nil
	case n.Invalid != "":
		return json.Marshal(n.Invalid)
	default:
		return []byte("null"), nil
	}
}

// truncate keeps error messages short when a client sends something huge
// where a number belongs.
func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// DecodeError says why a request body is not a batch at all. Entries that
// are merely wrong do not cause it; they are rejected one by one.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return e.Reason }

// DecodeBatch reads a batch from a request body. It accepts the bare NaN,
// Infinity and -Infinity literals some JSON encoders (Python's, by default)
// write, so those entries are rejected with a reason instead of the whole
// body failing to parse. An entry of the wrong shape, such as a timestamp
// given as a number, is kept with its reason for validation to report.
func DecodeBatch(body []byte) (Batch, error) {
	body = quoteNonFinite(body)
	var b Batch
	err := json.Unmarshal(body, &b)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && strings.HasPrefix(typeErr.Field, "samples.") {
		// Some entry has a field of the wrong type. Decode entry by entry
		// so the others are kept and the bad one is named.
		b, err = decodeEntries(body)
	}
	if err != nil {
		return Batch{}, &DecodeError{Reason: describeDecodeError(err)}
	}
	if len(b.Samples) == 0 {
		return Batch{}, &DecodeError{Reason: `the body has no samples: send {"samples": [...]} with at least one sample`}
	}
	return b, nil
}

func decodeEntries(body []byte) (Batch, error) {
	var raw struct {
		Samples []json.RawMessage `json:"samples"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Batch{}, err
	}
	b := Batch{Samples: make([]Sample, len(raw.Samples))}
	for i, r := range raw.Samples {
		if err := json.Unmarshal(r, &b.Samples[i]); err != nil {
			b.Samples[i] = Sample{decodeErr: describeDecodeError(err)}
		}
	}
	return b, nil
}

func describeDecodeError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("the body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(syntaxErr.Error(), "json: "), syntaxErr.Offset)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 && strings.HasPrefix(field, "samples") {
			field = field[i+1:]
		}
		if field == "" {
			if typeErr.Type == reflect.TypeFor[Sample]() {
				return "the entry must be a JSON object, not " + withArticle(typeErr.Value)
			}
			return `the body must be a JSON object like {"samples": [...]}, not ` + withArticle(typeErr.Value)
		}
		return fmt.Sprintf("%s must be %s, not %s", field, jsonKind(typeErr.Type), withArticle(typeErr.Value))
	}
	return err.Error()
}

// withArticle turns a JSON type as the decoder names it ("array",
// "number") into words for a message.
func withArticle(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// jsonKind names the JSON type a Go type is decoded from, for messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64:
		return "a number"
	}
	return "a " + t.String()
}

// quoteNonFinite turns the bare NaN, Infinity and -Infinity literals that
// some encoders write into strings. In valid JSON, letters outside strings
// only spell true, false and null, so the rewrite can only make an invalid
// body valid; it never changes the meaning of a valid one.
func quoteNonFinite(body []byte) []byte {
	if !bytes.Contains(body, []byte("NaN")) && !bytes.Contains(body, []byte("Infinity")) {
		return body
	}
	out := make([]byte, 0, len(body)+64)
	inString, escaped := false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		lit := ""
		switch {
		case c == 'N' && bytes.HasPrefix(body[i:], []byte("NaN")):
			lit = "NaN"
		case c == 'I' && bytes.HasPrefix(body[i:], []byte("Infinity")):
			lit = "Infinity"
		case c == '-' && bytes.HasPrefix(body[i:], []byte("-Infinity")):
			lit = "-Infinity"
		}
		if lit == "" {
			out = append(out, c)
			continue
		}
		out = append(out, '"')
		out = append(out, lit...)
		out = append(out, '"')
		i += len(lit) - 1
	}
	return out
}
