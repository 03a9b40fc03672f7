package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// env is a fake environment for getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// testCLI returns a deployctl that writes to buffers and waits briefly.
func testCLI(vars env) (*cli, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	c := newCLI(&stdout, &stderr, vars.get)
	c.pollInterval = 10 * time.Millisecond
	c.retryBackoff = time.Millisecond
	return c, &stdout, &stderr
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	got, err := parseParams([]string{"steps=[5,50,100]", "step_bake=2m", "instances=3", "strict=true", `name="v2"`, "empty=", "note=a=b", `thresholds={"warmup":"0s"}`})
	require.NoError(t, err)
	body, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, `{"steps": [5, 50, 100], "step_bake": "2m", "instances": 3, "strict": true, "name": "v2",
		"empty": "", "note": "a=b", "thresholds": {"warmup": "0s"}}`, string(body))
	require.Equal(t, `{"big":12345678901234567890}`, mustJSON(t, map[string]any{"big": paramValue("12345678901234567890")}), "numbers keep their exact text")

	for _, bad := range [][]string{{"steps"}, {"=5"}, {"a=1", "a=2"}} {
		_, err := parseParams(bad)
		require.Error(t, err, "%q", bad)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	parts := []string{"deploy", "shop", "staging", "v2"}
	github := env{"GITHUB_RUN_ID": "100", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "deploy"}
	k1, err := idempotencyKey("", github.get, parts...)
	require.NoError(t, err)
	k2, err := idempotencyKey("", github.get, parts...)
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the same job and flags give the same key")
	require.Regexp(t, `^deployctl-[0-9a-f]{64}$`, k1)

	other, err := idempotencyKey("", github.get, "deploy", "shop", "production", "v2")
	require.NoError(t, err)
	require.NotEqual(t, k1, other, "other flags give another key")
	retry := env{"GITHUB_RUN_ID": "100", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "deploy"}
	k3, err := idempotencyKey("", retry.get, parts...)
	require.NoError(t, err)
	require.NotEqual(t, k1, k3, "a re-run of the job deploys afresh")
	shifted, err := idempotencyKey("", github.get, "deploy", "shop", "stagingv2")
	require.NoError(t, err)
	require.NotEqual(t, k1, shifted, "parts are not merely concatenated")

	gitlab, err := idempotencyKey("", env{"CI_JOB_ID": "55"}.get, parts...)
	require.NoError(t, err)
	require.NotEqual(t, k1, gitlab)
	gitlabAgain, _ := idempotencyKey("", env{"CI_JOB_ID": "55"}.get, parts...)
	require.Equal(t, gitlab, gitlabAgain)

	r1, err := idempotencyKey("", env{}.get, parts...)
	require.NoError(t, err)
	r2, _ := idempotencyKey("", env{}.get, parts...)
	require.NotEqual(t, r1, r2, "outside CI each invocation has its own key")

	explicit, err := idempotencyKey("release-42", github.get, parts...)
	require.NoError(t, err)
	require.Equal(t, "release-42", explicit)
	_, err = idempotencyKey(strings.Repeat("k", 256), github.get, parts...)
	require.Error(t, err)
}

func TestParseDeploy(t *testing.T) {
	t.Parallel()
	c, _, _ := testCLI(env{"FLIGHTDECK_URL": "http://fd.example", "FLIGHTDECK_TOKEN": "fdk_x"})
	r, err := c.parseDeploy([]string{"--app", "shop", "--env=staging", "--version", "v2", "--param", "steps=[5,100]", "--param", "step_bake=2m", "--wait", "--timeout", "5m"})
	require.NoError(t, err)
	require.Equal(t, "shop", r.app)
	require.Equal(t, "staging", r.env)
	require.Equal(t, stringList{"steps=[5,100]", "step_bake=2m"}, r.params)
	require.True(t, r.wait)
	require.Equal(t, 5*time.Minute, r.timeout)
	require.Equal(t, connection{url: "http://fd.example", token: "fdk_x"}, r.conn, "the connection comes from the environment")

	r, err = c.parseDeploy([]string{"--app", "a", "--env", "e", "--version", "v", "--url", "https://other", "--token", "fdk_y"})
	require.NoError(t, err)
	require.Equal(t, connection{url: "https://other", token: "fdk_y"}, r.conn, "flags win over the environment")
	require.Equal(t, 30*time.Minute, r.timeout)

	for _, args := range [][]string{
		{"--app", "a", "--env", "e"},
		{"--app", "a", "--env", "e", "--version", "v", "--param", "nokey"},
		{"--app", "a", "--env", "e", "--version", "v", "--timeout", "0s"},
		{"--app", "a", "--env", "e", "--version", "v", "extra"},
		{"--nope"},
	} {
		_, err := c.parseDeploy(args)
		require.Equal(t, exitUsage, exitCode(err), "%q: %v", args, err)
	}
	_, err = c.parseDeploy([]string{"--help"})
	require.ErrorIs(t, err, errHelpShown)
}

