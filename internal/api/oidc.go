package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// The single sign-on routes: the sign-in page's button leads to the start,
// which sends the browser to the provider, which sends it back to the
// callback with a code.
const (
	oidcStartPath    = "/login/oidc"
	OIDCCallbackPath = "/login/oidc/callback"
)

// DefaultOIDCScopes are asked for when the configuration names none:
// the ID token then carries the person's name, email and groups.
var DefaultOIDCScopes = []string{oidc.ScopeOpenID, "email", "profile", "groups"}

// oidcAttemptTTL bounds how long a person may take at the provider.
const oidcAttemptTTL = 10 * time.Minute

// OIDCConfig configures single sign-on with an OpenID Connect provider
// (Keycloak, Okta, Google, or any other that publishes its discovery
// document). People sign in with the authorization code flow, with PKCE,
// state and nonce; the claims of their ID token decide their roles through
// RoleMap at every sign-in.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its ID tokens name
	// it, such as https://sso.example.com/realms/platform.
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes asked for; empty asks for DefaultOIDCScopes.
	Scopes []string
	// RedirectURL is the callback's public address: the server's public
	// URL followed by OIDCCallbackPath. It must be registered with the
	// provider.
	RedirectURL string
	// Name is what the sign-in button calls the provider; empty says
	// "single sign-on".
	Name string
	// RoleMap turns claims into roles.
	RoleMap RoleMap
	// HTTPClient talks to the provider; nil uses one with a 10-second
	// timeout, so a provider that hangs cannot hold a sign-in forever.
	HTTPClient *http.Client
	// Now is the clock ID tokens are checked against; nil is time.Now.
	Now func() time.Time
}

// RoleMap turns the claims of an ID token into Flightdeck roles. Claim
// names the claim to read (default "groups"; a dotted path such as
// realm_access.roles reads a nested claim), holding a string or a list of
// strings. Every rule whose Value is among the claim's values applies.
type RoleMap struct {
	Claim string     `json:"claim"`
	Rules []RoleRule `json:"rules"`
}

// RoleRule grants Role on environment Env of app App ("*" for every one)
// to people whose claim holds Value, or, with Admin, makes them
// administrators of all of Flightdeck.
type RoleRule struct {
	Value string `json:"value"`
	App   string `json:"app,omitempty"`
	Env   string `json:"env,omitempty"`
	Role  string `json:"role,omitempty"`
	Admin bool   `json:"admin,omitempty"`
}

// ParseRoleMap reads a role map from its JSON form, such as
//
//	{"claim": "groups", "rules": [
//	  {"value": "release-managers", "app": "*", "env": "production", "role": "approver"},
//	  {"value": "sre", "app": "*", "env": "*", "role": "deployer"},
//	  {"value": "platform-admins", "admin": true}]}
//
// and says precisely what is wrong with it otherwise. Empty input is a map
// without rules: everybody who signs in is a viewer.
func ParseRoleMap(data []byte) (RoleMap, error) {
	var m RoleMap
	if len(bytes.TrimSpace(data)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return RoleMap{}, fmt.Errorf("role map: not valid JSON of the form {\"claim\": \"groups\", \"rules\": [{\"value\": ..., \"app\": ..., \"env\": ..., \"role\": ...}]}: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return RoleMap{}, errors.New("role map: unexpected data after the JSON object")
		}
	}
	m.Claim = strings.TrimSpace(m.Claim)
	if m.Claim == "" {
		m.Claim = "groups"
	}
	for _, part := range strings.Split(m.Claim, ".") {
		if part == "" {
			return RoleMap{}, fmt.Errorf("role map: claim %q has an empty part; name a claim such as groups or realm_access.roles", m.Claim)
		}
	}
	for i, r := range m.Rules {
		where := fmt.Sprintf("role map: rule %d", i+1)
		if strings.TrimSpace(r.Value) == "" {
			return RoleMap{}, fmt.Errorf("%s: value is empty; set the %s value the rule matches", where, m.Claim)
		}
		where += fmt.Sprintf(" (value %q)", r.Value)
		if r.Admin {
			if r.App != "" || r.Env != "" || r.Role != "" {
				return RoleMap{}, fmt.Errorf("%s: an admin rule makes people administrators everywhere; leave out app, env and role", where)
			}
			continue
		}
		if r.Role == "" {
			return RoleMap{}, fmt.Errorf("%s: set role (viewer, deployer, approver or admin) or \"admin\": true", where)
		}
		if _, err := auth.ParseRole(r.Role); err != nil {
			return RoleMap{}, fmt.Errorf("%s: %w", where, err)
		}
		for _, f := range []struct{ field, kind, v string }{{"app", "an app slug such as checkout", r.App}, {"env", "an environment name such as production", r.Env}} {
			if f.v == auth.Wildcard {
				continue
			}
			if f.v == "" || !slugPattern.MatchString(f.v) {
				return RoleMap{}, fmt.Errorf("%s: %s %q: want %s, or \"*\" for every one", where, f.field, f.v, f.kind)
			}
		}
	}
	return m, nil
}

