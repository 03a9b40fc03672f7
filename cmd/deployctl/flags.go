package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// flagsUsage is the help text of `deployctl flags`.
const flagsUsage = `deployctl flags reads and changes Flightdeck's feature flags.

Usage:
  deployctl flags list APP [--json]
  deployctl flags get APP FLAG [--json]
  deployctl flags create APP --file flag.json [--json]
  deployctl flags set APP ENV FLAG --file state.json [--version N] [--json]
  deployctl flags kill APP ENV FLAG [--json]
  deployctl flags eval APP ENV FLAG [--context '{"targetingKey": "u-42"}'] [--json]
  deployctl flags history APP FLAG [--limit 50] [--json]
  deployctl flags rollout start APP ENV FLAG --bake 30m [--steps 5,25,50,100] [--variant V --control V] [--json]
  deployctl flags rollout status|cancel APP ENV FLAG [--json]

--file - reads the file from standard input. flag.json is the flag's
definition, such as
  {"key": "new-checkout", "type": "boolean", "variants": {"on": true, "off": false},
   "default_variant": "off"}
and state.json its state in one environment, such as
  {"enabled": true, "rules": [{"name": "staff", "clauses": [{"attribute": "email",
   "op": "ends_with", "values": ["@example.com"]}], "variant": "on"}],
   "default_rollout": {"rollout": [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]}}

set replaces the state only if nobody changed it since the version it is
based on: --version when given, else the file's "version", else the
version read just before. kill needs no version and always wins.
rollout start releases a variant step by step, each step judged from the
metrics the application pushes by variant; a rollback turns the flag off.
--json prints the API's answer as JSON instead of lines for people.
Every command also takes --url and --token; see deployctl --help.
`

// flagCommands are the subcommands of `deployctl flags`.
var flagCommands = map[string]command{
	"list":    (*cli).flagsList,
	"get":     (*cli).flagsGet,
	"create":  (*cli).flagsCreate,
	"set":     (*cli).flagsSet,
	"kill":    (*cli).flagsKill,
	"eval":    (*cli).flagsEval,
	"history": (*cli).flagsHistory,
	"rollout": (*cli).flagsRollout,
}

// flags runs a subcommand of `deployctl flags`.
func (c *cli) flags(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, flagsUsage)
		return usageError("flags needs a subcommand: list, get, create, set, kill, eval, history or rollout")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, flagsUsage)
		return errHelpShown
	}
	sub, ok := flagCommands[args[0]]
	if !ok {
		return usageError("unknown flags subcommand %q; run deployctl flags --help for them", args[0])
	}
	return sub(c, ctx, args[1:])
}

// flagArgs checks that a `deployctl flags` subcommand got exactly the
// positional arguments named.
func flagArgs(fs *flag.FlagSet, positional []string, names ...string) error {
	if len(positional) != len(names) {
		return usageError("%s needs %s, got %d argument(s)", fs.Name(), strings.Join(names, " "), len(positional))
	}
	for i, name := range names {
		if strings.TrimSpace(positional[i]) == "" {
			return usageError("%s: %s must not be empty", fs.Name(), name)
		}
	}
	return nil
}

// flagsList prints every flag of an app with its state in each
// environment.
func (c *cli) flagsList(ctx context.Context, args []string) error {
	fc, err := c.parseFlagCommand(args, "flags list", "flags list APP [flags]", "print the flags as JSON", nil, "APP")
	if err != nil {
		return err
	}
	app := fc.args[0]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := "listing the flags of " + app
	items := []apiclient.FlagListItem{}
	var cursor *string
	for {
		resp, err := api.ListFlagsWithResponse(ctx, app, &apiclient.ListFlagsParams{Cursor: cursor})
		if err != nil {
			return requestError(what, err)
		}
		if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		items = append(items, resp.JSON200.Items...)
		if cursor = resp.JSON200.NextCursor; cursor == nil {
			break
		}
	}
	if fc.asJSON {
		return c.printJSON(apiclient.FlagList{Items: items})
	}
	if len(items) == 0 {
		c.printf("%s has no flags\n", app)
		return nil
	}
	for _, f := range items {
		c.printf("%s\t%s\t%s\n", f.Key, f.Type, f.Description)
		for _, e := range f.Environments {
			c.printf("  %s\t%s\n", e.Environment, e.Summary)
		}
	}
	return nil
}

