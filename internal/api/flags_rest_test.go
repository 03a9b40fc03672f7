package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/apiclient"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// flagAPI is the REST API wired as the server wires it, on a fresh
// database with an app "shop" (environments "prod" and "staging"), an app
// "blog", and a token for each kind of caller.
type flagAPI struct {
	*restAPI
	app    store.App
	prod   store.Environment
	tokens map[string]string
}

func flagSetup(t *testing.T) *flagAPI {
	t.Helper()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})
	reg := prometheus.NewRegistry()
	h := api.New(api.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Readiness: readiness{},
		Resources: st, Tokens: st, Gatherer: reg, Registerer: reg,
	})
	app, err := st.CreateApp(ctx, store.NewApp{Slug: "shop", Name: "Shop"})
	require.NoError(t, err)
	prod, err := st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "prod", Tier: "production"})
	require.NoError(t, err)
	_, err = st.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "staging", Tier: "staging"})
	require.NoError(t, err)
	_, err = st.CreateApp(ctx, store.NewApp{Slug: "blog", Name: "Blog"})
	require.NoError(t, err)

	admin, err := st.EnsureAdminUser(ctx, "admin")
	require.NoError(t, err)
	tokens := map[string]string{}
	for name, tc := range map[string]struct {
		scopes []auth.Scope
		apps   []string
		envs   []string
	}{
		"ci":          {scopes: []auth.Scope{auth.ScopeDeploy}},
		"reader":      {scopes: []auth.Scope{auth.ScopeRead}},
		"staging-ci":  {scopes: []auth.Scope{auth.ScopeDeploy}, envs: []string{"staging"}},
		"blog-ci":     {scopes: []auth.Scope{auth.ScopeDeploy}, apps: []string{"blog"}},
		"sdk":         {scopes: []auth.Scope{auth.ScopeFlags}},
		"admin-token": {scopes: []auth.Scope{auth.ScopeAdmin}},
	} {
		plain, prefix, hash, err := auth.Generate()
		require.NoError(t, err)
		_, err = st.CreateToken(ctx, store.NewToken{Name: name, Hash: hash, Prefix: prefix, Scopes: tc.scopes,
			UserID: admin.ID, Apps: tc.apps, Environments: tc.envs})
		require.NoError(t, err)
		tokens[name] = plain
	}
	return &flagAPI{restAPI: &restAPI{t: t, handler: h, store: st}, app: app, prod: prod, tokens: tokens}
}

// as sends the exchange with the named token ("" for none) and checks it
// against the document.
func (a *flagAPI) as(token string, x exchange) *httptest.ResponseRecorder {
	a.t.Helper()
	if x.header == nil {
		x.header = http.Header{}
	}
	if token != "" {
		x.header.Set("Authorization", "Bearer "+a.tokens[token])
	}
	return a.do(x)
}

// must sends the exchange as ci and requires the status.
func (a *flagAPI) must(status int, method, path, body string) *httptest.ResponseRecorder {
	a.t.Helper()
	rec := a.as("ci", exchange{method: method, path: path, body: body})
	require.Equal(a.t, status, rec.Code, "%s %s: %s", method, path, rec.Body.String())
	return rec
}

// checkoutFlag is a boolean flag with the variants "on" and "off".
const checkoutFlag = `{"key": "new-checkout", "type": "boolean", "variants": {"on": true, "off": false},
	"default_variant": "off", "description": "The redesigned checkout page."}`

// seedFlag creates new-checkout, a segment "beta" and a state in prod
// with a rule for staff, one for the beta segment and a default 50/50
// rollout.
func (a *flagAPI) seedFlag() {
	a.t.Helper()
	a.must(http.StatusCreated, http.MethodPost, "/api/v1/apps/shop/flags", checkoutFlag)
	a.must(http.StatusCreated, http.MethodPut, "/api/v1/apps/shop/segments/beta", `{"name": "Beta testers", "included_keys": ["u-beta"], "version": 0}`)
	a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/new-checkout/environments/prod", prodState(0))
}

// prodState is new-checkout's state in prod, based on version.
func prodState(version int) string {
	return fmt.Sprintf(`{"enabled": true, "rules": [
		{"name": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}], "variant": "on"},
		{"name": "beta", "segment": "beta", "variant": "on"}],
		"default_rollout": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]},
		"version": %d}`, version)
}

