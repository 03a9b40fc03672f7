package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// engineLease is how long a run claimed by an engine stays reserved for it
// (engine.Config.Lease, 30s by default, which the server keeps): a replica
// that dies holding a run's lease delays that run by at most this much.
const engineLease = 30 * time.Second

// replicaRunPhases and replicaBake shape the test's runs: a rolling
// deployment of one instance at a time on a fleet of replicaRunPhases
// instances, each batch baking replicaBake, so a run lasts long enough to
// be stepped by both replicas and to outlive one of them.
const (
	replicaRunPhases = 4
	replicaBake      = 3 * time.Second
	replicaRuns      = 4
)

// replicaEvent is a run event as the REST API shows it.
type replicaEvent struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Type    string         `json:"type"`
	Actor   string         `json:"actor"`
	Payload map[string]any `json:"payload"`
}

// allEvents returns every event of the run, oldest first.
func allEvents(t testing.TB, rest *benchREST, runID int64) []replicaEvent {
	t.Helper()
	var out []replicaEvent
	var after int64
	for {
		var page struct {
			Items []replicaEvent `json:"items"`
		}
		rest.decode(rest.must("GET", fmt.Sprintf("/api/v1/runs/%d/events?after=%d", runID, after), "", http.StatusOK), &page)
		if len(page.Items) == 0 {
			return out
		}
		out = append(out, page.Items...)
		after = page.Items[len(page.Items)-1].ID
	}
}

// runState reads the run's state through the REST API.
func runState(t testing.TB, rest *benchREST, runID int64) string {
	t.Helper()
	var run struct {
		State string `json:"state"`
	}
	rest.decode(rest.must("GET", fmt.Sprintf("/api/v1/runs/%d", runID), "", http.StatusOK), &run)
	return run.State
}

// committedSteps reads how many run steps the replica's engine committed.
func committedSteps(t testing.TB, s *server) int {
	t.Helper()
	code, body := s.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, `flightdeck_engine_steps_total{outcome="committed"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	return 0
}

// liveViewer is a run page open on one replica; it notes the run events
// whose fragments reach it.
type liveViewer struct {
	conn *websocket.Conn
	mu   sync.Mutex
	seen map[int64]bool
}

func openLiveViewer(t testing.TB, s *server, cookie *http.Cookie, runID, after int64) *liveViewer {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.url, "http") + fmt.Sprintf("/ws/runs/%d", runID)
	conn, res, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {s.url}, "Cookie": {cookie.String()}})
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	require.NoError(t, err, "opening the live run page on %s", s.url)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"resume": {"event": %d}}`, after)))
	v := &liveViewer{conn: conn, seen: map[int64]bool{}}
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			rest := data
			for {
				i := strings.Index(string(rest), `data-event-id="`)
				if i < 0 {
					break
				}
				rest = rest[i+len(`data-event-id="`):]
				end := strings.IndexByte(string(rest), '"')
				if end < 0 {
					break
				}
				if id, err := strconv.ParseInt(string(rest[:end]), 10, 64); err == nil {
					v.mu.Lock()
					v.seen[id] = true
					v.mu.Unlock()
				}
			}
		}
	}()
	return v
}

func (v *liveViewer) saw(id int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seen[id]
}

