package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/examples/webhook-receiver/receiver"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/webhook"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// secret is the secret the environment and its receiver share.
const secret = "a-shared-secret-of-32-bytes-long"

// clock is a test clock that only moves when told; the store, the engine
// and the receiver all read it, so a bake of minutes passes at once and
// signatures stay within the receiver's replay window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// healthy judges every phase healthy, so runs go on as planned.
type healthy struct{}

func (healthy) Analyze(context.Context, engine.AnalysisRequest) (engine.Analysis, error) {
	return engine.Analysis{Verdict: engine.VerdictContinue, Explanation: "healthy", Record: json.RawMessage(`{}`)}, nil
}

// wire is one HTTP request as it reached the receiver.
type wire struct {
	header http.Header
	body   []byte
	status int
}

// fixture is a Flightdeck (store, engine and REST API) with a checkout app
// whose production environment deploys through the webhook driver to a
// receiver.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock
	store  *store.Store
	engine *engine.Engine
	api    *httptest.Server
	token  string
	app    store.App
	env    store.Environment

	recv     *receiver.Handler
	mu       sync.Mutex
	applied  []receiver.Delivery
	requests []wire
	url      string
}

// options shape a fixture.
type options struct {
	// async makes the receiver answer 202 and report later.
	async bool
	// apply is the receiver's deploy; nil succeeds.
	apply func(receiver.Delivery) error
	// receiver replaces the example receiver at the environment's URL.
	receiver http.Handler
	// config is merged over the environment's driver configuration.
	config map[string]any
}

