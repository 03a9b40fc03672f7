package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// ofrepSnapshots is an in-memory FlagSnapshots whose snapshots a test can
// swap while requests run, as the flag cache does when a flag changes.
type ofrepSnapshots struct {
	mu    sync.RWMutex
	snaps map[string]*flags.Snapshot
}

func (s *ofrepSnapshots) Snapshot(app, env string) (*flags.Snapshot, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap, ok := s.snaps[app+"/"+env]
	return snap, ok
}

func (s *ofrepSnapshots) set(app, env string, snap *flags.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snaps == nil {
		s.snaps = map[string]*flags.Snapshot{}
	}
	s.snaps[app+"/"+env] = snap
}

// ofrepTokens is an in-memory TokenLookup keyed by token hash.
type ofrepTokens struct {
	mu     sync.Mutex
	byHash map[string]store.Token
}

func (l *ofrepTokens) TokenByHash(_ context.Context, hash []byte) (store.Token, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.byHash[string(hash)]
	if !ok {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}

func (l *ofrepTokens) TouchToken(context.Context, int64, time.Time) error { return nil }

// add makes a token with the scopes and limits and returns its plaintext.
func (l *ofrepTokens) add(t testing.TB, name string, scopes []auth.Scope, apps, envs []string) string {
	t.Helper()
	plaintext, prefix, hash, err := auth.Generate()
	require.NoError(t, err)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byHash == nil {
		l.byHash = map[string]store.Token{}
	}
	l.byHash[string(hash)] = store.Token{
		ID: int64(len(l.byHash) + 1), Name: name, Prefix: prefix, Scopes: scopes,
		UserID: 1, Apps: apps, Environments: envs,
	}
	return plaintext
}

// ofrepFixture is an OFREP server with checkout's flags in production and
// staging and tokens of every kind.
type ofrepFixture struct {
	e         *echo.Echo
	snapshots *ofrepSnapshots
	// checkoutProd is limited to checkout/production and needs no headers.
	checkoutProd string
	// anyEnv has the flags scope and no limits.
	anyEnv string
	// stagingOnly is limited to staging environments.
	stagingOnly string
	// readOnly has the read scope but not flags.
	readOnly string
	// admin has the admin scope, which includes flags.
	admin string
}

func newOFREPFixture(t testing.TB) *ofrepFixture {
	tokens := &ofrepTokens{}
	f := &ofrepFixture{snapshots: &ofrepSnapshots{}}
	f.snapshots.set("checkout", "production", flags.NewSnapshot(checkoutFlagEntries(true), nil))
	f.snapshots.set("checkout", "staging", flags.NewSnapshot(checkoutFlagEntries(false), nil))
	f.checkoutProd = tokens.add(t, "checkout-prod-sdk", []auth.Scope{scopeFlags}, []string{"checkout"}, []string{"production"})
	f.anyEnv = tokens.add(t, "flags-everywhere", []auth.Scope{scopeFlags}, nil, nil)
	f.stagingOnly = tokens.add(t, "staging-sdk", []auth.Scope{scopeFlags}, nil, []string{"staging"})
	f.readOnly = tokens.add(t, "dashboard", []auth.Scope{auth.ScopeRead}, nil, nil)
	f.admin = tokens.add(t, "platform", []auth.Scope{auth.ScopeAdmin}, nil, nil)
	f.e = echo.New()
	f.e.HTTPErrorHandler = errorHandler(slog.New(slog.DiscardHandler))
	RegisterOFREPRoutes(f.e, f.snapshots, tokens)
	return f
}

// checkoutFlagEntries are checkout's flags: a boolean with a beta rule, a
// string rolled out 50/50, an object, a killed flag and, when broken, a
// flag whose stored configuration is invalid.
func checkoutFlagEntries(withBroken bool) []flags.Entry {
	entries := []flags.Entry{
		{
			Flag: flags.Flag{
				Key: "new-checkout", Type: flags.TypeBoolean, DefaultVariant: "off",
				Variants: map[string]json.RawMessage{"on": json.RawMessage(`true`), "off": json.RawMessage(`false`)},
			},
			State: flags.EnvState{Enabled: true, Version: 3, Rules: []flags.Rule{{
				Name:    "beta-plan",
				Clauses: []flags.Clause{{Attribute: "plan", Op: flags.OpEquals, Values: []any{"beta"}}},
				Serve:   flags.Serve{Variant: "on"},
			}}},
		},
		{
			Flag: flags.Flag{
				Key: "button-colour", Type: flags.TypeString, DefaultVariant: "blue",
				Variants: map[string]json.RawMessage{"blue": json.RawMessage(`"#1f6feb"`), "green": json.RawMessage(`"#2ea043"`)},
			},
			State: flags.EnvState{Enabled: true, Version: 1, DefaultRollout: flags.Serve{Rollout: []flags.WeightedVariant{
				{Variant: "blue", Weight: 50}, {Variant: "green", Weight: 50},
			}}},
		},
		{
			Flag: flags.Flag{
				Key: "checkout-limits", Type: flags.TypeObject, DefaultVariant: "standard",
				Variants: map[string]json.RawMessage{
					"standard": json.RawMessage(`{"max_items":50,"express":false}`),
					"generous": json.RawMessage(`{"max_items":200,"express":true}`),
				},
			},
			State: flags.EnvState{Enabled: true, Version: 2},
		},
		{
			Flag: flags.Flag{
				Key: "legacy-payments", Type: flags.TypeBoolean, DefaultVariant: "on", OffVariant: "off",
				Variants: map[string]json.RawMessage{"on": json.RawMessage(`true`), "off": json.RawMessage(`false`)},
			},
			State: flags.EnvState{Enabled: false, Version: 7},
		},
	}
	if withBroken {
		entries = append(entries, flags.Entry{
			Flag: flags.Flag{
				Key: "half-configured", Type: flags.TypeBoolean, DefaultVariant: "missing",
				Variants: map[string]json.RawMessage{"on": json.RawMessage(`true`)},
			},
			State: flags.EnvState{Enabled: true, Version: 1},
		})
	}
	return entries
}

// ofrepResponse is an answer as a client sees it.
type ofrepResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r ofrepResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// post sends body to path with the token and extra headers (name, value
// pairs).
func (f *ofrepFixture) post(t testing.TB, path, token, body string, headers ...string) ofrepResponse {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	if token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return ofrepResponse{status: rec.Code, header: rec.Header(), body: b}
}

const ofrepSinglePath = "/ofrep/v1/evaluate/flags/"

func TestOFREPSingleFlagSuccess(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)

	beta := f.post(t, ofrepSinglePath+"new-checkout", f.checkoutProd, `{"context":{"targetingKey":"user-7","plan":"beta"}}`)
	require.Equal(t, http.StatusOK, beta.status, string(beta.body))
	require.JSONEq(t, `{"key":"new-checkout","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{"rule":"beta-plan"}}`, string(beta.body))

	free := f.post(t, ofrepSinglePath+"new-checkout", f.checkoutProd, `{"context":{"targetingKey":"user-7","plan":"free"}}`)
	require.Equal(t, http.StatusOK, free.status)
	require.JSONEq(t, `{"key":"new-checkout","value":false,"reason":"DEFAULT","variant":"off"}`, string(free.body))

	obj := f.post(t, ofrepSinglePath+"checkout-limits", f.checkoutProd, `{"context":{}}`)
	require.Equal(t, http.StatusOK, obj.status)
	require.JSONEq(t, `{"key":"checkout-limits","value":{"max_items":50,"express":false},"reason":"STATIC","variant":"standard"}`, string(obj.body))

	killed := f.post(t, ofrepSinglePath+"legacy-payments", f.checkoutProd, `{"context":{"targetingKey":"user-7"}}`)
	require.Equal(t, http.StatusOK, killed.status)
	require.JSONEq(t, `{"key":"legacy-payments","value":false,"reason":"DISABLED","variant":"off"}`, string(killed.body))

	split := f.post(t, ofrepSinglePath+"button-colour", f.checkoutProd, `{"context":{"targetingKey":"user-7"}}`)
	require.Equal(t, http.StatusOK, split.status)
	m := split.json(t)
	require.Equal(t, "SPLIT", m["reason"])
	require.Contains(t, []any{"#1f6feb", "#2ea043"}, m["value"])
}

