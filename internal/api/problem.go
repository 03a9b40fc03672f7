package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// apiError is a refusal the REST API answers with a problem document: it
// knows its status, what to tell the client and, for validation, every
// field at fault. Handlers return it; the central error handler writes it,
// so every endpoint refuses in the same shape.
type apiError struct {
	status int
	detail string
	// fields names each field at fault, so a client or a form can point at
	// it instead of parsing the detail.
	fields []plan.FieldError
	// current is the resource as it is now, sent with a lost
	// compare-and-swap so the client can retry without reading it again.
	current any
}

// Error says what was refused, for logs.
func (e *apiError) Error() string {
	if len(e.fields) == 0 {
		return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.detail)
	}
	parts := make([]string, len(e.fields))
	for i, fe := range e.fields {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), strings.Join(parts, "; "))
}

// validationFailed refuses a request whose fields are wrong, naming each.
func validationFailed(fields []plan.FieldError) error {
	detail := "1 field of the request is invalid; errors names it."
	if len(fields) != 1 {
		detail = fmt.Sprintf("%d fields of the request are invalid; errors names each.", len(fields))
	}
	return &apiError{status: http.StatusUnprocessableEntity, detail: detail, fields: fields}
}

// badRequest refuses a request that could not be read at all, such as a
// body that is not JSON or a malformed query parameter.
func badRequest(detail string, fields ...plan.FieldError) error {
	return &apiError{status: http.StatusBadRequest, detail: detail, fields: fields}
}

// notFound refuses a request for something that does not exist.
func notFound(format string, args ...any) error {
	return &apiError{status: http.StatusNotFound, detail: fmt.Sprintf(format, args...)}
}

// conflict refuses a request that the resource's current state does not
// allow; current, when not nil, is that state.
func conflict(current any, format string, args ...any) error {
	return &apiError{status: http.StatusConflict, detail: fmt.Sprintf(format, args...), current: current}
}

// problemBody is a problem document with the members an apiError adds.
type problemBody struct {
	problem
	Errors  []plan.FieldError `json:"errors,omitempty"`
	Current any               `json:"current,omitempty"`
}

// writeProblem answers with the apiError as problem+json. Refusals are the
// client's doing, so they are not logged as failures.
func writeProblem(c echo.Context, e *apiError) {
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(e.status)
		return
	}
	_ = c.JSON(e.status, problemBody{
		problem: problem{Type: "about:blank", Title: http.StatusText(e.status), Status: e.status, Detail: e.detail},
		Errors:  e.fields,
		Current: e.current,
	})
}
