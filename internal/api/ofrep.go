package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/flags"
)

// This file serves the OpenFeature Remote Evaluation Protocol (OFREP), so
// that any OpenFeature SDK with an OFREP provider reads Flightdeck's feature
// flags without a Flightdeck-specific client:
//
//	POST /ofrep/v1/evaluate/flags/{key}   one flag, for server-side SDKs
//	POST /ofrep/v1/evaluate/flags         every flag, for client-side SDKs
//
// Both take {"context": {...}}, the OpenFeature evaluation context.
//
// # Authentication
//
// Every request presents a Flightdeck API token as "Authorization: Bearer
// <token>" (the OFREP providers' WithBearerToken option), and the token needs
// the flags scope (or admin). The flags scope allows evaluating flags and
// nothing else, so the token baked into a service's configuration cannot
// read or change deployments.
//
// # Which app and environment
//
// A flag key names a flag within one app, and its answer depends on the
// environment. The request says which with two headers, set once in the
// provider's configuration (WithHeader):
//
//	X-Flightdeck-App: checkout
//	X-Flightdeck-Environment: production
//
// A header may be left out when the token is limited to exactly one app
// (or exactly one environment): the limit then says it. The usual setup is
// therefore a token made for one app and one environment, and a provider
// configured with nothing but the base URL and that token. Either way the
// token's limits must allow the app and environment, or the answer is 403.

// FlagSnapshots hands out the compiled flags of one app in one environment.
// The per-replica flag cache implements it; the handlers never touch the
// database, so evaluating a flag costs no query.
type FlagSnapshots interface {
	// Snapshot returns the flags of environment env of app, and false
	// when Flightdeck has no such app or environment.
	Snapshot(app, env string) (*flags.Snapshot, bool)
}

// The OFREP routes.
const (
	ofrepBulkRoute   = "/ofrep/v1/evaluate/flags"
	ofrepSingleRoute = "/ofrep/v1/evaluate/flags/:key"
)

// The headers that name the app and the environment whose flags a request
// evaluates.
const (
	HeaderFlightdeckApp         = "X-Flightdeck-App"
	HeaderFlightdeckEnvironment = "X-Flightdeck-Environment"
)

// scopeFlags is the token scope the OFREP endpoints need.
const scopeFlags = auth.ScopeFlags

// maxOFREPBody bounds a request body; an evaluation context is a handful of
// user attributes, far below this.
const maxOFREPBody = 64 << 10

// RegisterOFREPRoutes serves the OFREP endpoints from snapshots, behind
// tokens with the flags scope; neither waits on the database once a token
// has been seen. Without either it registers nothing, so the
// routes answer 404 instead of evaluating without authentication.
func RegisterOFREPRoutes(e *echo.Echo, snapshots FlagSnapshots, tokens TokenLookup) {
	if snapshots == nil || tokens == nil {
		return
	}
	h := &ofrepHandlers{snapshots: snapshots}
	// The middleware goes on the routes, not on a group: a group without a
	// prefix would answer every unknown path with its token check.
	// Applications evaluate on every request they serve, so their tokens
	// are remembered for TokenCacheTTL rather than looked up each time.
	guard := []echo.MiddlewareFunc{RequireToken(newTokenCache(tokens, TokenCacheTTL, nil), nil), requireFlagsScope}
	e.POST(ofrepBulkRoute, h.evaluateAll, guard...)
	e.POST(ofrepSingleRoute, h.evaluateOne, guard...)
}

// requireFlagsScope lets through only requests whose token has the flags
// scope, directly or through admin.
func requireFlagsScope(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := RequireScope(c, scopeFlags); err != nil {
			return err
		}
		return next(c)
	}
}

type ofrepHandlers struct {
	snapshots FlagSnapshots
}

// ofrepEvaluation is one flag's answer in OFREP's shapes: a success carries
// value, reason and variant; a failure carries errorCode and errorDetails.
// One struct with omitempty serves both, and the bulk list mixes them.
type ofrepEvaluation struct {
	Key          string          `json:"key,omitempty"`
	Value        json.RawMessage `json:"value,omitempty"`
	Reason       flags.Reason    `json:"reason,omitempty"`
	Variant      string          `json:"variant,omitempty"`
	ErrorCode    flags.ErrorCode `json:"errorCode,omitempty"`
	ErrorDetails string          `json:"errorDetails,omitempty"`
	Metadata     *ofrepMetadata  `json:"metadata,omitempty"`
}

// ofrepMetadata is the flag metadata Flightdeck sends with a result: the
// targeting rule that decided, so that an engineer can tell from the SDK's
// evaluation details why a user got a variant.
type ofrepMetadata struct {
	Rule string `json:"rule"`
}

