package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// call sends one REST request as CI would, with the admin token, and
// returns the status and the body.
func (f flightdeck) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.URL+path, reader)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// mustCall is call that requires the answer to have status want and
// decodes its body into out, when out is not nil.
func (f flightdeck) mustCall(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	status, b := f.call(t, method, path, body)
	require.Equal(t, want, status, "%s %s answered %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
}

// run is the part of the API's Run the tests look at.
type run struct {
	ID          int64   `json:"id"`
	State       string  `json:"state"`
	PhaseIndex  int     `json:"phase_index"`
	Phase       *string `json:"phase"`
	Reason      string  `json:"reason"`
	FromVersion *string `json:"from_version"`
	ToVersion   string  `json:"to_version"`
	Phases      []struct {
		Index  int    `json:"index"`
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Status string `json:"status"`
	} `json:"phases"`
	Weights []struct {
		Version string `json:"version"`
		Weight  int    `json:"weight"`
	} `json:"weights"`
}

// phaseKind is the kind of the run's current phase, or "" before it starts.
func (r run) phaseKind() string {
	if r.PhaseIndex < len(r.Phases) {
		return r.Phases[r.PhaseIndex].Kind
	}
	return ""
}

// String describes the run for failure messages.
func (r run) String() string {
	phase := ""
	if r.Phase != nil {
		phase = *r.Phase
	}
	return fmt.Sprintf("run %d of %s: %s in phase %d %q (%s)", r.ID, r.ToVersion, r.State, r.PhaseIndex, phase, r.Reason)
}

// finalStates are the states a run never leaves.
var finalStates = []string{"succeeded", "rolled_back", "aborted", "failed"}

// startRun starts a run of version in app/env with a strategy and its
// parameters, as CI would.
func (f flightdeck) startRun(t *testing.T, app, env, version, strategy string, params map[string]any) run {
	t.Helper()
	body := map[string]any{"version": version, "strategy": strategy, "reason": "release " + version}
	if params != nil {
		body["params"] = params
	}
	var r run
	f.mustCall(t, http.MethodPost, "/api/v1/apps/"+app+"/environments/"+env+"/runs", body, http.StatusCreated, &r)
	return r
}

// getRun reads a run.
func (f flightdeck) getRun(t *testing.T, id int64) run {
	t.Helper()
	var r run
	f.mustCall(t, http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", id), nil, http.StatusOK, &r)
	return r
}

// waitRun polls a run until until holds, failing when it does not within
// the deadline or the run ends in another state first.
func (f flightdeck) waitRun(t *testing.T, id int64, within time.Duration, what string, until func(run) bool) run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := f.getRun(t, id)
		if until(r) {
			return r
		}
		if slices.Contains(finalStates, r.State) {
			t.Fatalf("waiting for %s, the run ended: %s", what, r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s for %s: %s", what, within, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFinal polls a run until it is in a final state and requires it to be
// want.
func (f flightdeck) waitFinal(t *testing.T, id int64, within time.Duration, want string) run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := f.getRun(t, id)
		if slices.Contains(finalStates, r.State) {
			require.Equal(t, want, r.State, "%s", r)
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end within %s: %s", within, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// act asks for an action on a run, as a release manager or CI would.
func (f flightdeck) act(t *testing.T, id int64, action, comment string) {
	t.Helper()
	f.mustCall(t, http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/actions/%s", id, action),
		map[string]any{"comment": comment}, http.StatusOK, nil)
}

// decision is the part of a decision record the tests look at.
type decision struct {
	PhaseIndex  int    `json:"phase_index"`
	Verdict     string `json:"verdict"`
	Explanation string `json:"explanation"`
	Record      struct {
		Metrics []struct {
			Metric     string  `json:"metric"`
			Candidate  float64 `json:"candidate"`
			Baseline   float64 `json:"baseline"`
			CandidateN int64   `json:"candidate_n"`
			Outcome    string  `json:"outcome"`
		} `json:"metrics"`
		Path map[string]bool `json:"path"`
	} `json:"record"`
}

// decisions lists a run's decision records.
func (f flightdeck) decisions(t *testing.T, id int64) []decision {
	t.Helper()
	var list struct {
		Items []decision `json:"items"`
	}
	f.mustCall(t, http.MethodGet, fmt.Sprintf("/api/v1/runs/%d/decisions", id), nil, http.StatusOK, &list)
	return list.Items
}
