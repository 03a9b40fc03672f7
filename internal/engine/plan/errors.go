package plan

import (
	"fmt"
	"strings"
)

// FieldError is one problem with the input to Build, tied to the field that
// caused it so the API can return field-level detail and a form can mark the
// field. Field is a path such as "strategy", "target.to_version" or
// "params.rings[1].audience.key".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError reports every problem found in the input to Build at once,
// so a person fixing a request or a form sees all of them in one round trip
// instead of one per attempt.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// Error joins the field errors into one line for logs and CLI output.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return "invalid deployment plan: " + strings.Join(parts, "; ")
}

// fieldErrors collects field errors while input is read, so validation can
// carry on past the first problem.
type fieldErrors []FieldError

// add records a problem with one field.
func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the collected problems as a *ValidationError, or nil when
// there are none.
func (e fieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &ValidationError{Errors: append([]FieldError(nil), e...)}
}
