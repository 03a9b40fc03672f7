package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// flagsRollout runs `deployctl flags rollout start|status|cancel`.
func (c *cli) flagsRollout(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("flags rollout needs start, status or cancel")
	}
	switch args[0] {
	case "start":
		return c.flagsRolloutStart(ctx, args[1:])
	case "status":
		return c.flagsRolloutStatus(ctx, args[1:])
	case "cancel":
		return c.flagsRolloutCancel(ctx, args[1:])
	}
	return usageError("unknown flags rollout subcommand %q; use start, status or cancel", args[0])
}

// flagsRolloutStart starts a guarded rollout.
func (c *cli) flagsRolloutStart(ctx context.Context, args []string) error {
	var variant, control, steps, bake string
	fc, err := c.parseFlagCommand(args, "flags rollout start", "flags rollout start APP ENV FLAG --bake 30m [flags]", "print the rollout as JSON", func(fs *flag.FlagSet) {
		fs.StringVar(&variant, "variant", "", "the variant to release (default true for a boolean flag)")
		fs.StringVar(&control, "control", "", "the variant the other users keep (default false for a boolean flag)")
		fs.StringVar(&steps, "steps", "", "percentages of users to step through, such as 5,25,50,100 (the default)")
		fs.StringVar(&bake, "bake", "", "how long each step is watched before the next, such as 30m (required)")
	}, "APP", "ENV", "FLAG")
	if err != nil {
		return err
	}
	if bake == "" {
		return usageError("flags rollout start needs --bake, how long each step is watched, such as 30m")
	}
	body := apiclient.StartFlagRolloutRequest{StepBake: bake}
	if variant != "" {
		body.Variant = &variant
	}
	if control != "" {
		body.ControlVariant = &control
	}
	if steps != "" {
		var list []float64
		for _, s := range strings.Split(steps, ",") {
			p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
			if err != nil {
				return usageError("--steps: %q is not a percentage; give them as 5,25,50,100", s)
			}
			list = append(list, p)
		}
		body.Steps = &list
	}
	app, env, key := fc.args[0], fc.args[1], fc.args[2]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := fmt.Sprintf("starting a guarded rollout of %s in %s/%s", key, app, env)
	resp, err := api.StartFlagRolloutWithResponse(ctx, app, key, env, body)
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	if fc.asJSON {
		return c.printJSON(resp.JSON201)
	}
	c.printRollout(*resp.JSON201)
	return nil
}

// flagsRolloutStatus prints the running or latest rollout.
func (c *cli) flagsRolloutStatus(ctx context.Context, args []string) error {
	return c.rolloutCommand(ctx, args, "status", "reading the rollout", func(api *apiclient.ClientWithResponses, app, env, key string) (*http.Response, []byte, *apiclient.FlagRollout, error) {
		resp, err := api.GetFlagRolloutWithResponse(ctx, app, key, env)
		if err != nil {
			return nil, nil, nil, err
		}
		return resp.HTTPResponse, resp.Body, resp.JSON200, nil
	})
}

// flagsRolloutCancel stops the running rollout at its current share.
func (c *cli) flagsRolloutCancel(ctx context.Context, args []string) error {
	return c.rolloutCommand(ctx, args, "cancel", "cancelling the rollout", func(api *apiclient.ClientWithResponses, app, env, key string) (*http.Response, []byte, *apiclient.FlagRollout, error) {
		resp, err := api.CancelFlagRolloutWithResponse(ctx, app, key, env)
		if err != nil {
			return nil, nil, nil, err
		}
		return resp.HTTPResponse, resp.Body, resp.JSON200, nil
	})
}

// rolloutCommand runs a `deployctl flags rollout` subcommand that takes
// APP ENV FLAG and answers a rollout: call sends the request.
func (c *cli) rolloutCommand(ctx context.Context, args []string, name, doing string,
	call func(api *apiclient.ClientWithResponses, app, env, key string) (*http.Response, []byte, *apiclient.FlagRollout, error),
) error {
	fc, err := c.parseFlagCommand(args, "flags rollout "+name, "flags rollout "+name+" APP ENV FLAG [flags]", "print the rollout as JSON", nil, "APP", "ENV", "FLAG")
	if err != nil {
		return err
	}
	app, env, key := fc.args[0], fc.args[1], fc.args[2]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s of %s in %s/%s", doing, key, app, env)
	resp, body, r, err := call(api, app, env, key)
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp, body); err != nil {
		return err
	}
	if fc.asJSON {
		return c.printJSON(r)
	}
	c.printRollout(*r)
	return nil
}

// printRollout writes a rollout in lines for people.
func (c *cli) printRollout(r apiclient.FlagRollout) {
	steps := make([]string, len(r.Steps))
	for i, p := range r.Steps {
		steps[i] = strconv.FormatFloat(p, 'g', -1, 64) + "%"
		if i == r.Step && r.State == apiclient.FlagRolloutStateRunning {
			steps[i] = "[" + steps[i] + "]"
		}
	}
	c.printf("rollout %d of %s in %s: %s, %q over %q\n", r.Id, r.Flag, r.Environment, strings.ReplaceAll(string(r.State), "_", " "), r.Variant, r.ControlVariant)
	c.printf("  steps    %s, %s each\n", strings.Join(steps, " → "), r.StepBake)
	c.printf("  now      %s%% of users\n", strconv.FormatFloat(r.Percent, 'g', -1, 64))
	c.printf("  started  by %s at %s\n", r.StartedBy, r.CreatedAt.Local().Format(time.DateTime))
	if r.Decision != nil {
		if e, ok := (*r.Decision)["explanation"].(string); ok {
			c.printf("  decision %s\n", e)
		}
	}
	if r.Outcome != nil {
		c.printf("  outcome  %s\n", *r.Outcome)
	}
}
