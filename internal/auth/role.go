package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a person may do in an environment. Each role includes the
// ones before it: a viewer reads; a deployer also starts runs and pauses,
// resumes, promotes, aborts and rolls them back; an approver also approves
// and rejects ring promotions and other approval gates; an admin also
// changes the environment's settings.
type Role string

// The roles, weakest first.
const (
	RoleViewer   Role = "viewer"
	RoleDeployer Role = "deployer"
	RoleApprover Role = "approver"
	RoleAdmin    Role = "admin"
)

// Roles lists the roles weakest first.
var Roles = []Role{RoleViewer, RoleDeployer, RoleApprover, RoleAdmin}

// ParseRole returns the role with the name, or an error listing the roles.
func ParseRole(name string) (Role, error) {
	r := Role(strings.TrimSpace(name))
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: the roles are viewer, deployer, approver and admin", name)
}

// Includes reports whether the role grants everything other grants.
func (r Role) Includes(other Role) bool {
	return slices.Index(Roles, r) >= slices.Index(Roles, other) && slices.Contains(Roles, other)
}

// RoleForScope is the role a token scope corresponds to, so that a token
// and a person pass the same checks: read is viewer, deploy is deployer,
// approve is approver and admin is admin. Metrics has no role.
func RoleForScope(s Scope) (Role, bool) {
	switch s {
	case ScopeRead:
		return RoleViewer, true
	case ScopeDeploy:
		return RoleDeployer, true
	case ScopeApprove:
		return RoleApprover, true
	case ScopeAdmin:
		return RoleAdmin, true
	}
	return "", false
}

// Wildcard in a binding stands for every app or every environment.
const Wildcard = "*"

// Binding gives a role on an app's environment; App or Environment is
// Wildcard for every one.
type Binding struct {
	App         string
	Environment string
	Role        Role
}

func (b Binding) matches(app, env string) bool {
	return (b.App == Wildcard || b.App == app) && (b.Environment == Wildcard || b.Environment == env)
}

// Member is a person signed in to the dashboard, with what they may do.
// Every member may view everything; bindings grant more, and an
// administrator may do everything everywhere.
type Member struct {
	UserID      int64
	Username    string
	DisplayName string
	IsAdmin     bool
	Bindings    []Binding
}

// Actor is how the member appears in run events and the audit log.
func (m Member) Actor() string { return m.Username }

// Name is what the pages call the member.
func (m Member) Name() string {
	if m.DisplayName != "" {
		return m.DisplayName
	}
	return m.Username
}

// RoleOn is the strongest role the member has on environment env of app.
func (m Member) RoleOn(app, env string) Role {
	if m.IsAdmin {
		return RoleAdmin
	}
	best := RoleViewer
	for _, b := range m.Bindings {
		if b.matches(app, env) && b.Role.Includes(best) {
			best = b.Role
		}
	}
	return best
}

// Can reports whether the member has at least the role on environment env
// of app.
func (m Member) Can(app, env string, r Role) bool { return m.RoleOn(app, env).Includes(r) }

// CanAnywhere reports whether the member has at least the role on some
// environment, for showing links to pages that only such members use.
func (m Member) CanAnywhere(r Role) bool {
	if m.IsAdmin {
		return true
	}
	for _, b := range m.Bindings {
		if b.Role.Includes(r) {
			return true
		}
	}
	return r == RoleViewer
}
