package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// deployRequest is what deploy was asked to do, read from its flags.
type deployRequest struct {
	conn           connection
	app, env       string
	version        string
	strategy       string
	reason         string
	params         stringList
	wait           bool
	timeout        time.Duration
	idempotencyKey string
}

// parseDeploy reads deploy's flags.
func (c *cli) parseDeploy(args []string) (deployRequest, error) {
	var r deployRequest
	fs := c.newFlagSet("deploy", "deploy --app APP --env ENV --version VERSION [flags]", &r.conn)
	fs.StringVar(&r.app, "app", "", "the app's slug (required)")
	fs.StringVar(&r.env, "env", "", "the environment's name (required)")
	fs.StringVar(&r.version, "version", "", "the version to deploy (required)")
	fs.StringVar(&r.strategy, "strategy", "", "recreate, rolling, blue_green, canary, shadow, ab_test or ring; default: the environment's")
	fs.StringVar(&r.reason, "reason", "", "why this version is deployed, for people")
	fs.Var(&r.params, "param", "a strategy parameter as key=value, repeatable; the value is JSON when valid JSON, else a string")
	fs.BoolVar(&r.wait, "wait", false, "follow the run until it finishes, and exit with its outcome")
	fs.DurationVar(&r.timeout, "timeout", 30*time.Minute, "with --wait, how long to follow the run before giving up (exit 3)")
	fs.StringVar(&r.idempotencyKey, "idempotency-key", "", "the request's Idempotency-Key; default: derived from the flags and the CI job")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return r, err
	}
	if len(positional) > 0 {
		return r, usageError("deploy takes no arguments, got %q; use --app, --env and --version", positional[0])
	}
	var missing []string
	for _, f := range []struct{ name, value string }{{"--app", r.app}, {"--env", r.env}, {"--version", r.version}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return r, usageError("deploy needs %s", strings.Join(missing, ", "))
	}
	if r.timeout <= 0 {
		return r, usageError("--timeout must be positive, got %s", r.timeout)
	}
	if _, err := parseParams(r.params); err != nil {
		return r, withCode(exitUsage, err)
	}
	return r, nil
}

// keyParts are the parts of the request an idempotency key is derived
// from: everything that changes what is asked for, in a fixed order.
func (r deployRequest) keyParts() []string {
	params := slices.Clone([]string(r.params))
	slices.Sort(params)
	return append([]string{"deploy", r.app, r.env, r.version, r.strategy, r.reason}, params...)
}

// deploy starts a run and, with --wait, follows it to its end.
func (c *cli) deploy(ctx context.Context, args []string) error {
	r, err := c.parseDeploy(args)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r.idempotencyKey, c.getenv, r.keyParts()...)
	if err != nil {
		return withCode(exitUsage, err)
	}
	api, _, err := c.client(r.conn, key)
	if err != nil {
		return err
	}
	params, _ := parseParams(r.params)
	body := apiclient.CreateRunRequest{Version: r.version}
	if len(params) > 0 {
		body.Params = &params
	}
	if r.strategy != "" {
		s := apiclient.Strategy(r.strategy)
		body.Strategy = &s
	}
	if r.reason != "" {
		body.Reason = &r.reason
	}
	resp, err := api.CreateRunWithResponse(ctx, r.app, r.env, &apiclient.CreateRunParams{IdempotencyKey: &key}, body)
	what := fmt.Sprintf("starting a run of %s in %s/%s", r.version, r.app, r.env)
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	run, verb := resp.JSON201, "started"
	if run == nil {
		run, verb = resp.JSON200, "already started with this idempotency key"
	}
	if run == nil {
		return withCode(exitUnreachable, fmt.Errorf("%s: the answer has no run: %s", what, resp.Body))
	}
	c.printf("run %d %s: %s %s to %s/%s (%s)\n", run.Id, verb, run.Strategy, run.ToVersion, run.App, run.Environment, run.State)
	if !r.wait {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return c.follow(waitCtx, api, run.Id, r.timeout)
}