func TestOFREPSingleFlagErrors(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	for _, tc := range []struct {
		name, key, body string
		status          int
		code            string
		details         string
	}{
		{"unknown flag", "old-checkout", `{"context":{}}`, 404, "FLAG_NOT_FOUND", "there is no flag old-checkout"},
		{"body not JSON", "new-checkout", `{"context":`, 400, "PARSE_ERROR", "not valid JSON"},
		{"body a list", "new-checkout", `[{"context":{}}]`, 400, "PARSE_ERROR", "must be a JSON object"},
		{"empty body", "new-checkout", ``, 400, "PARSE_ERROR", "body is empty"},
		{"context a string", "new-checkout", `{"context":"user-7"}`, 400, "INVALID_CONTEXT", "must be a JSON object"},
		{"context a list", "new-checkout", `{"context":["user-7"]}`, 400, "INVALID_CONTEXT", "must be a JSON object"},
		{"targeting key a number", "new-checkout", `{"context":{"targetingKey":7}}`, 400, "INVALID_CONTEXT", "targetingKey must be a string"},
		{"rollout without targeting key", "button-colour", `{"context":{"plan":"free"}}`, 400, "TARGETING_KEY_MISSING", "needs a targetingKey"},
		{"stored flag invalid", "half-configured", `{"context":{}}`, 400, "PARSE_ERROR", "stored configuration is invalid"},
		{"body too large", "new-checkout", `{"context":{"note":"` + strings.Repeat("x", maxOFREPBody) + `"}}`, 400, "PARSE_ERROR", "larger than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, ofrepSinglePath+tc.key, f.checkoutProd, tc.body)
			require.Equal(t, tc.status, r.status, string(r.body))
			m := r.json(t)
			require.Equal(t, tc.key, m["key"])
			require.Equal(t, tc.code, m["errorCode"])
			require.Contains(t, m["errorDetails"], tc.details)
			require.NotContains(t, m, "value")
		})
	}
}