// ofrepBulkResponse is the answer to a bulk evaluation.
type ofrepBulkResponse struct {
	Flags []ofrepEvaluation `json:"flags"`
}

// ofrepFailure is an error of the request as a whole.
type ofrepFailure struct {
	status int
	body   ofrepEvaluation
}

func (f *ofrepFailure) Error() string {
	return string(f.body.ErrorCode) + ": " + f.body.ErrorDetails
}

func ofrepFail(status int, code flags.ErrorCode, details string) *ofrepFailure {
	return &ofrepFailure{status: status, body: ofrepEvaluation{ErrorCode: code, ErrorDetails: details}}
}

// evaluateOne answers POST /ofrep/v1/evaluate/flags/{key}: 200 with the
// flag's value, 404 FLAG_NOT_FOUND for a key the app does not have, and
// 400 with the error code for every other evaluation error.
func (h *ofrepHandlers) evaluateOne(c echo.Context) error {
	key, err := url.PathUnescape(c.Param("key"))
	if err != nil || key == "" {
		return writeOFREPFailure(c, ofrepFail(http.StatusBadRequest, flags.ErrorParse, "The flag key in the path is not a valid path segment."), c.Param("key"))
	}
	snap, ectx, failure := h.prepare(c)
	if failure != nil {
		return writeOFREPFailure(c, failure, key)
	}
	r := snap.Evaluate(key, ectx)
	if r.ErrorCode != "" {
		status := http.StatusBadRequest
		if r.ErrorCode == flags.ErrorFlagNotFound {
			status = http.StatusNotFound
		}
		return writeOFREPFailure(c, ofrepFail(status, r.ErrorCode, r.ErrorMessage), key)
	}
	return c.JSON(http.StatusOK, toOFREP(r))
}

// evaluateAll answers POST /ofrep/v1/evaluate/flags with every flag of the
// environment, failures included as items. The ETag covers the flags and
// the context, so a client polling with If-None-Match gets 304 until a
// flag, a segment or its own context changes.
func (h *ofrepHandlers) evaluateAll(c echo.Context) error {
	snap, ectx, failure := h.prepare(c)
	if failure != nil {
		return writeOFREPFailure(c, failure, "")
	}
	header := c.Response().Header()
	header.Set(echo.HeaderCacheControl, "private, no-cache")
	if etag := bulkETag(snap, ectx); etag != "" {
		header.Set("ETag", etag)
		if etagMatches(c.Request().Header.Get("If-None-Match"), etag) {
			return c.NoContent(http.StatusNotModified)
		}
	}

	buf := ofrepBuffers.Get().(*ofrepBuffer)
	defer ofrepBuffers.Put(buf)
	buf.results = snap.AppendEvaluateAll(buf.results[:0], ectx)
	resp := ofrepBulkResponse{Flags: buf.evaluations[:0]}
	if resp.Flags == nil {
		// An environment without flags answers an empty list, not null.
		resp.Flags = []ofrepEvaluation{}
	}
	for _, r := range buf.results {
		resp.Flags = append(resp.Flags, toOFREP(r))
	}
	buf.evaluations = resp.Flags
	buf.body.Reset()
	enc := json.NewEncoder(&buf.body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf.body.Bytes())
}

// ofrepBuffer holds what one bulk evaluation needs, reused between requests
// so a busy client-side fleet does not churn the heap.
type ofrepBuffer struct {
	results     []flags.Result
	evaluations []ofrepEvaluation
	body        bytes.Buffer
}

var ofrepBuffers = sync.Pool{New: func() any { return new(ofrepBuffer) }}

// toOFREP maps a result field by field: value, reason and variant for a
// success, errorCode and errorDetails for a failure, the rule as metadata.
func toOFREP(r flags.Result) ofrepEvaluation {
	if r.ErrorCode != "" {
		return ofrepEvaluation{Key: r.Key, ErrorCode: r.ErrorCode, ErrorDetails: r.ErrorMessage}
	}
	ev := ofrepEvaluation{Key: r.Key, Value: r.Value, Reason: r.Reason, Variant: r.Variant}
	if r.RuleName != "" {
		ev.Metadata = &ofrepMetadata{Rule: r.RuleName}
	}
	return ev
}

