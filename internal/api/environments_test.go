package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// seedEnvironment creates the app checkout with a production environment
// at its defaults and returns the environment.
func seedEnvironment(t *testing.T, s *store.Store) store.Environment {
	t.Helper()
	ctx := context.Background()
	app, err := s.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	return env
}

// storedEnvironment reads checkout's production environment.
func storedEnvironment(t *testing.T, s *store.Store) store.Environment {
	t.Helper()
	app, err := s.App(context.Background(), "checkout")
	require.NoError(t, err)
	env, err := s.Environment(context.Background(), app.ID, "production")
	require.NoError(t, err)
	return env
}

func TestEnvironmentEndpoints(t *testing.T) {
	t.Parallel()
	const envs = "/api/v1/apps/checkout/environments"
	const prod = envs + "/production"
	onlyApp := func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") }
	withEnv := func(t *testing.T, s *store.Store) { seedEnvironment(t, s) }
	unchanged := func(t *testing.T, a *restAPI, _ []byte) {
		env := storedEnvironment(t, a.store)
		require.Equal(t, int64(1), env.Version, "a refused request changes nothing")
		require.Equal(t, "production", env.Tier)
	}
	nothingCreated := func(t *testing.T, a *restAPI, _ []byte) {
		app, err := a.store.App(context.Background(), "checkout")
		require.NoError(t, err)
		list, err := a.store.ListEnvironments(context.Background(), app.ID)
		require.NoError(t, err)
		require.Empty(t, list, "a refused request creates nothing")
	}
	for name, tc := range map[string]struct {
		seed   func(t *testing.T, s *store.Store)
		x      exchange
		status int
		fields []string
		detail string
		check  func(t *testing.T, a *restAPI, body []byte)
	}{
		"create with defaults": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production"}`},
			status: http.StatusCreated,
			check: func(t *testing.T, _ *restAPI, body []byte) {
				require.JSONEq(t, `{"type": "simulator"}`, string(jsonField(t, body, "driver")))
				require.JSONEq(t, `{"type": "simulator"}`, string(jsonField(t, body, "metrics")))
				require.JSONEq(t, `"canary"`, string(jsonField(t, body, "default_strategy")))
				require.JSONEq(t, `"development"`, string(jsonField(t, body, "tier")))
				require.JSONEq(t, `null`, string(jsonField(t, body, "stable_version")))
				require.JSONEq(t, `"rollback"`, string(jsonField(t, body, "failure_policy")))
			},
		},
		"create with every setting": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs, body: `{
				"name": "production", "tier": "production",
				"driver": {"type": "simulator", "instances": 20, "requests_per_second": 50,
				           "faults": {"v2": {"error_rate": 0.05, "crash_on_start": false}}},
				"metrics": {"type": "prometheus", "url": "http://prometheus:9090", "timeout": "5s",
				            "queries": {"cpu": null}},
				"default_strategy": "ring",
				"strategy_defaults": {
					"canary": {"steps": [10, 50, 100], "step_bake": "10m"},
					"rolling": {"batch_percent": 25},
					"ring": {"rings": [
						{"name": "staff", "audience": {"kind": "header", "key": "X-Staff", "values": ["yes"]}, "bake": "1h"},
						{"name": "everyone", "audience": {"kind": "all"}}]}},
				"thresholds": {"warmup": "2m", "p99_ratio": 2, "strict": true, "trend_windows": 4},
				"require_approval": true, "approver_not_starter": true, "failure_policy": "pause"}`},
			status: http.StatusCreated,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				env := storedEnvironment(t, a.store)
				require.Equal(t, "production", env.Tier)
				require.Equal(t, "ring", env.DefaultStrategy)
				require.Equal(t, "pause", env.FailurePolicy)
				require.True(t, env.RequireApproval)
				require.True(t, env.ApproverNotStarter)
				require.JSONEq(t, `{"type": "simulator", "instances": 20, "requests_per_second": 50,
					"faults": {"v2": {"error_rate": 0.05, "crash_on_start": false}}}`, string(env.Driver))
				require.JSONEq(t, `{"warmup": "2m", "p99_ratio": 2, "strict": true, "trend_windows": 4}`, string(env.Thresholds))
			},
		},
		"create with pushed metrics": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "staging", "metrics": {"type": "push"}}`},
			status: http.StatusCreated,
		},
		"create with an unknown field": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "region": "eu"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"region"},
			check:  nothingCreated,
		},
		"create with wrong types": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs,
				body: `{"name": "production", "tier": 1, "driver": "simulator", "require_approval": "yes", "failure_policy": null}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"tier", "driver", "require_approval", "failure_policy"},
			check:  nothingCreated,
		},
		"create with a bad name": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "Prod_1"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"name"},
		},
		"create without a name": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"tier": "staging"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"name"},
		},
		"create with bad enumerations": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs,
				body: `{"name": "production", "tier": "prod", "default_strategy": "big_bang", "failure_policy": "panic"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"tier", "default_strategy", "failure_policy"},
		},
		"create with a bad driver config": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs, body: `{"name": "production",
				"driver": {"type": "simulator", "instances": 0, "faults": {"v2": {"error_rate": 2, "colour": "red"}}}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{`driver.faults["v2"].colour`, `driver.faults["v2"].error_rate`, "driver.instances"},
			check:  nothingCreated,
		},
		"create with a webhook driver without its secret": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "driver": {"type": "webhook", "url": "https://deploy.example"}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"driver.secret"},
			check: func(t *testing.T, a *restAPI, body []byte) {
				require.Contains(t, string(body), "every delivery is signed with it")
				nothingCreated(t, a, body)
			},
		},
		"create with a driver without a type": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "driver": {"instances": 3}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"driver.type"},
		},
		"create with bad prometheus metrics": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs,
				body: `{"name": "production", "metrics": {"type": "prometheus", "timeout": "2h"}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"metrics.url", "metrics.timeout"},
		},
		"create with settings on the push source": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "metrics": {"type": "push", "url": "http://x"}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"metrics.url"},
		},
		"create with an unknown metric source": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "metrics": {"type": "datadog"}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"metrics.type"},
		},
		"create with bad thresholds": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs,
				body: `{"name": "production", "thresholds": {"warmup": 5, "p99_ratio": 0.5, "colour": 1, "strict": null, "trend_windows": 2.5}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"thresholds.colour", "thresholds.p99_ratio", "thresholds.strict", "thresholds.trend_windows", "thresholds.warmup"},
			check:  nothingCreated,
		},
		"create with bad strategy defaults": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "strategy_defaults": {
				"canary": {"steps": [50, 10]}, "blue-green": {}, "ring": [], "rolling": {"batch_size": 2, "batch_percent": 10}}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"strategy_defaults.blue-green", "strategy_defaults.canary.steps[1]", "strategy_defaults.ring", "strategy_defaults.rolling.batch_percent"},
			check:  nothingCreated,
		},
		"create with an unknown strategy parameter": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production", "strategy_defaults": {"canary": {"stpes": [100]}}}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"strategy_defaults.canary.stpes"},
		},
		"create with a taken name": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPost, path: envs, body: `{"name": "production"}`},
			status: http.StatusConflict,
			detail: `environment named "production" already`,
		},
		"create in an unknown app": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps/nope/environments", body: `{"name": "production"}`},
			status: http.StatusNotFound,
			detail: `no app with slug "nope"`,
		},
		"create as text": {
			seed: onlyApp,
			x: exchange{method: http.MethodPost, path: envs, body: `{"name": "production"}`,
				header: http.Header{"Content-Type": {"text/plain"}}},
			status: http.StatusUnsupportedMediaType,
		},
		"get": {
			seed:   withEnv,
			x:      exchange{method: http.MethodGet, path: prod},
			status: http.StatusOK,
			check: func(t *testing.T, _ *restAPI, body []byte) {
				require.JSONEq(t, `"checkout"`, string(jsonField(t, body, "app")))
				require.JSONEq(t, `1`, string(jsonField(t, body, "version")))
			},
		},
		"get unknown": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodGet, path: prod},
			status: http.StatusNotFound,
			detail: `no environment named "production"`,
		},
		"get in an unknown app": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps/nope/environments/production"},
			status: http.StatusNotFound,
			detail: `no app with slug "nope"`,
		},
		"list in an unknown app": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps/nope/environments"},
			status: http.StatusNotFound,
		},
		"list with a bad limit": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodGet, path: envs + "?limit=0"},
			status: http.StatusBadRequest,
			fields: []string{"limit"},
		},
		"update some fields": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"tier": "staging", "thresholds": {"error_rate_pp": 1}}`},
			status: http.StatusOK,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				env := storedEnvironment(t, a.store)
				require.Equal(t, int64(2), env.Version)
				require.Equal(t, "staging", env.Tier)
				require.JSONEq(t, `{"error_rate_pp": 1}`, string(env.Thresholds))
				require.Equal(t, "canary", env.DefaultStrategy, "fields left out keep their value")
			},
		},
		"update replaces an object whole": {
			seed: func(t *testing.T, s *store.Store) {
				env := seedEnvironment(t, s)
				env.Driver = []byte(`{"type": "simulator", "instances": 4, "base_latency_ms": 80}`)
				_, err := s.UpdateEnvironment(context.Background(), env)
				require.NoError(t, err)
			},
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"driver": {"type": "simulator", "instances": 6}}`},
			status: http.StatusOK,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				require.JSONEq(t, `{"type": "simulator", "instances": 6}`, string(storedEnvironment(t, a.store).Driver))
			},
		},
		"update with the current version": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"require_approval": true}`, header: http.Header{"If-Match": {`"1"`}}},
			status: http.StatusOK,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				require.True(t, storedEnvironment(t, a.store).RequireApproval)
			},
		},
		"update with any version": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"require_approval": true}`, header: http.Header{"If-Match": {`*`}}},
			status: http.StatusOK,
		},
		"update with a stale version": {
			seed: func(t *testing.T, s *store.Store) {
				env := seedEnvironment(t, s)
				require.NoError(t, s.SetStableVersion(context.Background(), env.ID, "v7"))
			},
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"tier": "staging"}`, header: http.Header{"If-Match": {`"1"`}}},
			status: http.StatusConflict,
			detail: "at version 2, not 1",
			check: func(t *testing.T, a *restAPI, body []byte) {
				current := jsonField(t, body, "current")
				require.JSONEq(t, `2`, string(jsonField(t, current, "version")))
				require.JSONEq(t, `"v7"`, string(jsonField(t, current, "stable_version")))
				require.Equal(t, "production", storedEnvironment(t, a.store).Tier, "a refused request changes nothing")
			},
		},
		"update with a malformed If-Match": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"tier": "staging"}`, header: http.Header{"If-Match": {`W/"abc"`}}},
			status: http.StatusBadRequest,
			fields: []string{"If-Match"},
			check:  unchanged,
		},
		"update read-only fields": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"name": "prod", "stable_version": "v9", "version": 5, "tier": "staging"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"name", "version", "stable_version"},
			check:  unchanged,
		},
		"update with bad settings": {
			seed: withEnv,
			x: exchange{method: http.MethodPatch, path: prod,
				body: `{"tier": "staging", "thresholds": {"confidence": 1}, "strategy_defaults": {"shadow": {"mirror_percent": 0}}, "colour": "red"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"strategy_defaults.shadow.mirror_percent", "thresholds.confidence", "colour"},
			check:  unchanged,
		},
		"update with nothing": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{}`},
			status: http.StatusOK,
			check:  unchanged,
		},
		"update unknown": {
			seed:   onlyApp,
			x:      exchange{method: http.MethodPatch, path: prod, body: `{"tier": "staging"}`},
			status: http.StatusNotFound,
		},
		"update with a body that is not JSON": {
			seed:   withEnv,
			x:      exchange{method: http.MethodPatch, path: prod, body: `tier=staging`},
			status: http.StatusBadRequest,
			check:  unchanged,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := restSetup(t)
			if tc.seed != nil {
				tc.seed(t, a.store)
			}
			rec := a.do(tc.x)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if rec.Code >= 400 {
				p := readProblem(t, rec)
				require.Equal(t, tc.fields, nilIfEmpty(fieldsOf(p)), rec.Body.String())
				require.Contains(t, p.Detail, tc.detail)
				for _, fe := range p.Errors {
					require.NotEmpty(t, fe.Message, "every field error says what is wrong")
				}
			} else if tc.x.method != http.MethodDelete {
				env := decode[apigen.Environment](t, rec)
				require.Equal(t, strconv.Quote(strconv.FormatInt(env.Version, 10)), rec.Header().Get("ETag"), "the ETag is the version")
			}
			if tc.check != nil {
				tc.check(t, a, rec.Body.Bytes())
			}
		})
	}
}

