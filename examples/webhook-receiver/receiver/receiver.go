// Package receiver is an example receiver of Flightdeck's webhook driver:
// the piece a deploy system puts in front of its own tooling (a CI job,
// Terraform, Helm) to take desired states from Flightdeck. It verifies each
// delivery's signature with the shared secret, refuses replays, hands the
// desired state to an Apply function, and answers 200 when the state is in
// place, or 202 and reports completion to Flightdeck later.
//
// It depends on nothing from Flightdeck, so it can be copied into another
// code base as it is.
package receiver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names and replay windows of the webhook protocol.
const (
	SignatureHeader = "Flightdeck-Signature"
	DeliveryHeader  = "Flightdeck-Delivery"
	// MaxAge is how old a signature may be; older deliveries are replays.
	MaxAge = 5 * time.Minute
	// MaxSkew is how far in the future a signature may be, for clocks
	// that disagree a little.
	MaxSkew = time.Minute
	// maxBody bounds a delivery's body.
	maxBody = 1 << 20
)

// Delivery is one desired state sent by Flightdeck.
type Delivery struct {
	DeliveryID  string    `json:"delivery_id"`
	RunID       int64     `json:"run_id"`
	Generation  int64     `json:"generation"`
	App         string    `json:"app"`
	Environment string    `json:"environment"`
	PhaseIndex  int       `json:"phase_index"`
	Phase       string    `json:"phase"`
	Versions    []Version `json:"versions"`
	Cohorts     []Cohort  `json:"cohorts,omitempty"`
	Mirror      *Mirror   `json:"mirror,omitempty"`
	// StatusPath is where completion is reported, relative to Flightdeck's
	// URL, after answering 202.
	StatusPath string    `json:"status_path"`
	Deadline   time.Time `json:"deadline"`
}

// Version is one version that should run, with its share of the traffic.
type Version struct {
	Version   string `json:"version"`
	Role      string `json:"role"`
	Instances int    `json:"instances"`
	Weight    int    `json:"weight"`
}

// Cohort routes the users it matches to one version.
type Cohort struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Match   struct {
		Kind    string   `json:"kind"`
		Key     string   `json:"key,omitempty"`
		Values  []string `json:"values,omitempty"`
		Percent int      `json:"percent,omitempty"`
	} `json:"match"`
}

// Mirror copies a share of one version's traffic to another.
type Mirror struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Percent int    `json:"percent"`
}

