package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func init() {
	// Server-sent events are text; the document describes the stream as a
	// string, which is all a contract check can say about it.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// steadyAnalyzer judges every phase healthy, so runs go on as planned, and
// checks a run's thresholds as the server's analyzer does.
type steadyAnalyzer struct {
	analysis.Analyzer
}

func (*steadyAnalyzer) Analyze(context.Context, engine.AnalysisRequest) (engine.Analysis, error) {
	return engine.Analysis{Verdict: engine.VerdictContinue, Explanation: "healthy", Record: json.RawMessage(`{}`)}, nil
}

// runAPI is the REST API wired as the server wires it, with an engine that
// is stepped by hand, an app "shop" with an environment "prod" whose
// stable version is v1, and a token for each scope.
type runAPI struct {
	*restAPI
	engine *engine.Engine
	app    store.App
	env    store.Environment
	tokens map[string]string
}

func runSetup(t *testing.T) *runAPI {
	t.Helper()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	drivers := driver.NewRegistry()
	drivers.Register(simulator.Type, simulator.New(simulator.Options{Seed: 1}))
	eng, err := engine.New(engine.Config{Store: st, Drivers: drivers, Analyzer: &steadyAnalyzer{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := api.New(api.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Readiness: readiness{},
		Resources: st, Tokens: st, Runs: eng, RunStore: st, Gatherer: reg, Registerer: reg,
	})
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "shop", Name: "Shop"})
	require.NoError(t, err)
	env, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "prod", Tier: "production",
		Driver: json.RawMessage(`{"type": "simulator"}`), DefaultStrategy: "canary"})
	require.NoError(t, err)
	require.NoError(t, st.SetStableVersion(ctx, env.ID, "v1"))
	env, err = st.EnvironmentByID(ctx, env.ID)
	require.NoError(t, err)
	_, err = st.CreateApp(ctx, store.NewApp{Slug: "blog", Name: "Blog"})
	require.NoError(t, err)

	admin, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	tokens := map[string]string{}
	for name, tc := range map[string]struct {
		scopes []auth.Scope
		apps   []string
	}{
		"reader":   {scopes: []auth.Scope{auth.ScopeRead}},
		"ci":       {scopes: []auth.Scope{auth.ScopeDeploy}},
		"lead":     {scopes: []auth.Scope{auth.ScopeApprove}},
		"blog-ci":  {scopes: []auth.Scope{auth.ScopeDeploy}, apps: []string{"blog"}},
		"other-ci": {scopes: []auth.Scope{auth.ScopeDeploy}},
	} {
		plain, prefix, hash, err := auth.Generate()
		require.NoError(t, err)
		_, err = st.CreateToken(ctx, store.NewToken{Name: name, Hash: hash, Prefix: prefix, Scopes: tc.scopes, UserID: admin.ID, Apps: tc.apps})
		require.NoError(t, err)
		tokens[name] = plain
	}
	return &runAPI{restAPI: &restAPI{t: t, handler: h, store: st}, engine: eng, app: app, env: env, tokens: tokens}
}

// as sends the exchange with the named token and checks it against the
// document.
func (a *runAPI) as(token string, x exchange) *httptest.ResponseRecorder {
	a.t.Helper()
	if x.header == nil {
		x.header = http.Header{}
	}
	x.header.Set("Authorization", "Bearer "+a.tokens[token])
	return a.do(x)
}

// create starts a run of version in shop/prod as ci and returns it.
func (a *runAPI) create(version string) apigen.Run {
	a.t.Helper()
	rec := a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: fmt.Sprintf(`{"version": %q}`, version)})
	require.Equal(a.t, http.StatusCreated, rec.Code, rec.Body.String())
	return decode[apigen.Run](a.t, rec)
}

// step lets the engine step every due run once.
func (a *runAPI) step() {
	a.t.Helper()
	_, err := a.engine.RunOnce(context.Background())
	require.NoError(a.t, err)
}