func TestOFREPChoosesAppAndEnvironment(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	body := `{"context":{"targetingKey":"user-7"}}`

	t.Run("token limited to one environment needs no headers", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"half-configured", f.checkoutProd, body)
		require.Equal(t, "PARSE_ERROR", r.json(t)["errorCode"], "production holds the broken flag")
	})
	t.Run("headers choose for an unlimited token", func(t *testing.T) {
		prod := f.post(t, ofrepSinglePath+"half-configured", f.anyEnv, body, HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "production")
		require.Equal(t, http.StatusBadRequest, prod.status)
		staging := f.post(t, ofrepSinglePath+"half-configured", f.anyEnv, body, HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "staging")
		require.Equal(t, http.StatusNotFound, staging.status, "staging has no such flag")
		require.Equal(t, "FLAG_NOT_FOUND", staging.json(t)["errorCode"])
	})
	t.Run("the environment header combines with an app header", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.stagingOnly, body, HeaderFlightdeckApp, "checkout")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
	})
	t.Run("missing app", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.anyEnv, body, HeaderFlightdeckEnvironment, "production")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "GENERAL", r.json(t)["errorCode"])
		require.Contains(t, r.json(t)["errorDetails"], HeaderFlightdeckApp)
	})
	t.Run("missing environment", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.anyEnv, body, HeaderFlightdeckApp, "checkout")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, r.json(t)["errorDetails"], HeaderFlightdeckEnvironment)
	})
	t.Run("malformed header", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.anyEnv, body, HeaderFlightdeckApp, "Check Out", HeaderFlightdeckEnvironment, "production")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, r.json(t)["errorDetails"], `"Check Out"`)
	})
	t.Run("unknown environment", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.anyEnv, body, HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "qa")
		require.Equal(t, http.StatusNotFound, r.status)
		m := r.json(t)
		require.Equal(t, "FLAG_NOT_FOUND", m["errorCode"])
		require.Equal(t, "Flightdeck has no environment qa in app checkout, so it has no flags there.", m["errorDetails"])
	})
	t.Run("headers outside the token's limits", func(t *testing.T) {
		r := f.post(t, ofrepSinglePath+"new-checkout", f.checkoutProd, body, HeaderFlightdeckEnvironment, "staging")
		require.Equal(t, http.StatusForbidden, r.status)
		require.Contains(t, r.json(t)["errorDetails"], "checkout-prod-sdk may not read the flags of checkout/staging")
		r = f.post(t, ofrepSinglePath+"new-checkout", f.stagingOnly, body, HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "production")
		require.Equal(t, http.StatusForbidden, r.status)
	})
}

func TestOFREPAuthentication(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	body := `{"context":{}}`
	target := []string{HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "production"}
	for _, path := range []string{ofrepSinglePath + "new-checkout", "/ofrep/v1/evaluate/flags"} {
		t.Run(path, func(t *testing.T) {
			none := f.post(t, path, "", body, target...)
			require.Equal(t, http.StatusUnauthorized, none.status)
			require.Contains(t, none.header.Get(echo.HeaderWWWAuthenticate), "Bearer")

			unknown := f.post(t, path, "fd_"+strings.Repeat("a", 40), body, target...)
			require.Equal(t, http.StatusUnauthorized, unknown.status)

			read := f.post(t, path, f.readOnly, body, target...)
			require.Equal(t, http.StatusForbidden, read.status)
			require.Contains(t, string(read.body), `This needs the \"flags\" scope`)

			admin := f.post(t, path, f.admin, body, target...)
			require.Equal(t, http.StatusOK, admin.status, string(admin.body))
		})
	}
}

