package templates

import (
	"fmt"

	"github.com/a-h/templ"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// UsersView is what the users page shows: every user with their roles,
// and the forms to create a user and to grant a role.
type UsersView struct {
	Users  []UserRow
	Create UserForm
	Grant  GrantForm
	// Apps and Environments suggest values for the grant form.
	Apps         []string
	Environments []string
	Roles        []string
	// SSO is set when single sign-on is configured, so local users can be
	// linked to it; SSOName names the provider.
	SSO     bool
	SSOName string
}

// UserRow is one user with their role bindings.
type UserRow struct {
	User  store.User
	Roles []store.RoleBinding
}

// UserForm is the form creating a user, as typed (never the password),
// with the problems found by field.
type UserForm struct {
	Username    string
	DisplayName string
	Admin       bool
	Errors      map[string]string
}

// GrantForm is the form granting a role, as typed, with the problems
// found by field.
type GrantForm struct {
	UserID      string
	App         string
	Environment string
	Role        string
	Errors      map[string]string
}

// usersScope names where a binding applies: "checkout/production",
// "every app/production", "checkout/every environment".
func usersScope(b store.RoleBinding) string {
	app, env := b.App, b.Environment
	if app == "*" {
		app = "every app"
	}
	if env == "*" {
		env = "every environment"
	}
	return app + "/" + env
}

// usersRevokeConfirm is the question asked before revoking a role.
func usersRevokeConfirm(u store.User, b store.RoleBinding) string {
	return fmt.Sprintf("Revoke %s's %s role on %s?", u.Username, b.Role, usersScope(b))
}

// usersRevokePath is where revoking a binding is sent.
func usersRevokePath(b store.RoleBinding) templ.SafeURL {
	return templ.SafeURL(fmt.Sprintf("/users/roles/%d/revoke", b.ID))
}
