// Command deployctl starts and follows Flightdeck deployments from CI
// pipelines and terminals. It talks to Flightdeck's REST API only, through
// the generated client, so it runs wherever a pipeline runs.
//
// Run `deployctl --help` for the commands, their flags and the exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newCLI(os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Exit codes. CI reads them to tell a bad release (1) from a bad pipeline
// (2), a slow one (3) and a broken connection or credential (4), which call
// for different people.
const (
	exitSucceeded   = 0
	exitFailed      = 1
	exitUsage       = 2
	exitTimeout     = 3
	exitUnreachable = 4
)

// usage is the help text of deployctl, printed by --help.
const usage = `deployctl starts and follows Flightdeck deployments.

Usage:
  deployctl deploy --app APP --env ENV --version VERSION [--strategy S]
                   [--param key=value ...] [--reason TEXT] [--wait] [--timeout 30m]
  deployctl status RUN
  deployctl events RUN [--follow] [--timeout 30m]
  deployctl promote RUN [--to-end] [--comment TEXT]
  deployctl approve RUN [--comment TEXT]
  deployctl abort RUN [--comment TEXT]
  deployctl rollback RUN [--comment TEXT]
  deployctl apps
  deployctl envs --app APP
  deployctl flags list|get|create|set|kill|eval|history ...
                 feature flags; deployctl flags --help for their arguments
  deployctl halt --reason TEXT | halt lift | halt status
                 stop the line (pause every active run, hold new ones),
                 restart it, or show whether it is stopped

Every command takes:
  --url URL      Flightdeck's address (FLIGHTDECK_URL)
  --token TOKEN  API token, sent as a Bearer token (FLIGHTDECK_TOKEN); prefer
                 the environment variable, which other users cannot read

--param values are read as JSON when they are valid JSON and as strings
otherwise: --param steps=[5,50,100] --param step_bake=2m.

POST requests carry an Idempotency-Key, the same on deployctl's own retries
(network errors and 5xx, at most 3 tries). It is --idempotency-key when
given; otherwise a SHA-256 of the command's flags and the CI job
(GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT and GITHUB_JOB, or CI_JOB_ID), so that a
retried CI step does not deploy twice; outside CI it is random.

Exit codes:
  0  succeeded (with --wait or --follow: the run succeeded)
  1  the run rolled back, was aborted or failed
  2  bad usage, or the server refused the request (4xx other than 401/403)
  3  timed out (--timeout) or interrupted while waiting; the run goes on
  4  cannot reach the server, it keeps failing (5xx), or the token is
     refused (401/403)
`

// cli is one invocation of deployctl with what it writes to and reads
// from, so tests can run it in-process with short intervals.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdin is read by commands given a file of "-".
	stdin io.Reader
	// httpClient sends every request; its transport bounds connecting and
	// waiting for headers, but not reading a body, since an event stream
	// stays open for as long as the run.
	httpClient *http.Client
	// pollInterval is how often a followed run is read.
	pollInterval time.Duration
	// retryBackoff is the wait before the second try of a request; it
	// doubles for the third.
	retryBackoff time.Duration
	// tty says whether stdout is a terminal, which gets a live progress
	// line instead of only plain lines.
	tty bool
	// progressShown says the progress line is on screen and must be
	// cleared before the next line.
	progressShown bool
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{
		stdout: stdout, stderr: stderr, getenv: getenv, stdin: os.Stdin,
		httpClient: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}},
		pollInterval: 2 * time.Second,
		retryBackoff: time.Second,
		tty:          isTerminal(stdout),
	}
}

// isTerminal reports whether w is a character device. The standard
// library's check is enough here and keeps deployctl's dependencies to
// those the module already requires.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// command is one subcommand of deployctl.
type command func(c *cli, ctx context.Context, args []string) error

var commands = map[string]command{
	"deploy":   (*cli).deploy,
	"status":   (*cli).status,
	"events":   (*cli).events,
	"promote":  actionCommand("promote"),
	"approve":  actionCommand("approve"),
	"abort":    actionCommand("abort"),
	"rollback": actionCommand("rollback"),
	"apps":     (*cli).apps,
	"envs":     (*cli).envs,
	"flags":    (*cli).flags,
	"halt":     (*cli).halt,
}

// run executes the command line and returns the exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usage)
		return exitSucceeded
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "deployctl: unknown command %q; run deployctl --help for the commands\n", args[0])
		return exitUsage
	}
	err := cmd(c, ctx, args[1:])
	if errors.Is(err, errHelpShown) {
		return exitSucceeded
	}
	code := exitCode(err)
	if err != nil {
		c.clearProgress()
		fmt.Fprintf(c.stderr, "deployctl: %s\n", strings.TrimSpace(err.Error()))
	}
	return code
}

// exitError is an error that knows deployctl's exit code for it.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode gives err the exit code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError is a mistake on the command line.
func usageError(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// exitCode maps an error to deployctl's exit code. An error without a code
// of its own is a failure to talk to the server, except a deadline or an
// interruption, which means deployctl stopped waiting.
func exitCode(err error) int {
	if err == nil {
		return exitSucceeded
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return exitTimeout
	}
	return exitUnreachable
}