func TestCreateRun(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	rec := a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs",
		body: `{"version": "v2", "strategy": "canary", "params": {"steps": [10, 100], "step_bake": "1m"}, "reason": "fix checkout"}`})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	run := decode[apigen.Run](t, rec)
	require.Equal(t, "/api/v1/runs/"+strconv.FormatInt(run.Id, 10), rec.Header().Get("Location"))
	require.Equal(t, apigen.RunStatePending, run.State)
	require.Equal(t, "token:ci", run.CreatedBy)
	require.Equal(t, "v1", *run.FromVersion)
	require.Equal(t, "fix checkout", run.Reason)
	require.Nil(t, run.Plan, "the plan is compiled when the run starts")

	for name, tc := range map[string]struct {
		token  string
		path   string
		body   string
		status int
		fields []string
	}{
		"no version":          {token: "ci", body: `{}`, status: http.StatusUnprocessableEntity, fields: []string{"version"}},
		"the stable version":  {token: "ci", body: `{"version": "v1"}`, status: http.StatusUnprocessableEntity, fields: []string{"version"}},
		"an unknown strategy": {token: "ci", body: `{"version": "v3", "strategy": "yolo"}`, status: http.StatusUnprocessableEntity, fields: []string{"strategy"}},
		"bad params": {token: "ci", body: `{"version": "v3", "strategy": "canary", "params": {"steps": [50, 10]}}`,
			status: http.StatusUnprocessableEntity},
		"bad thresholds": {token: "ci", body: `{"version": "v3", "params": {"thresholds": {"p99_ratio": 0}}}`,
			status: http.StatusUnprocessableEntity},
		"wrong types and an unknown field": {token: "ci", body: `{"version": 3, "params": [], "owner": "me"}`,
			status: http.StatusUnprocessableEntity, fields: []string{"version", "params", "owner"}},
		"not JSON":               {token: "ci", body: `{"version":`, status: http.StatusBadRequest},
		"a reader":               {token: "reader", body: `{"version": "v3"}`, status: http.StatusForbidden},
		"another app's token":    {token: "blog-ci", body: `{"version": "v3"}`, status: http.StatusForbidden},
		"an unknown app":         {token: "ci", path: "/api/v1/apps/nope/environments/prod/runs", body: `{"version": "v3"}`, status: http.StatusNotFound},
		"an unknown environment": {token: "ci", path: "/api/v1/apps/shop/environments/nope/runs", body: `{"version": "v3"}`, status: http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api/v1/apps/shop/environments/prod/runs"
			}
			rec := a.as(tc.token, exchange{method: http.MethodPost, path: path, body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			p := readProblem(t, rec)
			if tc.fields != nil {
				require.Equal(t, tc.fields, fieldsOf(p))
			}
			if tc.status == http.StatusUnprocessableEntity {
				require.NotEmpty(t, p.Errors)
			}
		})
	}
	runs, err := a.store.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1, "a refused request starts nothing")
}

