package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// usersServer serves the pages with an administrator, a deployer and the
// app checkout with a production environment.
func usersServer(t *testing.T) *pageServer {
	t.Helper()
	s := newPageServer(t)
	ctx := context.Background()
	app, err := s.Store.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	_, err = s.Store.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production", Tier: "production"})
	require.NoError(t, err)
	s.addUser("ada", true)
	s.addUser("dora", false, "checkout/production=deployer")
	return s
}

// auditActions lists the audit log's actions with their details.
func auditActions(t *testing.T, s *pageServer) []string {
	t.Helper()
	entries, err := s.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.Kind == "audit" && e.Action != "user.signed_in" {
			out = append(out, e.Actor+" "+e.Action+" "+e.Detail)
		}
	}
	return out
}

func usernames(t *testing.T, s *pageServer) []string {
	t.Helper()
	users, err := s.Store.ListUsers(context.Background())
	require.NoError(t, err)
	var out []string
	for _, u := range users {
		out = append(out, u.Username)
	}
	return out
}

func TestUsersPageIsForAdministrators(t *testing.T) {
	t.Parallel()
	s := usersServer(t)
	b := s.signIn("dora")

	res := b.get("/users")
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Contains(t, res.text("refusal-message"), "needs an administrator, and dora is not one")
	require.Nil(t, b.get("/").byTestID("nav-users"), "the navigation leaves the page out")

	forged := b.post("/users", url.Values{"username": {"mallory"}, "password": {"a long enough password"}, "admin": {"true"}})
	require.Equal(t, http.StatusForbidden, forged.Code)
	require.Contains(t, forged.text("refusal-message"), "Nothing was changed.")
	forged = b.post("/users/roles", url.Values{"user_id": {"2"}, "app": {"*"}, "environment": {"*"}, "role": {"admin"}})
	require.Equal(t, http.StatusForbidden, forged.Code)
	require.Equal(t, []string{"ada", "dora"}, usernames(t, s))
	roles, err := s.Store.ListRoles(context.Background())
	require.NoError(t, err)
	require.Len(t, roles, 1)
	forged = b.post(fmt.Sprintf("/users/roles/%d/revoke", roles[0].ID), nil)
	require.Equal(t, http.StatusForbidden, forged.Code)
	roles, err = s.Store.ListRoles(context.Background())
	require.NoError(t, err)
	require.Len(t, roles, 1)
	require.Empty(t, auditActions(t, s))
}

func TestAdministratorsCreateUsers(t *testing.T) {
	t.Parallel()
	s := usersServer(t)
	b := s.signIn("ada")

	res := b.get("/users")
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.text("user-ada"), "administrator")
	require.Contains(t, res.text("user-dora"), "deployer")
	require.Contains(t, res.text("user-dora"), "on checkout/production")

	done := b.post("/users", url.Values{"username": {"sam"}, "display_name": {"Sam Reyes"}, "password": {testPassword}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	require.Equal(t, "/users", done.Location)
	res = b.get("/users")
	require.Contains(t, res.text("flash"), "User sam created")
	require.Contains(t, res.text("user-sam"), "Sam Reyes")
	require.Contains(t, res.text("user-sam"), "viewer everywhere")
	require.Contains(t, auditActions(t, s), "ada user.created sam (Sam Reyes)")
	// The password was kept, hashed: sam can sign in with it.
	require.Equal(t, "Sam Reyes", s.signIn("sam").get("/").text("signed-in-as"))
	u, err := s.Store.UserByUsername(context.Background(), "sam")
	require.NoError(t, err)
	require.False(t, u.IsAdmin)
	hash, err := s.Store.PasswordHash(context.Background(), u.ID)
	require.NoError(t, err)
	require.NotContains(t, hash, testPassword)

	for _, tc := range []struct {
		name  string
		form  url.Values
		code  int
		field string
		says  string
	}{
		{"short password", url.Values{"username": {"lee"}, "password": {"short pass"}}, http.StatusBadRequest, "password", "at least 12 characters (this one has 10)"},
		{"taken username", url.Values{"username": {"sam"}, "password": {testPassword}}, http.StatusConflict, "username", "There is a user sam already"},
		{"username breaking the rule", url.Values{"username": {"Lee Smith"}, "password": {testPassword}}, http.StatusBadRequest, "username", `"Lee Smith" is not a username`},
		{"no username", url.Values{"password": {testPassword}}, http.StatusBadRequest, "username", "Enter a username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("display_name", "Lee")
			tc.form.Set("admin", "true")
			res := b.post("/users", tc.form)
			require.Equal(t, tc.code, res.Code)
			require.Contains(t, res.text("create-error-"+tc.field), tc.says)
			require.Equal(t, tc.form.Get("username"), attr(res.byTestID("create-username"), "value"), "the form keeps what was typed")
			require.Equal(t, "Lee", attr(res.byTestID("create-display-name"), "value"))
			require.True(t, hasAttr(res.byTestID("create-admin"), "checked"))
			require.Empty(t, attr(res.byTestID("create-password"), "value"), "a password is never sent back")
			require.Contains(t, res.text("flash"), "Nothing was changed")
		})
	}
	require.Equal(t, []string{"ada", "dora", "sam"}, usernames(t, s), "refused forms create nobody")
}

