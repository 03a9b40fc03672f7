package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/examples/webhook-receiver/receiver"
)

const secret = "a-shared-secret-of-32-bytes-long"

// syncBuffer is a buffer the receiver writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestReceiverPrintsVerifiedDesiredStates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, env(map[string]string{"FLIGHTDECK_WEBHOOK_SECRET": secret}),
			&stdout, io.Discard, func(a string) { addr <- a })
	}()
	url := "http://" + <-addr

	body, err := json.Marshal(receiver.Delivery{DeliveryID: "d-1", RunID: 3, Generation: 1, App: "checkout", Environment: "production",
		Phase: "canary 25%", Versions: []receiver.Version{{Version: "v2", Role: "candidate", Instances: 1, Weight: 25}}})
	require.NoError(t, err)
	post := func(signature string) int {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(receiver.SignatureHeader, signature)
		req.Header.Set(receiver.DeliveryHeader, "d-1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	require.Equal(t, http.StatusUnauthorized, post("t="+ts+",v1="+hex.EncodeToString([]byte("forged"))))
	require.Empty(t, stdout.String(), "nothing unverified is printed")
	require.Equal(t, http.StatusOK, post("t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil))))

	var printed receiver.Delivery
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &printed))
	require.Equal(t, "canary 25%", printed.Phase)
	require.Equal(t, 25, printed.Versions[0].Weight)

	cancel()
	require.NoError(t, <-done)
}

func TestReceiverRefusesToStartWithoutWhatItNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	err := run(ctx, nil, env(nil), io.Discard, io.Discard, nil)
	require.ErrorContains(t, err, "set FLIGHTDECK_WEBHOOK_SECRET")
	err = run(ctx, []string{"-async"}, env(map[string]string{"FLIGHTDECK_WEBHOOK_SECRET": secret}), io.Discard, io.Discard, nil)
	require.ErrorContains(t, err, "-async needs -flightdeck-url")
	err = run(ctx, nil, env(map[string]string{"FLIGHTDECK_WEBHOOK_SECRET_FILE": "/nonexistent/secret"}), io.Discard, io.Discard, nil)
	require.ErrorContains(t, err, "reading FLIGHTDECK_WEBHOOK_SECRET_FILE")
	err = run(ctx, []string{"-addr", "not an address"}, env(map[string]string{"FLIGHTDECK_WEBHOOK_SECRET": secret}), io.Discard, io.Discard, nil)
	require.ErrorContains(t, err, "listening on not an address")
}
