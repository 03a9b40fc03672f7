package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlagsUsage(t *testing.T) {
	t.Parallel()
	conn := []string{"--url", "http://127.0.0.1:1", "--token", "fdk_test"}
	missing := filepath.Join(t.TempDir(), "missing.json")
	notJSON := filepath.Join(t.TempDir(), "state.txt")
	require.NoError(t, os.WriteFile(notJSON, []byte("enabled: true"), 0o600))
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{args: []string{"flags"}, code: exitUsage, stderr: "needs a subcommand"},
		{args: []string{"flags", "toggle"}, code: exitUsage, stderr: `unknown flags subcommand "toggle"`},
		{args: append([]string{"flags", "get", "shop"}, conn...), code: exitUsage, stderr: "needs APP FLAG"},
		{args: append([]string{"flags", "kill", "shop", "prod"}, conn...), code: exitUsage, stderr: "needs APP ENV FLAG"},
		{args: append([]string{"flags", "create", "shop"}, conn...), code: exitUsage, stderr: "--file is required"},
		{args: append([]string{"flags", "set", "shop", "prod", "new-checkout", "--file", missing}, conn...), code: exitUsage, stderr: "no such file"},
		{args: append([]string{"flags", "set", "shop", "prod", "new-checkout", "--file", notJSON}, conn...), code: exitUsage, stderr: "is not valid JSON"},
		{args: append([]string{"flags", "set", "shop", "prod", "new-checkout", "--file", notJSON, "--version", "-4"}, conn...), code: exitUsage, stderr: "--version must be 0 or more"},
		{args: append([]string{"flags", "eval", "shop", "prod", "new-checkout", "--context", `["u-1"]`}, conn...), code: exitUsage, stderr: "--context must be a JSON object"},
		{args: append([]string{"flags", "history", "shop", "new-checkout", "--limit", "0"}, conn...), code: exitUsage, stderr: "--limit must be 1 or more"},
		{args: []string{"flags", "list", "shop"}, code: exitUsage, stderr: "FLIGHTDECK_URL"},
	} {
		c, _, stderr := testCLI(env{})
		require.Equal(t, tc.code, c.run(context.Background(), tc.args), "%q: %s", tc.args, stderr)
		require.Contains(t, stderr.String(), tc.stderr, "%q", tc.args)
	}
	c, stdout, _ := testCLI(env{})
	require.Equal(t, exitSucceeded, c.run(context.Background(), []string{"flags", "--help"}))
	require.Contains(t, stdout.String(), "deployctl flags set APP ENV FLAG --file state.json")
	require.Equal(t, exitSucceeded, c.run(context.Background(), []string{"flags", "kill", "--help"}))
}

