package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// slowDeploySystem answers that a desired state is in progress a set number
// of times for each generation before it reports it done, as a deploy
// system that confirms completion later would.
type slowDeploySystem struct {
	mu      sync.Mutex
	pending int
	asked   map[string]int
	err     error
}

func (s *slowDeploySystem) Apply(_ context.Context, req driver.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := fmt.Sprintf("%d/%d", req.RunID, req.Generation)
	s.asked[key]++
	if s.err != nil {
		return s.err
	}
	if s.asked[key] <= s.pending {
		return fmt.Errorf("%w: generation %d is being deployed", driver.ErrInProgress, req.Generation)
	}
	return nil
}

func TestInProgressDriverIsWaitedForWithoutCountingAttempts(t *testing.T) {
	t.Parallel()
	h := setup(t)
	// More in-progress answers per generation than the engine allows failed
	// attempts: waiting must not use them up.
	slow := &slowDeploySystem{pending: 8, asked: map[string]int{}}
	h.drivers.Register("webhook", slow)
	env := h.env("prod", func(e *store.Environment) { e.Driver = json.RawMessage(`{"type": "webhook"}`) })
	run := h.start(env, "canary", `{"steps": [50, 100], "step_bake": "1m"}`)

	got := h.driveUntilState(run.ID, store.RunSucceeded)
	require.Equal(t, "v2", got.ToVersion)
	for _, ev := range h.events(run.ID) {
		require.NotEqual(t, "driver.error", ev.Type, "waiting for the driver is not an error: %s", ev.Payload)
	}
	slow.mu.Lock()
	defer slow.mu.Unlock()
	for key, n := range slow.asked {
		require.Equal(t, slow.pending+1, n, "generation %s was asked until it was done", key)
	}
}

func TestPermanentErrorWinsOverInProgress(t *testing.T) {
	t.Parallel()
	h := setup(t)
	slow := &slowDeploySystem{asked: map[string]int{},
		err: driver.Permanent(fmt.Errorf("%w: the deploy system gave up", driver.ErrInProgress))}
	h.drivers.Register("webhook", slow)
	env := h.env("prod", func(e *store.Environment) {
		e.Driver = json.RawMessage(`{"type": "webhook"}`)
		e.FailurePolicy = "pause"
	})
	run := h.start(env, "canary", `{"steps": [50, 100], "step_bake": "1m"}`)

	got := h.driveUntilState(run.ID, store.RunPaused)
	require.Contains(t, got.Reason, "the deploy system gave up")
}

// chattyDeploySystem reports what it did for every desired state, as a
// driver that runs commands does.
type chattyDeploySystem struct{}

func (chattyDeploySystem) Apply(_ context.Context, req driver.Request) error {
	if req.Report != nil {
		req.Report(fmt.Sprintf("ran deploy for generation %d", req.Generation), "pulled image; 2 instances started")
	}
	return nil
}

func TestWhatADriverReportsIsInTheRunsEvents(t *testing.T) {
	t.Parallel()
	h := setup(t)
	h.drivers.Register("nginx", chattyDeploySystem{})
	env := h.env("prod", func(e *store.Environment) { e.Driver = json.RawMessage(`{"type": "nginx"}`) })
	run := h.start(env, "canary", `{"steps": [50, 100], "step_bake": "1m"}`)
	h.driveUntilState(run.ID, store.RunSucceeded)

	var reports []map[string]any
	for _, ev := range h.events(run.ID) {
		if ev.Type == "driver.output" {
			var p map[string]any
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			reports = append(reports, p)
		}
	}
	require.NotEmpty(t, reports)
	require.Equal(t, "pulled image; 2 instances started", reports[0]["output"])
	require.Contains(t, reports[0]["summary"], "ran deploy for generation")
}