// evaluate asks what the context gets from new-checkout in env.
func (a *flagAPI) evaluate(env, context string) apigen.FlagEvaluation {
	a.t.Helper()
	rec := a.as("reader", exchange{method: http.MethodPost, path: "/api/v1/apps/shop/flags/new-checkout/environments/" + env + "/evaluate",
		body: `{"context": ` + context + `}`})
	require.Equal(a.t, http.StatusOK, rec.Code, rec.Body.String())
	return decode[apigen.FlagEvaluation](a.t, rec)
}

// flagState reads new-checkout's state in env through the API.
func (a *flagAPI) flagState(env string) apigen.FlagEnvironment {
	a.t.Helper()
	rec := a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/flags/new-checkout"})
	require.Equal(a.t, http.StatusOK, rec.Code, rec.Body.String())
	for _, e := range decode[apigen.Flag](a.t, rec).Environments {
		if e.Environment == env {
			return e
		}
	}
	a.t.Fatalf("new-checkout has no state for %s", env)
	return apigen.FlagEnvironment{}
}

// stored is everything the flag endpoints can change, read straight from
// the store, to show that a refused request changed nothing.
func (a *flagAPI) stored() string {
	a.t.Helper()
	ctx := context.Background()
	var out struct {
		Flags    []store.Flag
		States   map[string][]store.FlagState
		Segments []store.Segment
		Events   []store.FlagEvent
	}
	var err error
	out.Flags, err = a.store.ListFlags(ctx, a.app.ID)
	require.NoError(a.t, err)
	envs, err := a.store.ListEnvironments(ctx, a.app.ID)
	require.NoError(a.t, err)
	out.States = map[string][]store.FlagState{}
	for _, e := range envs {
		out.States[e.Name], err = a.store.ListFlagStates(ctx, a.app.ID, e.ID)
		require.NoError(a.t, err)
	}
	out.Segments, err = a.store.ListSegments(ctx, a.app.ID)
	require.NoError(a.t, err)
	for _, f := range out.Flags {
		events, err := a.store.ListFlagEventsBefore(ctx, f.ID, 0, 1000)
		require.NoError(a.t, err)
		out.Events = append(out.Events, events...)
	}
	b, err := json.Marshal(out)
	require.NoError(a.t, err)
	return string(b)
}

