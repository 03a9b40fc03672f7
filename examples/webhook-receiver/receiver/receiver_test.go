package receiver_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/examples/webhook-receiver/receiver"
)

var (
	secret = []byte("a-shared-secret-of-32-bytes-long")
	now    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// sign signs body at t as Flightdeck does.
func sign(key []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// delivery is a signed request for generation gen of run 7.
func delivery(t *testing.T, id string, gen int64, signedAt time.Time, key []byte) *http.Request {
	t.Helper()
	body, err := json.Marshal(receiver.Delivery{DeliveryID: id, RunID: 7, Generation: gen, App: "checkout", Environment: "production",
		Versions: []receiver.Version{{Version: "v1", Role: "stable", Instances: 10, Weight: 75}, {Version: "v2", Role: "candidate", Instances: 1, Weight: 25}}})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	req.Header.Set(receiver.SignatureHeader, sign(key, signedAt, body))
	req.Header.Set(receiver.DeliveryHeader, id)
	return req
}

type applied struct {
	mu  sync.Mutex
	got []receiver.Delivery
}

func (a *applied) apply(_ context.Context, d receiver.Delivery) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, d)
	return nil
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestReceiverVerifiesAndAppliesOnce(t *testing.T) {
	t.Parallel()
	var a applied
	h := receiver.New(receiver.Config{Secret: secret, Now: func() time.Time { return now }, Apply: a.apply})

	rec := serve(h, delivery(t, "d-1", 1, now.Add(-time.Minute), secret))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, a.got, 1)
	require.Equal(t, 25, a.got[0].Versions[1].Weight)

	for name, tc := range map[string]struct {
		req  *http.Request
		want string
	}{
		"wrong secret":    {req: delivery(t, "d-2", 2, now, []byte("another-secret-entirely")), want: "the signature does not match"},
		"too old":         {req: delivery(t, "d-3", 2, now.Add(-6*time.Minute), secret), want: "more than 5m0s: a replayed delivery"},
		"from the future": {req: delivery(t, "d-4", 2, now.Add(2*time.Minute), secret), want: "in the future"},
		"replayed id":     {req: delivery(t, "d-1", 1, now, secret), want: "delivery d-1 was already received"},
	} {
		rec := serve(h, tc.req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, name)
		require.Contains(t, rec.Body.String(), tc.want, name)
	}

	unsigned := delivery(t, "d-5", 2, now, secret)
	unsigned.Header.Del(receiver.SignatureHeader)
	rec = serve(h, unsigned)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Body.String(), "header is missing")

	swapped := delivery(t, "d-6", 2, now, secret)
	swapped.Header.Set(receiver.DeliveryHeader, "d-7")
	rec = serve(h, swapped)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Body.String(), "does not match the signed delivery_id")

	// A repeated or older generation is acknowledged without applying it.
	rec = serve(h, delivery(t, "d-8", 1, now, secret))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, a.got, 1, "only verified, new generations are applied")

	rec = serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

func TestFailedApplyAnswers500SoFlightdeckRetries(t *testing.T) {
	t.Parallel()
	h := receiver.New(receiver.Config{Secret: secret, Now: func() time.Time { return now },
		Apply: func(context.Context, receiver.Delivery) error { return errors.New("cluster unreachable") }})
	rec := serve(h, delivery(t, "d-1", 1, now, secret))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Contains(t, rec.Body.String(), "cluster unreachable")
}

func TestAsyncReceiverReportsCompletion(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		reports []map[string]any
		auth    []string
		paths   []string
	)
	flightdeck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		reports = append(reports, body)
		auth = append(auth, r.Header.Get("Authorization"))
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(flightdeck.Close)
	h := receiver.New(receiver.Config{Secret: secret, Now: func() time.Time { return now }, Async: true,
		Reporter: &receiver.Reporter{BaseURL: flightdeck.URL, Token: "fd_token"},
		Apply: func(_ context.Context, d receiver.Delivery) error {
			if d.Generation == 2 {
				return errors.New("terraform apply failed")
			}
			return nil
		}})
	require.Equal(t, http.StatusAccepted, serve(h, delivery(t, "d-1", 1, now, secret)).Code)
	require.Equal(t, http.StatusAccepted, serve(h, delivery(t, "d-2", 2, now, secret)).Code)
	h.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.ElementsMatch(t, []map[string]any{
		{"generation": float64(1), "ok": true, "message": "applied"},
		{"generation": float64(2), "ok": false, "message": "terraform apply failed"},
	}, reports)
	require.Equal(t, []string{"Bearer fd_token", "Bearer fd_token"}, auth)
	require.Equal(t, []string{"/api/v1/runs/7/driver-status", "/api/v1/runs/7/driver-status"}, paths)
}