// Grants returns what the claim values grant: administration, and the
// strongest role per app and environment, in the order of the rules.
func (m RoleMap) Grants(values []string) (admin bool, bindings []auth.Binding) {
	for _, r := range m.Rules {
		if !slices.Contains(values, r.Value) {
			continue
		}
		if r.Admin {
			admin = true
			continue
		}
		role := auth.Role(r.Role)
		i := slices.IndexFunc(bindings, func(b auth.Binding) bool { return b.App == r.App && b.Environment == r.Env })
		switch {
		case i < 0:
			bindings = append(bindings, auth.Binding{App: r.App, Environment: r.Env, Role: role})
		case role.Includes(bindings[i].Role):
			bindings[i].Role = role
		}
	}
	return admin, bindings
}

// claimValues reads the claim at the dotted path as a list of strings: a
// string is one value, a list keeps its strings, anything else is none.
func claimValues(claims map[string]any, path string) ([]string, bool) {
	var v any = claims
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[part]; !ok {
			return nil, false
		}
	}
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, true
}

// OIDCStore is what single sign-on changes: users and their roles, and the
// audit log.
type OIDCStore interface {
	SignInWithSSO(ctx context.Context, in store.SSOSignIn) (store.SSOSignInResult, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// Session keys of a sign-in under way at the provider.
const (
	oidcStateKey    = "oidc.state"
	oidcNonceKey    = "oidc.nonce"
	oidcVerifierKey = "oidc.verifier"
	oidcNextKey     = "oidc.next"
	oidcStartedKey  = "oidc.started"
)

// oidcHandlers sign people in through the provider.
type oidcHandlers struct {
	cfg      OIDCConfig
	sessions *scs.SessionManager
	store    OIDCStore
	client   *http.Client

	// The provider's discovery document is read at the first sign-in and
	// kept; until it has been read, every sign-in tries again, so a
	// provider that is down at start does not need a restart.
	mu       sync.Mutex
	provider *oidc.Provider
}

// registerOIDC installs single sign-on when it is configured: the two
// routes, and the button on the sign-in page.
func registerOIDC(e *echo.Echo, cfg Config) {
	if cfg.OIDC == nil {
		return
	}
	st, ok := cfg.Members.(OIDCStore)
	if !ok {
		panic("api: single sign-on needs Members to implement OIDCStore")
	}
	h := newOIDCHandlers(*cfg.OIDC, cfg.Sessions, st)
	button := templates.SSOProvider{Name: h.cfg.Name, Path: oidcStartPath}
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p := c.Request().URL.Path; p == "/login" || strings.HasPrefix(p, "/login/") {
				r := c.Request()
				c.SetRequest(r.WithContext(templates.WithSSOProvider(r.Context(), button)))
			}
			return next(c)
		}
	})
	e.GET(oidcStartPath, h.start)
	e.GET(OIDCCallbackPath, h.callback)
}