// status prints a run and exits with its outcome when it has finished.
func (c *cli) status(ctx context.Context, args []string) error {
	var conn connection
	fs := c.newFlagSet("status", "status RUN [flags]", &conn)
	id, err := runArgument(fs, args)
	if err != nil {
		return err
	}
	api, _, err := c.client(conn, "")
	if err != nil {
		return err
	}
	resp, err := api.GetRunWithResponse(ctx, id)
	if err != nil {
		return requestError(fmt.Sprintf("reading run %d", id), err)
	}
	if err := statusError(fmt.Sprintf("reading run %d", id), resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	run := resp.JSON200
	from := "nothing"
	if run.FromVersion != nil {
		from = *run.FromVersion
	}
	c.printf("run %d: %s/%s, %s to %s by %s (%s)\n", run.Id, run.App, run.Environment, from, run.ToVersion, run.Strategy, run.CreatedBy)
	c.printf("state: %s\n", describeState(*run))
	if run.Reason != "" {
		c.printf("reason: %s\n", run.Reason)
	}
	return outcome(*run)
}

// events prints a run's events and, with --follow, follows the run.
func (c *cli) events(ctx context.Context, args []string) error {
	var conn connection
	var follow bool
	var timeout time.Duration
	fs := c.newFlagSet("events", "events RUN [flags]", &conn)
	fs.BoolVar(&follow, "follow", false, "keep printing events until the run finishes, and exit with its outcome")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "with --follow, how long to follow the run before giving up (exit 3)")
	id, err := runArgument(fs, args)
	if err != nil {
		return err
	}
	api, _, err := c.client(conn, "")
	if err != nil {
		return err
	}
	if follow {
		if timeout <= 0 {
			return usageError("--timeout must be positive, got %s", timeout)
		}
		waitCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.follow(waitCtx, api, id, timeout)
	}
	var after int64
	for {
		items, err := pollEvents(ctx, api, id, after)
		if err != nil {
			return err
		}
		for _, ev := range items {
			c.printf("%s\n", formatEvent(ev))
			after = ev.Id
		}
		if len(items) < eventPage {
			return nil
		}
	}
}

