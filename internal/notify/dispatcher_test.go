package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/notify"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is the test's time, shared by the store and the dispatcher.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	st    *store.Store
	clock *clock
	app   store.App
	prod  store.Environment
	stage store.Environment
}

func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st := store.New(dbtest.New(t), store.Options{Now: c.now})
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env := func(name string) store.Environment {
		e, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: name, Driver: json.RawMessage(`{"type": "simulator"}`)})
		require.NoError(t, err)
		return e
	}
	return fixture{st: st, clock: c, app: app, prod: env("production"), stage: env("staging")}
}

func (f fixture) dispatcher(cfg notify.Config) *notify.Dispatcher {
	cfg.PublicURL = "https://flightdeck.example.com"
	return notify.New(f.st, cfg)
}

func (f fixture) subscribe(t *testing.T, name, app, env, format, url string, types ...string) store.NotificationSubscription {
	t.Helper()
	s := store.NotificationSubscription{
		Name: name, App: app, Environment: env, EventTypes: types, URL: url, Format: format,
		Secret: "s3cret-" + name + "-0123456789", Enabled: true, CreatedBy: "user:ada",
	}
	require.Empty(t, notify.Validate(s))
	s, err := f.st.CreateNotificationSubscription(context.Background(), s)
	require.NoError(t, err)
	return s
}

// run creates a run of checkout in env and returns its id; the store
// writes its run.created event.
func (f fixture) run(t *testing.T, env store.Environment, version string) int64 {
	t.Helper()
	r, _, err := f.st.CreateRun(context.Background(), store.NewRun{
		AppID: f.app.ID, EnvironmentID: env.ID, ToVersion: version, Strategy: "canary", CreatedBy: "token:ci",
	})
	require.NoError(t, err)
	return r.ID
}

func (f fixture) event(t *testing.T, runID int64, typ string, payload map[string]any) {
	t.Helper()
	if payload == nil {
		payload = map[string]any{}
	}
	_, err := f.st.AppendRunEvent(context.Background(), runID, store.Event{Type: typ, Actor: "engine", Payload: payload})
	require.NoError(t, err)
}

// receiver is a webhook receiver that checks every request's signature
// with its secret, as a subscriber's server would.
type receiver struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu       sync.Mutex
	bodies   [][]byte
	keys     []string
	statuses []int // answers to give, in order; 200 when exhausted
}

func newReceiver(t *testing.T, secret string, statuses ...int) *receiver {
	r := &receiver{t: t, secret: secret, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if !validSignature(r.secret, req.Header.Get("Flightdeck-Signature"), body) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		r.t.Errorf("the receiver got a request with a bad signature %q", req.Header.Get("Flightdeck-Signature"))
		return
	}
	r.mu.Lock()
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.bodies = append(r.bodies, body)
	r.keys = append(r.keys, req.Header.Get("Flightdeck-Delivery"))
	r.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "answer "+strconv.Itoa(status)+" "+strings.Repeat("x", 400))
}

func (r *receiver) envelopes(t *testing.T) []notify.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]notify.Envelope, len(r.bodies))
	for i, b := range r.bodies {
		require.NoError(t, json.Unmarshal(b, &out[i]))
	}
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// validSignature checks "t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
func validSignature(secret, header string, body []byte) bool {
	ts, mac, ok := strings.Cut(header, ",")
	ts, okT := strings.CutPrefix(ts, "t=")
	mac, okV := strings.CutPrefix(mac, "v1=")
	if !ok || !okT || !okV {
		return false
	}
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts + "."))
	h.Write(body)
	want := hex.EncodeToString(h.Sum(nil))
	return hmac.Equal([]byte(want), []byte(mac))
}