// Config configures a Handler.
type Config struct {
	// Secret is the secret shared with the environment's webhook driver;
	// required.
	Secret []byte
	// Apply makes a desired state true. Nil accepts every state as is.
	Apply func(ctx context.Context, d Delivery) error
	// Async answers 202 at once and reports completion through Reporter
	// after Apply returns, for deploys that outlast a request.
	Async    bool
	Reporter *Reporter
	// Now is the clock signatures are checked against. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler receives deliveries. It is safe for concurrent use.
type Handler struct {
	cfg Config

	mu sync.Mutex
	// seen holds the delivery ids received within the replay window.
	seen map[string]time.Time
	// applied is the newest generation applied per run, so a repeated or
	// older generation is not applied again.
	applied map[int64]int64
	work    sync.WaitGroup
}

// New returns a Handler. It panics without a secret or, when Async, a
// Reporter: both are wiring mistakes.
func New(cfg Config) *Handler {
	if len(cfg.Secret) == 0 {
		panic("receiver: New needs the shared secret")
	}
	if cfg.Async && cfg.Reporter == nil {
		panic("receiver: an Async handler needs a Reporter")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Apply == nil {
		cfg.Apply = func(context.Context, Delivery) error { return nil }
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Handler{cfg: cfg, seen: map[string]time.Time{}, applied: map[int64]int64{}}
}

// Wait blocks until every asynchronous apply and its report are done, for
// an orderly shutdown.
func (h *Handler) Wait() { h.work.Wait() }

// ServeHTTP verifies and takes one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "deliveries are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := h.cfg.Now()
	if err := Verify(h.cfg.Secret, r.Header.Get(SignatureHeader), body, now); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var d Delivery
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, "the body is not a delivery: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(DeliveryHeader)
	if id == "" || id != d.DeliveryID {
		http.Error(w, "the "+DeliveryHeader+" header does not match the signed delivery_id", http.StatusUnauthorized)
		return
	}
	stale, err := h.admit(id, d, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if stale {
		// Applied already, or superseded by a newer generation: applying
		// it would move traffic back.
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.cfg.Async {
		h.work.Add(1)
		go func() {
			defer h.work.Done()
			ctx := context.WithoutCancel(r.Context())
			applyErr := h.apply(ctx, d)
			if err := h.cfg.Reporter.Report(ctx, d, applyErr); err != nil {
				h.cfg.Logger.ErrorContext(ctx, "reporting completion to Flightdeck", slog.Int64("run_id", d.RunID),
					slog.Int64("generation", d.Generation), slog.String("error", err.Error()))
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if err := h.apply(r.Context(), d); err != nil {
		http.Error(w, "applying the desired state: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// apply runs Apply and remembers the generation once it is in place.
func (h *Handler) apply(ctx context.Context, d Delivery) error {
	if err := h.cfg.Apply(ctx, d); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied[d.RunID] = max(h.applied[d.RunID], d.Generation)
	return nil
}

// admit records the delivery id, refusing one seen before, and reports
// whether the delivery's generation is already applied or superseded.
func (h *Handler) admit(id string, d Delivery, now time.Time) (stale bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for seenID, at := range h.seen {
		if now.Sub(at) > MaxAge+MaxSkew {
			delete(h.seen, seenID)
		}
	}
	if _, ok := h.seen[id]; ok {
		return false, fmt.Errorf("delivery %s was already received; a repeated delivery is a replay", id)
	}
	h.seen[id] = now
	return d.Generation <= h.applied[d.RunID], nil
}

// Verify checks a Flightdeck-Signature header against the body and the
// time: the HMAC-SHA256 of "<t>.<body>" under secret must match one of the
// v1 values (compared in constant time), and t must be at most MaxAge old
// and at most MaxSkew ahead of now.
func Verify(secret []byte, header string, body []byte, now time.Time) error {
	if header == "" {
		return errors.New("the " + SignatureHeader + " header is missing")
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "t":
			ts = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("the " + SignatureHeader + " header is malformed; it must be t=<unix seconds>,v1=<hex>")
	}
	signed := time.Unix(unix, 0)
	if age := now.Sub(signed); age > MaxAge {
		return fmt.Errorf("the signature is %s old, more than %s: a replayed delivery", age.Round(time.Second), MaxAge)
	}
	if ahead := signed.Sub(now); ahead > MaxSkew {
		return fmt.Errorf("the signature is %s in the future, more than %s", ahead.Round(time.Second), MaxSkew)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return errors.New("the signature does not match the body; check the shared secret")
}

// Reporter reports completion of an accepted delivery to Flightdeck's
// POST /api/v1/runs/{id}/driver-status with an API token of deploy scope.
type Reporter struct {
	// BaseURL is Flightdeck's URL, such as "https://flightdeck.example.com".
	BaseURL string
	// Token is an API token with the deploy scope.
	Token string
	// Client sends the reports. Default http.DefaultClient.
	Client *http.Client
	// Attempts is how many times a report is tried when Flightdeck does
	// not answer or answers 5xx. Default 3.
	Attempts int
}

// Report tells Flightdeck whether d was applied: ok when applyErr is nil,
// and applyErr's message otherwise.
func (rp *Reporter) Report(ctx context.Context, d Delivery, applyErr error) error {
	status := map[string]any{"generation": d.Generation, "ok": applyErr == nil, "message": "applied"}
	if applyErr != nil {
		status["message"] = applyErr.Error()
	}
	body, err := json.Marshal(status)
	if err != nil {
		return err
	}
	path := cmp.Or(d.StatusPath, "/api/v1/runs/"+strconv.FormatInt(d.RunID, 10)+"/driver-status")
	client := cmp.Or(rp.Client, http.DefaultClient)
	var last error
	for attempt := range cmp.Or(rp.Attempts, 3) {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(rp.BaseURL, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+rp.Token)
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<12))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 500:
			last = fmt.Errorf("flightdeck answered %s: %s", resp.Status, answer)
		default:
			return fmt.Errorf("flightdeck refused the status of run %d generation %d with %s: %s", d.RunID, d.Generation, resp.Status, answer)
		}
	}
	return last
}
