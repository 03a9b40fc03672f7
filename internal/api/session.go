package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// Members is what signing in and the pages read about people.
type Members interface {
	UserByUsername(ctx context.Context, username string) (store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	PasswordHash(ctx context.Context, userID int64) (string, error)
	RolesOf(ctx context.Context, userID int64) ([]store.RoleBinding, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// Session cookie names. Over TLS the cookie takes the __Host- prefix,
// which browsers accept only for Secure cookies on the whole host.
const (
	sessionCookie       = "flightdeck_session"
	secureSessionCookie = "__Host-flightdeck_session"
	csrfCookie          = "flightdeck_csrf"
	secureCSRFCookie    = "__Host-flightdeck_csrf"
	// sessionUserKey holds the signed-in user's id in the session.
	sessionUserKey = "user_id"
	memberKey      = "flightdeck.member"
)

// NewSessionManager returns the session manager of the pages: sessions
// live in the store (so every replica knows them) for at most 12 hours,
// and end after 2 hours without a request.
func NewSessionManager(st scs.Store, secure bool) *scs.SessionManager {
	sm := scs.New()
	sm.Store = st
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	sm.Cookie.Name = sessionCookie
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Path = "/"
	sm.Cookie.Persist = false
	if secure {
		sm.Cookie.Name = secureSessionCookie
		sm.Cookie.Secure = true
	}
	return sm
}

// isPageRequest reports whether the path belongs to the pages, which use
// sessions and form tokens, rather than to the API, the probes or the
// static files.
func isPageRequest(path string) bool {
	for _, prefix := range []string{"/api/", "/ofrep/", "/static/", "/healthz", "/readyz", "/metrics", "/ws/"} {
		if strings.HasPrefix(path, prefix) {
			return false
		}
	}
	return true
}

// csrfProtection checks the form token of every page request that changes
// something; browsers that send Sec-Fetch-Site are checked by it instead.
func csrfProtection(secure bool) echo.MiddlewareFunc {
	name := csrfCookie
	if secure {
		name = secureCSRFCookie
	}
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:        func(c echo.Context) bool { return !isPageRequest(c.Request().URL.Path) },
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     name,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   secure,
		CookieSameSite: http.SameSiteStrictMode,
		CookieMaxAge:   12 * 3600,
		ErrorHandler: func(err error, c echo.Context) error {
			return refusePage(c, http.StatusForbidden,
				"The form has expired or did not come from this Flightdeck. Reload the page and try again; nothing was changed.")
		},
	})
}

// loadMember puts the signed-in member, if any, into the request.
func loadMember(sm *scs.SessionManager, members Members) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !isPageRequest(c.Request().URL.Path) {
				return next(c)
			}
			id := sm.GetInt64(c.Request().Context(), sessionUserKey)
			if id != 0 {
				m, err := memberByID(c.Request().Context(), members, id)
				switch {
				case errors.Is(err, errNoMember):
					// A deleted or disabled user's session ends here.
					_ = sm.Destroy(c.Request().Context())
				case err != nil:
					return err
				default:
					c.Set(memberKey, &m)
				}
			}
			return next(c)
		}
	}
}

var errNoMember = errors.New("no such member")

// memberByID loads an enabled user with their roles.
func memberByID(ctx context.Context, members Members, id int64) (auth.Member, error) {
	u, err := members.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.DisabledAt != nil) {
		return auth.Member{}, errNoMember
	}
	if err != nil {
		return auth.Member{}, fmt.Errorf("loading the signed-in user: %w", err)
	}
	bindings, err := members.RolesOf(ctx, id)
	if err != nil {
		return auth.Member{}, fmt.Errorf("loading the roles of %s: %w", u.Username, err)
	}
	m := auth.Member{UserID: u.ID, Username: u.Username, DisplayName: u.DisplayName, IsAdmin: u.IsAdmin}
	for _, b := range bindings {
		m.Bindings = append(m.Bindings, auth.Binding{App: b.App, Environment: b.Environment, Role: auth.Role(b.Role)})
	}
	return m, nil
}

// memberFrom returns the signed-in member, or nil.
func memberFrom(c echo.Context) *auth.Member {
	m, _ := c.Get(memberKey).(*auth.Member)
	return m
}