func TestOFREPBulk(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	const path = "/ofrep/v1/evaluate/flags"
	body := `{"context":{"targetingKey":"user-7","plan":"beta"}}`

	r := f.post(t, path, f.checkoutProd, body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var got struct {
		Flags []map[string]any `json:"flags"`
	}
	require.NoError(t, json.Unmarshal(r.body, &got))
	byKey := map[string]map[string]any{}
	var keys []string
	for _, fl := range got.Flags {
		keys = append(keys, fl["key"].(string))
		byKey[fl["key"].(string)] = fl
	}
	require.Equal(t, []string{"button-colour", "checkout-limits", "half-configured", "legacy-payments", "new-checkout"}, keys)
	require.Equal(t, map[string]any{"key": "new-checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on", "metadata": map[string]any{"rule": "beta-plan"}}, byKey["new-checkout"])
	require.Equal(t, map[string]any{"key": "legacy-payments", "value": false, "reason": "DISABLED", "variant": "off"}, byKey["legacy-payments"])
	require.Equal(t, "PARSE_ERROR", byKey["half-configured"]["errorCode"], "a broken flag is an item, not a failed request")
	require.NotContains(t, byKey["half-configured"], "value")

	etag := r.header.Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)

	t.Run("same flags and context is 304", func(t *testing.T) {
		same := f.post(t, path, f.checkoutProd, `{"context":{"plan":"beta","targetingKey":"user-7"}}`, "If-None-Match", etag)
		require.Equal(t, http.StatusNotModified, same.status)
		require.Empty(t, same.body)
		require.Equal(t, etag, same.header.Get("ETag"))
		weak := f.post(t, path, f.checkoutProd, body, "If-None-Match", `"other", W/`+etag)
		require.Equal(t, http.StatusNotModified, weak.status)
	})
	t.Run("another context is a fresh answer", func(t *testing.T) {
		other := f.post(t, path, f.checkoutProd, `{"context":{"targetingKey":"user-8"}}`, "If-None-Match", etag)
		require.Equal(t, http.StatusOK, other.status)
		require.NotEqual(t, etag, other.header.Get("ETag"))
	})
	t.Run("changed flags are a fresh answer", func(t *testing.T) {
		g := newOFREPFixture(t)
		require.Equal(t, http.StatusNotModified, g.post(t, path, g.checkoutProd, body, "If-None-Match", etag).status, "equal flags give equal tags")
		entries := checkoutFlagEntries(true)
		entries[3].State.Enabled = true
		entries[3].State.Version++
		g.snapshots.set("checkout", "production", flags.NewSnapshot(entries, nil))
		changed := g.post(t, path, g.checkoutProd, body, "If-None-Match", etag)
		require.Equal(t, http.StatusOK, changed.status)
		require.NotEqual(t, etag, changed.header.Get("ETag"))
		require.Contains(t, string(changed.body), `{"key":"legacy-payments","value":true,"reason":"STATIC","variant":"on"}`)
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct{ body, code string }{
			{`not json`, "PARSE_ERROR"},
			{`{"context":42}`, "INVALID_CONTEXT"},
		} {
			bad := f.post(t, path, f.checkoutProd, tc.body)
			require.Equal(t, http.StatusBadRequest, bad.status)
			m := bad.json(t)
			require.Equal(t, tc.code, m["errorCode"])
			require.NotEmpty(t, m["errorDetails"])
			require.NotContains(t, m, "key")
		}
	})
	t.Run("rollouts without a targeting key fail as items", func(t *testing.T) {
		noKey := f.post(t, path, f.checkoutProd, `{"context":null}`)
		require.Equal(t, http.StatusOK, noKey.status)
		require.Contains(t, string(noKey.body), `{"key":"button-colour","errorCode":"TARGETING_KEY_MISSING"`)
	})
}

func TestOFREPRoutesNeedSnapshotsAndTokens(t *testing.T) {
	t.Parallel()
	e := echo.New()
	RegisterOFREPRoutes(e, &ofrepSnapshots{}, nil)
	req := httptest.NewRequest(http.MethodPost, "/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{}}`))
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code, "without token authentication the endpoints are not served")
}

func TestETagMatches(t *testing.T) {
	t.Parallel()
	require.True(t, etagMatches(`"a"`, `"a"`))
	require.True(t, etagMatches(`"b", W/"a"`, `"a"`))
	require.True(t, etagMatches(`*`, `"a"`))
	require.False(t, etagMatches(``, `"a"`))
	require.False(t, etagMatches(`"ab"`, `"a"`))
}

func TestOFREPBulkOfAnEnvironmentWithoutFlagsIsAnEmptyList(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	f.snapshots.set("checkout", "qa", flags.NewSnapshot(nil, nil))
	r := f.post(t, "/ofrep/v1/evaluate/flags", f.anyEnv, `{"context":{"targetingKey":"user-7"}}`,
		HeaderFlightdeckApp, "checkout", HeaderFlightdeckEnvironment, "qa")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.JSONEq(t, `{"flags": []}`, string(r.body))
}
