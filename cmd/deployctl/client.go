package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// errHelpShown says a command printed its help because it was asked to.
var errHelpShown = errors.New("help shown")

// connection holds the flags every command shares.
type connection struct {
	url   string
	token string
}

// newFlagSet returns the flag set of a command with the shared flags,
// whose defaults come from the environment.
func (c *cli) newFlagSet(name, synopsis string, conn *connection) *flag.FlagSet {
	fs := flag.NewFlagSet("deployctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: deployctl %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nRun deployctl --help for the exit codes.\n")
	}
	fs.StringVar(&conn.url, "url", c.getenv("FLIGHTDECK_URL"), "Flightdeck's address, such as https://flightdeck.example.com (FLIGHTDECK_URL)")
	fs.StringVar(&conn.token, "token", c.getenv("FLIGHTDECK_TOKEN"), "API token (FLIGHTDECK_TOKEN); prefer the environment variable")
	return fs
}

// parseFlags parses args, allowing flags after positional arguments, so
// that both "status --url U 42" and "status 42 --url U" work, and returns
// the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown
			}
			return nil, withCode(exitUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// check returns a usage error unless the connection flags are set.
func (conn connection) check() error {
	var missing []string
	if conn.url == "" {
		missing = append(missing, "--url (or FLIGHTDECK_URL)")
	}
	if conn.token == "" {
		missing = append(missing, "--token (or FLIGHTDECK_TOKEN)")
	}
	if len(missing) > 0 {
		return usageError("set %s", strings.Join(missing, " and "))
	}
	if !strings.HasPrefix(conn.url, "http://") && !strings.HasPrefix(conn.url, "https://") {
		return usageError("--url must start with http:// or https://, got %q", conn.url)
	}
	return nil
}

// client returns the API client for the connection. Every POST it sends
// carries idempotencyKey.
func (c *cli) client(conn connection, idempotencyKey string) (*apiclient.ClientWithResponses, *retryingDoer, error) {
	if err := conn.check(); err != nil {
		return nil, nil, err
	}
	doer := &retryingDoer{
		client: c.httpClient, token: conn.token, idempotencyKey: idempotencyKey,
		tries: 3, backoff: c.retryBackoff, stderr: c.stderr,
	}
	api, err := apiclient.NewClientWithResponses(strings.TrimSuffix(conn.url, "/"), apiclient.WithHTTPClient(doer))
	if err != nil {
		return nil, nil, usageError("--url %q: %w", conn.url, err)
	}
	return api, doer, nil
}

// retryingDoer sends requests with the token and, for POSTs, the
// idempotency key, and retries what may succeed a moment later: network
// errors, 5xx answers, and the 409 Flightdeck answers while the first
// request with the same key is still being handled. Because every try
// carries the same key, a retried POST never acts twice.
type retryingDoer struct {
	client         *http.Client
	token          string
	idempotencyKey string
	tries          int
	backoff        time.Duration
	stderr         io.Writer
}

// Do sends the request, retrying as the type describes.
func (d *retryingDoer) Do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("User-Agent", "deployctl")
	if req.Method == http.MethodPost && d.idempotencyKey != "" && req.Header.Get("Idempotency-Key") == "" {
		req.Header.Set("Idempotency-Key", d.idempotencyKey)
	}
	ctx := req.Context()
	wait := d.backoff
	for try := 1; ; try++ {
		attempt := req.Clone(ctx)
		if try > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			attempt.Body = body
		}
		resp, err := d.client.Do(attempt)
		why := retryReason(req, resp, err)
		if why == "" || try >= d.tries || ctx.Err() != nil || (try == 1 && req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			_ = resp.Body.Close()
		}
		fmt.Fprintf(d.stderr, "deployctl: %s %s: %s; trying again in %s\n", req.Method, req.URL.Path, why, wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// retryReason says why a try should be repeated, or "" when it should not.
func retryReason(req *http.Request, resp *http.Response, err error) string {
	switch {
	case err != nil:
		if req.Context().Err() != nil {
			return ""
		}
		return err.Error()
	case resp.StatusCode >= 500:
		return resp.Status
	case resp.StatusCode == http.StatusConflict && req.Header.Get("Idempotency-Key") != "":
		// A conflict that names the run's current state is final; one
		// without it says the first request with this key is still being
		// handled.
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var p struct {
			Current json.RawMessage `json:"current"`
		}
		if readErr == nil && json.Unmarshal(body, &p) == nil && len(p.Current) == 0 {
			return "the first request with this idempotency key is still being handled"
		}
	}
	return ""
}

// requestError is a request that got no answer: exit code 4, or 3 when
// deployctl stopped waiting.
func requestError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return withCode(exitUnreachable, fmt.Errorf("%s: cannot reach Flightdeck: %w", what, err))
}

// statusError turns an answer that is not a success into an error with
// deployctl's exit code and the server's explanation, or returns nil.
func statusError(what string, resp *http.Response, body []byte) error {
	if resp.StatusCode < 300 {
		return nil
	}
	msg := fmt.Sprintf("%s: %s", what, resp.Status)
	var p struct {
		Detail string `json:"detail"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &p) == nil {
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		for _, fe := range p.Errors {
			msg += fmt.Sprintf("\n  %s: %s", fe.Field, fe.Message)
		}
	}
	code := exitUsage
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		code = exitUnreachable
	case resp.StatusCode >= 500:
		code = exitUnreachable
	case resp.StatusCode < 400:
		// A redirect is not followed into the API; the URL is likely the
		// wrong one.
		code = exitUsage
	}
	return withCode(code, errors.New(msg))
}