// requireMember sends people who are not signed in to the sign-in page,
// and back to where they were going afterwards.
func requireMember(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// A path no page answers is a 404 for everyone, not a reason to
		// sign in: the pages' group matches every path only so that its
		// middleware runs.
		if memberFrom(c) != nil || c.Path() == "/*" || c.Path() == "" {
			return next(c)
		}
		target := "/login"
		if r := c.Request(); r.Method == http.MethodGet && r.URL.Path != "/" {
			target += "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		if c.Request().Header.Get("HX-Request") == "true" {
			c.Response().Header().Set("HX-Redirect", target)
			return c.NoContent(http.StatusUnauthorized)
		}
		if c.Request().Method != http.MethodGet {
			return refusePage(c, http.StatusUnauthorized, "You are not signed in (or your session has ended); sign in and try again. Nothing was changed.")
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
}

// pageFor returns the frame of a page for the request.
func pageFor(c echo.Context, title, nav string) templates.Page {
	token, _ := c.Get("csrf").(string)
	return templates.Page{Title: title, Member: memberFrom(c), CSRF: token, Nav: nav}
}

// refusePage answers a page request that cannot be done: htmx requests get
// the message as a fragment for the page's flash area, others a page.
func refusePage(c echo.Context, status int, message string) error {
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Retarget", "#flash")
		c.Response().Header().Set("HX-Reswap", "outerHTML")
		return render(c, status, templates.Flash(message, true))
	}
	p := pageFor(c, http.StatusText(status), "")
	return render(c, status, templates.Refusal(p, status, message))
}

// safeNext returns where to go after signing in: a path on this server, or
// the overview.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// auditFrom fills the request's origin into an audit event.
func auditFrom(c echo.Context, e store.AuditEvent) store.AuditEvent {
	e.RemoteAddr = c.RealIP()
	e.UserAgent = c.Request().UserAgent()
	if len(e.UserAgent) > 300 {
		e.UserAgent = e.UserAgent[:300]
	}
	return e
}

type loginHandlers struct {
	sessions *scs.SessionManager
	members  Members
}

// showLogin renders the sign-in page; a signed-in member goes on.
func (h *loginHandlers) showLogin(c echo.Context) error {
	if memberFrom(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	return render(c, http.StatusOK, templates.Login(pageFor(c, "Sign in", ""), templates.LoginForm{Next: c.QueryParam("next")}))
}

// login checks the username and password and starts a session.
func (h *loginHandlers) login(c echo.Context) error {
	ctx := c.Request().Context()
	form := templates.LoginForm{Username: strings.TrimSpace(c.FormValue("username")), Next: c.FormValue("next")}
	password := c.FormValue("password")
	fail := func(message string) error {
		_, _ = h.members.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
			Actor: "anonymous", Action: "user.sign_in_failed", Detail: "as " + truncate(form.Username, 64),
		}))
		form.Error = message
		return render(c, http.StatusUnauthorized, templates.Login(pageFor(c, "Sign in", ""), form))
	}
	if form.Username == "" || password == "" {
		form.Error = "Enter both a username and a password."
		return render(c, http.StatusBadRequest, templates.Login(pageFor(c, "Sign in", ""), form))
	}
	wrong := "The username or password is not right."
	u, err := h.members.UserByUsername(ctx, form.Username)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the time a real check takes, so that timing does not
		// tell which usernames exist.
		_, _ = auth.PasswordMatches(password, dummyHash())
		return fail(wrong)
	}
	if err != nil {
		return fmt.Errorf("looking up %q: %w", form.Username, err)
	}
	hash, err := h.members.PasswordHash(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("reading the password of %q: %w", form.Username, err)
	}
	ok, err := auth.PasswordMatches(password, hash)
	if err != nil {
		return err
	}
	if !ok {
		return fail(wrong)
	}
	if u.DisabledAt != nil {
		return fail("This account is disabled; ask an administrator.")
	}
	// A new token at sign-in, so a session id planted before cannot be used.
	if err := h.sessions.RenewToken(ctx); err != nil {
		return fmt.Errorf("starting a session: %w", err)
	}
	h.sessions.Put(ctx, sessionUserKey, u.ID)
	_, _ = h.members.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: u.Username, Action: "user.signed_in"}))
	return c.Redirect(http.StatusSeeOther, safeNext(form.Next))
}

// logout ends the session.
func (h *loginHandlers) logout(c echo.Context) error {
	ctx := c.Request().Context()
	if m := memberFrom(c); m != nil {
		_, _ = h.members.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Username, Action: "user.signed_out"}))
	}
	if err := h.sessions.Destroy(ctx); err != nil {
		return fmt.Errorf("ending the session: %w", err)
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

// dummyHash is checked against when the username is unknown.
var dummyHash = sync.OnceValue(func() string {
	h, err := auth.HashPassword("flightdeck-timing-equaliser")
	if err != nil {
		panic(err)
	}
	return h
})

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
