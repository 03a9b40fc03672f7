package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// MaxRequestBody bounds the JSON body of an app or environment request. A
// megabyte holds any sensible environment configuration many times over; a
// larger body is a runaway client, not settings worth the memory.
const MaxRequestBody = 1 << 20

// requestObject is a JSON request body read one field at a time. Reading
// field by field, instead of decoding into a struct in one go, lets every
// problem (a wrong type, a bad value, each unknown field) be reported under
// its own name in one answer, rather than only the first one the decoder
// meets.
type requestObject struct {
	fields map[string]json.RawMessage
	// known lists the fields the handler asked for, so finish can name the
	// rest as unknown and list the right ones.
	known  []string
	errors []plan.FieldError
}

// readRequestObject reads the request body as one JSON object. A body that
// is not JSON, or not an object, is refused with 400: there are no fields
// to name yet.
func readRequestObject(c echo.Context) (*requestObject, error) {
	if !isJSON(c.Request().Header.Get(echo.HeaderContentType)) {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, detail: "send the body as application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxRequestBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge,
			detail: fmt.Sprintf("the body is larger than %d KB", MaxRequestBody>>10)}
	}
	if err != nil {
		return nil, badRequest("reading the body: " + err.Error())
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, badRequest("the body is empty; send a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil || fields == nil {
		if syntax, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, badRequest(fmt.Sprintf("the body is not valid JSON: %s (at byte %d)",
				strings.TrimPrefix(syntax.Error(), "json: "), syntax.Offset))
		}
		return nil, badRequest("the body must be a JSON object, not " + jsonKind(trimmed))
	}
	return &requestObject{fields: fields}, nil
}

// add records a problem with a field.
func (o *requestObject) add(field, format string, args ...any) {
	o.errors = append(o.errors, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// addAll records problems found by a validator of the domain.
func (o *requestObject) addAll(errs []plan.FieldError) {
	o.errors = append(o.errors, errs...)
}

// has reports whether the body holds the field, whatever its value.
func (o *requestObject) has(name string) bool {
	_, ok := o.fields[name]
	return ok
}

// raw returns the field's JSON and marks the field as known.
func (o *requestObject) raw(name string) (json.RawMessage, bool) {
	o.known = append(o.known, name)
	raw, ok := o.fields[name]
	return raw, ok
}

// str reads a string field. It reports false when the field is absent or
// not a string; a wrong type, null included, is recorded.
func (o *requestObject) str(name string) (string, bool) {
	return readValue[string](o, name, "a string")
}

// boolean reads a true-or-false field, as str does.
func (o *requestObject) boolean(name string) (bool, bool) {
	return readValue[bool](o, name, "true or false")
}

// object reads a field that must be a JSON object and returns it undecoded,
// for the validator of what it configures.
func (o *requestObject) object(name string) (json.RawMessage, bool) {
	raw, ok := o.raw(name)
	if !ok {
		return nil, false
	}
	if !isObject(raw) {
		o.add(name, "must be an object, got %s", jsonKind(raw))
		return nil, false
	}
	return raw, true
}

// required records that a field the request needs is missing.
func (o *requestObject) required(name string) {
	if !o.has(name) {
		o.add(name, "is required")
	}
}

// readOnly refuses a field the client may read but not write, saying why
// instead of calling it unknown.
func (o *requestObject) readOnly(name, why string) {
	o.known = append(o.known, name)
	if o.has(name) {
		o.add(name, "cannot be changed: %s", why)
	}
}

// finish records every field no reader asked for, naming the fields the
// request does take so a typo is easy to fix, and returns all problems
// found as one validation error, or nil.
func (o *requestObject) finish(writable ...string) error {
	for _, name := range slices.Sorted(maps.Keys(o.fields)) {
		if !slices.Contains(o.known, name) {
			o.add(name, "is not a field of this request; it takes %s", strings.Join(writable, ", "))
		}
	}
	if len(o.errors) == 0 {
		return nil
	}
	return validationFailed(o.errors)
}

// readValue decodes a scalar field, recording a wrong type with what was
// expected and what was sent.
func readValue[T any](o *requestObject, name, want string) (T, bool) {
	var v T
	raw, ok := o.raw(name)
	if !ok {
		return v, false
	}
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		o.add(name, "must be %s, got %s", want, jsonKind(raw))
		return v, false
	}
	return v, true
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed)
}

// isNull reports whether raw is the JSON null.
func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// jsonKind names the kind of a JSON value for messages, quoting short
// scalars so "got 1.5" tells the reader exactly what was sent.
func jsonKind(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "nothing"
	}
	switch trimmed[0] {
	case '"':
		if len(trimmed) <= 42 {
			return "the string " + string(trimmed)
		}
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return string(trimmed)
	case 'n':
		return "null"
	default:
		if len(trimmed) <= 40 {
			return string(trimmed)
		}
		return "a number"
	}
}

// prefixed moves field errors reported relative to a configuration object
// under the request field that holds it; the path root, which stands for
// the whole object, becomes the field itself.
func prefixed(field, root string, errs []plan.FieldError) []plan.FieldError {
	out := make([]plan.FieldError, len(errs))
	for i, fe := range errs {
		path := fe.Field
		switch {
		case root != "" && path == root, path == "":
			path = field
		case root != "" && (strings.HasPrefix(path, root+".") || strings.HasPrefix(path, root+"[")):
			path = field + path[len(root):]
		case strings.HasPrefix(path, "["):
			path = field + path
		default:
			path = field + "." + path
		}
		out[i] = plan.FieldError{Field: path, Message: fe.Message}
	}
	return out
}