// TestReplicasShareRunsAndSurviveAKilledReplica runs two servers against
// one database, as two replicas behind a load balancer would: they share
// the runs without stepping any phase twice, a viewer on either sees the
// same live run, and when one replica is killed the other finishes its
// runs within a lease period.
func TestReplicasShareRunsAndSurviveAKilledReplica(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.URL(t)
	token, _, _, err := auth.Generate()
	require.NoError(t, err)
	password := "replicas-" + token[len(token)-24:]
	env := []string{"DATABASE_URL=" + dbURL, "FLIGHTDECK_ADMIN_TOKEN=" + token, "FLIGHTDECK_ADMIN_PASSWORD=" + password, "FLIGHTDECK_LOG_LEVEL=info"}
	a := startServer(t, env, "--analysis-interval", "1s", "--demo", "off")
	b := startServer(t, env, "--analysis-interval", "1s", "--demo", "off")
	restA := &benchREST{t: t, base: a.url, token: token}
	restB := &benchREST{t: t, base: b.url, token: token}

	// Each replica runs its own engine, named in its log.
	engineOf := func(s *server) string {
		lines := s.logLines("engine started")
		require.Len(t, lines, 1)
		id, _ := lines[0]["engine"].(string)
		require.NotEmpty(t, id)
		return id
	}
	engineA, engineB := engineOf(a), engineOf(b)
	require.NotEqual(t, engineA, engineB, "each replica's engine has its own id")

	// Environments already running v1.0.0 on a simulated fleet, each
	// taking one run: a rolling deployment, one instance a batch.
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool, store.Options{})
	restA.must("POST", "/api/v1/apps", `{"slug": "checkout", "name": "Checkout"}`, http.StatusCreated)
	app, err := st.App(ctx, "checkout")
	require.NoError(t, err)
	runIDs := make([]int64, replicaRuns)
	for i := range replicaRuns {
		rest := restA
		if i%2 == 1 {
			rest = restB
		}
		name := fmt.Sprintf("region-%d", i)
		rest.must("POST", "/api/v1/apps/checkout/environments", fmt.Sprintf(
			`{"name": %q, "driver": {"type": "simulator", "instances": %d}, "strategy_defaults": {"rolling": {"batch_size": 1, "bake": %q, "analysis": false}}}`,
			name, replicaRunPhases, replicaBake), http.StatusCreated)
		e, err := st.Environment(ctx, app.ID, name)
		require.NoError(t, err)
		require.NoError(t, st.SetStableVersion(ctx, e.ID, "v1.0.0"))
	}
	// Runs are started through both replicas, as CI behind a load
	// balancer would.
	for i := range replicaRuns {
		rest := restA
		if i%2 == 1 {
			rest = restB
		}
		var run struct {
			ID int64 `json:"id"`
		}
		rest.decode(rest.must("POST", fmt.Sprintf("/api/v1/apps/checkout/environments/region-%d/runs", i),
			`{"version": "v2.0.0", "strategy": "rolling"}`, http.StatusCreated), &run)
		runIDs[i] = run.ID
	}
	watched := runIDs[0]
	require.Eventually(t, func() bool { return runState(t, restA, watched) == "running" }, 30*time.Second, 50*time.Millisecond,
		"the replicas did not start run %d", watched)

	// A viewer on each replica opens the same run; an action sent to
	// replica A reaches both, through Postgres.
	cookieA := sessionCookie(t, a.url, "admin", password)
	cookieB := sessionCookie(t, b.url, "admin", password)
	last := restA.lastEvent(watched)
	viewA := openLiveViewer(t, a, cookieA, watched, last)
	viewB := openLiveViewer(t, b, cookieB, watched, last)
	restA.must("POST", fmt.Sprintf("/api/v1/runs/%d/actions/pause", watched), `{"comment": "checking the dashboards"}`, http.StatusOK)
	paused, last := restA.eventOf(watched, last, "run.paused")
	require.Eventually(t, func() bool { return viewA.saw(paused) && viewB.saw(paused) }, 10*time.Second, 20*time.Millisecond,
		"event %d (run.paused) reached replica A's viewer: %v, replica B's: %v", paused, viewA.saw(paused), viewB.saw(paused))
	restA.must("POST", fmt.Sprintf("/api/v1/runs/%d/actions/resume", watched), "", http.StatusOK)
	resumed, _ := restA.eventOf(watched, last, "run.resumed")
	require.Eventually(t, func() bool { return viewA.saw(resumed) && viewB.saw(resumed) }, 10*time.Second, 20*time.Millisecond,
		"event %d (run.resumed) reached replica A's viewer: %v, replica B's: %v", resumed, viewA.saw(resumed), viewB.saw(resumed))
	// Sessions live in Postgres too: replica A's sign-in works on B.
	lateViewer := openLiveViewer(t, b, cookieA, watched, 0)
	require.Eventually(t, func() bool { return lateViewer.saw(paused) && lateViewer.saw(resumed) }, 10*time.Second, 20*time.Millisecond,
		"a viewer signed in on replica A and watching on B catches up with the run's history")

	// Both engines take a share of the steps.
	require.Eventually(t, func() bool { return committedSteps(t, a) > 0 && committedSteps(t, b) > 0 }, 30*time.Second, 100*time.Millisecond,
		"both replicas should step runs: A committed %d steps, B %d", committedSteps(t, a), committedSteps(t, b))

	// Replica A dies without a chance to release anything.
	unfinished := map[int64]bool{}
	for _, id := range runIDs {
		switch runState(t, restB, id) {
		case "succeeded", "rolled_back", "aborted", "failed":
		default:
			unfinished[id] = true
		}
	}
	require.NotEmpty(t, unfinished, "every run finished before the replica was killed; the runs are too short for this test")
	stepsBBefore := committedSteps(t, b)
	t.Logf("before the kill: replica A (%s) committed %d steps, replica B (%s) %d; %d of %d runs unfinished",
		engineA, committedSteps(t, a), engineB, stepsBBefore, len(unfinished), len(runIDs))
	killedAt := time.Now()
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	<-a.done
	for id := range unfinished {
		if run, err := st.Run(ctx, id); err == nil && run.LeaseOwner != "" {
			t.Logf("run %d was leased by %s when replica A (%s) was killed", id, run.LeaseOwner, engineA)
		}
	}

	// The survivor finishes every run: within a lease for runs A held,
	// plus the bake under way and the remaining phases.
	budget := engineLease + replicaRunPhases*replicaBake + 15*time.Second
	require.Eventually(t, func() bool {
		for _, id := range runIDs {
			if runState(t, restB, id) != "succeeded" {
				return false
			}
		}
		return true
	}, budget, 200*time.Millisecond, "the surviving replica did not finish the runs within %s", budget)
	require.Greater(t, committedSteps(t, b), stepsBBefore, "the surviving replica stepped the runs after the kill")

	for _, id := range runIDs {
		events := allEvents(t, restB, id)
		applied := map[int]int{}
		started := map[int]int{}
		firstAfterKill := time.Time{}
		for _, ev := range events {
			phase, hasPhase := ev.Payload["phase"].(float64)
			switch ev.Type {
			case "phase.applied":
				require.True(t, hasPhase, "run %d: phase.applied without a phase: %v", id, ev.Payload)
				applied[int(phase)]++
			case "phase.started":
				require.True(t, hasPhase, "run %d: phase.started without a phase: %v", id, ev.Payload)
				started[int(phase)]++
			}
			if ev.Actor == "engine" && ev.At.After(killedAt) && firstAfterKill.IsZero() {
				firstAfterKill = ev.At
			}
		}
		// Every phase was applied exactly once, whichever replica
		// stepped it, and entered once.
		for p := range replicaRunPhases {
			require.Equal(t, 1, applied[p], "run %d: phase %d applied %d times: %v", id, p, applied[p], eventTypes(events))
			if p > 0 {
				require.Equal(t, 1, started[p], "run %d: phase %d started %d times: %v", id, p, started[p], eventTypes(events))
			}
		}
		require.Len(t, applied, replicaRunPhases, "run %d: phases applied: %v", id, applied)
		if unfinished[id] {
			require.False(t, firstAfterKill.IsZero(), "run %d has no step after the kill", id)
			waited := firstAfterKill.Sub(killedAt)
			t.Logf("run %d: first step on the surviving replica %s after the kill", id, waited.Round(time.Millisecond))
			require.LessOrEqual(t, waited, engineLease+replicaBake+5*time.Second,
				"run %d waited %s after the kill before the surviving replica stepped it", id, waited)
		}
	}
}

// eventTypes lists the events' types, to show a run's history in a failure.
func eventTypes(events []replicaEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.Type
	}
	return out
}
