// Package webhook is the driver for any deploy system that can take an
// HTTP request: a CI job, an in-house deployer, Terraform or Helm behind a
// small receiver. For every desired state it POSTs a signed JSON document
// to the environment's URL. A 2xx answer means the state is in place; 202
// means the receiver accepted it and reports completion later through
// POST /api/v1/runs/{id}/driver-status. Failed sends are retried with
// backoff until the environment's deadline; a 4xx other than 408 or 429
// means the receiver refused the state, which no retry can change.
//
// Delivery state lives in the database, so a completion reported to any
// replica is seen by the replica whose engine steps the run.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Retry timing of failed sends: the wait doubles from MinBackoff after each
// failure up to MaxBackoff, always within the deadline.
const (
	MinBackoff = time.Second
	MaxBackoff = time.Minute
)

// refusalExcerpt is how much of a refusing receiver's answer is quoted.
const refusalExcerpt = 300

// DeliveryStore keeps the state of deliveries; *store.Store implements it.
type DeliveryStore interface {
	// Now is the clock deadlines and signatures are read from.
	Now() time.Time
	NewestDeliveryGeneration(ctx context.Context, runID int64) (int64, error)
	BeginDelivery(ctx context.Context, runID, generation int64, driver string) (store.DriverDelivery, error)
	ClaimDeliveryAttempt(ctx context.Context, runID, generation int64, holdUntil time.Time) (store.DriverDelivery, bool, error)
	FinishDeliveryAttempt(ctx context.Context, a store.DeliveryAttempt) (store.DriverDelivery, error)
}

// Options configures a Driver.
type Options struct {
	// Store keeps delivery state; required.
	Store DeliveryStore
	// Client sends the requests. Default: a client that does not follow
	// redirects, since a redirected POST would reach an unconfigured URL.
	// Each request's timeout comes from the environment's configuration.
	Client *http.Client
	// Logger receives failed attempts. Default slog.Default().
	Logger *slog.Logger
}

// Driver delivers desired states to webhook receivers. One Driver serves
// every environment whose driver type is "webhook".
type Driver struct {
	store  DeliveryStore
	client *http.Client
	logger *slog.Logger
}