func newOIDCHandlers(cfg OIDCConfig, sessions *scs.SessionManager, st OIDCStore) *oidcHandlers {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultOIDCScopes
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.Name == "" {
		cfg.Name = "single sign-on"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RoleMap.Claim == "" {
		cfg.RoleMap.Claim = "groups"
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &oidcHandlers{cfg: cfg, sessions: sessions, store: st, client: client}
}

// providerContext carries the HTTP client to every request go-oidc and
// oauth2 make to the provider.
func (h *oidcHandlers) providerContext(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, h.client), h.client)
}

// discover returns the provider, reading its discovery document if it has
// not been read yet.
func (h *oidcHandlers) discover(ctx context.Context) (*oidc.Provider, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.provider != nil {
		return h.provider, nil
	}
	p, err := oidc.NewProvider(h.providerContext(ctx), h.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	h.provider = p
	return p, nil
}

func (h *oidcHandlers) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: h.cfg.ClientID, ClientSecret: h.cfg.ClientSecret,
		Endpoint: p.Endpoint(), RedirectURL: h.cfg.RedirectURL, Scopes: h.cfg.Scopes,
	}
}

// ssoRefusal is a sign-in through the provider that did not happen: what
// the person is told, the status, and what the audit log keeps.
type ssoRefusal struct {
	status  int
	message string
	reason  string
	// subject is the provider's id of the person, when known.
	subject string
}

// refuse shows the sign-in page again with the message, and records the
// failed attempt with its reason.
func (h *oidcHandlers) refuse(c echo.Context, r ssoRefusal, next string) error {
	detail := "through " + h.cfg.Name + ": " + r.reason
	if r.subject != "" {
		detail += " (subject " + r.subject + ")"
	}
	_, _ = h.store.RecordAudit(c.Request().Context(), auditFrom(c, store.AuditEvent{
		Actor: "anonymous", Action: "user.sign_in_failed", Detail: truncate(detail, 500),
	}))
	return render(c, r.status, templates.Login(pageFor(c, "Sign in", ""), templates.LoginForm{Next: next, Error: r.message}))
}

func (h *oidcHandlers) unreachable(err error) ssoRefusal {
	return ssoRefusal{
		status: http.StatusBadGateway,
		message: fmt.Sprintf("Signing in with %s is not possible right now: the provider at %s could not be reached. Try again in a minute, or sign in with a local account.",
			h.cfg.Name, h.cfg.Issuer),
		reason: "provider unreachable: " + err.Error(),
	}
}

// start sends the browser to the provider, remembering in the session
// what the answer must match.
func (h *oidcHandlers) start(c echo.Context) error {
	next := c.QueryParam("next")
	if memberFrom(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(next))
	}
	ctx := c.Request().Context()
	p, err := h.discover(ctx)
	if err != nil {
		return h.refuse(c, h.unreachable(err), next)
	}
	state, nonce := randomToken(), randomToken()
	verifier := oauth2.GenerateVerifier()
	h.sessions.Put(ctx, oidcStateKey, state)
	h.sessions.Put(ctx, oidcNonceKey, nonce)
	h.sessions.Put(ctx, oidcVerifierKey, verifier)
	h.sessions.Put(ctx, oidcNextKey, safeNext(next))
	h.sessions.Put(ctx, oidcStartedKey, h.cfg.Now().Unix())
	target := h.oauth2Config(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return c.Redirect(http.StatusSeeOther, target)
}