func setup(t *testing.T, opts options) *fixture {
	t.Helper()
	t.Parallel()
	f := &fixture{t: t, ctx: context.Background(), clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.store = store.New(dbtest.New(t), store.Options{Now: f.clock.Now})
	drivers := driver.NewRegistry()
	drivers.Register(webhook.Type, webhook.New(webhook.Options{Store: f.store, Logger: quiet}))
	var err error
	f.engine, err = engine.New(engine.Config{Store: f.store, Drivers: drivers, Analyzer: healthy{}, Now: f.clock.Now,
		Logger: quiet, AnalysisInterval: time.Minute, Lease: time.Minute})
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	f.api = httptest.NewServer(api.New(api.Config{Logger: quiet, Resources: f.store, Tokens: f.store,
		Runs: f.engine, RunStore: f.store, Gatherer: reg, Registerer: reg}))
	t.Cleanup(f.api.Close)
	admin, err := f.store.EnsureAdminUser(f.ctx, "admin")
	require.NoError(t, err)
	plain, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	_, err = f.store.CreateToken(f.ctx, store.NewToken{Name: "receiver", Hash: hash, Prefix: prefix,
		Scopes: []auth.Scope{auth.ScopeDeploy}, UserID: admin.ID})
	require.NoError(t, err)
	f.token = plain

	handler := opts.receiver
	if handler == nil {
		cfg := receiver.Config{Secret: []byte(secret), Now: f.clock.Now, Logger: quiet,
			Apply: func(_ context.Context, d receiver.Delivery) error {
				if opts.apply != nil {
					if err := opts.apply(d); err != nil {
						return err
					}
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				f.applied = append(f.applied, d)
				return nil
			}}
		if opts.async {
			cfg.Async = true
			cfg.Reporter = &receiver.Reporter{BaseURL: f.api.URL, Token: f.token, Attempts: 1}
		}
		f.recv = receiver.New(cfg)
		handler = f.recv
	}
	srv := httptest.NewServer(f.recording(handler))
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/hooks/flightdeck"

	config := map[string]any{"type": "webhook", "url": f.url, "secret": secret, "timeout": "2s", "deadline": "2m"}
	for k, v := range opts.config {
		config[k] = v
	}
	raw, err := json.Marshal(config)
	require.NoError(t, err)
	f.app, err = f.store.CreateApp(f.ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := f.store.CreateEnvironment(f.ctx, store.Environment{AppID: f.app.ID, Name: "production", Tier: "production", Driver: raw})
	require.NoError(t, err)
	env.StableVersion, env.FailurePolicy = "v1", "pause"
	f.env, err = f.store.UpdateEnvironment(f.ctx, env)
	require.NoError(t, err)
	return f
}

// recording keeps every request the receiver got, and its answer.
func (f *fixture) recording(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		f.mu.Lock()
		f.requests = append(f.requests, wire{header: r.Header.Clone(), body: body, status: rec.Code})
		f.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// start starts a canary of v2 in two steps.
func (f *fixture) start() store.Run {
	f.t.Helper()
	run, created, err := f.engine.CreateRun(f.ctx, engine.NewRun{App: f.app, Environment: f.env, Version: "v2",
		Strategy: "canary", Params: json.RawMessage(`{"steps": [25, 100], "step_bake": "2m"}`), CreatedBy: "user:release-manager"})
	require.NoError(f.t, err)
	require.True(f.t, created)
	return run
}

// drive steps the engine, moving the clock to the next due evaluation
// whenever nothing is due, until the run is in one of the states.
func (f *fixture) drive(id int64, states ...store.RunState) store.Run {
	f.t.Helper()
	for range 5000 {
		run, err := f.store.Run(f.ctx, id)
		require.NoError(f.t, err)
		for _, s := range states {
			if run.State == s {
				return run
			}
		}
		n, err := f.engine.RunOnce(f.ctx)
		require.NoError(f.t, err)
		if f.recv != nil {
			// Reports of accepted deliveries go out before time moves on.
			f.recv.Wait()
		}
		if n > 0 {
			continue
		}
		next, err := f.store.NextDue(f.ctx)
		require.NoError(f.t, err)
		require.NotNil(f.t, next, "nothing is scheduled; run %d is %s: %s", id, run.State, run.Reason)
		f.clock.Set(*next)
	}
	f.t.Fatalf("run %d did not reach %v", id, states)
	return store.Run{}
}

func (f *fixture) events(id int64, typ string) []store.RunEvent {
	f.t.Helper()
	all, err := f.store.ListRunEvents(f.ctx, id, 0, 10_000)
	require.NoError(f.t, err)
	var out []store.RunEvent
	for _, ev := range all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (f *fixture) deliveries() ([]receiver.Delivery, []wire) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]receiver.Delivery(nil), f.applied...), append([]wire(nil), f.requests...)
}

func TestCanaryMovesPhaseByPhaseThroughVerifiedDeliveries(t *testing.T) {
	f := setup(t, options{})
	run := f.start()
	done := f.drive(run.ID, store.RunSucceeded, store.RunPaused, store.RunRolledBack, store.RunFailed)
	require.Equal(t, store.RunSucceeded, done.State, done.Reason)

	applied, requests := f.deliveries()
	phases, err := f.store.ListRunPhases(f.ctx, run.ID)
	require.NoError(t, err)
	require.Len(t, applied, len(phases), "each phase's state is delivered exactly once")
	require.Len(t, requests, len(phases))
	for i, d := range applied {
		require.Equal(t, run.ID, d.RunID)
		require.Equal(t, int64(i+1), d.Generation)
		require.Equal(t, i, d.PhaseIndex)
		require.Equal(t, phases[i].Name, d.Phase)
		require.Equal(t, "checkout", d.App)
		require.Equal(t, "production", d.Environment)
		require.Equal(t, fmt.Sprintf("/api/v1/runs/%d/driver-status", run.ID), d.StatusPath)
		require.Equal(t, requests[i].header.Get(webhook.DeliveryHeader), d.DeliveryID)
		require.Equal(t, http.StatusOK, requests[i].status)
	}
	weights := map[string]int{}
	for _, v := range applied[len(applied)-1].Versions {
		weights[v.Version] = v.Weight
	}
	require.Equal(t, 100, weights["v2"], "the last phase sends all traffic to v2")
	require.Len(t, f.events(run.ID, "phase.applied"), len(phases))
	require.Empty(t, f.events(run.ID, "driver.error"))

	// A delivery captured on the wire and sent again is refused.
	replay, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(requests[0].body))
	require.NoError(t, err)
	replay.Header = requests[0].header.Clone()
	resp, err := http.DefaultClient.Do(replay)
	require.NoError(t, err)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, string(answer), "was already received")
	again, _ := f.deliveries()
	require.Len(t, again, len(applied), "a replay applies nothing")
}