func TestAdministratorsGrantAndRevokeRoles(t *testing.T) {
	t.Parallel()
	s := usersServer(t)
	ctx := context.Background()
	sam := s.addUser("sam", false)
	b := s.signIn("ada")
	id := fmt.Sprint(sam.ID)

	done := b.post("/users/roles", url.Values{"user_id": {id}, "app": {"checkout"}, "environment": {"production"}, "role": {"approver"}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	roles, err := s.Store.RolesOf(ctx, sam.ID)
	require.NoError(t, err)
	require.Len(t, roles, 1)
	require.Equal(t, store.RoleBinding{ID: roles[0].ID, UserID: sam.ID, App: "checkout", Environment: "production", Role: "approver", CreatedAt: roles[0].CreatedAt}, roles[0])
	res := b.get("/users")
	require.Contains(t, res.text("flash"), "Granted approver on checkout/production to sam")
	chip := fmt.Sprintf("role-%d", roles[0].ID)
	require.Contains(t, res.text(chip), "approver")
	require.Contains(t, res.text(chip), "on checkout/production")

	// Granting another role on the same place replaces it.
	done = b.post("/users/roles", url.Values{"user_id": {id}, "app": {"checkout"}, "environment": {"production"}, "role": {"deployer"}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	done = b.post("/users/roles", url.Values{"user_id": {id}, "app": {"*"}, "environment": {"staging"}, "role": {"viewer"}})
	require.Equal(t, http.StatusBadRequest, done.Code, "no app has a staging environment")
	require.Contains(t, done.text("grant-error-environment"), `No app has an environment "staging"`)
	done = b.post("/users/roles", url.Values{"user_id": {id}, "app": {"*"}, "environment": {"*"}, "role": {"viewer"}})
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	roles, err = s.Store.RolesOf(ctx, sam.ID)
	require.NoError(t, err)
	require.Len(t, roles, 2)

	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
		says  string
	}{
		{"unknown app", url.Values{"user_id": {id}, "app": {"billing"}, "environment": {"*"}, "role": {"viewer"}}, "app", `There is no app "billing"`},
		{"unknown environment", url.Values{"user_id": {id}, "app": {"checkout"}, "environment": {"moon"}, "role": {"viewer"}}, "environment", `App checkout has no environment "moon"`},
		{"unknown role", url.Values{"user_id": {id}, "app": {"checkout"}, "environment": {"*"}, "role": {"owner"}}, "role", `"owner" is not a role`},
		{"unknown user", url.Values{"user_id": {"9999"}, "app": {"checkout"}, "environment": {"*"}, "role": {"viewer"}}, "user_id", "There is no user 9999"},
		{"no app", url.Values{"user_id": {id}, "environment": {"*"}, "role": {"viewer"}}, "app", "Enter an app slug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := b.post("/users/roles", tc.form)
			require.Equal(t, http.StatusBadRequest, res.Code)
			require.Contains(t, res.text("grant-error-"+tc.field), tc.says)
			require.Equal(t, tc.form.Get("app"), attr(res.byTestID("grant-app"), "value"), "the form keeps what was typed")
		})
	}
	after, err := s.Store.RolesOf(ctx, sam.ID)
	require.NoError(t, err)
	require.ElementsMatch(t, roles, after, "refused grants change nothing")

	var binding store.RoleBinding
	for _, r := range after {
		if r.App == "checkout" {
			binding = r
		}
	}
	require.Equal(t, "deployer", binding.Role)
	res = b.get("/users")
	require.Contains(t, attr(res.byTestID(fmt.Sprintf("revoke-%d", binding.ID)).Parent, "data-confirm"), "Revoke sam's deployer role on checkout/production?")
	done = b.post(fmt.Sprintf("/users/roles/%d/revoke", binding.ID), nil)
	require.Equal(t, http.StatusSeeOther, done.Code, done.Body)
	after, err = s.Store.RolesOf(ctx, sam.ID)
	require.NoError(t, err)
	require.Len(t, after, 1)
	require.Equal(t, "*", after[0].App)
	gone := b.post(fmt.Sprintf("/users/roles/%d/revoke", binding.ID), nil)
	require.Equal(t, http.StatusNotFound, gone.Code)
	require.Contains(t, gone.text("refusal-message"), "revoked already")

	require.Equal(t, []string{
		"ada user.role_revoked deployer on checkout/production from sam",
		"ada user.role_granted viewer on */* to sam",
		"ada user.role_granted deployer on checkout/production to sam (was approver)",
		"ada user.role_granted approver on checkout/production to sam",
	}, auditActions(t, s))
}

func TestAdministratorsResetPasswordsAndDisableUsers(t *testing.T) {
	t.Parallel()
	s := usersServer(t)
	ada := s.signIn("ada")
	dora := s.signIn("dora")
	doraUser, err := s.Store.UserByUsername(context.Background(), "dora")
	require.NoError(t, err)
	adaUser, err := s.Store.UserByUsername(context.Background(), "ada")
	require.NoError(t, err)

	res := ada.post(fmt.Sprintf("/users/%d/password", doraUser.ID), url.Values{"password": {"short"}})
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Contains(t, res.text("refusal-message"), "at least 12 characters")
	require.Equal(t, http.StatusSeeOther, s.anonymous().post("/login", url.Values{"username": {"dora"}, "password": {testPassword}}).Code,
		"a refused new password leaves the old one working")

	forged := dora.post(fmt.Sprintf("/users/%d/password", adaUser.ID), url.Values{"password": {"taken over by dora"}})
	require.Equal(t, http.StatusForbidden, forged.Code, "only administrators set passwords")

	res = ada.post(fmt.Sprintf("/users/%d/password", doraUser.ID), url.Values{"password": {"a brand new password"}})
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, http.StatusUnauthorized, s.anonymous().post("/login", url.Values{"username": {"dora"}, "password": {testPassword}}).Code)
	require.Equal(t, http.StatusSeeOther, s.anonymous().post("/login", url.Values{"username": {"dora"}, "password": {"a brand new password"}}).Code)

	res = ada.post(fmt.Sprintf("/users/%d/disable", adaUser.ID), nil)
	require.Equal(t, http.StatusConflict, res.Code, "an administrator cannot lock themselves out")

	require.Equal(t, http.StatusOK, dora.get("/").Code)
	res = ada.post(fmt.Sprintf("/users/%d/disable", doraUser.ID), nil)
	require.Equal(t, http.StatusSeeOther, res.Code)
	require.Equal(t, http.StatusSeeOther, dora.get("/").Code, "a disabled user's session ends at the next request")
	login := s.anonymous().post("/login", url.Values{"username": {"dora"}, "password": {"a brand new password"}})
	require.Equal(t, http.StatusUnauthorized, login.Code)
	require.Contains(t, login.text("login-error"), "disabled")
	require.NotNil(t, ada.get("/users").byTestID("enable-dora"))

	require.Equal(t, http.StatusSeeOther, ada.post(fmt.Sprintf("/users/%d/enable", doraUser.ID), nil).Code)
	require.Equal(t, http.StatusSeeOther, s.anonymous().post("/login", url.Values{"username": {"dora"}, "password": {"a brand new password"}}).Code)

	require.Equal(t, http.StatusNotFound, ada.post("/users/999999/password", url.Values{"password": {"a brand new password"}}).Code)
	require.Subset(t, auditActions(t, s), []string{"ada user.password_set dora", "ada user.disabled dora", "ada user.enabled dora"})
}

func TestAdminLinksALocalUserToSingleSignOn(t *testing.T) {
	t.Parallel()
	s := newPageServer(t, func(cfg *api.Config) {
		cfg.OIDC = &api.OIDCConfig{Issuer: "https://sso.example.test/realms/platform", ClientID: "flightdeck", ClientSecret: "secret",
			RedirectURL: "https://deploy.example.test/login/oidc/callback", Name: "Keycloak"}
	})
	s.addUser("root", true)
	s.addUser("rita", false)
	ctx := context.Background()
	rita, err := s.Store.UserByUsername(ctx, "rita")
	require.NoError(t, err)

	s.addUser("vic", false)
	refused := s.signIn("vic").post(fmt.Sprintf("/users/%d/sso", rita.ID), url.Values{"subject": {"f2c1-rita"}})
	require.Equal(t, http.StatusForbidden, refused.Code)

	root := s.signIn("root")
	page := root.get("/users")
	require.NotNil(t, page.byTestID("sso-subject-rita"))
	require.Equal(t, http.StatusBadRequest, root.post(fmt.Sprintf("/users/%d/sso", rita.ID), url.Values{"subject": {" "}}).Code)
	require.Equal(t, http.StatusSeeOther, root.post(fmt.Sprintf("/users/%d/sso", rita.ID), url.Values{"subject": {"f2c1-rita"}}).Code)

	res := s.anonymous().post("/login", url.Values{"username": {"rita"}, "password": {testPassword}})
	require.NotEqual(t, http.StatusSeeOther, res.Code, "a linked user signs in only through the provider")
	ids, err := s.Store.IdentitiesOf(ctx, rita.ID)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	require.Equal(t, "f2c1-rita", ids[0].Subject)

	s.addUser("sam", false)
	sam, err := s.Store.UserByUsername(ctx, "sam")
	require.NoError(t, err)
	again := root.post(fmt.Sprintf("/users/%d/sso", sam.ID), url.Values{"subject": {"f2c1-rita"}})
	require.Equal(t, http.StatusConflict, again.Code, "a subject links one user")
}