// callback takes the provider's answer: it checks the state, exchanges the
// code (with the PKCE verifier) for tokens, verifies the ID token and its
// nonce, maps the claims to roles and starts a session.
func (h *oidcHandlers) callback(c echo.Context) error {
	ctx := c.Request().Context()
	// The attempt is used up whatever the answer is, so an answer cannot
	// be replayed.
	state := h.sessions.PopString(ctx, oidcStateKey)
	nonce := h.sessions.PopString(ctx, oidcNonceKey)
	verifier := h.sessions.PopString(ctx, oidcVerifierKey)
	next := h.sessions.PopString(ctx, oidcNextKey)
	started := time.Unix(h.sessions.GetInt64(ctx, oidcStartedKey), 0)
	h.sessions.Remove(ctx, oidcStartedKey)

	if state == "" || h.cfg.Now().Sub(started) > oidcAttemptTTL {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusBadRequest,
			message: fmt.Sprintf("This sign-in did not start in this browser, or took longer than %d minutes. Start again with the button below.", int(oidcAttemptTTL.Minutes())),
			reason:  "no sign-in under way in this session, or it expired",
		}, next)
	}
	if subtle.ConstantTimeCompare([]byte(c.QueryParam("state")), []byte(state)) != 1 {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusBadRequest,
			message: "The answer from " + h.cfg.Name + " does not belong to the sign-in started in this browser. Start again with the button below.",
			reason:  "state does not match",
		}, next)
	}
	if e := c.QueryParam("error"); e != "" {
		why := e
		if d := c.QueryParam("error_description"); d != "" {
			why = d
		}
		return h.refuse(c, ssoRefusal{
			status:  http.StatusUnauthorized,
			message: fmt.Sprintf("%s did not sign you in: %s.", h.cfg.Name, truncate(why, 200)),
			reason:  "provider answered " + truncate(e+": "+why, 300),
		}, next)
	}
	code := c.QueryParam("code")
	if code == "" {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusBadRequest,
			message: "The answer from " + h.cfg.Name + " carries no sign-in code. Start again with the button below.",
			reason:  "no code in the answer",
		}, next)
	}
	p, err := h.discover(ctx)
	if err != nil {
		return h.refuse(c, h.unreachable(err), next)
	}
	pctx := h.providerContext(ctx)
	tok, err := h.oauth2Config(p).Exchange(pctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		if _, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			return h.refuse(c, ssoRefusal{
				status:  http.StatusUnauthorized,
				message: h.cfg.Name + " refused the sign-in code. Start again with the button below.",
				reason:  "code exchange refused: " + truncate(err.Error(), 300),
			}, next)
		}
		return h.refuse(c, h.unreachable(err), next)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusBadGateway,
			message: h.cfg.Name + " answered without an ID token, so Flightdeck cannot tell who you are. Ask an administrator to check that the openid scope is allowed for Flightdeck.",
			reason:  "no id_token in the token response",
		}, next)
	}
	idToken, err := p.Verifier(&oidc.Config{ClientID: h.cfg.ClientID, Now: h.cfg.Now}).Verify(pctx, rawID)
	if err != nil {
		why := "it is not signed by the provider's keys, or is not meant for Flightdeck"
		if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			why = "it has expired"
		}
		return h.refuse(c, ssoRefusal{
			status:  http.StatusUnauthorized,
			message: fmt.Sprintf("The ID token from %s was refused: %s. Nobody was signed in.", h.cfg.Name, why),
			reason:  "ID token refused: " + truncate(err.Error(), 300),
		}, next)
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(nonce)) != 1 {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusUnauthorized,
			message: "The ID token from " + h.cfg.Name + " was issued for another sign-in. Nobody was signed in; start again with the button below.",
			reason:  "nonce does not match", subject: idToken.Subject,
		}, next)
	}
	var claims map[string]any
	if err := idToken.Claims(&claims); err != nil {
		return fmt.Errorf("reading the claims of an ID token: %w", err)
	}
	values, found := claimValues(claims, h.cfg.RoleMap.Claim)
	if !found && p.UserInfoEndpoint() != "" {
		// Some providers (Okta, Google) put groups only in the userinfo
		// answer.
		info, err := p.UserInfo(pctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return h.refuse(c, h.unreachable(err), next)
		}
		var more map[string]any
		if err := info.Claims(&more); err != nil || info.Subject != idToken.Subject {
			return h.refuse(c, ssoRefusal{
				status:  http.StatusBadGateway,
				message: h.cfg.Name + " answered with user information about somebody else. Nobody was signed in.",
				reason:  "userinfo subject does not match the ID token", subject: idToken.Subject,
			}, next)
		}
		values, _ = claimValues(more, h.cfg.RoleMap.Claim)
	}
	return h.signIn(c, idToken, claims, values, next)
}