func TestCreatedEnvironmentIsWhereLocationSays(t *testing.T) {
	t.Parallel()
	a := restSetup(t)
	seedApps(t, a.store, "checkout")
	rec := a.do(exchange{method: http.MethodPost, path: "/api/v1/apps/checkout/environments", body: `{"name": "production", "tier": "production"}`})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(t, "/api/v1/apps/checkout/environments/production", rec.Header().Get("Location"))
	require.Equal(t, `"1"`, rec.Header().Get("ETag"))

	got := a.do(exchange{method: http.MethodGet, path: rec.Header().Get("Location")})
	require.Equal(t, http.StatusOK, got.Code)
	require.JSONEq(t, rec.Body.String(), got.Body.String())
}

func TestEnvironmentsArePagedInNameOrder(t *testing.T) {
	t.Parallel()
	a := restSetup(t)
	seedApps(t, a.store, "checkout")
	for _, name := range []string{"staging", "production", "dev", "canary-lab"} {
		rec := a.do(exchange{method: http.MethodPost, path: "/api/v1/apps/checkout/environments", body: `{"name": "` + name + `"}`})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}
	var names []string
	path := "/api/v1/apps/checkout/environments?limit=3"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "paging must end")
		list := decode[apigen.EnvironmentList](t, a.do(exchange{method: http.MethodGet, path: path}))
		for _, env := range list.Items {
			names = append(names, env.Name)
			require.Equal(t, "checkout", env.App)
		}
		if list.NextCursor == nil {
			break
		}
		path = "/api/v1/apps/checkout/environments?limit=3&cursor=" + *list.NextCursor
	}
	require.Equal(t, []string{"canary-lab", "dev", "production", "staging"}, names)
}

