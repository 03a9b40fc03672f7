package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// UserPages is what the users page reads and changes.
type UserPages interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	ListRoles(ctx context.Context) ([]store.RoleBinding, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	RolesOf(ctx context.Context, userID int64) ([]store.RoleBinding, error)
	CreateUser(ctx context.Context, u store.NewUser) (store.User, error)
	SetRole(ctx context.Context, b store.RoleBinding) (store.RoleBinding, error)
	DeleteRole(ctx context.Context, id int64) error
	SetPasswordHash(ctx context.Context, userID int64, hash string) error
	SetUserDisabled(ctx context.Context, id int64, disabled bool) (store.User, error)
	App(ctx context.Context, slug string) (store.App, error)
	Environment(ctx context.Context, appID int64, name string) (store.Environment, error)
	ListEnvironmentNames(ctx context.Context) ([]store.EnvironmentName, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
	LinkIdentity(ctx context.Context, userID int64, issuer, subject string) (store.UserIdentity, error)
}

// usernamePattern is the database's rule for usernames.
var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// maxDisplayNameLen bounds a display name, which pages show in full.
const maxDisplayNameLen = 200

type userHandlers struct {
	store    UserPages
	sessions *scs.SessionManager
	// ssoIssuer, when single sign-on is on, is the provider local users
	// may be linked to; ssoName is what people call it.
	ssoIssuer, ssoName string
}

func registerUserPages(g *echo.Group, cfg Config) {
	h := &userHandlers{store: cfg.Pages, sessions: cfg.Sessions}
	if cfg.OIDC != nil {
		h.ssoIssuer, h.ssoName = cfg.OIDC.Issuer, cfg.OIDC.Name
		g.POST("/users/:id/sso", h.linkSSO)
	}
	g.GET("/users", h.show)
	g.POST("/users", h.create)
	g.POST("/users/roles", h.grant)
	g.POST("/users/roles/:id/revoke", h.revoke)
	g.POST("/users/:id/password", h.setPassword)
	g.POST("/users/:id/disable", h.setDisabled(true))
	g.POST("/users/:id/enable", h.setDisabled(false))
}

// targetUser reads the user a per-user form is about; a missing one is
// answered with a refusal and nil.
func (h *userHandlers) targetUser(c echo.Context) (*store.User, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil {
		u, err := h.store.UserByID(c.Request().Context(), id)
		if err == nil {
			return &u, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("reading user %d: %w", id, err)
		}
	}
	return nil, refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no user %q. Nothing was changed.", truncate(c.Param("id"), 40)))
}

// setPassword gives a user a new password, for someone who forgot theirs
// or never had one.
func (h *userHandlers) setPassword(c echo.Context) error {
	m, err := h.admin(c, "Setting passwords")
	if m == nil {
		return err
	}
	u, err := h.targetUser(c)
	if u == nil {
		return err
	}
	password := c.FormValue("password")
	if err := auth.CheckPasswordRules(password); err != nil {
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("The password of %s was not changed: %s.", u.Username, err))
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return fmt.Errorf("hashing the password of %s: %w", u.Username, err)
	}
	ctx := c.Request().Context()
	if err := h.store.SetPasswordHash(ctx, u.ID, hash); errors.Is(err, store.ErrInvalid) {
		return refusePage(c, http.StatusConflict, u.Username+" signs in through single sign-on and has no password. Nothing was changed.")
	} else if err != nil {
		return fmt.Errorf("setting the password of %s: %w", u.Username, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "user.password_set", Detail: u.Username})); err != nil {
		return fmt.Errorf("recording the new password of %s: %w", u.Username, err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("New password set for %s.", u.Username))
	return c.Redirect(http.StatusSeeOther, "/users")
}

// setDisabled disables a user, whose sessions end at their next request
// and whose API tokens stop working, or enables them again.
func (h *userHandlers) setDisabled(disabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		doing := "Enabling users"
		if disabled {
			doing = "Disabling users"
		}
		m, err := h.admin(c, doing)
		if m == nil {
			return err
		}
		u, err := h.targetUser(c)
		if u == nil {
			return err
		}
		if disabled && u.ID == m.UserID {
			return refusePage(c, http.StatusConflict, "You cannot disable yourself: ask another administrator. Nothing was changed.")
		}
		ctx := c.Request().Context()
		if _, err := h.store.SetUserDisabled(ctx, u.ID, disabled); err != nil {
			return fmt.Errorf("changing user %s: %w", u.Username, err)
		}
		action, notice := "user.enabled", fmt.Sprintf("%s is enabled again.", u.Username)
		if disabled {
			action, notice = "user.disabled", fmt.Sprintf("%s is disabled: their sessions end and their API tokens stop working.", u.Username)
		}
		if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: action, Detail: u.Username})); err != nil {
			return fmt.Errorf("recording the change of %s: %w", u.Username, err)
		}
		keepNotice(h.sessions, c, notice)
		return c.Redirect(http.StatusSeeOther, "/users")
	}
}

