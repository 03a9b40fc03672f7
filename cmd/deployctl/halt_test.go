package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHaltCommands(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	active := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Method+" "+r.URL.Path+" "+string(body))
		if r.Header.Get("Authorization") != "Bearer fdk_test" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "POST /api/v1/halt":
			if active {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"type":"about:blank","title":"Conflict","status":409,"detail":"the line is already stopped by user:oncall: incident"}`)
				return
			}
			active = true
			_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "reason": "incident", "halted_by": "token:ci", "runs": []int64{3, 4}})
		case "POST /api/v1/halt/lift":
			active = false
			_ = json.NewEncoder(w).Encode(map[string]any{"active": false, "runs": []int64{3}})
		case "GET /api/v1/halt":
			_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "reason": "incident", "halted_by": "token:ci", "halted_at": "2026-03-02T09:00:00Z"})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	vars := env{"FLIGHTDECK_URL": srv.URL, "FLIGHTDECK_TOKEN": "fdk_test"}
	ctx := context.Background()

	for _, args := range [][]string{{"halt"}, {"halt", "--reason", " "}, {"halt", "pause"}, {"halt", "lift", "--reason", "x"}, {"halt", "lift", "now"}} {
		c, _, stderr := testCLI(vars)
		require.Equal(t, exitUsage, c.run(ctx, args), "%v: %s", args, stderr)
	}
	require.Empty(t, seen, "bad usage sends nothing")

	c, stdout, stderr := testCLI(vars)
	require.Equal(t, exitSucceeded, c.run(ctx, []string{"halt", "--reason", "incident"}), stderr.String())
	require.Equal(t, "the line is stopped: incident; 2 runs paused\n", stdout.String())
	require.Equal(t, `POST /api/v1/halt {"reason":"incident"}`, seen[0])

	c, _, stderr = testCLI(vars)
	require.Equal(t, exitUsage, c.run(ctx, []string{"halt", "--reason", "again"}))
	require.Contains(t, stderr.String(), "already stopped")

	c, stdout, _ = testCLI(vars)
	require.Equal(t, exitSucceeded, c.run(ctx, []string{"halt", "status"}))
	require.Contains(t, stdout.String(), "stopped\tincident\tby token:ci")

	c, stdout, _ = testCLI(vars)
	require.Equal(t, exitSucceeded, c.run(ctx, []string{"halt", "lift"}))
	require.Equal(t, "the line is running again; 1 run resumed\n", stdout.String())
}