// racingStore is a store on which the engine records a new stable version
// of an environment just before the API's first update of it lands, as a
// run finishing at that moment would.
type racingStore struct {
	*store.Store
	raced atomic.Bool
}

func (s *racingStore) UpdateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error) {
	if !s.raced.Swap(true) {
		if err := s.SetStableVersion(ctx, e.ID, "v2"); err != nil {
			return store.Environment{}, err
		}
	}
	return s.Store.UpdateEnvironment(ctx, e)
}

func TestEnvironmentUpdateSurvivesTheEngineMovingOn(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		ifMatch string
		status  int
	}{
		// Without If-Match the change applies to whatever is current.
		"without If-Match": {status: http.StatusOK},
		// With it, the client asked for exactly version 1 and hears that
		// it is gone, with the environment as it is now.
		"with If-Match": {ifMatch: `"1"`, status: http.StatusConflict},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := store.New(dbtest.New(t), store.Options{})
			seedEnvironment(t, s)
			reg := prometheus.NewRegistry()
			a := &restAPI{t: t, store: s, handler: api.New(api.Config{
				Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
				Readiness: readiness{}, Resources: &racingStore{Store: s}, Gatherer: reg, Registerer: reg,
			})}
			x := exchange{method: http.MethodPatch, path: "/api/v1/apps/checkout/environments/production", body: `{"tier": "staging"}`}
			if tc.ifMatch != "" {
				x.header = http.Header{"If-Match": {tc.ifMatch}}
			}
			rec := a.do(x)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())

			env := storedEnvironment(t, s)
			require.Equal(t, "v2", env.StableVersion, "the engine's change is never lost")
			if tc.status == http.StatusOK {
				require.Equal(t, "staging", env.Tier)
				require.Equal(t, int64(3), env.Version)
				return
			}
			require.Equal(t, "production", env.Tier)
			p := readProblem(t, rec)
			require.JSONEq(t, `"v2"`, string(jsonField(t, p.Current, "stable_version")))
		})
	}
}

// jsonField returns one member of a JSON object.
func jsonField(t *testing.T, body []byte, name string) []byte {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &fields), string(body))
	raw, ok := fields[name]
	require.True(t, ok, "%s has no %q", body, name)
	return raw
}