// flagsGet prints one flag with its state in every environment.
func (c *cli) flagsGet(ctx context.Context, args []string) error {
	fc, err := c.parseFlagCommand(args, "flags get", "flags get APP FLAG [flags]", "print the flag as JSON", nil, "APP", "FLAG")
	if err != nil {
		return err
	}
	app, key := fc.args[0], fc.args[1]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	f, err := getFlag(ctx, api, app, key)
	if err != nil {
		return err
	}
	if fc.asJSON {
		return c.printJSON(f)
	}
	c.printf("flag %s of %s: %s, version %d\n", f.Key, app, f.Type, f.Version)
	if f.Description != "" {
		c.printf("description: %s\n", f.Description)
	}
	c.printf("variants: %s\n", describeVariants(f))
	for _, e := range f.Environments {
		c.printf("%s\n", describeEnvironmentState(e))
		for i, r := range e.Rules {
			c.printf("  rule %d %q: %s\n", i+1, r.Name, describeRule(r))
		}
		if e.Configured {
			c.printf("  default: %s\n", describeServe(e.DefaultRollout.Variant, e.DefaultRollout.Rollout, f.DefaultVariant))
		}
	}
	return nil
}

// flagsCreate creates a flag from a definition file.
func (c *cli) flagsCreate(ctx context.Context, args []string) error {
	var file string
	fc, err := c.parseFlagCommand(args, "flags create", "flags create APP --file flag.json [flags]", "print the created flag as JSON", func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "the flag's definition as JSON, or - to read it from standard input (required)")
	}, "APP")
	if err != nil {
		return err
	}
	app := fc.args[0]
	body, err := c.readJSONFile(file)
	if err != nil {
		return err
	}
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := "creating a flag of " + app
	resp, err := api.CreateFlagWithBodyWithResponse(ctx, app, "application/json", bytes.NewReader(body))
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	f := resp.JSON201
	if fc.asJSON {
		return c.printJSON(f)
	}
	c.printf("flag %s of %s created (%s; variants %s); it is off everywhere until its state is set with deployctl flags set\n",
		f.Key, app, f.Type, describeVariants(*f))
	return nil
}

// flagsSet replaces a flag's state in an environment from a file.
func (c *cli) flagsSet(ctx context.Context, args []string) error {
	var file string
	var version int64
	fc, err := c.parseFlagCommand(args, "flags set", "flags set APP ENV FLAG --file state.json [flags]", "print the new state as JSON", func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "the state as JSON, or - to read it from standard input (required)")
		fs.Int64Var(&version, "version", -1, "the state's version the file is based on (0: not configured yet); default: the file's \"version\", else the current one")
	}, "APP", "ENV", "FLAG")
	if err != nil {
		return err
	}
	app, env, key := fc.args[0], fc.args[1], fc.args[2]
	if version < -1 {
		return usageError("--version must be 0 or more, got %d", version)
	}
	raw, err := c.readJSONFile(file)
	if err != nil {
		return err
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(raw, &state); err != nil || state == nil {
		return usageError("--file %s: the state must be a JSON object such as {\"enabled\": true}", file)
	}
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	if version >= 0 {
		state["version"] = json.RawMessage(strconv.FormatInt(version, 10))
	} else if _, given := state["version"]; !given {
		f, err := getFlag(ctx, api, app, key)
		if err != nil {
			return err
		}
		current, ok := environmentState(f, env)
		if !ok {
			return usageError("flag %s of %s has no environment %q (or the token may not see it)", key, app, env)
		}
		state["version"] = json.RawMessage(strconv.FormatInt(current.Version, 10))
	}
	body, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encoding the state: %w", err)
	}
	what := fmt.Sprintf("setting flag %s in %s/%s", key, app, env)
	resp, err := api.SetFlagStateWithBodyWithResponse(ctx, app, key, env, "application/json", bytes.NewReader(body))
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		if resp.StatusCode() == http.StatusConflict {
			return withCode(exitUsage, fmt.Errorf("%w\n  somebody changed it since; see it with deployctl flags get %s %s, then set it again", err, app, key))
		}
		return err
	}
	if fc.asJSON {
		return c.printJSON(resp.JSON200)
	}
	c.printf("flag %s in %s/%s: %s (version %d)\n", key, app, env, resp.JSON200.Summary, resp.JSON200.Version)
	return nil
}

