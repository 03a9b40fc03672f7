package auth

import (
	"fmt"
	"regexp"
	"slices"
)

// Principal is who an API request acts as: the token it presented, the
// user the token belongs to, and what the token may do.
type Principal struct {
	// TokenID is the id of the token in the store.
	TokenID int64
	// Name is the token's name, unique among tokens that are not revoked.
	Name string
	// UserID is the user the token belongs to.
	UserID int64
	// Scopes are what the token may do; see Allows.
	Scopes []Scope
	// Apps, when not empty, are the slugs of the only apps the token may
	// act on.
	Apps []string
	// Environments, when not empty, are the names of the only environments
	// the token may act on, in whichever of its apps they are. Names rather
	// than app/environment pairs, because environments are named alike
	// across apps ("staging", "production") and a limit such as "only
	// staging" is meant for all of them; combined with Apps this also
	// expresses one environment of one app.
	Environments []string
}

// Actor is how the principal appears in run events and audit records.
func (p Principal) Actor() string { return "token:" + p.Name }

// Allows reports whether the principal's scopes include needed.
func (p Principal) Allows(needed Scope) bool { return Allows(p.Scopes, needed) }

// CanAccess reports whether the principal's app and environment limits let
// it act on the environment env of the app app. An empty app or env means
// the action is not about one app or one environment (listing apps, say),
// so that limit is not checked here; whoever lists must then leave out the
// items the principal cannot access, asking once per item.
func (p Principal) CanAccess(app, env string) bool {
	if app != "" && len(p.Apps) > 0 && !slices.Contains(p.Apps, app) {
		return false
	}
	if env != "" && len(p.Environments) > 0 && !slices.Contains(p.Environments, env) {
		return false
	}
	return true
}

// Limited reports whether the principal is limited to some apps or
// environments.
func (p Principal) Limited() bool { return len(p.Apps) > 0 || len(p.Environments) > 0 }

// limitPattern is the rule app slugs and environment names share, and so
// every entry of a token's limits.
var limitPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckLimits reports whether apps are app slugs and environments are
// environment names, so that a typo in a limit is refused when the token
// is made instead of quietly matching nothing.
func CheckLimits(apps, environments []string) error {
	for _, l := range []struct {
		kind  string
		names []string
	}{{"app", apps}, {"environment", environments}} {
		for _, n := range l.names {
			if !limitPattern.MatchString(n) {
				return fmt.Errorf("%s limit %q: want a slug such as checkout or production (lowercase letters, digits and dashes)", l.kind, n)
			}
		}
	}
	return nil
}