// prepare finds the snapshot the request addresses and reads its context.
// It checks in that order, so a client that may not read an environment
// learns nothing about it from how its body is judged.
func (h *ofrepHandlers) prepare(c echo.Context) (*flags.Snapshot, flags.EvalContext, *ofrepFailure) {
	app, env, failure := ofrepTarget(c)
	if failure != nil {
		return nil, nil, failure
	}
	snap, ok := h.snapshots.Snapshot(app, env)
	if !ok {
		return nil, nil, ofrepFail(http.StatusNotFound, flags.ErrorFlagNotFound,
			"Flightdeck has no environment "+env+" in app "+app+", so it has no flags there.")
	}
	ectx, failure := readOFREPContext(c.Request())
	if failure != nil {
		return nil, nil, failure
	}
	return snap, ectx, nil
}

// ofrepTarget decides the app and environment of a request from its
// headers, falling back to the token's limits when they name exactly one,
// and checks that the token may read them.
func ofrepTarget(c echo.Context) (app, env string, failure *ofrepFailure) {
	p, ok := PrincipalFrom(c)
	if !ok {
		return "", "", ofrepFail(http.StatusUnauthorized, flags.ErrorGeneral, "This endpoint needs an API token.")
	}
	h := c.Request().Header
	app = strings.TrimSpace(h.Get(HeaderFlightdeckApp))
	if app == "" && len(p.Apps) == 1 {
		app = p.Apps[0]
	}
	env = strings.TrimSpace(h.Get(HeaderFlightdeckEnvironment))
	if env == "" && len(p.Environments) == 1 {
		env = p.Environments[0]
	}
	switch {
	case app == "":
		return "", "", ofrepFail(http.StatusBadRequest, flags.ErrorGeneral,
			"Say which app's flags to evaluate: send the "+HeaderFlightdeckApp+" header, or use a token limited to one app.")
	case env == "":
		return "", "", ofrepFail(http.StatusBadRequest, flags.ErrorGeneral,
			"Say which environment to evaluate flags for: send the "+HeaderFlightdeckEnvironment+" header, or use a token limited to one environment.")
	}
	if err := auth.CheckLimits([]string{app}, []string{env}); err != nil {
		return "", "", ofrepFail(http.StatusBadRequest, flags.ErrorGeneral, "The app or environment header is not valid: "+err.Error()+".")
	}
	if !p.CanAccess(app, env) {
		return "", "", ofrepFail(http.StatusForbidden, flags.ErrorGeneral,
			"The token "+p.Name+" may not read the flags of "+app+"/"+env+"; its limits do not include them.")
	}
	return app, env, nil
}

// readOFREPContext decodes {"context": {...}}. A body that is not a JSON
// object is PARSE_ERROR; a context that is not an object (or null) is
// INVALID_CONTEXT. A body without "context" is an empty context, as is an
// explicit null: the caller knows nothing about the user.
func readOFREPContext(r *http.Request) (flags.EvalContext, *ofrepFailure) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOFREPBody+1))
	if err != nil {
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorParse, "The request body could not be read: "+err.Error()+".")
	}
	if len(body) > maxOFREPBody {
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorParse, "The request body is larger than 64 KiB; an evaluation context should hold a few user attributes.")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorParse, `The request body is empty; send {"context": {...}} with the evaluation context.`)
	}
	if trimmed[0] != '{' {
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorParse, `The request body must be a JSON object: {"context": {...}}.`)
	}
	var req struct {
		Context json.RawMessage `json:"context"`
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorParse, "The request body is not valid JSON: "+err.Error()+".")
	}
	ectx, err := flags.ParseContext(req.Context)
	if err != nil {
		var ee *flags.EvalError
		if errors.As(err, &ee) {
			return nil, ofrepFail(http.StatusBadRequest, ee.Code, ee.Message)
		}
		return nil, ofrepFail(http.StatusBadRequest, flags.ErrorInvalidContext, err.Error())
	}
	return ectx, nil
}

// writeOFREPFailure answers with an OFREP error body; key is the flag the
// request was about, empty for a bulk request.
func writeOFREPFailure(c echo.Context, f *ofrepFailure, key string) error {
	body := f.body
	body.Key = key
	if f.status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, bearerChallenge)
	}
	return c.JSON(f.status, body)
}

// bulkETag identifies a bulk answer: the snapshot's content and the
// context it was evaluated for. The context's JSON has its keys sorted, so
// the same attributes give the same tag in any order. It returns "" when
// the context cannot be encoded, which a context decoded from JSON always
// can; the answer is then sent without a tag rather than with a wrong one.
func bulkETag(snap *flags.Snapshot, ectx flags.EvalContext) string {
	b, err := json.Marshal(ectx)
	if err != nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(snap.ETag()))
	h.Write([]byte{0})
	h.Write(b)
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// etagMatches reports whether an If-None-Match header names etag: a list
// of tags, weak ones compared by their opaque part, or "*".
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
