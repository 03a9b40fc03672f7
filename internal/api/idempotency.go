package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// maxIdempotencyKey bounds the Idempotency-Key header, as the document does.
const maxIdempotencyKey = 255

// idempotent handles a POST that starts or acts on a run so that a retry
// with the same Idempotency-Key does not do it twice. Without a key the
// request is simply handled. With one, the key is claimed before the
// request is handled, which makes concurrent duplicates see it in flight:
// they are refused at once with 409 rather than made to wait, since a CI
// retry can simply retry again, while a held connection per duplicate
// would tie up the server. Once handled, the answer (status, Location and
// body) is stored and replayed to every retry with the same body; a retry
// with another body is refused with 422. An answer of 5xx is not stored,
// so the retry the fault invites is handled afresh.
func (h *restHandlers) idempotent(c echo.Context, key *string, handle func() error) error {
	if key == nil {
		return handle()
	}
	if *key == "" || len(*key) > maxIdempotencyKey {
		return badRequest("the Idempotency-Key header is invalid; errors says why.", plan.FieldError{
			Field: "Idempotency-Key", Message: fmt.Sprintf("must be 1 to %d characters, got %d", maxIdempotencyKey, len(*key)),
		})
	}
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	req := c.Request()
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxRequestBody+1))
	if err != nil {
		return badRequest("reading the body: " + err.Error())
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > MaxRequestBody {
		// The handler refuses it with 413; a refusal that cheap is not
		// worth remembering.
		return handle()
	}
	// The content type is part of what was asked: the same bytes as a form
	// are another request.
	hash := sha256.New()
	hash.Write([]byte(req.Header.Get(echo.HeaderContentType)))
	hash.Write([]byte{0})
	hash.Write(body)
	sum := hash.Sum(nil)

	ctx := req.Context()
	k := store.IdempotencyKey{TokenID: p.TokenID, Method: req.Method, Path: req.URL.Path, Key: *key}
	stored, claimed, err := h.runStore.ClaimIdempotencyKey(ctx, k, sum)
	if err != nil {
		return fmt.Errorf("claiming idempotency key: %w", err)
	}
	if !claimed {
		switch {
		case !bytes.Equal(stored.RequestHash, sum):
			return validationFailed([]plan.FieldError{{Field: "Idempotency-Key",
				Message: "was used already for a request with another body; use a new key for a new request"}})
		case !stored.Completed:
			return &apiError{status: http.StatusConflict,
				detail: "a request with this Idempotency-Key is still being handled; retry in a moment to get its answer"}
		}
		return replay(c, stored)
	}

	// Until the answer is stored, the claim is given up on any way out,
	// a panic included, so the key never stays in flight for good.
	done := false
	defer func() {
		if !done {
			_ = h.runStore.ReleaseIdempotencyKey(context.WithoutCancel(ctx), k)
		}
	}()
	capture := &responseCapture{ResponseWriter: c.Response().Writer}
	c.Response().Writer = capture
	if err := handle(); err != nil {
		// The central error handler writes the refusal now, through the
		// capture, so it is stored like any other answer.
		c.Error(err)
	}
	c.Response().Writer = capture.ResponseWriter
	status := c.Response().Status
	if !c.Response().Committed || status >= http.StatusInternalServerError {
		return nil
	}
	err = h.runStore.CompleteIdempotencyKey(context.WithoutCancel(ctx), k, status,
		c.Response().Header().Get(echo.HeaderLocation), capture.body.Bytes())
	if err != nil {
		// The request was handled and answered; only its replay is lost,
		// and a retry will be handled afresh once the claim is released.
		return fmt.Errorf("storing the answer for idempotency key: %w", err)
	}
	done = true
	return nil
}

// replay answers a retry with the stored answer of the first request.
func replay(c echo.Context, stored store.IdempotentResponse) error {
	h := c.Response().Header()
	if stored.Location != "" {
		h.Set(echo.HeaderLocation, stored.Location)
	}
	h.Set("Idempotent-Replayed", "true")
	contentType := echo.MIMEApplicationJSON
	if stored.Status >= http.StatusBadRequest {
		contentType = "application/problem+json"
	}
	return c.Blob(stored.Status, contentType, stored.Body)
}

// responseCapture passes a response through and keeps a copy of its body.
type responseCapture struct {
	http.ResponseWriter
	body bytes.Buffer
}

// Write sends b on and keeps it.
func (r *responseCapture) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *responseCapture) Unwrap() http.ResponseWriter { return r.ResponseWriter }