// TestFlagsAgainstTheServer releases a feature flag with deployctl against
// the real server: create it, set its state, ask what users get, pull the
// kill switch and read the history, as a pipeline or an on-call engineer
// would.
func TestFlagsAgainstTheServer(t *testing.T) {
	t.Parallel()
	url, token := startServer(t)
	api := func(method, path, body string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "%s %s: %s", method, path, b)
	}
	api(http.MethodPost, "/api/v1/apps", `{"slug": "shop", "name": "Shop"}`)
	api(http.MethodPost, "/api/v1/apps/shop/environments", `{"name": "prod", "tier": "production"}`)
	api(http.MethodPost, "/api/v1/apps/shop/environments", `{"name": "staging", "tier": "staging"}`)

	deployctl := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		c, stdout, stderr := testCLI(env{"FLIGHTDECK_URL": url, "FLIGHTDECK_TOKEN": token})
		c.stdin = strings.NewReader(stdin)
		code := c.run(context.Background(), append([]string{"flags"}, args...))
		return code, stdout.String(), stderr.String()
	}
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}

	flagFile := file("flag.json", `{"key": "new-checkout", "type": "boolean", "variants": {"on": true, "off": false},
		"default_variant": "off", "description": "The redesigned checkout page."}`)
	code, out, errOut := deployctl("", "create", "shop", "--file", flagFile)
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "flag new-checkout of shop created (boolean; variants off=false (default, when off), on=true)")

	code, out, errOut = deployctl(`{"key": "theme", "type": "string", "variants": {"light": "light", "dark": "dark"}, "default_variant": "light"}`,
		"create", "shop", "--file", "-")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "flag theme of shop created")

	code, _, errOut = deployctl(`{"key": "dark-mode", "type": "boolean", "variants": {"on": "yes"}, "default_variant": "on"}`, "create", "shop", "--file", "-")
	require.Equal(t, exitUsage, code, "a refused definition is the pipeline's mistake")
	require.Contains(t, errOut, "422 Unprocessable Entity")
	require.Contains(t, errOut, `variants["on"]: the value "yes" is a string`)

	code, out, errOut = deployctl("", "list", "shop")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "new-checkout\tboolean\tThe redesigned checkout page.\n  prod\tnot configured; off, serving off to everyone\n")
	require.Contains(t, out, "theme\tstring")

	// The state file carries no version: deployctl reads the current one.
	stateFile := file("state.json", `{"enabled": true, "rules": [{"name": "staff",
		"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}], "variant": "on"}],
		"default_rollout": {"variant": "off"}}`)
	code, out, errOut = deployctl("", "set", "shop", "prod", "new-checkout", "--file", stateFile)
	require.Equal(t, exitSucceeded, code, errOut)
	require.Equal(t, "flag new-checkout in shop/prod: on, 1 rule, default off (version 1)\n", out)
	code, out, errOut = deployctl("", "set", "shop", "prod", "new-checkout", "--file", stateFile)
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "(version 2)")

	code, _, errOut = deployctl("", "set", "shop", "prod", "new-checkout", "--file", stateFile, "--version", "1")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "409 Conflict")
	require.Contains(t, errOut, "is at version 2, not 1")
	require.Contains(t, errOut, "see it with deployctl flags get shop new-checkout")

	badState := file("bad.json", `{"enabled": true, "rules": [{"name": "beta", "segment": "beta", "variant": "on"}]}`)
	code, _, errOut = deployctl("", "set", "shop", "prod", "new-checkout", "--file", badState)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `rules[0].segment: unknown segment "beta"`)

	code, out, errOut = deployctl("", "eval", "shop", "prod", "new-checkout", "--context", `{"targetingKey": "u-1", "email": "ada@example.com"}`)
	require.Equal(t, exitSucceeded, code, errOut)
	require.Equal(t, "new-checkout in shop/prod: on (true), reason TARGETING_MATCH, rule \"staff\"\n", out)
	code, out, errOut = deployctl("", "eval", "shop", "prod", "new-checkout", "--context", `{"targetingKey": "u-2"}`)
	require.Equal(t, exitSucceeded, code, errOut)
	require.Equal(t, "new-checkout in shop/prod: off (false), reason DEFAULT\n", out)

	code, out, errOut = deployctl("", "kill", "shop", "prod", "new-checkout")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Equal(t, "flag new-checkout in shop/prod is off: off, serving off to everyone (version 3)\n", out)

	code, out, errOut = deployctl("", "eval", "shop", "prod", "new-checkout", "--context", `{"targetingKey": "u-1", "email": "ada@example.com"}`, "--json")
	require.Equal(t, exitSucceeded, code, errOut)
	var eval struct {
		Reason  string `json:"reason"`
		Variant string `json:"variant"`
		Value   any    `json:"value"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &eval), out)
	require.Equal(t, "DISABLED", eval.Reason)
	require.Equal(t, false, eval.Value)

	code, out, errOut = deployctl("", "get", "shop", "new-checkout")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "flag new-checkout of shop: boolean, version 1\n")
	require.Contains(t, out, "prod: off, serving off to everyone (version 3, by token:bootstrap-admin at ")
	require.Contains(t, out, `  rule 1 "staff": email ends_with ["@example.com"] → on`)
	require.Contains(t, out, "staging: not configured; off, serving off to everyone\n")

	code, out, errOut = deployctl("", "history", "shop", "new-checkout")
	require.Equal(t, exitSucceeded, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	for i, want := range []string{"flag.killed", "flag.state_changed", "flag.state_changed", "flag.created"} {
		require.Contains(t, lines[i], want)
		require.Contains(t, lines[i], "token:bootstrap-admin")
	}
	require.Contains(t, lines[0], "prod")
	require.Contains(t, lines[0], "off by the kill switch")
	require.Contains(t, lines[3], "every environment")

	code, out, errOut = deployctl("", "history", "shop", "new-checkout", "--limit", "2", "--json")
	require.Equal(t, exitSucceeded, code, errOut)
	var history struct {
		Items []struct {
			Type string `json:"type"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &history), out)
	require.Len(t, history.Items, 2)
	require.Equal(t, "flag.killed", history.Items[0].Type)

	code, _, errOut = deployctl("", "get", "shop", "old-checkout")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `app "shop" has no flag "old-checkout"`)
	code, _, errOut = deployctl("", "kill", "shop", "qa", "new-checkout")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `no environment named "qa"`)
}

