// Command webhook-receiver is an example receiver for Flightdeck's webhook
// driver. It verifies every delivery's signature with the shared secret,
// refuses replays, prints the desired state as JSON, and answers 200; with
// -async it answers 202 and then reports completion to Flightdeck through
// POST /api/v1/runs/{id}/driver-status. Replace the printing with the call
// to your deploy system.
//
//	FLIGHTDECK_WEBHOOK_SECRET=... webhook-receiver -addr 127.0.0.1:9000
//	FLIGHTDECK_WEBHOOK_SECRET=... FLIGHTDECK_TOKEN=... webhook-receiver -async -flightdeck-url https://flightdeck.example.com
//
// The secret and the token may also be read from files named by
// FLIGHTDECK_WEBHOOK_SECRET_FILE and FLIGHTDECK_TOKEN_FILE.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flightdeckhq/flightdeck/examples/webhook-receiver/receiver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		slog.Error("webhook receiver stopped", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run serves until ctx ends. listening, when set, is told the address the
// receiver listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, listening func(addr string)) error {
	fs := flag.NewFlagSet("webhook-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on")
	async := fs.Bool("async", false, "answer 202 and report completion to Flightdeck afterwards")
	flightdeckURL := fs.String("flightdeck-url", getenv("FLIGHTDECK_URL"), "Flightdeck's URL, for -async reports (or FLIGHTDECK_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret, err := fromEnv(getenv, "FLIGHTDECK_WEBHOOK_SECRET")
	if err != nil {
		return err
	}
	if len(secret) < 16 {
		return errors.New("set FLIGHTDECK_WEBHOOK_SECRET (or FLIGHTDECK_WEBHOOK_SECRET_FILE) to the environment's webhook secret, at least 16 bytes")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	out := &printer{w: stdout}
	cfg := receiver.Config{Secret: []byte(secret), Apply: out.print, Logger: logger}
	if *async {
		token, err := fromEnv(getenv, "FLIGHTDECK_TOKEN")
		if err != nil {
			return err
		}
		if *flightdeckURL == "" || token == "" {
			return errors.New("-async needs -flightdeck-url (or FLIGHTDECK_URL) and FLIGHTDECK_TOKEN (or FLIGHTDECK_TOKEN_FILE), a token with the deploy scope")
		}
		cfg.Async = true
		cfg.Reporter = &receiver.Reporter{BaseURL: *flightdeckURL, Token: token, Client: &http.Client{Timeout: 10 * time.Second}}
	}
	h := receiver.New(cfg)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.InfoContext(ctx, "webhook receiver listening", slog.String("addr", ln.Addr().String()), slog.Bool("async", *async))
	if listening != nil {
		listening(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	h.Wait()
	return err
}

// fromEnv reads a setting from NAME, or from the file named by NAME_FILE.
func fromEnv(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	path := getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// printer writes each desired state as one line of JSON.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) print(_ context.Context, d receiver.Delivery) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return json.NewEncoder(p.w).Encode(d)
}