func TestRunArgumentsAndUsage(t *testing.T) {
	t.Parallel()
	c, stdout, stderr := testCLI(env{})
	require.Equal(t, exitSucceeded, c.run(context.Background(), []string{"--help"}))
	require.Contains(t, stdout.String(), "Exit codes:")
	require.Equal(t, exitUsage, c.run(context.Background(), nil))
	require.Equal(t, exitUsage, c.run(context.Background(), []string{"launch"}))
	require.Equal(t, exitUsage, c.run(context.Background(), []string{"status", "--url", "http://x", "--token", "t"}), "a run id is needed")
	require.Equal(t, exitUsage, c.run(context.Background(), []string{"status", "abc", "--url", "http://x", "--token", "t"}))
	require.Equal(t, exitUsage, c.run(context.Background(), []string{"status", "7"}), "no URL or token")
	require.Contains(t, stderr.String(), "FLIGHTDECK_URL")
	require.Equal(t, exitUsage, c.run(context.Background(), []string{"envs", "--url", "http://x", "--token", "t"}), "envs needs --app")
	require.Equal(t, exitSucceeded, c.run(context.Background(), []string{"approve", "--help"}))
}

// fakeServer mimics the documented answers of Flightdeck's run endpoints:
// a run that advances one state each time it is read, its events, as a
// list or a stream, and decisions.
type fakeServer struct {
	t *testing.T
	// final is the state the run ends in; readsToFinish how many reads of
	// the run it takes to get there.
	final         string
	readsToFinish int
	// stream says whether events are offered as server-sent events.
	stream bool
	// createStatus, when set, is the answer to starting a run; failFirst
	// answers the first requests with 503.
	createStatus int
	failFirst    int

	mu       sync.Mutex
	reads    int
	keys     []string
	tokens   []string
	requests int
	streamed int
}

func (f *fakeServer) run(state string) map[string]any {
	return map[string]any{
		"id": 7, "app": "shop", "environment": "staging", "from_version": "v1", "to_version": "v2", "strategy": "canary",
		"params": map[string]any{}, "state": state, "phase_index": 0, "reason": "", "created_by": "token:ci", "version": 1,
		"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "started_at": nil, "finished_at": nil,
	}
}

