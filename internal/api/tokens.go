package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// TokenAdmin is what the token endpoints need from the store; *store.Store
// implements it.
type TokenAdmin interface {
	CreateToken(ctx context.Context, t store.NewToken) (store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	RevokeToken(ctx context.Context, id int64) error
}

// RegisterTokenRoutes serves the token endpoints of the REST API on e:
// creating, listing and revoking API tokens. A nil store leaves them out,
// as New does for the other optional parts. The routes rely on the
// authentication New installs when its Config has Tokens.
func RegisterTokenRoutes(e *echo.Echo, tokens TokenAdmin) {
	if tokens == nil {
		return
	}
	h := &tokenHandlers{store: tokens, now: time.Now}
	e.GET(tokensRoute, h.listTokens)
	e.POST(tokensRoute, h.createToken)
	e.DELETE(tokensRoute+"/:id", h.revokeToken)
}

// tokensRoute is where the token endpoints live.
const tokensRoute = "/api/v1/tokens"

// maxTokenLifetime bounds expires_in and expires_at. A token that lives
// longer than ten years is one nobody means to rotate; "never" is said by
// leaving the expiry out.
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

// tokenHandlers serves the token endpoints.
type tokenHandlers struct {
	store TokenAdmin
	now   func() time.Time
}

// tokenBody is a token as the API shows it, without its secret.
type tokenBody struct {
	ID           int64        `json:"id"`
	Name         string       `json:"name"`
	Prefix       string       `json:"prefix"`
	Scopes       []auth.Scope `json:"scopes"`
	Apps         []string     `json:"apps"`
	Environments []string     `json:"environments"`
	CreatedAt    time.Time    `json:"created_at"`
	ExpiresAt    *time.Time   `json:"expires_at"`
	LastUsedAt   *time.Time   `json:"last_used_at"`
	RevokedAt    *time.Time   `json:"revoked_at"`
}

// createdTokenBody is a new token with its secret, which the API shows this
// one time only.
type createdTokenBody struct {
	tokenBody
	Token string `json:"token"`
}

// tokenListBody is one page of tokens.
type tokenListBody struct {
	Items      []tokenBody `json:"items"`
	NextCursor *string     `json:"next_cursor,omitempty"`
}

// requireTokenAdmin refuses every request but one from an admin token
// without app or environment limits. Token management is checked here
// rather than by the route's method, because listing tokens shows who can
// do what, which a read-only token has no business learning, and because a
// limited admin token could otherwise mint itself an unlimited one.
func requireTokenAdmin(c echo.Context) (auth.Principal, error) {
	if err := RequireScope(c, auth.ScopeAdmin); err != nil {
		return auth.Principal{}, err
	}
	p, _ := PrincipalFrom(c)
	if p.Limited() {
		return auth.Principal{}, echo.NewHTTPError(http.StatusForbidden,
			fmt.Sprintf("The token %q is limited to some apps or environments; managing tokens needs an admin token without limits.", p.Name))
	}
	return p, nil
}

// listTokens handles GET /api/v1/tokens: the live tokens in name order, a
// page at a time. Names are unique among live tokens, so the last name of a
// page is a stable cursor.
func (h *tokenHandlers) listTokens(c echo.Context) error {
	if _, err := requireTokenAdmin(c); err != nil {
		return err
	}
	after, limit, err := readTokenPage(c)
	if err != nil {
		return err
	}
	tokens, err := h.store.ListTokens(c.Request().Context())
	if err != nil {
		return fmt.Errorf("listing tokens: %w", err)
	}
	// The order is the server's own byte order rather than the database's
	// collation, so that the cursor comparison below agrees with it.
	slices.SortFunc(tokens, func(a, b store.Token) int { return strings.Compare(a.Name, b.Name) })
	if after != "" {
		i, _ := slices.BinarySearchFunc(tokens, after, func(t store.Token, name string) int { return strings.Compare(t.Name, name) })
		for i < len(tokens) && tokens[i].Name <= after {
			i++
		}
		tokens = tokens[i:]
	}
	list := tokenListBody{Items: make([]tokenBody, 0, min(len(tokens), limit))}
	if len(tokens) > limit {
		tokens = tokens[:limit]
		c := base64.RawURLEncoding.EncodeToString([]byte(tokens[len(tokens)-1].Name))
		list.NextCursor = &c
	}
	for _, t := range tokens {
		list.Items = append(list.Items, tokenBodyOf(t))
	}
	return c.JSON(http.StatusOK, list)
}

// readTokenPage reads the cursor and limit of the token list. The cursor
// is the base64 of the last name of the page before; token names are not
// slugs, so the apps' readPage does not fit.
func readTokenPage(c echo.Context) (after string, limit int, err error) {
	limit = defaultPageSize
	var errs []plan.FieldError
	if raw := c.QueryParam("limit"); raw != "" {
		n, convErr := strconv.Atoi(raw)
		if convErr != nil || n < 1 || n > maxPageSize {
			errs = append(errs, plan.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number between 1 and %d, got %q", maxPageSize, raw)})
		}
		limit = n
	}
	if raw := c.QueryParam("cursor"); raw != "" {
		name, decErr := base64.RawURLEncoding.DecodeString(raw)
		if decErr != nil || auth.CheckName(string(name)) != nil {
			errs = append(errs, plan.FieldError{Field: "cursor", Message: "is not a cursor this server handed out; pass next_cursor unchanged, or leave cursor out to start at the beginning"})
		}
		after = string(name)
	}
	if len(errs) > 0 {
		return "", 0, badRequest("the query parameters are invalid; errors names each.", errs...)
	}
	return after, limit, nil
}

// createToken handles POST /api/v1/tokens. The new token belongs to the
// same user as the token that makes it, and its secret is in the answer
// only: the store keeps a hash.
func (h *tokenHandlers) createToken(c echo.Context) error {
	creator, err := requireTokenAdmin(c)
	if err != nil {
		return err
	}
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	now := h.now()
	n := store.NewToken{UserID: creator.UserID}
	o.required("name")
	if name, ok := o.str("name"); ok {
		if err := auth.CheckName(name); err != nil {
			o.add("name", "%s", sentence(err))
		}
		n.Name = name
	}
	o.required("scopes")
	if names, ok := readStrings(o, "scopes"); ok {
		scopes, err := auth.ParseScopes(names)
		if err != nil {
			o.add("scopes", "%s", sentence(err))
		}
		n.Scopes = scopes
	}
	// Each limit is checked on its own, so that every bad entry is named
	// with its index rather than only the first.
	n.Apps, _ = readStrings(o, "apps")
	for i, app := range n.Apps {
		if err := auth.CheckLimits([]string{app}, nil); err != nil {
			o.add(fmt.Sprintf("apps[%d]", i), "%s", err)
		}
	}
	n.Environments, _ = readStrings(o, "environments")
	for i, env := range n.Environments {
		if err := auth.CheckLimits(nil, []string{env}); err != nil {
			o.add(fmt.Sprintf("environments[%d]", i), "%s", err)
		}
	}
	n.ExpiresAt = readExpiry(o, now)
	if err := o.finish("name", "scopes", "apps", "environments", "expires_in", "expires_at"); err != nil {
		return err
	}

	plaintext, prefix, hash, err := auth.Generate()
	if err != nil {
		return fmt.Errorf("generating a token: %w", err)
	}
	n.Prefix, n.Hash = prefix, hash
	tok, err := h.store.CreateToken(c.Request().Context(), n)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return conflict(nil, "a token named %q exists already; revoke it first or choose another name", n.Name)
	case err != nil:
		return fmt.Errorf("creating token %s: %w", n.Name, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, tokensRoute+"/"+strconv.FormatInt(tok.ID, 10))
	return c.JSON(http.StatusCreated, createdTokenBody{tokenBody: tokenBodyOf(tok), Token: plaintext})
}

// readExpiry reads expires_in (a duration from now) or expires_at (a
// moment), at most one of them, and returns when the token stops working,
// or nil for never.
func readExpiry(o *requestObject, now time.Time) *time.Time {
	in, hasIn := o.str("expires_in")
	at, hasAt := o.str("expires_at")
	if hasIn && hasAt {
		o.add("expires_in", "give expires_in or expires_at, not both")
		return nil
	}
	var expires time.Time
	switch {
	case hasIn:
		d, err := plan.ParseDuration(in)
		if err != nil || time.Duration(d) <= 0 || time.Duration(d) > maxTokenLifetime {
			o.add("expires_in", "must be a positive duration of at most 10 years such as \"90d\" or \"12h\", got %q", in)
			return nil
		}
		expires = now.Add(time.Duration(d))
	case hasAt:
		t, err := time.Parse(time.RFC3339, at)
		switch {
		case err != nil:
			o.add("expires_at", "must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\", got %q", at)
			return nil
		case !t.After(now):
			o.add("expires_at", "must be in the future, got %s", at)
			return nil
		case t.Sub(now) > maxTokenLifetime:
			o.add("expires_at", "must be at most 10 years ahead, got %s", at)
			return nil
		}
		expires = t
	default:
		return nil
	}
	expires = expires.UTC().Truncate(time.Microsecond)
	return &expires
}

// revokeToken handles DELETE /api/v1/tokens/{id}. A token that does not
// exist or is revoked already is 404, so a second revocation says that
// nothing changed.
func (h *tokenHandlers) revokeToken(c echo.Context) error {
	if _, err := requireTokenAdmin(c); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return badRequest("the token id in the path is invalid.",
			plan.FieldError{Field: "id", Message: fmt.Sprintf("must be a positive whole number, got %q", c.Param("id"))})
	}
	err = h.store.RevokeToken(c.Request().Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("there is no live token with id %d; it may be revoked already", id)
	case err != nil:
		return fmt.Errorf("revoking token %d: %w", id, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// readStrings reads a field that must be an array of strings, as str does
// for one string.
func readStrings(o *requestObject, name string) ([]string, bool) {
	return readValue[[]string](o, name, "an array of strings")
}

// sentence turns an error of the auth package into a field message, which
// continues after the field's name and so starts in lower case.
func sentence(err error) string {
	msg := err.Error()
	r, size := utf8.DecodeRuneInString(msg)
	return strings.ToLower(string(r)) + msg[size:]
}

// tokenBodyOf is the token as the API shows it. Limits are empty arrays
// rather than null, so clients need not tell the two apart.
func tokenBodyOf(t store.Token) tokenBody {
	if t.Scopes == nil {
		t.Scopes = []auth.Scope{}
	}
	return tokenBody{
		ID: t.ID, Name: t.Name, Prefix: t.Prefix,
		Scopes:       t.Scopes,
		Apps:         orNone(t.Apps),
		Environments: orNone(t.Environments),
		CreatedAt:    t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt,
	}
}

// orNone keeps a missing list from being written as null.
func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