func TestRunEventReachesMatchingSubscriberOnceSigned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{})

	// Events before the first start are history and are not replayed.
	old := f.run(t, f.prod, "v1")
	f.event(t, old, "run.succeeded", nil)
	require.NoError(t, d.RunOnce(ctx))

	want := newReceiver(t, "s3cret-prod-runs-0123456789")
	otherApp := newReceiver(t, "s3cret-other-app-0123456789")
	otherEnv := newReceiver(t, "s3cret-staging-0123456789")
	otherType := newReceiver(t, "s3cret-flags-0123456789")
	f.subscribe(t, "prod-runs", "checkout", "production", notify.FormatJSON, want.srv.URL, "run.succeeded", "run.rolled_back")
	f.subscribe(t, "other-app", "billing", "*", notify.FormatJSON, otherApp.srv.URL, "*")
	f.subscribe(t, "staging", "*", "staging", notify.FormatJSON, otherEnv.srv.URL, "run.*")
	f.subscribe(t, "flags", "*", "*", notify.FormatJSON, otherType.srv.URL, "flag.*")

	id := f.run(t, f.prod, "v1.4.2")
	f.event(t, id, "driver.output", map[string]any{"line": "deploying"})
	f.event(t, id, "run.succeeded", nil)
	for range 3 {
		require.NoError(t, d.RunOnce(ctx))
	}

	got := want.envelopes(t)
	require.Len(t, got, 1, "run.created and driver.output are not subscribed; run.succeeded arrives once")
	e := got[0]
	require.Equal(t, "run.succeeded", e.Type)
	require.Equal(t, "checkout", e.App)
	require.Equal(t, "production", e.Environment)
	require.Equal(t, id, e.RunID)
	require.Equal(t, "v1.4.2", e.Version)
	require.Equal(t, "engine", e.Actor)
	require.Equal(t, "https://flightdeck.example.com/runs/"+strconv.FormatInt(id, 10), e.URL)
	require.Contains(t, e.Summary, "checkout v1.4.2 in production")
	require.Contains(t, e.Summary, "succeeded")
	require.NotEmpty(t, want.keys[0])
	require.Zero(t, otherApp.count())
	require.Zero(t, otherEnv.count())
	require.Zero(t, otherType.count())

	// A staging run reaches the staging subscriber only.
	sid := f.run(t, f.stage, "v1.5.0")
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 1, otherEnv.count())
	require.Equal(t, "run.created", otherEnv.envelopes(t)[0].Type)
	require.Equal(t, sid, otherEnv.envelopes(t)[0].RunID)
	require.Equal(t, 1, want.count())
}

func TestApprovalAndFlagEventsAreTranslated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{})
	require.NoError(t, d.RunOnce(ctx))
	rec := newReceiver(t, "s3cret-all-0123456789")
	f.subscribe(t, "all", "*", "*", notify.FormatJSON, rec.srv.URL, "approval.requested", "flag.killed")

	id := f.run(t, f.prod, "v2")
	f.event(t, id, "phase.awaiting_approval", map[string]any{"phase": 0})
	flag, err := f.st.CreateFlag(ctx, f.app.ID, flags.Flag{
		Key: "new-checkout", Type: flags.TypeBoolean,
		Variants:       map[string]json.RawMessage{"true": json.RawMessage(`true`), "false": json.RawMessage(`false`)},
		DefaultVariant: "false",
	}, "user:alice")
	require.NoError(t, err)
	_, err = f.st.KillFlag(ctx, flag.ID, f.prod.ID, "user:oncall")
	require.NoError(t, err)
	require.NoError(t, d.RunOnce(ctx))

	got := rec.envelopes(t)
	require.Len(t, got, 2)
	// Deliveries are sent in parallel; order them by type.
	slices.SortFunc(got, func(a, b notify.Envelope) int { return strings.Compare(a.Type, b.Type) })
	require.Equal(t, "approval.requested", got[0].Type)
	require.Contains(t, got[0].Summary, "awaits approval to continue after phase 1")
	require.Equal(t, "flag.killed", got[1].Type)
	require.Equal(t, "new-checkout", got[1].FlagKey)
	require.Equal(t, "production", got[1].Environment)
	require.Equal(t, "user:oncall", got[1].Actor)
	require.Equal(t, "https://flightdeck.example.com/apps/checkout/flags/new-checkout", got[1].URL)
	require.Contains(t, got[1].Summary, "checkout/production: new-checkout")
}