var fakeEvents = []map[string]any{
	{"id": 1, "at": "2026-01-01T00:00:00Z", "type": "run.created", "actor": "token:ci", "payload": map[string]any{}},
	{"id": 2, "at": "2026-01-01T00:00:01Z", "type": "phase.started", "actor": "engine", "payload": map[string]any{"phase": 0, "name": "canary-50"}},
	{"id": 3, "at": "2026-01-01T00:00:09Z", "type": "run.finished", "actor": "engine", "payload": map[string]any{"reason": "all phases passed"}},
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.tokens = append(f.tokens, r.Header.Get("Authorization"))
	if r.Method == http.MethodPost {
		f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	}
	f.mu.Unlock()
	if n <= f.failFirst {
		problem(w, http.StatusServiceUnavailable, "starting up")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/apps/shop/environments/staging/runs":
		var body map[string]any
		require.NoError(f.t, json.NewDecoder(r.Body).Decode(&body))
		require.Equal(f.t, "v2", body["version"])
		switch f.createStatus {
		case http.StatusUnprocessableEntity:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"type": "about:blank", "title": "Unprocessable Entity", "status": 422, "detail": "1 field of the request is invalid; errors names it.",
				"errors": [{"field": "params.steps[1]", "message": "must be larger than 50"}]}`)
		case http.StatusUnauthorized:
			problem(w, http.StatusUnauthorized, "The API token is not valid: it is unknown, revoked or expired.")
		default:
			writeJSON(w, http.StatusCreated, f.run("pending"))
		}
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/runs/7":
		f.mu.Lock()
		f.reads++
		state := "running"
		if f.reads >= f.readsToFinish {
			state = f.final
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, f.run(state))
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/runs/7/events":
		if f.stream && r.Header.Get("Accept") == "text/event-stream" {
			f.mu.Lock()
			f.streamed++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, ": keep-alive\n\n")
			for _, ev := range fakeEvents {
				fmt.Fprintf(w, "id: %v\nevent: %s\ndata: %s\n\n", ev["id"], ev["type"], mustJSON(f.t, ev))
			}
			return
		}
		var after float64
		_, _ = fmt.Sscan(r.URL.Query().Get("after"), &after)
		items := []map[string]any{}
		for _, ev := range fakeEvents {
			if float64(ev["id"].(int)) > after {
				items = append(items, ev)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/runs/7/decisions":
		writeJSON(w, http.StatusOK, map[string]any{"items": []map[string]any{
			{"id": 1, "phase_index": 0, "at": "2026-01-01T00:00:05Z", "verdict": "continue", "explanation": "error rate within 2 points", "record": map[string]any{}},
		}})
	default:
		problem(w, http.StatusNotFound, "no such route")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

func TestDeployExitCodes(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		server *fakeServer
		args   []string
		code   int
		// stdout and stderr hold parts of the output.
		stdout, stderr string
	}{
		"succeeded, streamed": {
			server: &fakeServer{final: "succeeded", readsToFinish: 3, stream: true},
			args:   []string{"--wait"},
			code:   exitSucceeded,
			stdout: "phase.started  phase=0 name=canary-50",
		},
		"succeeded, polled": {
			server: &fakeServer{final: "succeeded", readsToFinish: 3},
			args:   []string{"--wait"},
			code:   exitSucceeded,
			stdout: "decision  phase=0 verdict=continue  error rate within 2 points",
		},
		"rolled back": {
			server: &fakeServer{final: "rolled_back", readsToFinish: 2, stream: true},
			args:   []string{"--wait"},
			code:   exitFailed,
			stderr: "run 7 rolled back",
		},
		"aborted": {
			server: &fakeServer{final: "aborted", readsToFinish: 1},
			args:   []string{"--wait"},
			code:   exitFailed,
		},
		"not waiting": {
			server: &fakeServer{final: "rolled_back", readsToFinish: 1},
			code:   exitSucceeded,
			stdout: "run 7 started",
		},
		"refused input": {
			server: &fakeServer{createStatus: http.StatusUnprocessableEntity},
			args:   []string{"--wait"},
			code:   exitUsage,
			stderr: "params.steps[1]: must be larger than 50",
		},
		"refused token": {
			server: &fakeServer{createStatus: http.StatusUnauthorized},
			code:   exitUnreachable,
			stderr: "401 Unauthorized",
		},
		"timed out": {
			server: &fakeServer{final: "succeeded", readsToFinish: 1 << 30},
			args:   []string{"--wait", "--timeout", "200ms"},
			code:   exitTimeout,
			stderr: "still running",
		},
		"retried after 503s": {
			server: &fakeServer{final: "succeeded", readsToFinish: 1, failFirst: 2},
			code:   exitSucceeded,
			stderr: "trying again",
		},
		"failing for good": {
			server: &fakeServer{failFirst: 100},
			code:   exitUnreachable,
			stderr: "503 Service Unavailable",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.server.t = t
			srv := httptest.NewServer(tc.server)
			t.Cleanup(srv.Close)
			c, stdout, stderr := testCLI(env{"FLIGHTDECK_URL": srv.URL, "FLIGHTDECK_TOKEN": "fdk_test", "CI_JOB_ID": "9"})
			args := append([]string{"deploy", "--app", "shop", "--env", "staging", "--version", "v2", "--param", "steps=[50,100]"}, tc.args...)
			code := c.run(context.Background(), args)
			require.Equal(t, tc.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			require.Contains(t, stdout.String(), tc.stdout)
			require.Contains(t, stderr.String(), tc.stderr)

			tc.server.mu.Lock()
			defer tc.server.mu.Unlock()
			require.NotEmpty(t, tc.server.keys)
			for _, k := range tc.server.keys {
				require.Equal(t, tc.server.keys[0], k, "every try carries the same idempotency key")
			}
			want, _ := idempotencyKey("", env{"CI_JOB_ID": "9"}.get, deployRequest{app: "shop", env: "staging", version: "v2", params: stringList{"steps=[50,100]"}}.keyParts()...)
			require.Equal(t, want, tc.server.keys[0])
			for _, tok := range tc.server.tokens {
				require.Equal(t, "Bearer fdk_test", tok)
			}
			if name == "failing for good" {
				require.Len(t, tc.server.keys, 3, "at most 3 tries")
			}
			if tc.server.stream && tc.code != exitUsage {
				require.Positive(t, tc.server.streamed, "the events were streamed")
			}
		})
	}
}

func TestFollowPrintsEachEventOnce(t *testing.T) {
	t.Parallel()
	f := &fakeServer{t: t, final: "succeeded", readsToFinish: 20, stream: true}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, stdout, stderr := testCLI(env{})
	code := c.run(context.Background(), []string{"events", "7", "--follow", "--url", srv.URL, "--token", "fdk_test"})
	require.Equal(t, exitSucceeded, code, stderr.String())
	// The fake stream ends at once and is reopened, sending the same
	// events again; each is printed once.
	require.Equal(t, 1, strings.Count(stdout.String(), "run.created"), stdout.String())
	require.Equal(t, 1, strings.Count(stdout.String(), "verdict=continue"), stdout.String())
	require.True(t, strings.HasSuffix(stdout.String(), "run 7 succeeded\n"), stdout.String())
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _, stderr := testCLI(env{"FLIGHTDECK_URL": url, "FLIGHTDECK_TOKEN": "fdk_test"})
	require.Equal(t, exitUnreachable, c.run(context.Background(), []string{"apps"}))
	require.Contains(t, stderr.String(), "cannot reach Flightdeck")
}

func TestReadEventStream(t *testing.T) {
	t.Parallel()
	in := ": hello\n\nid: 4\nevent: run.started\ndata: {\"id\":\r\ndata: 4}\r\n\nid: 5\ndata: x\n\n"
	var got []string
	require.NoError(t, readEventStream(strings.NewReader(in), func(id, data string) bool {
		got = append(got, id+"|"+data)
		return true
	}))
	require.Equal(t, []string{"4|{\"id\":\n4}", "5|x"}, got)
}