// signIn finds or creates the user, replaces their roles with what the
// claims grant now, and starts the session.
func (h *oidcHandlers) signIn(c echo.Context, idToken *oidc.IDToken, claims map[string]any, values []string, next string) error {
	ctx := c.Request().Context()
	admin, grants := h.cfg.RoleMap.Grants(values)
	bindings := make([]store.RoleBinding, len(grants))
	for i, g := range grants {
		bindings[i] = store.RoleBinding{App: g.App, Environment: g.Environment, Role: string(g.Role)}
	}
	res, err := h.store.SignInWithSSO(ctx, store.SSOSignIn{
		Issuer: idToken.Issuer, Subject: idToken.Subject,
		Usernames:   ssoUsernames(claims, idToken.Issuer, idToken.Subject),
		DisplayName: ssoDisplayName(claims),
		IsAdmin:     admin, Bindings: bindings,
	})
	if errors.Is(err, store.ErrUsernamesTaken) {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusConflict,
			message: "Flightdeck could not find a free username for you. Ask an administrator.",
			reason:  err.Error(), subject: idToken.Subject,
		}, next)
	}
	if err != nil {
		return fmt.Errorf("signing in %s through single sign-on: %w", idToken.Subject, err)
	}
	u := res.User
	if u.DisabledAt != nil {
		return h.refuse(c, ssoRefusal{
			status:  http.StatusForbidden,
			message: "This account is disabled; ask an administrator.",
			reason:  "user " + u.Username + " is disabled", subject: idToken.Subject,
		}, next)
	}
	// A new token at sign-in, so a session id planted before cannot be used.
	if err := h.sessions.RenewToken(ctx); err != nil {
		return fmt.Errorf("starting a session: %w", err)
	}
	h.sessions.Put(ctx, sessionUserKey, u.ID)
	detail := "through " + h.cfg.Name + " (subject " + idToken.Subject + "); " + describeGrants(admin, grants)
	if res.Created {
		detail = "first sign-in, user created, " + detail
	}
	_, _ = h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: u.Username, Action: "user.signed_in", Detail: truncate(detail, 1000)}))
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// describeGrants says in a line what a sign-in granted, for the audit log.
func describeGrants(admin bool, grants []auth.Binding) string {
	var parts []string
	if admin {
		parts = append(parts, "administrator")
	}
	for _, g := range grants {
		parts = append(parts, fmt.Sprintf("%s on %s/%s", g.Role, g.App, g.Environment))
	}
	if len(parts) == 0 {
		return "roles: viewer only"
	}
	return "roles: " + strings.Join(parts, ", ")
}

// usernameInvalid matches what a username may not hold (see the users
// table's rule).
var usernameInvalid = regexp.MustCompile(`[^a-z0-9._@-]+`)

// ssoUsernames are the names offered for a new SSO user, best first: the
// preferred username or the email address as the provider has them, then
// the same with a suffix derived from the subject (when a local user, or
// another provider's user, has the name already), then a name from the
// subject alone. A person keeps the name they got at their first sign-in.
func ssoUsernames(claims map[string]any, issuer, subject string) []string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	suffix := hex.EncodeToString(sum[:])
	var out []string
	for _, key := range []string{"preferred_username", "email"} {
		s, _ := claims[key].(string)
		name := usernameInvalid.ReplaceAllString(strings.ToLower(strings.TrimSpace(s)), "-")
		name = strings.TrimLeft(name, "._@-")
		if name == "" {
			continue
		}
		if len(name) > 64 {
			name = name[:64]
		}
		base := name
		if len(base) > 57 {
			base = base[:57]
		}
		out = append(out, name, base+"-"+suffix[:6])
		break
	}
	return append(out, "sso-"+suffix[:16])
}

// ssoDisplayName is what the pages call an SSO user.
func ssoDisplayName(claims map[string]any) string {
	for _, key := range []string{"name", "preferred_username", "email"} {
		if s, _ := claims[key].(string); strings.TrimSpace(s) != "" {
			return truncate(strings.TrimSpace(s), 200)
		}
	}
	return ""
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
