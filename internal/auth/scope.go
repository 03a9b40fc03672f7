package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Scope is a permission granted to an API token.
type Scope string

// The scopes a token can hold. They are coarse on purpose: a CI pipeline
// typically needs deploy, a release manager's script approve, and an agent
// that pushes samples only metrics.
const (
	// ScopeRead allows reading apps, environments, runs and their history.
	ScopeRead Scope = "read"
	// ScopeDeploy allows starting, pausing, resuming and aborting runs; it
	// includes read, since a pipeline follows the run it started.
	ScopeDeploy Scope = "deploy"
	// ScopeApprove allows approving or rejecting a phase; it includes read,
	// since an approver looks at the run first.
	ScopeApprove Scope = "approve"
	// ScopeMetrics allows only pushing metric samples for runs. It includes
	// nothing else, so the token handed to an agent in every pod cannot
	// read or change deployments.
	ScopeMetrics Scope = "metrics"
	// ScopeAdmin allows everything, including managing tokens.
	ScopeAdmin Scope = "admin"
	// ScopeFlags allows only evaluating feature flags, for applications
	// that ask Flightdeck what their users get.
	ScopeFlags Scope = "flags"
)

// Scopes lists every scope in the order they are shown and stored.
var Scopes = []Scope{ScopeRead, ScopeDeploy, ScopeApprove, ScopeMetrics, ScopeFlags, ScopeAdmin}

// implied maps a scope to the narrower ones it includes. Admin is handled
// in Allows, because it includes every scope, also ones added later.
var implied = map[Scope][]Scope{
	ScopeDeploy:  {ScopeRead},
	ScopeApprove: {ScopeRead},
}

// ParseScopes turns scope names, as given on the command line or in a
// request, into scopes in canonical order without duplicates. Surrounding
// spaces are ignored. An unknown name is an error that names it and the
// valid ones, and so is an empty list, since a token without scopes could
// do nothing.
func ParseScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no scopes given: want one or more of %s", scopeList())
	}
	seen := make(map[Scope]bool, len(names))
	for _, n := range names {
		s := Scope(strings.TrimSpace(n))
		if !slices.Contains(Scopes, s) {
			return nil, fmt.Errorf("unknown scope %q: want one or more of %s", n, scopeList())
		}
		seen[s] = true
	}
	out := make([]Scope, 0, len(seen))
	for _, s := range Scopes {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

func scopeList() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Allows reports whether the granted scopes include needed, directly or
// through a broader scope: admin includes every scope, deploy and approve
// include read.
func Allows(granted []Scope, needed Scope) bool {
	for _, g := range granted {
		if g == needed || g == ScopeAdmin || slices.Contains(implied[g], needed) {
			return true
		}
	}
	return false
}

// ScopeStrings returns scopes as plain strings, for storage and display.
func ScopeStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}