func TestFlagLifecycle(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)

	rec := a.must(http.StatusCreated, http.MethodPost, "/api/v1/apps/shop/flags", checkoutFlag)
	require.Equal(t, "/api/v1/apps/shop/flags/new-checkout", rec.Header().Get("Location"))
	created := decode[apigen.Flag](t, rec)
	require.Equal(t, int64(1), created.Version)
	require.Equal(t, apigen.FlagVariants{"on": true, "off": false}, created.Variants)
	require.Len(t, created.Environments, 2)
	for _, e := range created.Environments {
		require.False(t, e.Configured, "a new flag is configured nowhere")
		require.False(t, e.Enabled)
		require.Nil(t, e.UpdatedBy)
		require.Equal(t, "not configured; off, serving off to everyone", e.Summary)
	}
	require.Equal(t, []string{"prod", "staging"}, []string{created.Environments[0].Environment, created.Environments[1].Environment})

	a.must(http.StatusCreated, http.MethodPut, "/api/v1/apps/shop/segments/beta", `{"name": "Beta testers", "included_keys": ["u-beta"], "version": 0}`)
	rec = a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/new-checkout/environments/prod", prodState(0))
	state := decode[apigen.FlagEnvironment](t, rec)
	require.True(t, state.Configured)
	require.True(t, state.Enabled)
	require.Equal(t, int64(1), state.Version)
	require.Equal(t, "token:ci", *state.UpdatedBy)
	require.Equal(t, "on, 2 rules, default 50% on / 50% off", state.Summary)
	require.Len(t, state.Rules, 2)
	require.Equal(t, "beta", *state.Rules[1].Segment)

	read := a.flagState("prod")
	require.Equal(t, state.Rules, read.Rules, "the state reads back as it was set")
	require.Equal(t, "on", *read.Rules[0].Variant)
	require.Equal(t, []any{"@example.com"}, (*read.Rules[0].Clauses)[0].Values)

	// What would each user get?
	staff := a.evaluate("prod", `{"targetingKey": "u-1", "email": "ada@example.com"}`)
	require.Equal(t, apigen.FlagEvaluationReason("TARGETING_MATCH"), staff.Reason)
	require.Equal(t, "staff", *staff.Rule)
	require.Equal(t, "on", *staff.Variant)
	require.Equal(t, true, staff.Value)
	require.Equal(t, int64(1), staff.StateVersion)

	beta := a.evaluate("prod", `{"targetingKey": "u-beta"}`)
	require.Equal(t, apigen.FlagEvaluationReason("TARGETING_MATCH"), beta.Reason)
	require.Equal(t, "beta", *beta.Rule)

	split := a.evaluate("prod", `{"targetingKey": "u-2", "email": "bob@elsewhere.org"}`)
	require.Equal(t, apigen.FlagEvaluationReason("SPLIT"), split.Reason)
	require.Nil(t, split.Rule)
	require.Contains(t, []string{"on", "off"}, *split.Variant)
	require.Equal(t, *split.Variant, *a.evaluate("prod", `{"targetingKey": "u-2"}`).Variant, "a user keeps their bucket")

	anonymous := a.evaluate("prod", `{}`)
	require.Equal(t, apigen.FlagEvaluationReason("ERROR"), anonymous.Reason)
	require.Equal(t, apigen.FlagEvaluationErrorCode("TARGETING_KEY_MISSING"), *anonymous.ErrorCode)
	require.Nil(t, anonymous.Variant)

	// A fixed default instead of the rollout: the answer follows at once.
	a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/new-checkout/environments/prod",
		`{"enabled": true, "rules": [{"name": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}], "variant": "on"}],
		  "default_rollout": {"variant": "off"}, "version": 1}`)
	def := a.evaluate("prod", `{"targetingKey": "u-2"}`)
	require.Equal(t, apigen.FlagEvaluationReason("DEFAULT"), def.Reason)
	require.Equal(t, "off", *def.Variant)
	require.Equal(t, false, def.Value)
	require.Equal(t, int64(2), def.StateVersion)

	// The kill switch needs no version and may be pulled twice.
	rec = a.must(http.StatusOK, http.MethodPost, "/api/v1/apps/shop/flags/new-checkout/environments/prod/kill", "")
	killed := decode[apigen.FlagEnvironment](t, rec)
	require.False(t, killed.Enabled)
	require.Len(t, killed.Rules, 1, "the rules are kept for turning it on again")
	require.Equal(t, "off, serving off to everyone", killed.Summary)
	again := decode[apigen.FlagEnvironment](t, a.must(http.StatusOK, http.MethodPost, "/api/v1/apps/shop/flags/new-checkout/environments/prod/kill", `{}`))
	require.False(t, again.Enabled)

	disabled := a.evaluate("prod", `{"targetingKey": "u-1", "email": "ada@example.com"}`)
	require.Equal(t, apigen.FlagEvaluationReason("DISABLED"), disabled.Reason)
	require.Equal(t, "off", *disabled.Variant)
	require.Nil(t, disabled.Rule)

	unconfigured := a.evaluate("staging", `{"targetingKey": "u-1"}`)
	require.Equal(t, apigen.FlagEvaluationReason("DISABLED"), unconfigured.Reason)
	require.False(t, unconfigured.Configured)

	// A new definition keeps the key and the version count.
	rec = a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/new-checkout",
		`{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "off_variant": "off", "description": "Checkout, redesigned.", "version": 1}`)
	updated := decode[apigen.Flag](t, rec)
	require.Equal(t, int64(2), updated.Version)
	require.Equal(t, "Checkout, redesigned.", updated.Description)

	// The history has all of it, newest first, with who did it.
	rec = a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/flags/new-checkout/history"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	history := decode[apigen.FlagEventList](t, rec)
	var types []string
	for _, ev := range history.Items {
		types = append(types, ev.Type)
		require.Equal(t, "token:ci", ev.Actor)
	}
	require.Equal(t, []string{"flag.updated", "flag.killed", "flag.killed", "flag.state_changed", "flag.state_changed", "flag.created"}, types)
	require.Nil(t, history.Items[0].Environment, "a definition concerns every environment")
	require.Equal(t, "prod", *history.Items[1].Environment)
	require.Equal(t, true, history.Items[2].Payload["was_enabled"])
	require.Equal(t, false, history.Items[1].Payload["was_enabled"])
	require.Nil(t, history.NextCursor)

	// Paging back through it.
	var paged []string
	cursor := ""
	for range 10 {
		path := "/api/v1/apps/shop/flags/new-checkout/history?limit=4"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		rec := a.as("reader", exchange{method: http.MethodGet, path: path})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		page := decode[apigen.FlagEventList](t, rec)
		for _, ev := range page.Items {
			paged = append(paged, ev.Type)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	require.Equal(t, types, paged)

	// The list shows the flag in every environment.
	rec = a.as("reader", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/flags"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	list := decode[apigen.FlagList](t, rec)
	require.Len(t, list.Items, 1)
	require.Equal(t, "new-checkout", list.Items[0].Key)
	require.Equal(t, []apigen.FlagEnvironmentSummary{
		{Environment: "prod", Configured: true, Enabled: false, Version: 4, Summary: "off, serving off to everyone"},
		{Environment: "staging", Configured: false, Enabled: false, Version: 0, Summary: "not configured; off, serving off to everyone"},
	}, list.Items[0].Environments)
}

func TestFlagListsArePaged(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	// Keys sort by their bytes: upper case before lower case.
	for _, key := range []string{"b.two", "A_one", "c-three"} {
		a.must(http.StatusCreated, http.MethodPost, "/api/v1/apps/shop/flags",
			fmt.Sprintf(`{"key": %q, "type": "string", "variants": {"x": "x"}, "default_variant": "x"}`, key))
		a.must(http.StatusCreated, http.MethodPut, "/api/v1/apps/shop/segments/"+key, `{"version": 0, "included_keys": ["u"]}`)
	}
	for _, list := range []string{"flags", "segments"} {
		var keys []string
		cursor := ""
		for range 5 {
			path := "/api/v1/apps/shop/" + list + "?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			rec := a.as("reader", exchange{method: http.MethodGet, path: path})
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var page struct {
				Items []struct {
					Key string `json:"key"`
				} `json:"items"`
				NextCursor *string `json:"next_cursor"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
			for _, it := range page.Items {
				keys = append(keys, it.Key)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		require.Equal(t, []string{"A_one", "b.two", "c-three"}, keys, list)
	}
	for _, path := range []string{"/api/v1/apps/shop/flags?cursor=!!", "/api/v1/apps/shop/segments?limit=0", "/api/v1/apps/shop/flags/A_one/history?cursor=eA"} {
		rec := a.as("reader", exchange{method: http.MethodGet, path: path})
		require.Equal(t, http.StatusBadRequest, rec.Code, path)
		require.NotEmpty(t, readProblem(t, rec).Errors, path)
	}
}

func TestFlagConflictsChangeNothing(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	a.seedFlag()
	statePath := "/api/v1/apps/shop/flags/new-checkout/environments/prod"

	for name, tc := range map[string]struct {
		method, path, body string
		// version is the version current must show; without current says
		// the problem has none, as there is nothing to show.
		version        int64
		withoutCurrent bool
		detail         string
	}{
		"state from a stale version": {
			method: http.MethodPut, path: statePath, body: `{"enabled": false, "version": 7}`,
			version: 1, detail: "is at version 1, not 7",
		},
		"state as if not configured": {
			method: http.MethodPut, path: statePath, body: `{"enabled": false, "version": 0}`,
			version: 1, detail: "configured in shop/prod already, at version 1",
		},
		"state that does not exist yet": {
			method: http.MethodPut, path: "/api/v1/apps/shop/flags/new-checkout/environments/staging", body: `{"enabled": true, "version": 2}`,
			version: 0, detail: "not configured in shop/staging yet",
		},
		"definition from a stale version": {
			method: http.MethodPut, path: "/api/v1/apps/shop/flags/new-checkout",
			body:    `{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on", "version": 3}`,
			version: 1, detail: "is at version 1, not 3",
		},
		"segment created twice": {
			method: http.MethodPut, path: "/api/v1/apps/shop/segments/beta", body: `{"included_keys": ["u-9"], "version": 0}`,
			version: 1, detail: `has a segment "beta" already`,
		},
		"segment from a stale version": {
			method: http.MethodPut, path: "/api/v1/apps/shop/segments/beta", body: `{"included_keys": ["u-9"], "version": 4}`,
			version: 1, detail: "is at version 1, not 4",
		},
		"segment that does not exist": {
			method: http.MethodPut, path: "/api/v1/apps/shop/segments/gamma", body: `{"included_keys": ["u-9"], "version": 2}`,
			withoutCurrent: true, detail: "send version 0 to create it",
		},
		"flag created twice": {
			method: http.MethodPost, path: "/api/v1/apps/shop/flags", body: checkoutFlag,
			withoutCurrent: true, detail: `has a flag "new-checkout" already`,
		},
	} {
		before := a.stored()
		rec := a.as("ci", exchange{method: tc.method, path: tc.path, body: tc.body})
		require.Equal(t, http.StatusConflict, rec.Code, "%s: %s", name, rec.Body.String())
		p := readProblem(t, rec)
		require.Contains(t, p.Detail, tc.detail, name)
		if tc.withoutCurrent {
			require.Empty(t, p.Current, name)
		} else {
			var current struct {
				Version int64 `json:"version"`
			}
			require.NoError(t, json.Unmarshal(p.Current, &current), name)
			require.Equal(t, tc.version, current.Version, name)
		}
		require.Equal(t, before, a.stored(), "%s changed something", name)
	}
	require.True(t, a.flagState("prod").Enabled)
}

func TestFlagBadInputIsNamedAndChangesNothing(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	a.seedFlag()
	const (
		flags    = "/api/v1/apps/shop/flags"
		flag     = flags + "/new-checkout"
		state    = flag + "/environments/prod"
		evaluate = state + "/evaluate"
		segment  = "/api/v1/apps/shop/segments/beta"
	)
	for _, tc := range []struct {
		name               string
		method, path, body string
		header             http.Header
		status             int
		fields             []string
		// detail is a part of the problem's detail.
		detail string
	}{
		{name: "a string variant on a boolean flag", method: http.MethodPost, path: flags,
			body:   `{"key": "dark-mode", "type": "boolean", "variants": {"on": "yes", "off": false}, "default_variant": "off"}`,
			status: http.StatusUnprocessableEntity, fields: []string{`variants["on"]`}},
		{name: "a variant named twice", method: http.MethodPost, path: flags,
			body:   `{"key": "dark-mode", "type": "boolean", "variants": {"on": true, "on": false}, "default_variant": "on"}`,
			status: http.StatusUnprocessableEntity, fields: []string{`variants["on"]`}},
		{name: "a default that is no variant", method: http.MethodPost, path: flags,
			body:   `{"key": "dark-mode", "type": "boolean", "variants": {"on": true}, "default_variant": "dark"}`,
			status: http.StatusUnprocessableEntity, fields: []string{"default_variant"}},
		{name: "a flag with nothing", method: http.MethodPost, path: flags, body: `{}`,
			status: http.StatusUnprocessableEntity, fields: []string{"key", "type", "variants", "default_variant"}},
		{name: "a flag with an unknown field and wrong types", method: http.MethodPost, path: flags,
			body:   `{"key": 7, "type": "boolean", "variants": ["on"], "default_variant": "on", "owner": "team-a"}`,
			status: http.StatusUnprocessableEntity, fields: []string{"key", "variants", "owner"}},
		{name: "a flag that is not JSON", method: http.MethodPost, path: flags, body: `{"key": "dark-mode",`,
			status: http.StatusBadRequest, detail: "not valid JSON: unexpected end of JSON input"},
		{name: "a flag as a form", method: http.MethodPost, path: flags, body: `key=dark-mode`,
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, status: http.StatusUnsupportedMediaType},
		{name: "weights that do not add up to 100", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "default_rollout": {"rollout": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 60}]}, "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"default_rollout.rollout"}, detail: "1 field"},
		{name: "an unknown segment", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "rules": [{"name": "gamma", "segment": "gamma", "variant": "on"}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[0].segment"}},
		{name: "a rule name used twice", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "rules": [{"name": "staff", "variant": "on"}, {"name": "staff", "variant": "off"}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[1].name"}},
		{name: "an unknown operator", method: http.MethodPut, path: state,
			body: `{"enabled": true, "rules": [{"name": "staff", "variant": "on", "clauses": [
				{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}, {"attribute": "plan", "op": "is", "values": ["pro"]}]}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[0].clauses[1].op"}},
		{name: "a misspelt field inside a rule", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "rules": [{"name": "beta", "segmnet": "beta", "variant": "on"}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[0].segmnet"}},
		{name: "a weight that is text", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "rules": [{"name": "half", "rollout": [{"variant": "on", "weight": "50"}, {"variant": "off", "weight": 50}]}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[0].rollout[0].weight"}},
		{name: "a rule serving a variant that does not exist", method: http.MethodPut, path: state,
			body:   `{"enabled": true, "rules": [{"name": "staff", "variant": "maybe"}], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"rules[0].variant"}},
		{name: "a state without version and a switch that is text", method: http.MethodPut, path: state,
			body:   `{"enabled": "yes"}`,
			status: http.StatusUnprocessableEntity, fields: []string{"version", "enabled"}},
		{name: "a definition that drops a variant a rule serves", method: http.MethodPut, path: flag,
			body:   `{"type": "boolean", "variants": {"off": false}, "default_variant": "off", "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{`environments["prod"].rules[0].variant`, `environments["prod"].rules[1].variant`, `environments["prod"].default_rollout.rollout[0].variant`}},
		{name: "a definition with another key", method: http.MethodPut, path: flag,
			body:   `{"key": "old-checkout", "type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"key"}},
		{name: "a definition without version", method: http.MethodPut, path: flag,
			body:   `{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "version": 0}`,
			status: http.StatusUnprocessableEntity, fields: []string{"version"}},
		{name: "a segment with a bad clause, an empty key and a typo", method: http.MethodPut, path: segment,
			body:   `{"nam": "Beta", "clauses": [{"attribute": "age", "op": "gt", "values": ["ten"]}], "included_keys": [""], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"nam"}},
		{name: "a segment with a bad clause and an empty key", method: http.MethodPut, path: segment,
			body:   `{"clauses": [{"attribute": "age", "op": "gt", "values": ["ten"]}], "included_keys": [""], "version": 1}`,
			status: http.StatusUnprocessableEntity, fields: []string{"clauses[0].values[0]", "included_keys[0]"}},
		{name: "a context that is not an object", method: http.MethodPost, path: evaluate, body: `{"context": ["u-1"]}`,
			status: http.StatusUnprocessableEntity, fields: []string{"context"}},
		{name: "a targeting key that is a number", method: http.MethodPost, path: evaluate, body: `{"context": {"targetingKey": 42}}`,
			status: http.StatusUnprocessableEntity, fields: []string{"context.targetingKey"}},
		{name: "a kill with a field", method: http.MethodPost, path: state + "/kill", body: `{"comment": "incident 12"}`,
			status: http.StatusUnprocessableEntity, fields: []string{"comment"}},
		{name: "an unknown app", method: http.MethodGet, path: "/api/v1/apps/nope/flags",
			status: http.StatusNotFound, detail: `no app with slug "nope"`},
		{name: "an unknown flag", method: http.MethodGet, path: flags + "/old-checkout",
			status: http.StatusNotFound, detail: `app "shop" has no flag "old-checkout"`},
		{name: "an unknown flag's history", method: http.MethodGet, path: flags + "/old-checkout/history",
			status: http.StatusNotFound, detail: `no flag "old-checkout"`},
		{name: "an unknown flag to set", method: http.MethodPut, path: flags + "/old-checkout/environments/prod", body: `{"enabled": true, "version": 0}`,
			status: http.StatusNotFound, detail: `no flag "old-checkout"`},
		{name: "an unknown flag to kill", method: http.MethodPost, path: flags + "/old-checkout/environments/prod/kill",
			status: http.StatusNotFound, detail: `no flag "old-checkout"`},
		{name: "an unknown environment to kill in", method: http.MethodPost, path: flag + "/environments/qa/kill",
			status: http.StatusNotFound, detail: `no environment named "qa"`},
		{name: "an unknown environment to evaluate in", method: http.MethodPost, path: flag + "/environments/qa/evaluate", body: `{"context": {}}`,
			status: http.StatusNotFound, detail: `no environment named "qa"`},
		{name: "a segment of an unknown app", method: http.MethodPut, path: "/api/v1/apps/nope/segments/beta", body: `{"version": 0}`,
			status: http.StatusNotFound, detail: `no app with slug "nope"`},
	} {
		before := a.stored()
		rec := a.as("ci", exchange{method: tc.method, path: tc.path, body: tc.body, header: tc.header})
		require.Equal(t, tc.status, rec.Code, "%s: %s", tc.name, rec.Body.String())
		p := readProblem(t, rec)
		if tc.fields != nil {
			require.Equal(t, tc.fields, fieldsOf(p), "%s: %s", tc.name, rec.Body.String())
			for _, fe := range p.Errors {
				require.NotEmpty(t, fe.Message, tc.name)
			}
		}
		require.Contains(t, p.Detail, tc.detail, tc.name)
		require.Equal(t, before, a.stored(), "%s changed something", tc.name)
	}
}

func TestFlagScopes(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	a.seedFlag()
	const prod = "/api/v1/apps/shop/flags/new-checkout/environments/prod"
	const staging = "/api/v1/apps/shop/flags/new-checkout/environments/staging"

	for _, tc := range []struct {
		name, token        string
		method, path, body string
		status             int
		detail             string
	}{
		{name: "without a token", method: http.MethodGet, path: "/api/v1/apps/shop/flags", status: http.StatusUnauthorized},
		{name: "a reader kills", token: "reader", method: http.MethodPost, path: prod + "/kill", status: http.StatusForbidden, detail: `"deploy" scope`},
		{name: "a reader sets a state", token: "reader", method: http.MethodPut, path: prod, body: `{"enabled": false, "version": 1}`, status: http.StatusForbidden},
		{name: "a reader creates a flag", token: "reader", method: http.MethodPost, path: "/api/v1/apps/shop/flags",
			body: `{"key": "x", "type": "boolean", "variants": {"on": true}, "default_variant": "on"}`, status: http.StatusForbidden},
		{name: "a reader writes a segment", token: "reader", method: http.MethodPut, path: "/api/v1/apps/shop/segments/beta", body: `{"version": 1}`, status: http.StatusForbidden},
		{name: "an SDK token reads flags here", token: "sdk", method: http.MethodGet, path: "/api/v1/apps/shop/flags", status: http.StatusForbidden},
		{name: "a staging token kills in prod", token: "staging-ci", method: http.MethodPost, path: prod + "/kill", status: http.StatusForbidden, detail: "limited to environments staging"},
		{name: "a staging token sets prod", token: "staging-ci", method: http.MethodPut, path: prod, body: `{"enabled": false, "version": 1}`, status: http.StatusForbidden},
		{name: "a staging token evaluates prod", token: "staging-ci", method: http.MethodPost, path: prod + "/evaluate", body: `{"context": {}}`, status: http.StatusForbidden},
		{name: "a staging token changes the definition", token: "staging-ci", method: http.MethodPut, path: "/api/v1/apps/shop/flags/new-checkout",
			body: `{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on", "version": 1}`, status: http.StatusForbidden, detail: "shared by every environment"},
		{name: "a staging token changes a segment", token: "staging-ci", method: http.MethodPut, path: "/api/v1/apps/shop/segments/beta",
			body: `{"included_keys": ["u-1"], "version": 1}`, status: http.StatusForbidden, detail: "every environment"},
		{name: "a blog token kills in shop", token: "blog-ci", method: http.MethodPost, path: prod + "/kill", status: http.StatusForbidden, detail: "limited to apps blog"},
	} {
		before := a.stored()
		rec := a.as(tc.token, exchange{method: tc.method, path: tc.path, body: tc.body})
		require.Equal(t, tc.status, rec.Code, "%s: %s", tc.name, rec.Body.String())
		require.Contains(t, readProblem(t, rec).Detail, tc.detail, tc.name)
		require.Equal(t, before, a.stored(), "%s changed something", tc.name)
	}
	require.True(t, a.flagState("prod").Enabled, "the flag is still on in prod")

	// A reader may ask what a user gets, which changes nothing.
	require.Equal(t, apigen.FlagEvaluationReason("TARGETING_MATCH"), a.evaluate("prod", `{"targetingKey": "u-beta"}`).Reason)

	// The staging token does its own environment's work, and sees only it.
	rec := a.as("staging-ci", exchange{method: http.MethodPut, path: staging, body: `{"enabled": true, "default_rollout": {"variant": "on"}, "version": 0}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "token:staging-ci", *decode[apigen.FlagEnvironment](t, rec).UpdatedBy)
	rec = a.as("staging-ci", exchange{method: http.MethodPost, path: staging + "/kill"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = a.as("staging-ci", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/flags/new-checkout"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	envs := decode[apigen.Flag](t, rec).Environments
	require.Len(t, envs, 1)
	require.Equal(t, "staging", envs[0].Environment)
	rec = a.as("staging-ci", exchange{method: http.MethodGet, path: "/api/v1/apps/shop/flags/new-checkout/history"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	for _, ev := range decode[apigen.FlagEventList](t, rec).Items {
		require.NotEqual(t, "prod", orEmpty(ev.Environment), "the staging token sees no prod changes")
	}
	require.True(t, a.flagState("prod").Enabled)
}

func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestGeneratedClientDrivesFlags takes a flag from creation to kill through
// the generated client, with every exchange checked against the document.
func TestGeneratedClientDrivesFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := flagSetup(t)
	srv := httptest.NewServer(a.handler)
	t.Cleanup(srv.Close)
	token := a.tokens["ci"]
	client, err := apiclient.NewClientWithResponses(srv.URL,
		apiclient.WithHTTPClient(&http.Client{Transport: contractTransport{t: t}}),
		apiclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	require.NoError(t, err)

	created, err := client.CreateFlagWithResponse(ctx, "shop", apiclient.CreateFlagRequest{
		Key: "theme", Type: apiclient.FlagTypeString, DefaultVariant: "light",
		Variants: apiclient.FlagVariants{"light": "light", "dark": "dark"},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	require.Equal(t, "/api/v1/apps/shop/flags/theme", *created.Headers201.Location)

	wrong, err := client.CreateFlagWithResponse(ctx, "shop", apiclient.CreateFlagRequest{
		Key: "size", Type: apiclient.FlagTypeNumber, DefaultVariant: "s", Variants: apiclient.FlagVariants{"s": "small"},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, wrong.StatusCode())
	require.Equal(t, `variants["s"]`, (*wrong.ApplicationproblemJSON422.Errors)[0].Field)

	_, err = client.PutSegmentWithResponse(ctx, "shop", "night-owls", apiclient.PutSegmentRequest{
		Clauses: &[]apiclient.FlagClause{{Attribute: "tz", Op: apiclient.FlagOpIn, Values: []any{"Asia/Tokyo", "Pacific/Auckland"}}},
	})
	require.NoError(t, err)
	segment := "night-owls"
	dark := "dark"
	set, err := client.SetFlagStateWithResponse(ctx, "shop", "theme", "prod", apiclient.SetFlagStateRequest{
		Enabled: true, Rules: &[]apiclient.FlagRule{{Name: "owls", Segment: &segment, Variant: &dark}},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, set.StatusCode(), string(set.Body))
	require.Equal(t, int64(1), set.JSON200.Version)

	stale, err := client.SetFlagStateWithResponse(ctx, "shop", "theme", "prod", apiclient.SetFlagStateRequest{Enabled: false})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, stale.StatusCode())
	require.Equal(t, int64(1), stale.ApplicationproblemJSON409.Current.Version)

	ectx := map[string]any{"targetingKey": "u-1", "tz": "Asia/Tokyo"}
	eval, err := client.EvaluateFlagWithResponse(ctx, "shop", "theme", "prod", apiclient.EvaluateFlagRequest{Context: &ectx})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, eval.StatusCode(), string(eval.Body))
	require.Equal(t, apiclient.FlagReasonTargetingMatch, eval.JSON200.Reason)
	require.Equal(t, "dark", eval.JSON200.Value)

	killed, err := client.KillFlagWithResponse(ctx, "shop", "theme", "prod")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, killed.StatusCode(), string(killed.Body))
	require.False(t, killed.JSON200.Enabled)

	history, err := client.ListFlagHistoryWithResponse(ctx, "shop", "theme", nil)
	require.NoError(t, err)
	require.Equal(t, "flag.killed", history.JSON200.Items[0].Type)

	segments, err := client.ListSegmentsWithResponse(ctx, "shop", nil)
	require.NoError(t, err)
	require.Equal(t, "night-owls", segments.JSON200.Items[0].Key)
	require.Equal(t, "Asia/Tokyo", segments.JSON200.Items[0].Clauses[0].Values[0])

	missing, err := client.GetFlagWithResponse(ctx, "shop", "nope")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, missing.StatusCode())
	require.True(t, strings.Contains(*missing.ApplicationproblemJSON404.Detail, `"nope"`))
}

func TestFlagSaltIsKeptUnlessSent(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	rec := a.must(http.StatusCreated, http.MethodPost, "/api/v1/apps/shop/flags",
		`{"key": "banner", "type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "salt": "2026-q1"}`)
	require.Equal(t, "2026-q1", decode[apigen.Flag](t, rec).Salt)

	// A definition sent back without its salt keeps every user's bucket.
	rec = a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/banner",
		`{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "description": "Spring sale", "version": 1}`)
	kept := decode[apigen.Flag](t, rec)
	require.Equal(t, "2026-q1", kept.Salt)
	require.Equal(t, "Spring sale", kept.Description)

	rec = a.must(http.StatusOK, http.MethodPut, "/api/v1/apps/shop/flags/banner",
		`{"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "salt": "", "version": 2}`)
	cleared := decode[apigen.Flag](t, rec)
	require.Empty(t, cleared.Salt)
	require.Empty(t, cleared.Description, "the definition is replaced whole")
}