// actionCommand returns the command that applies action to a run.
func actionCommand(action apiclient.RunAction) command {
	return func(c *cli, ctx context.Context, args []string) error {
		var conn connection
		var comment, explicitKey string
		var toEnd bool
		synopsis := string(action) + " RUN [flags]"
		fs := c.newFlagSet(string(action), synopsis, &conn)
		fs.StringVar(&comment, "comment", "", "why, recorded with the action")
		fs.StringVar(&explicitKey, "idempotency-key", "", "the request's Idempotency-Key; default: derived from the flags and the CI job")
		if action == apiclient.RunActionPromote {
			fs.BoolVar(&toEnd, "to-end", false, "skip straight to the last phase")
		}
		id, err := runArgument(fs, args)
		if err != nil {
			return err
		}
		key, err := idempotencyKey(explicitKey, c.getenv, string(action), strconv.FormatInt(id, 10), comment, strconv.FormatBool(toEnd))
		if err != nil {
			return withCode(exitUsage, err)
		}
		api, _, err := c.client(conn, key)
		if err != nil {
			return err
		}
		var body apiclient.RunActionRequest
		if comment != "" {
			body.Comment = &comment
		}
		if toEnd {
			body.ToEnd = &toEnd
		}
		resp, err := api.ActOnRunWithResponse(ctx, id, action, &apiclient.ActOnRunParams{IdempotencyKey: &key}, body)
		if err != nil {
			return requestError(fmt.Sprintf("%s run %d", action, id), err)
		}
		if err := statusError(fmt.Sprintf("%s run %d", action, id), resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		result := resp.JSON200
		c.printf("run %d: %s\n", result.Run.Id, describeState(result.Run))
		if result.Created != nil {
			c.printf("run %d started to return to the previous version: %s\n", result.Created.Id, describeState(*result.Created))
		}
		return nil
	}
}

// apps lists the apps.
func (c *cli) apps(ctx context.Context, args []string) error {
	var conn connection
	fs := c.newFlagSet("apps", "apps [flags]", &conn)
	positional, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError("apps takes no arguments, got %q", positional[0])
	}
	api, _, err := c.client(conn, "")
	if err != nil {
		return err
	}
	var cursor *string
	for {
		resp, err := api.ListAppsWithResponse(ctx, &apiclient.ListAppsParams{Cursor: cursor})
		if err != nil {
			return requestError("listing apps", err)
		}
		if err := statusError("listing apps", resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		for _, a := range resp.JSON200.Items {
			c.printf("%s\t%s\n", a.Slug, a.Name)
		}
		if cursor = resp.JSON200.NextCursor; cursor == nil {
			return nil
		}
	}
}

// envs lists the environments of an app.
func (c *cli) envs(ctx context.Context, args []string) error {
	var conn connection
	var app string
	fs := c.newFlagSet("envs", "envs --app APP [flags]", &conn)
	fs.StringVar(&app, "app", "", "the app's slug (required)")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError("envs takes no arguments, got %q; use --app", positional[0])
	}
	if app == "" {
		return usageError("envs needs --app")
	}
	api, _, err := c.client(conn, "")
	if err != nil {
		return err
	}
	var cursor *string
	for {
		resp, err := api.ListEnvironmentsWithResponse(ctx, app, &apiclient.ListEnvironmentsParams{Cursor: cursor})
		if err != nil {
			return requestError("listing the environments of "+app, err)
		}
		if err := statusError("listing the environments of "+app, resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		for _, e := range resp.JSON200.Items {
			stable := "not deployed"
			if e.StableVersion != nil {
				stable = *e.StableVersion
			}
			c.printf("%s\t%s\t%s\t%s\n", e.Name, e.Tier, e.DefaultStrategy, stable)
		}
		if cursor = resp.JSON200.NextCursor; cursor == nil {
			return nil
		}
	}
}

// runArgument parses the flags of a command about one run and returns the
// run's id.
func runArgument(fs *flag.FlagSet, args []string) (int64, error) {
	positional, err := parseFlags(fs, args)
	if err != nil {
		return 0, err
	}
	if len(positional) != 1 {
		return 0, usageError("%s needs exactly one run id", fs.Name())
	}
	id, err := strconv.ParseInt(positional[0], 10, 64)
	if err != nil || id < 1 {
		return 0, usageError("%s: the run id must be a positive number, got %q", fs.Name(), positional[0])
	}
	return id, nil
}

// describeState says where a run is, for one line.
func describeState(run apiclient.Run) string {
	s := strings.ReplaceAll(string(run.State), "_", " ")
	if n := len(run.Phases); n > 0 && !isFinal(run.State) {
		s += fmt.Sprintf(", phase %d of %d", run.PhaseIndex+1, n)
		if run.Phase != nil && *run.Phase != "" {
			s += " (" + *run.Phase + ")"
		}
	}
	if run.State == apiclient.RunStateAwaitingApproval {
		s += fmt.Sprintf("; approve with: deployctl approve %d", run.Id)
	}
	return s
}

// isFinal reports whether a run in the state has ended.
func isFinal(s apiclient.RunState) bool {
	switch s {
	case apiclient.RunStateSucceeded, apiclient.RunStateRolledBack, apiclient.RunStateAborted, apiclient.RunStateFailed:
		return true
	}
	return false
}

// outcome is the exit status of a run: an error with exit code 1 when it
// ended without success, nil otherwise.
func outcome(run apiclient.Run) error {
	switch run.State {
	case apiclient.RunStateRolledBack, apiclient.RunStateAborted, apiclient.RunStateFailed:
		msg := fmt.Sprintf("run %d %s", run.Id, strings.ReplaceAll(string(run.State), "_", " "))
		if run.Reason != "" {
			msg += ": " + run.Reason
		}
		return withCode(exitFailed, fmt.Errorf("%s", msg))
	}
	return nil
}

// printf writes a line to stdout, first clearing the progress line.
func (c *cli) printf(format string, args ...any) {
	c.clearProgress()
	fmt.Fprintf(c.stdout, format, args...)
}