// New returns a webhook driver. It panics without a store, a wiring
// mistake that should stop the server at start.
func New(opts Options) *Driver {
	if opts.Store == nil {
		panic("webhook: New needs a delivery store")
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Driver{store: opts.Store, client: client, logger: cmp.Or(opts.Logger, slog.Default())}
}

// Payload is the JSON document POSTed to the receiver. Everything a
// receiver needs to make the state true, and to report back, is in it; the
// delivery id is repeated from the header so that it is covered by the
// signature.
type Payload struct {
	DeliveryID  string `json:"delivery_id"`
	RunID       int64  `json:"run_id"`
	Generation  int64  `json:"generation"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	// PhaseIndex is the phase's index in the run's plan, or -1 for a
	// rollback step.
	PhaseIndex int    `json:"phase_index"`
	Phase      string `json:"phase"`
	// Versions, Cohorts and Mirror are the desired state.
	Versions []plan.VersionState `json:"versions"`
	Cohorts  []plan.CohortRule   `json:"cohorts,omitempty"`
	Mirror   *plan.Mirror        `json:"mirror,omitempty"`
	// StatusPath is where a receiver that answered 202 reports completion,
	// relative to the Flightdeck server's URL.
	StatusPath string `json:"status_path"`
	// Deadline is when the phase fails if the state is not in place.
	Deadline time.Time `json:"deadline"`
}

// Apply delivers req.Desired to the environment's receiver. It returns nil
// once the receiver confirmed the state, an error wrapping
// driver.ErrInProgress while the state is accepted or being retried within
// the deadline, and a permanent error when the receiver refused it,
// reported failure, or the deadline passed.
func (d *Driver) Apply(ctx context.Context, req driver.Request) error {
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		return driver.Permanent(err)
	}
	newest, err := d.store.NewestDeliveryGeneration(ctx, req.RunID)
	if err != nil {
		return fmt.Errorf("reading deliveries of run %d: %w", req.RunID, err)
	}
	if newest > req.Generation {
		// A stale worker: a newer state was delivered, and sending this
		// one would move traffic back.
		return nil
	}
	del, err := d.store.BeginDelivery(ctx, req.RunID, req.Generation, Type)
	if err != nil {
		return fmt.Errorf("recording the delivery of run %d generation %d: %w", req.RunID, req.Generation, err)
	}
	deadline := del.FirstAttemptAt.Add(cfg.Deadline)
	if del.Status != store.DeliverySending {
		return outcome(del, cfg, deadline, d.store.Now())
	}
	if now := d.store.Now(); !now.Before(deadline) {
		return expired(del, cfg)
	}
	// The attempt holds the delivery until it must have ended, but never up
	// to the deadline, which would read as the deadline missed.
	hold := d.store.Now().Add(cfg.Timeout + time.Second)
	if last := deadline.Add(-time.Millisecond); hold.After(last) {
		hold = last
	}
	del, claimed, err := d.store.ClaimDeliveryAttempt(ctx, req.RunID, req.Generation, hold)
	if err != nil {
		return fmt.Errorf("claiming an attempt of run %d generation %d: %w", req.RunID, req.Generation, err)
	}
	if !claimed {
		return outcome(del, cfg, deadline, d.store.Now())
	}

	attempt := d.send(ctx, req, cfg, del, deadline)
	result := store.DeliveryAttempt{RunID: req.RunID, Generation: req.Generation, Status: attempt.status, Error: attempt.err}
	if attempt.status == store.DeliverySending {
		// Back off, but keep a last attempt that can still finish before
		// the deadline; when none can, outcome reports the deadline missed.
		// When no attempt can finish in time, the next one is set at the
		// deadline itself, which outcome reads as the deadline missed.
		now := d.store.Now()
		next := now.Add(min(MinBackoff<<min(del.Attempts-1, 10), MaxBackoff))
		if last := deadline.Add(-cfg.Timeout); next.After(last) {
			next = last
			if !last.After(now) {
				next = deadline
			}
		}
		result.NextAttemptAt = &next
		d.logger.WarnContext(ctx, "webhook delivery failed; retrying",
			slog.Int64("run_id", req.RunID), slog.Int64("generation", req.Generation),
			slog.String("app", req.App), slog.String("environment", req.Environment),
			slog.Int("attempt", del.Attempts), slog.Time("retry_at", next), slog.String("error", attempt.err))
	}
	// Finish even when the step's context ended: the attempt happened.
	del, err = d.store.FinishDeliveryAttempt(context.WithoutCancel(ctx), result)
	if err != nil {
		return fmt.Errorf("recording an attempt of run %d generation %d: %w", req.RunID, req.Generation, err)
	}
	return outcome(del, cfg, deadline, d.store.Now())
}

// outcome turns a delivery's recorded state into Apply's answer.
func outcome(del store.DriverDelivery, cfg Config, deadline, now time.Time) error {
	switch del.Status {
	case store.DeliverySucceeded:
		return nil
	case store.DeliveryFailed:
		if del.LastError != "" {
			return driver.Permanent(errors.New(del.LastError))
		}
		return driver.Permanent(fmt.Errorf("the deploy system reported that it could not apply generation %d: %s",
			del.Generation, cmp.Or(del.Message, "no message given")))
	case store.DeliveryAccepted:
		if !now.Before(deadline) {
			return driver.Permanent(fmt.Errorf("the deploy system accepted generation %d but did not report it applied within the deadline of %s",
				del.Generation, cfg.Deadline))
		}
		return fmt.Errorf("%w: the deploy system accepted generation %d and has not reported it applied yet", driver.ErrInProgress, del.Generation)
	default:
		if !now.Before(deadline) || (del.NextAttemptAt != nil && !del.NextAttemptAt.Before(deadline)) {
			return expired(del, cfg)
		}
		if del.LastError == "" {
			return fmt.Errorf("%w: generation %d is being delivered", driver.ErrInProgress, del.Generation)
		}
		return fmt.Errorf("%w: delivery of generation %d failed %d times, last: %s", driver.ErrInProgress, del.Generation, del.Attempts, del.LastError)
	}
}

// expired is the permanent error of a delivery whose deadline passed while
// it was still being retried.
func expired(del store.DriverDelivery, cfg Config) error {
	return driver.Permanent(fmt.Errorf("generation %d could not be delivered within the deadline of %s (%d attempts; last: %s)",
		del.Generation, cfg.Deadline, del.Attempts, cmp.Or(del.LastError, "no answer")))
}

// attemptResult is what one send came to.
type attemptResult struct {
	status store.DeliveryStatus
	err    string
}

// send POSTs the signed desired state once and classifies the answer.
func (d *Driver) send(ctx context.Context, req driver.Request, cfg Config, del store.DriverDelivery, deadline time.Time) attemptResult {
	secret, err := readSecret(cfg)
	if err != nil {
		return attemptResult{status: store.DeliveryFailed, err: err.Error()}
	}
	id, err := newDeliveryID()
	if err != nil {
		return attemptResult{status: store.DeliverySending, err: err.Error()}
	}
	body, err := json.Marshal(Payload{
		DeliveryID: id, RunID: req.RunID, Generation: req.Generation, App: req.App, Environment: req.Environment,
		PhaseIndex: req.PhaseIndex, Phase: req.Phase,
		Versions: req.Desired.Versions, Cohorts: req.Desired.Cohorts, Mirror: req.Desired.Mirror,
		StatusPath: "/api/v1/runs/" + strconv.FormatInt(req.RunID, 10) + "/driver-status",
		Deadline:   deadline.UTC(),
	})
	if err != nil {
		return attemptResult{status: store.DeliveryFailed, err: "encoding the desired state: " + err.Error()}
	}
	reqCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(reqCtx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return attemptResult{status: store.DeliveryFailed, err: "building the request: " + err.Error()}
	}
	for name, value := range cfg.Headers {
		httpReq.Header.Set(name, value)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("User-Agent", "Flightdeck-Webhook/1")
	httpReq.Header.Set(DeliveryHeader, id)
	httpReq.Header.Set(SignatureHeader, Sign(secret, d.store.Now(), body))

	resp, err := d.client.Do(httpReq)
	if err != nil {
		if reqCtx.Err() != nil && ctx.Err() == nil {
			return attemptResult{status: store.DeliverySending, err: fmt.Sprintf("no answer from %s within %s", redact(cfg.URL), cfg.Timeout)}
		}
		return attemptResult{status: store.DeliverySending, err: fmt.Sprintf("sending to %s: %s", redact(cfg.URL), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, refusalExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	status := fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return attemptResult{status: store.DeliveryAccepted}
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return attemptResult{status: store.DeliverySucceeded}
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return attemptResult{status: store.DeliverySending, err: fmt.Sprintf("the receiver answered %s: %s", status, quote(excerpt))}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return attemptResult{status: store.DeliveryFailed, err: fmt.Sprintf("the receiver answered %s (to %s); the url must point at the receiver itself",
			status, resp.Header.Get("Location"))}
	default:
		return attemptResult{status: store.DeliveryFailed, err: fmt.Sprintf("the receiver refused generation %d with %s: %s",
			req.Generation, status, quote(excerpt))}
	}
}

// Sign returns the Flightdeck-Signature header value of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">". Signing the
// time with the body lets a receiver refuse old deliveries replayed later.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// readSecret returns the secret, reading secret_file when it is used. A
// missing or short secret file fails the delivery: no retry brings it back.
func readSecret(cfg Config) ([]byte, error) {
	if cfg.SecretFile == "" {
		return []byte(cfg.Secret), nil
	}
	b, err := os.ReadFile(cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook secret_file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("the webhook secret_file %s holds %d bytes; the secret must be at least %d", cfg.SecretFile, len(secret), MinSecretBytes)
	}
	return secret, nil
}

// newDeliveryID returns a random UUID (version 4).
func newDeliveryID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a delivery id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// quote shows a receiver's answer in a message: valid UTF-8, trimmed, or
// "an empty body".
func quote(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if s == "" {
		return "an empty body"
	}
	if !utf8.ValidString(s) {
		return "a binary body"
	}
	return strconv.Quote(s)
}

// redact drops the query of a URL in messages, since it may carry a token.
func redact(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// unwrapURLError drops the "Post <url>:" prefix net/http adds, which would
// repeat the URL, query included.
func unwrapURLError(err error) string {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		return uerr.Err.Error()
	}
	return err.Error()
}