// flagsKill turns a flag off in an environment.
func (c *cli) flagsKill(ctx context.Context, args []string) error {
	fc, err := c.parseFlagCommand(args, "flags kill", "flags kill APP ENV FLAG [flags]", "print the new state as JSON", nil, "APP", "ENV", "FLAG")
	if err != nil {
		return err
	}
	app, env, key := fc.args[0], fc.args[1], fc.args[2]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := fmt.Sprintf("killing flag %s in %s/%s", key, app, env)
	resp, err := api.KillFlagWithResponse(ctx, app, key, env)
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	if fc.asJSON {
		return c.printJSON(resp.JSON200)
	}
	c.printf("flag %s in %s/%s is off: %s (version %d)\n", key, app, env, resp.JSON200.Summary, resp.JSON200.Version)
	return nil
}

// flagsEval prints what a user would get from a flag in an environment.
func (c *cli) flagsEval(ctx context.Context, args []string) error {
	var evalContext string
	fc, err := c.parseFlagCommand(args, "flags eval", "flags eval APP ENV FLAG [--context JSON] [flags]", "print the evaluation as JSON", func(fs *flag.FlagSet) {
		fs.StringVar(&evalContext, "context", "{}", `the evaluation context as a JSON object, such as {"targetingKey": "u-42", "email": "ada@example.com"}`)
	}, "APP", "ENV", "FLAG")
	if err != nil {
		return err
	}
	app, env, key := fc.args[0], fc.args[1], fc.args[2]
	trimmed := strings.TrimSpace(evalContext)
	if !json.Valid([]byte(trimmed)) || !strings.HasPrefix(trimmed, "{") {
		return usageError(`--context must be a JSON object, such as {"targetingKey": "u-42"}; got %s`, evalContext)
	}
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	body := []byte(`{"context": ` + trimmed + `}`)
	what := fmt.Sprintf("evaluating flag %s in %s/%s", key, app, env)
	resp, err := api.EvaluateFlagWithBodyWithResponse(ctx, app, key, env, "application/json", bytes.NewReader(body))
	if err != nil {
		return requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return err
	}
	r := resp.JSON200
	if fc.asJSON {
		return c.printJSON(r)
	}
	if r.ErrorCode != nil {
		msg := ""
		if r.ErrorMessage != nil {
			msg = ": " + *r.ErrorMessage
		}
		c.printf("%s in %s/%s: %s %s%s\n", key, app, env, r.Reason, *r.ErrorCode, msg)
		return nil
	}
	value, err := json.Marshal(r.Value)
	if err != nil {
		return fmt.Errorf("encoding the value: %w", err)
	}
	variant := ""
	if r.Variant != nil {
		variant = *r.Variant
	}
	line := fmt.Sprintf("%s in %s/%s: %s (%s), reason %s", key, app, env, variant, value, r.Reason)
	if r.Rule != nil {
		line += fmt.Sprintf(", rule %q", *r.Rule)
	}
	if !r.Configured {
		line += "; the flag is not configured there"
	}
	c.printf("%s\n", line)
	return nil
}

