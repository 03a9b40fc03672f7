package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// contract is the served OpenAPI document, loaded and checked once, with a
// router that finds the operation of a request.
var contract = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIDocument())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	// Test requests go to whatever host the test server has; the document's
	// paths are absolute already.
	doc.Servers = nil
	return legacy.NewRouter(doc)
})

// restAPI is the REST API on a fresh database, with every exchange checked
// against the OpenAPI document.
type restAPI struct {
	t       *testing.T
	handler http.Handler
	store   *store.Store
}

// restSetup returns the REST API on a fresh database.
func restSetup(t *testing.T) *restAPI {
	t.Helper()
	s := store.New(dbtest.New(t), store.Options{})
	reg := prometheus.NewRegistry()
	h := api.New(api.Config{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Readiness: readiness{}, Resources: s, Gatherer: reg, Registerer: reg,
	})
	return &restAPI{t: t, handler: h, store: s}
}

// exchange is one request and its response.
type exchange struct {
	method string
	path   string
	body   string
	// header holds extra request headers; a body is sent as
	// application/json unless header says otherwise.
	header http.Header
}

// do sends the request and checks the exchange against the document: the
// response's status must be documented for the operation and its body must
// match the schema, and a request the server accepted (2xx) must be one the
// document allows, so the document never describes less than the server
// does.
func (a *restAPI) do(x exchange) *httptest.ResponseRecorder {
	a.t.Helper()
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, x.request())
	checkContract(a.t, x, rec.Code, rec.Header(), rec.Body.Bytes())
	return rec
}

func (x exchange) request() *http.Request {
	var body io.Reader
	if x.body != "" {
		body = strings.NewReader(x.body)
	}
	req := httptest.NewRequest(x.method, x.path, body)
	if x.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range x.header {
		req.Header[k] = v
	}
	return req
}

// checkContract validates one exchange against the document.
func checkContract(t *testing.T, x exchange, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := contract()
	require.NoError(t, err, "the OpenAPI document must load and validate")
	req := x.request()
	route, params, err := router.FindRoute(req)
	require.NoError(t, err, "%s %s is not in the OpenAPI document", x.method, x.path)
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if status >= 200 && status < 300 {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in),
			"the server accepted %s %s (%d) but the document does not allow the request", x.method, x.path, status)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	require.NoError(t, err, "the response to %s %s (%d) does not match the document: %s", x.method, x.path, status, body)
}

// problemDoc is a problem document as the tests read it.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
	Current json.RawMessage `json:"current"`
}

// readProblem checks that the response is a problem document with its
// status and returns it.
func readProblem(t *testing.T, rec *httptest.ResponseRecorder) problemDoc {
	t.Helper()
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p problemDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	require.Equal(t, rec.Code, p.Status)
	require.Equal(t, http.StatusText(rec.Code), p.Title)
	return p
}

// fieldsOf lists the fields a problem names, in order.
func fieldsOf(p problemDoc) []string {
	fields := make([]string, len(p.Errors))
	for i, fe := range p.Errors {
		fields[i] = fe.Field
	}
	return fields
}

// decode reads a JSON response into v.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

func TestOpenAPIDocumentIsServedWithoutAToken(t *testing.T) {
	t.Parallel()
	a := restSetup(t)
	rec := a.do(exchange{method: http.MethodGet, path: "/api/v1/openapi.yaml"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/yaml", rec.Header().Get("Content-Type"))
	require.Equal(t, api.OpenAPIDocument(), rec.Body.Bytes())

	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	op := doc.Paths.Find("/api/v1/openapi.yaml").Get
	require.NotNil(t, op.Security)
	require.Empty(t, *op.Security, "the document itself needs no token")
	require.Equal(t, openapi3.SecurityRequirements{{"bearerAuth": {}}}, doc.Security, "everything else does")
}

func TestPushedMetricsMatchTheDocument(t *testing.T) {
	t.Parallel()
	h, _, run := ingestSetup(t)
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"samples": [{"cohort": "candidate", "metric": "error_rate", "timestamp": "2026-03-01T12:10:01Z", "count": 100, "sum": 2},
			{"cohort": "baseline", "metric": "nope", "timestamp": "2026-03-01T12:10:01Z", "value": 1}]}`, http.StatusOK},
		{`{"samples": [{"cohort": "candidate", "metric": "nope", "timestamp": "2026-03-01T12:10:01Z", "value": 1}]}`, http.StatusUnprocessableEntity},
		{`{"samples": []}`, http.StatusBadRequest},
		{`[1, 2]`, http.StatusBadRequest},
	} {
		x := exchange{method: http.MethodPost, path: metricsPath(run.ID), body: tc.body}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, x.request())
		require.Equal(t, tc.status, rec.Code, rec.Body.String())
		checkContract(t, x, rec.Code, rec.Header(), rec.Body.Bytes())
	}
	x := exchange{method: http.MethodPost, path: metricsPath(run.ID + 1000), body: `{"samples": [{"metric": "error_rate", "timestamp": "2026-03-01T12:10:01Z", "value": 1}]}`}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, x.request())
	require.Equal(t, http.StatusNotFound, rec.Code)
	checkContract(t, x, rec.Code, rec.Header(), rec.Body.Bytes())
}
