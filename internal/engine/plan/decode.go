package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
)

// object reads one JSON object of parameters field by field. Reading fields
// one at a time, instead of decoding into a struct in one go, lets every
// problem be reported under its own path (a wrong type, a bad value, each
// unknown field) rather than only the first one the decoder meets. Field
// names are matched exactly: parameters are stored and compared as written,
// so "Steps" is an unknown field rather than a second spelling of "steps".
type object struct {
	path   string
	fields map[string]json.RawMessage
	known  []string
	errs   *fieldErrors
	// valid is false when the input was not a JSON object, so callers can
	// skip checks that would only repeat that problem.
	valid bool
}

// readObject starts reading the JSON object raw found at path. Empty input
// and null mean an object with no fields, so every default applies. Input
// that is not JSON, or not an object, is recorded as an error and read as an
// empty object so the caller can go on collecting other problems.
func readObject(raw json.RawMessage, path string, errs *fieldErrors) *object {
	o := &object{path: path, fields: map[string]json.RawMessage{}, errs: errs, valid: true}
	trimmed := bytes.TrimSpace(raw)
	if isNull(trimmed) {
		return o
	}
	if err := json.Unmarshal(trimmed, &o.fields); err != nil {
		// Nothing was read, so no field can be called unknown either.
		o.fields = map[string]json.RawMessage{}
		o.valid = false
		if syntax, ok := errors.AsType[*json.SyntaxError](err); ok {
			errs.add(path, "is not valid JSON: %s (at byte %d)", syntax.Error(), syntax.Offset)
		} else if !json.Valid(trimmed) {
			errs.add(path, "is not valid JSON: %s", err.Error())
		} else {
			errs.add(path, "must be a JSON object, got %s", jsonKind(trimmed))
		}
	}
	return o
}

// isNull reports whether raw is empty or the JSON null, which both mean that
// a field was left out.
func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null"))
}

// field is the path of one of the object's fields.
func (o *object) field(name string) string {
	return o.path + "." + name
}

// has reports whether the field was given a value other than null.
func (o *object) has(name string) bool {
	raw, ok := o.fields[name]
	return ok && !isNull(raw)
}

// raw returns the field's JSON and marks the field as known. It reports false
// when the field is absent or null.
func (o *object) raw(name string) (json.RawMessage, bool) {
	o.known = append(o.known, name)
	raw, ok := o.fields[name]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// child reads a nested object field. It returns nil when the field is absent
// or null.
func (o *object) child(name string) *object {
	raw, ok := o.raw(name)
	if !ok {
		return nil
	}
	return readObject(raw, o.field(name), o.errs)
}

// list reads an array field and returns its elements undecoded, so each one
// can be checked under its own index. It reports false when the field is
// absent, null or not an array.
func (o *object) list(name string) ([]json.RawMessage, bool) {
	raw, ok := o.raw(name)
	if !ok {
		return nil, false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		o.errs.add(o.field(name), "must be an array, got %s", jsonKind(raw))
		return nil, false
	}
	return items, true
}

// finish reports every field of the object that no reader asked for. It is
// called after all known fields have been read, and names the known ones so
// a typo is easy to fix.
func (o *object) finish() {
	if o == nil || len(o.fields) == 0 {
		return
	}
	known := slices.Clone(o.known)
	slices.Sort(known)
	known = slices.Compact(known)
	var unknown []string
	for name := range o.fields {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		o.errs.add(o.field(name), "is not a known field; known fields are %s", strings.Join(known, ", "))
	}
}

// value decodes a scalar field. It reports false when the field is absent,
// null or of the wrong type; a wrong type is recorded as an error.
func value[T any](o *object, name string) (T, bool) {
	var v T
	raw, ok := o.raw(name)
	if !ok {
		return v, false
	}
	return decodeAt[T](raw, o.field(name), o.errs)
}

// decodeAt decodes one JSON value found at path, recording a wrong type as
// an error that says what was expected and what was found.
func decodeAt[T any](raw json.RawMessage, path string, errs *fieldErrors) (T, bool) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		errs.add(path, "must be %s, got %s", describeType(reflect.TypeFor[T]()), jsonKind(raw))
		return v, false
	}
	return v, true
}

// describeType names a Go type the way a person writing JSON thinks of it.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array"
	default:
		return "an object"
	}
}

// jsonKind names the kind of a JSON value for error messages, quoting
// numbers so "got 1.5" tells the reader exactly what was sent.
func jsonKind(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "nothing"
	}
	switch trimmed[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return string(trimmed)
	}
}