// admin returns the member when they are an administrator, and otherwise
// answers with a refusal and returns nil.
func (h *userHandlers) admin(c echo.Context, doing string) (*auth.Member, error) {
	m := memberFrom(c)
	if m.IsAdmin {
		return m, nil
	}
	msg := fmt.Sprintf("%s needs an administrator, and %s is not one. Nothing was changed.", doing, m.Username)
	if c.Request().Method == http.MethodGet {
		msg = fmt.Sprintf("%s needs an administrator, and %s is not one; ask one to grant you what you need.", doing, m.Username)
	}
	return nil, refusePage(c, http.StatusForbidden, msg)
}

// show renders the users page.
func (h *userHandlers) show(c echo.Context) error {
	m, err := h.admin(c, "Managing users")
	if m == nil {
		return err
	}
	return h.render(c, http.StatusOK, templates.UserForm{}, templates.GrantForm{Role: string(auth.RoleViewer)}, takeNotice(h.sessions, c))
}

// render shows the page with the forms as given.
func (h *userHandlers) render(c echo.Context, status int, create templates.UserForm, grant templates.GrantForm, notice string) error {
	ctx := c.Request().Context()
	users, err := h.store.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	roles, err := h.store.ListRoles(ctx)
	if err != nil {
		return fmt.Errorf("listing roles: %w", err)
	}
	names, err := h.store.ListEnvironmentNames(ctx)
	if err != nil {
		return fmt.Errorf("listing environments: %w", err)
	}
	v := templates.UsersView{Create: create, Grant: grant, SSO: h.ssoIssuer != "", SSOName: cmp.Or(h.ssoName, "single sign-on")}
	byUser := map[int64][]store.RoleBinding{}
	for _, b := range roles {
		byUser[b.UserID] = append(byUser[b.UserID], b)
	}
	for _, u := range users {
		v.Users = append(v.Users, templates.UserRow{User: u, Roles: byUser[u.ID]})
	}
	for _, n := range names {
		if !slices.Contains(v.Apps, n.AppSlug) {
			v.Apps = append(v.Apps, n.AppSlug)
		}
		if !slices.Contains(v.Environments, n.Environment) {
			v.Environments = append(v.Environments, n.Environment)
		}
	}
	slices.Sort(v.Environments)
	for _, r := range auth.Roles {
		v.Roles = append(v.Roles, string(r))
	}
	p := pageFor(c, "Users", "users")
	if notice != "" {
		p.Flash = notice
	} else if status >= 400 {
		p.Flash, p.FlashError = "Nothing was changed: the form below says what to fix.", true
	}
	return render(c, status, templates.Users(p, v))
}

// create makes a new user from the create form.
func (h *userHandlers) create(c echo.Context) error {
	m, err := h.admin(c, "Creating users")
	if m == nil {
		return err
	}
	ctx := c.Request().Context()
	form := templates.UserForm{
		Username:    strings.TrimSpace(c.FormValue("username")),
		DisplayName: strings.TrimSpace(c.FormValue("display_name")),
		Admin:       formBool(c.FormValue("admin")),
		Errors:      map[string]string{},
	}
	password := c.FormValue("password")
	switch {
	case form.Username == "":
		form.Errors["username"] = "Enter a username."
	case !usernamePattern.MatchString(form.Username):
		form.Errors["username"] = fmt.Sprintf("%q is not a username: use 1 to 64 lowercase letters, digits and . _ @ -, starting with a letter or digit.", form.Username)
	}
	if utf8.RuneCountInString(form.DisplayName) > maxDisplayNameLen {
		form.Errors["display_name"] = fmt.Sprintf("A display name may have at most %d characters.", maxDisplayNameLen)
	}
	if err := auth.CheckPasswordRules(password); err != nil {
		form.Errors["password"] = upperFirst(err.Error()) + "."
	}
	if len(form.Errors) > 0 {
		return h.render(c, http.StatusBadRequest, form, templates.GrantForm{Role: string(auth.RoleViewer)}, "")
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return fmt.Errorf("hashing the password of %s: %w", form.Username, err)
	}
	u, err := h.store.CreateUser(ctx, store.NewUser{Username: form.Username, DisplayName: form.DisplayName, PasswordHash: hash, IsAdmin: form.Admin})
	if errors.Is(err, store.ErrAlreadyExists) {
		form.Errors["username"] = fmt.Sprintf("There is a user %s already; choose another username.", form.Username)
		return h.render(c, http.StatusConflict, form, templates.GrantForm{Role: string(auth.RoleViewer)}, "")
	}
	if err != nil {
		return fmt.Errorf("creating user %s: %w", form.Username, err)
	}
	detail := u.Username
	if u.DisplayName != "" {
		detail += " (" + u.DisplayName + ")"
	}
	if u.IsAdmin {
		detail += ", administrator"
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "user.created", Detail: detail})); err != nil {
		return fmt.Errorf("recording the creation of %s: %w", u.Username, err)
	}
	if u.IsAdmin {
		keepNotice(h.sessions, c, fmt.Sprintf("User %s created as an administrator.", u.Username))
	} else {
		keepNotice(h.sessions, c, fmt.Sprintf("User %s created. Grant them a role below; until then they are a viewer everywhere.", u.Username))
	}
	return c.Redirect(http.StatusSeeOther, "/users")
}