// flagsHistory prints a flag's changes, newest first.
func (c *cli) flagsHistory(ctx context.Context, args []string) error {
	var limit int
	fc, err := c.parseFlagCommand(args, "flags history", "flags history APP FLAG [--limit N] [flags]", "print the changes as JSON", func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 50, "the most changes to print, newest first")
	}, "APP", "FLAG")
	if err != nil {
		return err
	}
	if limit < 1 {
		return usageError("--limit must be 1 or more, got %d", limit)
	}
	app, key := fc.args[0], fc.args[1]
	api, _, err := c.client(fc.conn, "")
	if err != nil {
		return err
	}
	what := fmt.Sprintf("reading the history of flag %s of %s", key, app)
	items := []apiclient.FlagEvent{}
	var cursor *string
	for len(items) < limit {
		page := min(limit-len(items), 200)
		resp, err := api.ListFlagHistoryWithResponse(ctx, app, key, &apiclient.ListFlagHistoryParams{Cursor: cursor, Limit: &page})
		if err != nil {
			return requestError(what, err)
		}
		if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
			return err
		}
		items = append(items, resp.JSON200.Items...)
		if cursor = resp.JSON200.NextCursor; cursor == nil {
			break
		}
	}
	if len(items) > limit {
		items = items[:limit]
	}
	if fc.asJSON {
		return c.printJSON(apiclient.FlagEventList{Items: items})
	}
	for _, ev := range items {
		c.printf("%s\n", describeFlagEvent(ev))
	}
	return nil
}

// getFlag reads one flag.
func getFlag(ctx context.Context, api *apiclient.ClientWithResponses, app, key string) (apiclient.Flag, error) {
	what := fmt.Sprintf("reading flag %s of %s", key, app)
	resp, err := api.GetFlagWithResponse(ctx, app, key)
	if err != nil {
		return apiclient.Flag{}, requestError(what, err)
	}
	if err := statusError(what, resp.HTTPResponse, resp.Body); err != nil {
		return apiclient.Flag{}, err
	}
	return *resp.JSON200, nil
}

// environmentState picks a flag's state in one environment.
func environmentState(f apiclient.Flag, env string) (apiclient.FlagEnvironment, bool) {
	for _, e := range f.Environments {
		if e.Environment == env {
			return e, true
		}
	}
	return apiclient.FlagEnvironment{}, false
}

// readJSONFile reads --file, or standard input for "-", and checks that
// it is JSON, so that a wrong file is named before anything is sent.
func (c *cli) readJSONFile(file string) ([]byte, error) {
	var b []byte
	var err error
	switch file {
	case "":
		return nil, usageError("--file is required: the JSON to send, or - to read it from standard input")
	case "-":
		b, err = io.ReadAll(io.LimitReader(c.stdin, 1<<20+1))
	default:
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, usageError("--file %s: %v", file, err)
	}
	if len(b) > 1<<20 {
		return nil, usageError("--file %s is larger than 1 MB", file)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, usageError("--file %s is not valid JSON: %v", file, err)
	}
	return b, nil
}

// printJSON prints v as indented JSON.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the answer: %w", err)
	}
	c.printf("%s\n", b)
	return nil
}

