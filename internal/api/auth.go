package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TokenLookup finds the token a request presents and records that it was
// used; *store.Store is the implementation.
type TokenLookup interface {
	// TokenByHash returns the token with the hash if it may authenticate
	// now, and store.ErrNotFound otherwise.
	TokenByHash(ctx context.Context, hash []byte) (store.Token, error)
	// TouchToken sets the token's last-used time, at most once a minute.
	TouchToken(ctx context.Context, id int64, now time.Time) error
}

// principalKey is where RequireToken leaves the principal in the echo
// context.
const principalKey = "flightdeck.principal"

// bearerChallenge is the WWW-Authenticate challenge of every 401 and 403
// (RFC 6750), telling clients which scheme to use.
const bearerChallenge = `Bearer realm="flightdeck"`

// RequireToken authenticates API requests by the token in their
// "Authorization: Bearer <token>" header. A request without one, or with
// one that is malformed, unknown, revoked or expired, gets a 401 problem
// with a Bearer challenge; the response does not say which, so a caller
// learns nothing about tokens it does not hold. Otherwise the token's
// principal is stored for PrincipalFrom, its last-used time is updated and
// the request goes on. now is the clock for last-used times; nil is
// time.Now.
func RequireToken(lookup TokenLookup, now func() time.Time) echo.MiddlewareFunc {
	if now == nil {
		now = time.Now
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			plaintext, code, detail := bearerToken(c.Request().Header)
			if detail != "" {
				return unauthorized(c, code, detail)
			}
			ctx := c.Request().Context()
			tok, err := lookup.TokenByHash(ctx, auth.Hash(plaintext))
			if errors.Is(err, store.ErrNotFound) {
				return unauthorized(c, "invalid_token", "The API token is not valid: it is unknown, revoked or expired.")
			}
			if err != nil {
				return fmt.Errorf("looking up an API token: %w", err)
			}
			// The last-used time is bookkeeping for people reviewing their
			// tokens; a failure to record it must not turn a request that is
			// allowed into an error, and the lookup above has just shown that
			// the database answers.
			_ = lookup.TouchToken(ctx, tok.ID, now())
			c.Set(principalKey, tok.Principal())
			return next(c)
		}
	}
}

// bearerToken returns the token of a request's Authorization header. When
// there is none usable, detail says what is wrong and code is the RFC 6750
// error code for the challenge, if any. The scheme is matched without
// regard to case, as RFC 9110 asks. Tokens that cannot be Flightdeck tokens
// are turned away here, without a database query.
func bearerToken(h http.Header) (token, code, detail string) {
	values := h.Values(echo.HeaderAuthorization)
	if len(values) == 0 || strings.TrimSpace(values[0]) == "" {
		return "", "", `This endpoint needs an API token, sent as "Authorization: Bearer <token>".`
	}
	if len(values) > 1 {
		return "", "invalid_request", "The request has more than one Authorization header."
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "", `The Authorization header must use the Bearer scheme: "Authorization: Bearer <token>".`
	}
	token = strings.TrimLeft(rest, " \t")
	if auth.CheckFormat(token) != nil {
		return "", "invalid_token", "The bearer token is not a Flightdeck API token; those start with " + auth.TokenPrefix + "."
	}
	return token, "", ""
}

// unauthorized sets the Bearer challenge, with the RFC 6750 error code
// when there is one, and returns the 401 for the central error handler,
// which keeps headers already set when it writes the problem.
func unauthorized(c echo.Context, code, detail string) error {
	challenge := bearerChallenge
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	return echo.NewHTTPError(http.StatusUnauthorized, detail)
}

// PrincipalFrom returns the principal RequireToken found for the request,
// and false when the request went through no RequireToken.
func PrincipalFrom(c echo.Context) (auth.Principal, bool) {
	p, ok := c.Get(principalKey).(auth.Principal)
	return p, ok
}

// RequireScope returns nil when the request's token has scope s, directly
// or through a broader one, and otherwise a 403 problem naming the scope
// that is missing. Without an authenticated principal, which means the
// route lacks RequireToken, it is a 401, so a wiring mistake fails closed.
func RequireScope(c echo.Context, s auth.Scope) error {
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	if p.Allows(s) {
		return nil
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, fmt.Sprintf(`%s, error="insufficient_scope", scope="%s"`, bearerChallenge, s))
	return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("This needs the %q scope, which the token %q does not have (it has %s).",
		s, p.Name, strings.Join(auth.ScopeStrings(p.Scopes), ", ")))
}

// CanAccess reports whether the principal's app and environment limits let
// it act on environment env of app; "" for either leaves that limit
// unchecked. See auth.Principal.CanAccess.
func CanAccess(p auth.Principal, app, env string) bool {
	return p.CanAccess(app, env)
}

// RequireAccess returns nil when the request's token may act on
// environment env of app, and otherwise a 403 problem that names the
// token's limits. Handlers call it once they know the app and environment
// a request is about.
func RequireAccess(c echo.Context, app, env string) error {
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	if p.CanAccess(app, env) {
		return nil
	}
	var limits []string
	if len(p.Apps) > 0 {
		limits = append(limits, "apps "+strings.Join(p.Apps, ", "))
	}
	if len(p.Environments) > 0 {
		limits = append(limits, "environments "+strings.Join(p.Environments, ", "))
	}
	return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("The token %q is limited to %s.", p.Name, strings.Join(limits, " and ")))
}