// grant gives a user a role on an app's environment (or every one),
// replacing the role they had there.
func (h *userHandlers) grant(c echo.Context) error {
	m, err := h.admin(c, "Granting roles")
	if m == nil {
		return err
	}
	ctx := c.Request().Context()
	form := templates.GrantForm{
		UserID:      strings.TrimSpace(c.FormValue("user_id")),
		App:         strings.TrimSpace(c.FormValue("app")),
		Environment: strings.TrimSpace(c.FormValue("environment")),
		Role:        strings.TrimSpace(c.FormValue("role")),
		Errors:      map[string]string{},
	}
	var user store.User
	id, err := strconv.ParseInt(form.UserID, 10, 64)
	switch {
	case form.UserID == "":
		form.Errors["user_id"] = "Choose a user from the list."
	case err != nil || id < 1:
		form.Errors["user_id"] = fmt.Sprintf("%q is not a user; choose one from the list.", form.UserID)
	default:
		user, err = h.store.UserByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			form.Errors["user_id"] = fmt.Sprintf("There is no user %d; choose one from the list.", id)
		} else if err != nil {
			return fmt.Errorf("reading user %d: %w", id, err)
		}
	}
	role, err := auth.ParseRole(form.Role)
	if err != nil {
		form.Errors["role"] = fmt.Sprintf("%q is not a role; the roles are viewer, deployer, approver and admin.", form.Role)
	}
	if err := h.checkScope(ctx, form.App, form.Environment, form.Errors); err != nil {
		return err
	}
	if len(form.Errors) > 0 {
		return h.render(c, http.StatusBadRequest, templates.UserForm{}, form, "")
	}
	roles, err := h.store.RolesOf(ctx, user.ID)
	if err != nil {
		return fmt.Errorf("reading the roles of %s: %w", user.Username, err)
	}
	scope := usersScopeText(form.App, form.Environment)
	detail := fmt.Sprintf("%s on %s to %s", role, scope, user.Username)
	for _, b := range roles {
		if b.App == form.App && b.Environment == form.Environment {
			if b.Role == string(role) {
				keepNotice(h.sessions, c, fmt.Sprintf("%s was already %s on %s.", user.Username, role, scope))
				return c.Redirect(http.StatusSeeOther, "/users")
			}
			detail += fmt.Sprintf(" (was %s)", b.Role)
		}
	}
	if _, err := h.store.SetRole(ctx, store.RoleBinding{UserID: user.ID, App: form.App, Environment: form.Environment, Role: string(role)}); err != nil {
		return fmt.Errorf("granting %s: %w", detail, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
		Actor: m.Actor(), Action: "user.role_granted", App: form.App, Environment: form.Environment, Detail: detail,
	})); err != nil {
		return fmt.Errorf("recording the grant of %s: %w", detail, err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Granted %s.", detail))
	return c.Redirect(http.StatusSeeOther, "/users")
}

// checkScope records in errs what is wrong with the app and environment
// of a grant: each is "*" or names one that exists, so a typo does not
// grant a role on nothing.
func (h *userHandlers) checkScope(ctx context.Context, app, env string, errs map[string]string) error {
	if app == "" {
		errs["app"] = `Enter an app slug, or * for every app.`
	} else if app != auth.Wildcard {
		_, err := h.store.App(ctx, app)
		switch {
		case !slugPattern.MatchString(app), errors.Is(err, store.ErrNotFound):
			errs["app"] = fmt.Sprintf("There is no app %q; enter an app's slug, or * for every app.", app)
		case err != nil:
			return fmt.Errorf("reading app %s: %w", app, err)
		}
	}
	switch {
	case env == "":
		errs["environment"] = `Enter an environment name, or * for every environment.`
		return nil
	case env == auth.Wildcard || errs["app"] != "":
		return nil
	case !slugPattern.MatchString(env):
		errs["environment"] = fmt.Sprintf("%q is not an environment name: %s.", env, slugRule)
		return nil
	}
	names, err := h.store.ListEnvironmentNames(ctx)
	if err != nil {
		return fmt.Errorf("listing environments: %w", err)
	}
	found := slices.ContainsFunc(names, func(n store.EnvironmentName) bool {
		return n.Environment == env && (app == auth.Wildcard || n.AppSlug == app)
	})
	if !found && app == auth.Wildcard {
		errs["environment"] = fmt.Sprintf("No app has an environment %q; enter one that exists, or * for every environment.", env)
	} else if !found {
		errs["environment"] = fmt.Sprintf("App %s has no environment %q; enter one of its environments, or * for every one.", app, env)
	}
	return nil
}

// revoke removes a role binding.
func (h *userHandlers) revoke(c echo.Context) error {
	m, err := h.admin(c, "Revoking roles")
	if m == nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no role grant %q. Nothing was changed.", c.Param("id")))
	}
	roles, err := h.store.ListRoles(ctx)
	if err != nil {
		return fmt.Errorf("listing roles: %w", err)
	}
	i := slices.IndexFunc(roles, func(b store.RoleBinding) bool { return b.ID == id })
	if i < 0 {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no role grant %d; it may have been revoked already. Nothing was changed.", id))
	}
	b := roles[i]
	user, err := h.store.UserByID(ctx, b.UserID)
	if err != nil {
		return fmt.Errorf("reading user %d: %w", b.UserID, err)
	}
	if err := h.store.DeleteRole(ctx, id); errors.Is(err, store.ErrNotFound) {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no role grant %d; it may have been revoked already. Nothing was changed.", id))
	} else if err != nil {
		return fmt.Errorf("revoking role grant %d: %w", id, err)
	}
	detail := fmt.Sprintf("%s on %s from %s", b.Role, usersScopeText(b.App, b.Environment), user.Username)
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
		Actor: m.Actor(), Action: "user.role_revoked", App: b.App, Environment: b.Environment, Detail: detail,
	})); err != nil {
		return fmt.Errorf("recording the revocation of %s: %w", detail, err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Revoked %s.", detail))
	return c.Redirect(http.StatusSeeOther, "/users")
}

// usersScopeText is where a role applies, for messages and the audit log.
func usersScopeText(app, env string) string {
	return app + "/" + env
}

// upperFirst capitalises the first letter of a message.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

// linkSSO links a local user to their identity at the single sign-on
// provider (its subject): from their next sign-in there, the provider's
// claims decide their roles, and their password is removed.
func (h *userHandlers) linkSSO(c echo.Context) error {
	m, err := h.admin(c, "Linking users to single sign-on")
	if m == nil {
		return err
	}
	u, err := h.targetUser(c)
	if u == nil {
		return err
	}
	subject := strings.TrimSpace(c.FormValue("subject"))
	if subject == "" || len(subject) > 255 {
		return refusePage(c, http.StatusBadRequest, "Give the user's subject at the provider (the \"sub\" of their ID token, at most 255 characters). Nothing was changed.")
	}
	ctx := c.Request().Context()
	_, err = h.store.LinkIdentity(ctx, u.ID, h.ssoIssuer, subject)
	if errors.Is(err, store.ErrAlreadyExists) {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("The subject %q is linked to a user already. Nothing was changed.", subject))
	}
	if err != nil {
		return fmt.Errorf("linking %s to single sign-on: %w", u.Username, err)
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{Actor: m.Actor(), Action: "user.sso_linked",
		Detail: fmt.Sprintf("%s linked to %s subject %s; password removed", u.Username, h.ssoIssuer, subject)})); err != nil {
		return fmt.Errorf("recording the link of %s: %w", u.Username, err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("%s now signs in through single sign-on; their password was removed.", u.Username))
	return c.Redirect(http.StatusSeeOther, "/users")
}
