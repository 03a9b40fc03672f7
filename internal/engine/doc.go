// Package engine steps every active deployment run through the phases of its
// strategy: it compiles strategies into plans, claims due runs from the store,
// asks drivers to make the desired state true and records every transition.
package engine
