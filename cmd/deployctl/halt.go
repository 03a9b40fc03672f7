package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// halt stops the line, restarts it or tells whether it is stopped:
//
//	deployctl halt --reason TEXT   pause every active run, hold new ones
//	deployctl halt lift            resume exactly the runs the halt paused
//	deployctl halt status          whether the line is stopped, by whom and why
func (c *cli) halt(ctx context.Context, args []string) error {
	var conn connection
	var reason string
	fs := c.newFlagSet("halt", "halt --reason TEXT | halt lift | halt status [flags]", &conn)
	fs.StringVar(&reason, "reason", "", "why the line is stopped (required to stop it)")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	sub := ""
	switch len(positional) {
	case 0:
	case 1:
		sub = positional[0]
	default:
		return usageError("halt takes at most one argument (lift or status), got %q", strings.Join(positional, " "))
	}
	switch sub {
	case "":
		if strings.TrimSpace(reason) == "" {
			return usageError("halt needs --reason: say why the line is stopped")
		}
	case "lift", "status":
		if reason != "" {
			return usageError("--reason only applies when stopping the line, not to halt %s", sub)
		}
	default:
		return usageError("unknown halt command %q; use halt --reason TEXT, halt lift or halt status", sub)
	}
	api, _, err := c.client(conn, "")
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		resp, err := api.GetHaltWithResponse(ctx)
		if err != nil {
			return requestError("reading the halt", err)
		}
		if err := statusError("reading the halt", resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		c.printHalt(*resp.JSON200)
		return nil
	case "lift":
		resp, err := api.LiftHaltWithResponse(ctx)
		if err != nil {
			return requestError("restarting the line", err)
		}
		if err := statusError("restarting the line", resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		c.printf("the line is running again; %s resumed\n", runCount(resp.JSON200.Runs))
		return nil
	}
	resp, err := api.StopLineWithResponse(ctx, apiclient.HaltRequest{Reason: strings.TrimSpace(reason)})
	if err != nil {
		return requestError("stopping the line", err)
	}
	if err := statusError("stopping the line", resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	c.printf("the line is stopped: %s; %s paused\n", reason, runCount(resp.JSON200.Runs))
	return nil
}

func (c *cli) printHalt(h apiclient.Halt) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	when := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	if h.Active {
		c.printf("stopped\t%s\tby %s\tsince %s\n", str(h.Reason), str(h.HaltedBy), when(h.HaltedAt))
		return
	}
	if h.LiftedAt != nil {
		c.printf("running\tlast stopped by %s (%s), restarted by %s at %s\n", str(h.HaltedBy), str(h.Reason), str(h.LiftedBy), when(h.LiftedAt))
		return
	}
	c.printf("running\n")
}

func runCount(ids *[]int64) string {
	n := 0
	if ids != nil {
		n = len(*ids)
	}
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}