func TestFailedDeliveryIsRetriedWithBackoffAndLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{})
	require.NoError(t, d.RunOnce(ctx))
	rec := newReceiver(t, "s3cret-flaky-0123456789", 500, 500, 200)
	sub := f.subscribe(t, "flaky", "checkout", "*", notify.FormatJSON, rec.srv.URL, "run.*")

	f.run(t, f.prod, "v3")
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 1, rec.count())

	// Not due before the first backoff of 10 seconds.
	f.clock.advance(9 * time.Second)
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 1, rec.count())
	f.clock.advance(time.Second)
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 2, rec.count())

	// Then 30 seconds.
	f.clock.advance(29 * time.Second)
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 2, rec.count())
	f.clock.advance(time.Second)
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 3, rec.count())
	f.clock.advance(time.Hour)
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 3, rec.count(), "a delivered notification is not sent again")

	dels, err := f.st.ListNotificationDeliveries(ctx, sub.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, dels, 1)
	del := dels[0]
	require.Equal(t, store.NotificationDelivered, del.Status)
	require.Equal(t, 3, del.Attempts)
	require.Nil(t, del.NextAttemptAt)
	require.Len(t, del.Log, 3)
	for i, code := range []int{500, 500, 200} {
		require.Equal(t, i+1, del.Log[i].Attempt)
		require.Equal(t, code, del.Log[i].StatusCode)
		require.Len(t, del.Log[i].Response, 300, "the log keeps the first 300 bytes of the answer")
		require.True(t, strings.HasPrefix(del.Log[i].Response, "answer "+strconv.Itoa(code)))
	}
	require.Contains(t, del.Log[0].Error, "500 Internal Server Error")
	require.Empty(t, del.Log[2].Error)
	require.Equal(t, time.Date(2026, 3, 2, 9, 0, 10, 0, time.UTC), del.Log[1].At.UTC())
	require.Equal(t, time.Date(2026, 3, 2, 9, 0, 40, 0, time.UTC), del.Log[2].At.UTC())
	// Every attempt carries the same delivery id, so receivers can drop repeats.
	require.Equal(t, []string{del.Key, del.Key, del.Key}, rec.keys)
}

func TestRefusedAndExhaustedDeliveriesFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{Backoff: []time.Duration{time.Second, time.Second}})
	require.NoError(t, d.RunOnce(ctx))
	refusing := newReceiver(t, "s3cret-refusing-0123456789", 404)
	down := newReceiver(t, "s3cret-down-0123456789", 503, 503, 503, 503)
	refSub := f.subscribe(t, "refusing", "*", "*", notify.FormatJSON, refusing.srv.URL, "run.created")
	downSub := f.subscribe(t, "down", "*", "*", notify.FormatJSON, down.srv.URL, "run.created")

	f.run(t, f.prod, "v4")
	for range 5 {
		require.NoError(t, d.RunOnce(ctx))
		f.clock.advance(time.Second)
	}
	require.Equal(t, 1, refusing.count(), "a 4xx is not retried")
	require.Equal(t, 3, down.count(), "given up after the first attempt and one retry per backoff entry")

	dels, err := f.st.ListNotificationDeliveries(ctx, refSub.ID, 0, 10)
	require.NoError(t, err)
	require.Equal(t, store.NotificationFailed, dels[0].Status)
	require.Equal(t, 404, dels[0].LastStatusCode)
	dels, err = f.st.ListNotificationDeliveries(ctx, downSub.ID, 0, 10)
	require.NoError(t, err)
	require.Equal(t, store.NotificationFailed, dels[0].Status)
	require.Contains(t, dels[0].LastError, "given up after 3 attempts")
}

func TestNetworkErrorIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{Timeout: 2 * time.Second})
	require.NoError(t, d.RunOnce(ctx))
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	sub := f.subscribe(t, "gone", "*", "*", notify.FormatJSON, url, "*")

	f.run(t, f.prod, "v5")
	require.NoError(t, d.RunOnce(ctx))
	dels, err := f.st.ListNotificationDeliveries(ctx, sub.ID, 0, 10)
	require.NoError(t, err)
	require.Equal(t, store.NotificationPending, dels[0].Status)
	require.NotNil(t, dels[0].NextAttemptAt)
	require.Equal(t, f.clock.now().Add(10*time.Second), dels[0].NextAttemptAt.UTC())
	require.Zero(t, dels[0].Log[0].StatusCode)
	require.Contains(t, dels[0].Log[0].Error, "sending to http://127.0.0.1")
}

func TestTwoReplicasDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	// Each replica has its own store on the shared database.
	other := store.New(f.st.Pool(), store.Options{Now: f.clock.now})
	a := f.dispatcher(notify.Config{})
	b := notify.New(other, notify.Config{PublicURL: "https://flightdeck.example.com"})
	require.NoError(t, a.RunOnce(ctx))
	require.NoError(t, b.RunOnce(ctx))
	rec := newReceiver(t, "s3cret-both-0123456789")
	f.subscribe(t, "both", "*", "*", notify.FormatJSON, rec.srv.URL, "run.*")

	const runs = 12
	var wg sync.WaitGroup
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	for _, d := range []*notify.Dispatcher{a, b} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := d.RunOnce(ctx); err != nil {
					t.Errorf("dispatcher pass: %v", err)
					return
				}
			}
		})
	}
	for i := range runs {
		env := f.prod
		if i%2 == 1 {
			env = f.stage
		}
		id := f.run(t, env, "v"+strconv.Itoa(i))
		f.event(t, id, "run.succeeded", nil)
	}
	require.Eventually(t, func() bool { return rec.count() >= 2*runs }, 10*time.Second, 10*time.Millisecond)
	halt()
	require.NoError(t, a.RunOnce(ctx))
	require.NoError(t, b.RunOnce(ctx))

	seen := map[string]int{}
	for _, e := range rec.envelopes(t) {
		seen[e.ID]++
	}
	require.Len(t, seen, 2*runs)
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s was delivered %d times", id, n)
	}
}

func TestSlackAndTeamsDeliveriesAreSigned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{})
	require.NoError(t, d.RunOnce(ctx))
	slack := newReceiver(t, "s3cret-slack-0123456789")
	teams := newReceiver(t, "s3cret-teams-0123456789")
	f.subscribe(t, "slack", "checkout", "production", notify.FormatSlack, slack.srv.URL, "run.rolled_back")
	f.subscribe(t, "teams", "checkout", "production", notify.FormatTeams, teams.srv.URL, "run.rolled_back")

	id := f.run(t, f.prod, "v6")
	f.event(t, id, "run.rolled_back", map[string]any{"reason": "error rate 9% against 1%"})
	require.NoError(t, d.RunOnce(ctx))
	require.Equal(t, 1, slack.count())
	require.Equal(t, 1, teams.count())

	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string `json:"type"`
			Text     struct{ Type, Text string }
			Elements []struct{ Type, Text string }
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(slack.bodies[0], &msg))
	require.Contains(t, msg.Text, "was rolled back: error rate 9% against 1%.")
	require.Len(t, msg.Blocks, 2)
	require.Equal(t, "section", msg.Blocks[0].Type)
	require.Equal(t, "mrkdwn", msg.Blocks[0].Text.Type)
	require.Contains(t, msg.Blocks[0].Text.Text, "<https://flightdeck.example.com/runs/"+strconv.FormatInt(id, 10)+"|")
	require.Equal(t, "context", msg.Blocks[1].Type)
	require.Contains(t, msg.Blocks[1].Elements[0].Text, "|Open in Flightdeck>")

	var card map[string]any
	require.NoError(t, json.Unmarshal(teams.bodies[0], &card))
	require.Equal(t, "MessageCard", card["@type"])
	require.Equal(t, "https://schema.org/extensions", card["@context"])
	require.Equal(t, "D92D20", card["themeColor"])
	require.Contains(t, card["summary"], "was rolled back")
	require.Contains(t, card["title"], "checkout/production v6")
	actions := card["potentialAction"].([]any)
	require.Len(t, actions, 1)
	action := actions[0].(map[string]any)
	require.Equal(t, "OpenUri", action["@type"])
	target := action["targets"].([]any)[0].(map[string]any)
	require.Equal(t, "https://flightdeck.example.com/runs/"+strconv.FormatInt(id, 10), target["uri"])
}

func TestTestNotificationIsSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	d := f.dispatcher(notify.Config{})
	rec := newReceiver(t, "s3cret-test-0123456789")
	sub := f.subscribe(t, "test", "checkout", "*", notify.FormatJSON, rec.srv.URL, "flag.killed")
	del, err := notify.Test(ctx, f.st, sub, "user:ada", "https://flightdeck.example.com")
	require.NoError(t, err)
	require.Equal(t, store.NotificationPending, del.Status)
	require.NoError(t, d.RunOnce(ctx))
	got := rec.envelopes(t)
	require.Len(t, got, 1)
	require.Equal(t, notify.TestEventType, got[0].Type)
	require.Contains(t, got[0].Summary, `subscription "test", sent by user:ada`)
}