// describeVariants lists a flag's variants with their values and which is
// the default and which is served while off: "off=false (default), on=true".
func describeVariants(f apiclient.Flag) string {
	names := make([]string, 0, len(f.Variants))
	for name := range f.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	off := f.OffVariant
	if off == "" {
		off = f.DefaultVariant
	}
	parts := make([]string, len(names))
	for i, name := range names {
		value, _ := json.Marshal(f.Variants[name])
		parts[i] = name + "=" + string(value)
		var roles []string
		if name == f.DefaultVariant {
			roles = append(roles, "default")
		}
		if name == off {
			roles = append(roles, "when off")
		}
		if len(roles) > 0 {
			parts[i] += " (" + strings.Join(roles, ", ") + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// describeEnvironmentState is the first line of a flag's state in one
// environment: its name, summary, version and who changed it last.
func describeEnvironmentState(e apiclient.FlagEnvironment) string {
	line := e.Environment + ": " + e.Summary
	if !e.Configured {
		return line
	}
	line += fmt.Sprintf(" (version %d", e.Version)
	if e.UpdatedBy != nil {
		line += ", by " + *e.UpdatedBy
	}
	if e.UpdatedAt != nil {
		line += " at " + e.UpdatedAt.UTC().Format(time.RFC3339)
	}
	return line + ")"
}

// describeRule says whom a rule targets and what it serves:
// `segment beta, email ends_with ["@example.com"] → on`.
func describeRule(r apiclient.FlagRule) string {
	var who []string
	if r.Segment != nil {
		who = append(who, "segment "+*r.Segment)
	}
	if r.Clauses != nil {
		for _, cl := range *r.Clauses {
			values, _ := json.Marshal(cl.Values)
			who = append(who, fmt.Sprintf("%s %s %s", cl.Attribute, cl.Op, values))
		}
	}
	if len(who) == 0 {
		who = append(who, "everyone")
	}
	return strings.Join(who, " and ") + " → " + describeServe(r.Variant, r.Rollout, "")
}

// describeServe says what a fixed variant or a rollout serves: "on" or
// "5% on / 95% off"; empty, the default variant.
func describeServe(variant *string, rollout *[]apiclient.WeightedVariant, defaultVariant string) string {
	if rollout != nil && len(*rollout) > 0 {
		parts := make([]string, len(*rollout))
		for i, wv := range *rollout {
			parts[i] = strconv.FormatFloat(wv.Weight, 'f', -1, 64) + "% " + wv.Variant
		}
		return strings.Join(parts, " / ")
	}
	if variant != nil && *variant != "" {
		return *variant
	}
	if defaultVariant != "" {
		return defaultVariant + " (the default variant)"
	}
	return "the default variant"
}

// describeFlagEvent is one line of a flag's history.
func describeFlagEvent(ev apiclient.FlagEvent) string {
	where := "every environment"
	if ev.Environment != nil {
		where = *ev.Environment
	}
	line := fmt.Sprintf("%s  %-18s %-17s %s", ev.At.UTC().Format(time.RFC3339), ev.Type, where, ev.Actor)
	if v, ok := ev.Payload["version"].(float64); ok {
		line += fmt.Sprintf("  version %d", int64(v))
	}
	if state, ok := ev.Payload["state"].(map[string]any); ok {
		if on, _ := state["enabled"].(bool); on {
			line += "  on"
		} else {
			line += "  off"
		}
	}
	if was, ok := ev.Payload["was_enabled"].(bool); ok {
		line += "  off by the kill switch"
		if !was {
			line += " (it was already off)"
		}
	}
	return line
}

// flagCommand is a parsed `deployctl flags` subcommand: its connection,
// whether to print JSON, and its positional arguments.
type flagCommand struct {
	conn   connection
	asJSON bool
	args   []string
}

// parseFlagCommand parses a `deployctl flags` subcommand: the connection
// flags, the flags define adds, --json (described by jsonHelp), and
// exactly the positional arguments named.
func (c *cli) parseFlagCommand(args []string, name, usage, jsonHelp string, define func(*flag.FlagSet), positional ...string) (*flagCommand, error) {
	fc := &flagCommand{}
	fs := c.newFlagSet(name, usage, &fc.conn)
	if define != nil {
		define(fs)
	}
	fs.BoolVar(&fc.asJSON, "json", false, jsonHelp)
	parsed, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if err := flagArgs(fs, parsed, positional...); err != nil {
		return nil, err
	}
	fc.args = parsed
	return fc, nil
}
