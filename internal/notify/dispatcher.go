package notify

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver/webhook"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Defaults of a Dispatcher's Config.
const (
	DefaultTimeout = 10 * time.Second
	DefaultPoll    = time.Second
	// responseExcerpt is how much of a receiver's answer is logged.
	responseExcerpt = 300
	// claimBatch bounds the deliveries one pass sends, in parallel.
	claimBatch = 20
)

// DefaultBackoff is the wait before each retry of a failed delivery; a
// delivery is given up after its first attempt and one retry per entry.
var DefaultBackoff = []time.Duration{10 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

// EventHeader carries the notification's event type.
const EventHeader = "Flightdeck-Event"

// Config configures a Dispatcher. The zero value works; the clock is the
// store's.
type Config struct {
	// PublicURL is the server's URL as people open it, for links in
	// notifications; without it links are paths.
	PublicURL string
	// Client sends the requests. Default: a client that does not follow
	// redirects, since a redirected POST would reach an unsubscribed URL.
	Client *http.Client
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// Backoff is the wait before each retry (default DefaultBackoff);
	// MaxAttempts is len(Backoff)+1.
	Backoff []time.Duration
	// Poll is how often new events and due deliveries are looked for
	// (default 1s, jittered).
	Poll time.Duration
	// Settle is how long a gap in event ids is waited on (see
	// store.EnqueueOptions; default 5s).
	Settle time.Duration
	Logger *slog.Logger
}

// Dispatcher enqueues run and flag events for the subscriptions that match
// them and sends the deliveries. Every replica runs one.
type Dispatcher struct {
	store *store.Store
	cfg   Config

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New returns a Dispatcher over st.
func New(st *store.Store, cfg Config) *Dispatcher {
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Poll = cmp.Or(cfg.Poll, DefaultPoll)
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Dispatcher{store: st, cfg: cfg}
}

// MaxAttempts is how many times a delivery is tried before it is given up.
func (d *Dispatcher) MaxAttempts() int { return len(d.cfg.Backoff) + 1 }

// Start enqueues and sends until Stop.
func (d *Dispatcher) Start(ctx context.Context) error {
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			if err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
				d.cfg.Logger.ErrorContext(ctx, "sending notifications", slog.String("error", err.Error()))
			}
			// Jitter keeps replicas from polling in step.
			wait := d.cfg.Poll/2 + rand.N(d.cfg.Poll)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	return nil
}

// Stop ends the loop and waits for a pass in flight. Safe to call twice.
func (d *Dispatcher) Stop() {
	d.stopOnce.Do(func() {
		if d.cancel != nil {
			d.cancel()
			d.wg.Wait()
		}
	})
}

// RunOnce enqueues the new events, then sends the due deliveries.
func (d *Dispatcher) RunOnce(ctx context.Context) error {
	errs := []error{d.Enqueue(ctx)}
	_, err := d.Send(ctx)
	return errors.Join(append(errs, err)...)
}

// Enqueue turns the new run and flag events into deliveries for the
// subscriptions that match them.
func (d *Dispatcher) Enqueue(ctx context.Context) error {
	var errs []error
	for _, source := range []string{store.NotificationSourceRuns, store.NotificationSourceFlags} {
		for {
			n, _, err := d.store.EnqueueNotifications(ctx, source, store.EnqueueOptions{Settle: d.cfg.Settle}, d.plan)
			if err != nil {
				errs = append(errs, fmt.Errorf("enqueueing %s: %w", source, err))
				break
			}
			if n == 0 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// plan matches events with subscriptions and renders each delivery.
func (d *Dispatcher) plan(events []store.NotificationEvent, subs []store.NotificationSubscription) ([]store.NewNotificationDelivery, error) {
	var out []store.NewNotificationDelivery
	for _, ev := range events {
		typ, ok := notificationType(ev.Source, ev.Type)
		if !ok {
			continue
		}
		env := envelopeOf(ev, typ, d.cfg.PublicURL)
		for _, s := range subs {
			if !Wants(s, ev.App, ev.Environment, typ) {
				continue
			}
			body, err := Render(s.Format, env)
			if err != nil {
				return nil, fmt.Errorf("rendering %s for subscription %d: %w", env.ID, s.ID, err)
			}
			out = append(out, store.NewNotificationDelivery{
				SubscriptionID: s.ID, EventSource: ev.Source, EventID: ev.ID, EventType: typ, Summary: env.Summary, Body: body,
			})
		}
	}
	return out, nil
}

// Wants reports whether a subscription asks for an event of type typ
// about app and environment. A flag event about every environment of an
// app (environment "") reaches only subscriptions for every environment.
func Wants(s store.NotificationSubscription, app, environment, typ string) bool {
	if !s.Enabled {
		return false
	}
	if s.App != "*" && s.App != app {
		return false
	}
	if s.Environment != "*" && s.Environment != environment {
		return false
	}
	return Matches(s.EventTypes, typ)
}

// TestStore is what Test needs; *store.Store implements it.
type TestStore interface {
	Now() time.Time
	EnqueueTestNotification(ctx context.Context, d store.NewNotificationDelivery) (store.NotificationDelivery, error)
}

// Test enqueues a test notification for a subscription, sent on the next
// pass of any replica's dispatcher.
func Test(ctx context.Context, st TestStore, sub store.NotificationSubscription, actor, publicURL string) (store.NotificationDelivery, error) {
	env := TestEnvelope(sub, actor, publicURL, st.Now())
	body, err := Render(sub.Format, env)
	if err != nil {
		return store.NotificationDelivery{}, err
	}
	return st.EnqueueTestNotification(ctx, store.NewNotificationDelivery{
		SubscriptionID: sub.ID, EventSource: store.NotificationSourceTest, EventType: TestEventType, Summary: env.Summary, Body: body,
	})
}

// Send claims the due deliveries and sends them in parallel; it returns
// how many it sent.
func (d *Dispatcher) Send(ctx context.Context) (int, error) {
	hold := d.store.Now().Add(d.cfg.Timeout + 30*time.Second)
	claimed, err := d.store.ClaimNotificationDeliveries(ctx, hold, claimBatch)
	if err != nil {
		return 0, fmt.Errorf("claiming notification deliveries: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(claimed))
	for i, c := range claimed {
		wg.Go(func() { errs[i] = d.deliver(ctx, c) })
	}
	wg.Wait()
	return len(claimed), errors.Join(errs...)
}

// deliver makes one attempt and records it.
func (d *Dispatcher) deliver(ctx context.Context, c store.ClaimedNotification) error {
	at := d.store.Now()
	started := time.Now()
	code, excerpt, sendErr := d.post(ctx, c, at)
	out := store.NotificationOutcome{DeliveryID: c.ID, NotificationAttempt: store.NotificationAttempt{
		Attempt: c.Attempt, At: at, StatusCode: code, Response: excerpt, Duration: time.Since(started),
	}}
	retry := false
	switch {
	case sendErr != nil:
		out.Error, retry = sendErr.Error(), true
	case code >= 200 && code < 300:
		out.Status = store.NotificationDelivered
	case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
		out.Error, retry = fmt.Sprintf("the receiver answered %d %s", code, http.StatusText(code)), true
	default:
		out.Status = store.NotificationFailed
		out.Error = fmt.Sprintf("the receiver refused the notification with %d %s; it is not retried", code, http.StatusText(code))
	}
	if retry {
		if c.Attempt >= d.MaxAttempts() {
			out.Status = store.NotificationFailed
			out.Error += fmt.Sprintf("; given up after %d attempts", c.Attempt)
		} else {
			next := d.store.Now().Add(d.cfg.Backoff[min(c.Attempt, len(d.cfg.Backoff))-1])
			out.Status, out.NextAttemptAt = store.NotificationPending, &next
		}
		d.cfg.Logger.WarnContext(ctx, "notification delivery failed",
			slog.Int64("delivery_id", c.ID), slog.Int64("subscription_id", c.SubscriptionID),
			slog.Int("attempt", c.Attempt), slog.String("error", out.Error))
	}
	// Record even when the pass's context ended: the attempt happened.
	if err := d.store.FinishNotificationAttempt(context.WithoutCancel(ctx), out); err != nil {
		return fmt.Errorf("recording attempt %d of notification %d: %w", c.Attempt, c.ID, err)
	}
	return nil
}

// post sends a delivery once, signed, and returns the answer's status and
// its first bytes.
func (d *Dispatcher) post(ctx context.Context, c store.ClaimedNotification, at time.Time) (int, string, error) {
	reqCtx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.URL, bytes.NewReader(c.Body))
	if err != nil {
		return 0, "", fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Flightdeck-Notify/1")
	req.Header.Set(webhook.DeliveryHeader, c.Key)
	req.Header.Set(EventHeader, c.EventType)
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(c.Secret), at, c.Body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		if reqCtx.Err() != nil && ctx.Err() == nil {
			return 0, "", fmt.Errorf("no answer from %s within %s", redact(c.URL), d.cfg.Timeout)
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, "", fmt.Errorf("sending to %s: %w", redact(c.URL), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, responseExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.ToValidUTF8(string(b), "?"), nil
}

// redact drops the query and path of a URL in messages: chat webhooks
// carry their token in them.
func redact(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return "the receiver"
	}
	if parsed.Path != "" && parsed.Path != "/" || parsed.RawQuery != "" {
		return parsed.Scheme + "://" + parsed.Host + "/…"
	}
	return parsed.Scheme + "://" + parsed.Host
}

// Redact is how a subscription's URL is shown after creation: scheme and
// host only, since Slack and Teams webhook URLs are secrets themselves.
func Redact(u string) string { return redact(u) }