// TestFlagRolloutAgainstTheServer starts, reads and cancels a guarded
// rollout with deployctl against the real server.
func TestFlagRolloutAgainstTheServer(t *testing.T) {
	t.Parallel()
	url, token := startServer(t)
	api := func(method, path, body string, status int) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, b)
	}
	api(http.MethodPost, "/api/v1/apps", `{"slug": "shop", "name": "Shop"}`, http.StatusCreated)
	api(http.MethodPost, "/api/v1/apps/shop/environments", `{"name": "prod", "tier": "production"}`, http.StatusCreated)
	api(http.MethodPost, "/api/v1/apps/shop/flags", `{"key": "new-checkout", "type": "boolean",
		"variants": {"true": true, "false": false}, "default_variant": "false"}`, http.StatusCreated)

	deployctl := func(args ...string) (int, string, string) {
		t.Helper()
		c, stdout, stderr := testCLI(env{"FLIGHTDECK_URL": url, "FLIGHTDECK_TOKEN": token})
		code := c.run(context.Background(), append([]string{"flags", "rollout"}, args...))
		return code, stdout.String(), stderr.String()
	}
	code, _, errOut := deployctl("start", "shop", "prod", "new-checkout")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "needs --bake")
	code, _, errOut = deployctl("start", "shop", "prod", "new-checkout", "--bake", "30m", "--steps", "5,50")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "the last step is 50%; it must be 100")
	code, _, errOut = deployctl("status", "shop", "prod", "new-checkout")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "never had a guarded rollout")

	code, out, errOut := deployctl("start", "shop", "prod", "new-checkout", "--bake", "30m", "--steps", "5%, 25, 50, 100")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, `of new-checkout in prod: running, "true" over "false"`)
	require.Contains(t, out, "steps    [5%] → 25% → 50% → 100%, 30m each")
	require.Contains(t, out, "now      5% of users")

	code, _, errOut = deployctl("start", "shop", "prod", "new-checkout", "--bake", "30m")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "409 Conflict")

	code, out, errOut = deployctl("cancel", "shop", "prod", "new-checkout")
	require.Equal(t, exitSucceeded, code, errOut)
	require.Contains(t, out, "cancelled")
	require.Contains(t, out, "outcome  Cancelled by token:bootstrap-admin at 5%")

	code, out, errOut = deployctl("status", "shop", "prod", "new-checkout", "--json")
	require.Equal(t, exitSucceeded, code, errOut)
	var r struct {
		State   string  `json:"state"`
		Percent float64 `json:"percent"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Equal(t, "cancelled", r.State)
	require.Equal(t, 5.0, r.Percent)
}