func TestBadSignatureIsRefusedAndFailsThePhase(t *testing.T) {
	f := setup(t, options{config: map[string]any{"secret": "not-the-receivers-secret"}})
	run := f.start()
	paused := f.drive(run.ID, store.RunPaused, store.RunSucceeded)
	require.Equal(t, store.RunPaused, paused.State)
	require.Contains(t, paused.Reason, `the receiver refused generation 1 with 401 Unauthorized: "the signature does not match the body; check the shared secret"`)
	applied, requests := f.deliveries()
	require.Empty(t, applied, "nothing unverified is applied")
	require.Len(t, requests, 1, "a refusal is not retried")
}

func TestAcceptedDeliveryCompletesThroughTheDriverStatusEndpoint(t *testing.T) {
	f := setup(t, options{async: true})
	run := f.start()
	done := f.drive(run.ID, store.RunSucceeded, store.RunPaused, store.RunRolledBack, store.RunFailed)
	require.Equal(t, store.RunSucceeded, done.State, done.Reason)

	applied, requests := f.deliveries()
	for _, r := range requests {
		require.Equal(t, http.StatusAccepted, r.status)
	}
	statuses := f.events(run.ID, "driver.status")
	require.Len(t, statuses, len(applied), "every accepted delivery was reported")
	for i, ev := range statuses {
		require.Equal(t, "token:receiver", ev.Actor)
		require.JSONEq(t, fmt.Sprintf(`{"generation": %d, "ok": true, "message": "applied", "driver": "webhook"}`, i+1), string(ev.Payload))
		d, err := f.store.Delivery(f.ctx, run.ID, int64(i+1))
		require.NoError(t, err)
		require.Equal(t, store.DeliverySucceeded, d.Status)
		require.Equal(t, 1, d.Attempts)
	}
}

func TestFailureReportedByTheDeploySystemFailsThePhase(t *testing.T) {
	f := setup(t, options{async: true, apply: func(d receiver.Delivery) error {
		if d.PhaseIndex == 1 {
			return errors.New("helm: image checkout:v2 could not be pulled")
		}
		return nil
	}})
	run := f.start()
	paused := f.drive(run.ID, store.RunPaused, store.RunSucceeded)
	require.Equal(t, store.RunPaused, paused.State)
	require.Contains(t, paused.Reason, "the deploy system reported that it could not apply generation 2: helm: image checkout:v2 could not be pulled")
}

func TestReceiverThatKeepsFailingFailsThePhaseAfterItsDeadline(t *testing.T) {
	var attempts []time.Time
	var mu sync.Mutex
	var clk *clock
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts = append(attempts, clk.Now())
		mu.Unlock()
		http.Error(w, "deploy system unavailable", http.StatusInternalServerError)
	})
	f := setup(t, options{receiver: down, config: map[string]any{"deadline": "30s", "timeout": "1s"}})
	clk = f.clock
	run := f.start()
	started := f.clock.Now()
	paused := f.drive(run.ID, store.RunPaused, store.RunSucceeded)
	require.Equal(t, store.RunPaused, paused.State)
	require.Contains(t, paused.Reason, "phase 0 could not be applied: generation 1 could not be delivered within the deadline of 30s")
	require.Contains(t, paused.Reason, `last: the receiver answered 500 Internal Server Error: "deploy system unavailable"`)
	require.Empty(t, f.events(run.ID, "driver.error"), "retries within the deadline are not errors")

	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, len(attempts), 4, "the delivery is retried with backoff")
	for i := 1; i < len(attempts); i++ {
		require.False(t, attempts[i].Before(attempts[i-1]))
	}
	require.Less(t, attempts[len(attempts)-1].Sub(started), 30*time.Second, "no attempt starts after the last one that can finish in time")
	require.False(t, f.clock.Now().Before(started.Add(29*time.Second)), "the phase fails at its deadline, not before")
}