func TestReadRuns(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	first := a.create("v2")
	a.step()
	second := a.create("v3")
	third := a.create("v4")

	rec := a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d", first.Id)})
	require.Equal(t, http.StatusOK, rec.Code)
	run := decode[apigen.Run](t, rec)
	require.Equal(t, apigen.RunStateRunning, run.State)
	require.NotNil(t, run.Plan)
	require.NotNil(t, run.Phase)
	require.NotEmpty(t, run.Phases)
	require.Equal(t, apigen.RunPhaseStatusApplying, run.Phases[0].Status)
	require.NotEmpty(t, run.Weights)
	require.NotNil(t, run.ExpectedRollbackTime)
	require.Greater(t, run.UsersExposed, 0.0)
	require.Nil(t, run.LatestDecision)

	_, err := a.store.InsertDecision(context.Background(), store.Decision{RunID: first.Id, Verdict: "continue", Explanation: "all good", Record: json.RawMessage(`{"windows": 3}`)})
	require.NoError(t, err)
	run = decode[apigen.Run](t, a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d", first.Id)}))
	require.NotNil(t, run.LatestDecision)
	require.Equal(t, "all good", run.LatestDecision.Explanation)

	rec = a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d/decisions", first.Id)})
	require.Equal(t, http.StatusOK, rec.Code)
	decisions := decode[apigen.DecisionList](t, rec)
	require.Len(t, decisions.Items, 1)
	require.Equal(t, 3.0, decisions.Items[0].Record["windows"])

	// Newest first, a page at a time, with an opaque cursor.
	rec = a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/runs?limit=2"})
	require.Equal(t, http.StatusOK, rec.Code)
	page := decode[apigen.RunList](t, rec)
	require.Equal(t, []int64{third.Id, second.Id}, runIDs(page))
	require.NotNil(t, page.NextCursor)
	page = decode[apigen.RunList](t, a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/runs?limit=2&cursor=" + *page.NextCursor}))
	require.Equal(t, []int64{first.Id}, runIDs(page))
	require.Nil(t, page.NextCursor)

	page = decode[apigen.RunList](t, a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/runs?app=shop&env=prod&state=pending,running"}))
	require.Equal(t, []int64{third.Id, second.Id, first.Id}, runIDs(page))
	page = decode[apigen.RunList](t, a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/runs?state=running"}))
	require.Equal(t, []int64{first.Id}, runIDs(page))
	page = decode[apigen.RunList](t, a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/runs?app=blog"}))
	require.Empty(t, page.Items)

	for path, status := range map[string]int{
		"/api/v1/runs/4242":           http.StatusNotFound,
		"/api/v1/runs/4242/decisions": http.StatusNotFound,
		"/api/v1/runs/4242/events":    http.StatusNotFound,
		"/api/v1/runs/abc":            http.StatusBadRequest,
		"/api/v1/runs?cursor=zzz":     http.StatusBadRequest,
		"/api/v1/runs?limit=0":        http.StatusBadRequest,
		"/api/v1/runs?env=prod":       http.StatusBadRequest,
		"/api/v1/runs?state=flying":   http.StatusBadRequest,
		"/api/v1/runs?app=nope":       http.StatusNotFound,
	} {
		rec := a.as("reader", exchange{method: http.MethodGet, path: path})
		require.Equal(t, status, rec.Code, "%s: %s", path, rec.Body.String())
		readProblem(t, rec)
	}

	// A token limited to one app sees only that app's runs.
	require.Equal(t, http.StatusForbidden, a.as("blog-ci", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d", first.Id)}).Code)
	require.Equal(t, http.StatusForbidden, a.as("blog-ci", exchange{method: http.MethodGet, path: "/api/v1/runs"}).Code)
	require.Equal(t, http.StatusForbidden, a.as("blog-ci", exchange{method: http.MethodGet, path: "/api/v1/runs?app=shop"}).Code)
	require.Equal(t, http.StatusOK, a.as("blog-ci", exchange{method: http.MethodGet, path: "/api/v1/runs?app=blog"}).Code)
}

func runIDs(l apigen.RunList) []int64 {
	ids := make([]int64, len(l.Items))
	for i, r := range l.Items {
		ids[i] = r.Id
	}
	return ids
}

func TestActOnRun(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	run := a.create("v2")
	path := func(action string) string { return fmt.Sprintf("/api/v1/runs/%d/actions/%s", run.Id, action) }

	// A pending run can only be aborted; the refusal carries the run.
	rec := a.as("ci", exchange{method: http.MethodPost, path: path("pause")})
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	p := readProblem(t, rec)
	var current apigen.Run
	require.NoError(t, json.Unmarshal(p.Current, &current))
	require.Equal(t, apigen.RunStatePending, current.State)

	a.step()
	rec = a.as("ci", exchange{method: http.MethodPost, path: path("pause"), body: `{"comment": "lunch"}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, apigen.RunStatePaused, decode[apigen.RunActionResult](t, rec).Run.State)

	for name, tc := range map[string]struct {
		token, action, body string
		status              int
	}{
		"approve needs the approve scope":     {token: "ci", action: "approve", status: http.StatusForbidden},
		"a reader cannot act":                 {token: "reader", action: "resume", status: http.StatusForbidden},
		"an approver cannot pause":            {token: "lead", action: "abort", status: http.StatusForbidden},
		"another app's token":                 {token: "blog-ci", action: "resume", status: http.StatusForbidden},
		"approve while not awaiting approval": {token: "lead", action: "approve", status: http.StatusConflict},
		"an unknown action":                   {token: "ci", action: "launch", status: http.StatusNotFound},
		"an unknown field":                    {token: "ci", action: "resume", body: `{"why": "x"}`, status: http.StatusUnprocessableEntity},
		"to_end without promote":              {token: "ci", action: "resume", body: `{"to_end": true}`, status: http.StatusUnprocessableEntity},
		"a body that is not JSON":             {token: "ci", action: "resume", body: `nope`, status: http.StatusBadRequest},
		"pause a paused run":                  {token: "ci", action: "pause", status: http.StatusConflict},
	} {
		t.Run(name, func(t *testing.T) {
			rec := a.as(tc.token, exchange{method: http.MethodPost, path: path(tc.action), body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			readProblem(t, rec)
		})
	}
	rec = a.as("ci", exchange{method: http.MethodPost, path: "/api/v1/runs/4242/actions/resume"})
	require.Equal(t, http.StatusNotFound, rec.Code)

	rec = a.as("ci", exchange{method: http.MethodPost, path: path("resume")})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, apigen.RunStateRunning, decode[apigen.RunActionResult](t, rec).Run.State)
	rec = a.as("ci", exchange{method: http.MethodPost, path: path("abort"), body: `{"comment": "wrong build"}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, apigen.RunStateRollingBack, decode[apigen.RunActionResult](t, rec).Run.State)

	rec = a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d/events", run.Id)})
	require.Equal(t, http.StatusOK, rec.Code)
	var types, actors []string
	for _, ev := range decode[apigen.RunEventList](t, rec).Items {
		types, actors = append(types, ev.Type), append(actors, ev.Actor)
	}
	require.Contains(t, types, "run.paused")
	require.Contains(t, actors, "token:ci", "the token is who acted")
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	create := func(token, key, body string) *httptest.ResponseRecorder {
		return a.as(token, exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: body,
			header: http.Header{"Idempotency-Key": {key}}})
	}
	first := create("ci", "job-1", `{"version": "v2"}`)
	require.Equal(t, http.StatusCreated, first.Code, first.Body.String())
	again := create("ci", "job-1", `{"version": "v2"}`)
	require.Equal(t, http.StatusCreated, again.Code)
	require.Equal(t, first.Body.String(), again.Body.String())
	require.Equal(t, first.Header().Get("Location"), again.Header().Get("Location"))
	require.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))

	rec := create("ci", "job-1", `{"version": "v3"}`)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	require.Equal(t, []string{"Idempotency-Key"}, fieldsOf(readProblem(t, rec)))

	// A refusal is an answer too.
	bad := create("ci", "job-2", `{"version": "v1"}`)
	require.Equal(t, http.StatusUnprocessableEntity, bad.Code)
	require.Equal(t, bad.Body.String(), create("ci", "job-2", `{"version": "v1"}`).Body.String())

	// Another token with the same key is another request, but the run
	// keeps the key for its environment, so it gets the same run with 200.
	other := create("other-ci", "job-1", `{"version": "v2"}`)
	require.Equal(t, http.StatusOK, other.Code, other.Body.String())
	require.Equal(t, decode[apigen.Run](t, first).Id, decode[apigen.Run](t, other).Id)

	// Actions replay too.
	a.step()
	id := decode[apigen.Run](t, first).Id
	act := func() *httptest.ResponseRecorder {
		return a.as("ci", exchange{method: http.MethodPost, path: fmt.Sprintf("/api/v1/runs/%d/actions/pause", id),
			header: http.Header{"Idempotency-Key": {"pause-1"}}})
	}
	paused := act()
	require.Equal(t, http.StatusOK, paused.Code, paused.Body.String())
	replayed := act()
	require.Equal(t, http.StatusOK, replayed.Code, "the second pause is not done, or it would be a 409")
	require.Equal(t, paused.Body.String(), replayed.Body.String())
}

func TestConcurrentCreatesWithOneKeyStartOneRun(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	const n = 50
	type answer struct {
		status int
		body   string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			x := exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2"}`,
				header: http.Header{"Idempotency-Key": {"deploy-42"}, "Authorization": {"Bearer " + a.tokens["ci"]}}}
			rec := httptest.NewRecorder()
			a.handler.ServeHTTP(rec, x.request())
			answers[i] = answer{rec.Code, rec.Body.String()}
		})
	}
	close(start)
	wg.Wait()

	runs, err := a.store.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1, "exactly one run")
	var created []answer
	for _, ans := range answers {
		switch ans.status {
		case http.StatusCreated:
			created = append(created, ans)
		case http.StatusConflict:
			require.Contains(t, ans.body, "still being handled")
		default:
			t.Fatalf("unexpected answer %d: %s", ans.status, ans.body)
		}
	}
	require.NotEmpty(t, created)
	t.Logf("%d answered 201 with the run, %d were refused as in flight", len(created), n-len(created))
	for _, ans := range created {
		require.Equal(t, created[0].body, ans.body, "every completed request gets the first answer")
	}
	checkContract(t, exchange{method: http.MethodPost, path: "/api/v1/apps/shop/environments/prod/runs", body: `{"version": "v2"}`},
		created[0].status, http.Header{"Content-Type": {"application/json"}}, []byte(created[0].body))
}

// sseEvent is one server-sent event as a test reads it.
type sseEvent struct {
	id   int64
	data apigen.RunEvent
}

// readEvents reads server-sent events from r until it ends or stop says so.
func readEvents(t *testing.T, r io.Reader, stop func([]sseEvent) bool) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id, err := strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
			require.NoError(t, err)
			cur.id = id
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data))
		case line == "" && cur.id != 0:
			require.Equal(t, cur.id, cur.data.Id)
			events = append(events, cur)
			cur = sseEvent{}
			if stop != nil && stop(events) {
				return events
			}
		}
	}
	return events
}

func TestRunEventStreamResumesWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	a := runSetup(t)
	srv := httptest.NewServer(a.handler)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	run := a.create("v2")
	for i := range 3 {
		_, err := a.store.AppendRunEvent(ctx, run.Id, store.Event{Type: "run.note", Actor: "test", Payload: map[string]any{"n": i}})
		require.NoError(t, err)
	}
	open := func(ctx context.Context, lastID int64) *http.Response {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/runs/%d/events", srv.URL, run.Id), nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+a.tokens["reader"])
		if lastID > 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		return resp
	}

	// The first connection sees what is there and what is written while
	// it is open, then drops.
	firstCtx, drop := context.WithCancel(ctx)
	resp := open(firstCtx, 0)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = a.store.AppendRunEvent(ctx, run.Id, store.Event{Type: "run.note", Actor: "test", Payload: map[string]any{"n": 3}})
	}()
	seen := readEvents(t, resp.Body, func(evs []sseEvent) bool { return len(evs) == 5 })
	drop()
	_ = resp.Body.Close()

	// Events written while nobody listens are sent on the reconnect, and
	// the stream ends once the run has finished.
	for i := 4; i < 6; i++ {
		_, err := a.store.AppendRunEvent(ctx, run.Id, store.Event{Type: "run.note", Actor: "test", Payload: map[string]any{"n": i}})
		require.NoError(t, err)
	}
	resp = open(ctx, seen[len(seen)-1].id)
	defer func() { _ = resp.Body.Close() }()
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = a.engine.Act(ctx, run.Id, engine.ActionRequest{Action: engine.ActionAbort, Actor: "token:ci"})
	}()
	done := make(chan []sseEvent)
	go func() { done <- readEvents(t, resp.Body, nil) }()
	select {
	case rest := <-done:
		seen = append(seen, rest...)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after the run finished")
	}

	all, err := a.store.ListRunEvents(ctx, run.Id, 0, 1000)
	require.NoError(t, err)
	require.Equal(t, "run.aborted", all[len(all)-1].Type)
	want := make([]int64, len(all))
	for i, ev := range all {
		want[i] = ev.ID
	}
	got := make([]int64, len(seen))
	for i, ev := range seen {
		got[i] = ev.id
	}
	require.Equal(t, want, got, "every event once, in order")

	// The polling form says the same, from a point on.
	rec := a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d/events?after=%d", run.Id, want[1])})
	require.Equal(t, http.StatusOK, rec.Code)
	list := decode[apigen.RunEventList](t, rec)
	require.Len(t, list.Items, len(want)-2)
	require.Equal(t, want[2], list.Items[0].Id)

	// A finished run's stream is checked against the document whole.
	x := exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d/events", run.Id),
		header: http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {strconv.FormatInt(want[len(want)-2], 10)}}}
	rec = a.as("reader", x)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, fmt.Sprintf("id: %d\n", want[len(want)-1]), strings.SplitAfter(rec.Body.String(), "\n")[0])
	rec = a.as("reader", exchange{method: http.MethodGet, path: fmt.Sprintf("/api/v1/runs/%d/events", run.Id),
		header: http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {"soon"}}})
	require.Equal(t, http.StatusBadRequest, rec.Code)
}
