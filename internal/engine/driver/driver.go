// Package driver defines how the engine asks a deploy target to make a
// phase's desired state true, and how the driver for an environment is found
// from its configuration.
//
// The engine decides and drivers act. Because the engine may deliver the same
// step twice (a worker crashes after the driver acted but before the run was
// updated, or two replicas race for a run), every driver is idempotent per
// (run, generation) and ignores generations older than the newest it applied,
// so a stale worker can never move traffic back.
package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Request asks a driver to make one desired state true. It carries the run
// and generation so a driver can tell a repeated or stale delivery from a new
// step, and the environment's driver configuration so one driver value can
// serve every environment of its type.
type Request struct {
	// RunID is the run the step belongs to.
	RunID int64
	// Generation increases with every desired state of a run. Delivering the
	// same (RunID, Generation) again must be a no-op.
	Generation int64
	// App is the app's slug.
	App string
	// Environment is the environment's name.
	Environment string
	// PhaseIndex is the index of the phase in the run's plan, or -1 for a
	// rollback step.
	PhaseIndex int
	// Phase is the phase's name, for logs.
	Phase string
	// Desired is the state the driver must make true.
	Desired plan.DesiredState
	// Config is the environment's driver configuration: a JSON object with
	// "type" and the driver's own fields.
	Config json.RawMessage
	// Report, when set, records what the driver did for the run's event
	// log, such as the output of a command it ran. Drivers call it with
	// one line of summary and the detail.
	Report func(summary, detail string)
}

// Driver makes desired states true on one kind of deploy target. The engine
// holds no knowledge of any target; everything it needs from one goes
// through this interface.
type Driver interface {
	// Apply makes req.Desired true. Repeating a (RunID, Generation) that was
	// applied is a no-op that returns nil; a generation lower than the
	// newest applied for that run is ignored (returns nil) so a stale worker
	// can never move traffic back. An error wrapping ErrPermanent means
	// retrying cannot help; any other error may be retried.
	Apply(ctx context.Context, req Request) error
}

// ErrPermanent marks errors that retrying cannot fix, such as a bad
// configuration or a version that crashes on start. Callers test for it with
// errors.Is and fail the phase at once instead of retrying until a deadline.
var ErrPermanent = errors.New("permanent driver failure")

// ErrInProgress means a driver accepted a desired state, or is still
// retrying its delivery within the driver's own deadline, and needs to be
// asked again shortly: a deploy system that reports completion later, or a
// receiver that is briefly unavailable. It is not a failure; the engine
// checks again after a short wait without counting an attempt, and the
// driver itself turns a delivery that takes too long into a permanent error.
var ErrInProgress = errors.New("driver apply in progress")

// Permanent marks err as one that retrying cannot fix, so errors.Is(err,
// ErrPermanent) holds while the message stays err's own. Other wrapped
// errors, such as a *ConfigError, remain reachable with errors.As. It
// returns nil when err is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// permanentError carries an error together with ErrPermanent without
// prefixing its message, so the reason shown to people is the driver's own.
type permanentError struct {
	err error
}

// Error returns the underlying error's message.
func (e permanentError) Error() string {
	return e.err.Error()
}

// Unwrap exposes both the underlying error and ErrPermanent to errors.Is and
// errors.As.
func (e permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// ConfigError reports every problem with an environment's driver
// configuration at once, each tied to a field path such as
// "faults[\"v2\"].error_rate", so the API can answer with field-level detail
// and a settings form can mark each field.
type ConfigError struct {
	// Type is the driver type whose configuration was checked.
	Type string `json:"type"`
	// Errors lists the problems, one per field.
	Errors []plan.FieldError `json:"errors"`
}

// Error joins the problems into one line for logs, run events and CLI
// output.
func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return fmt.Sprintf("invalid %s driver config: %s", e.Type, strings.Join(parts, "; "))
}

// Registry maps driver types ("simulator", "webhook", "nginx") to drivers,
// so the engine can find the driver for an environment from its
// configuration alone. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	drivers map[string]Driver
}

// NewRegistry returns an empty registry; the server registers the drivers
// it was built with at start.
func NewRegistry() *Registry {
	return &Registry{drivers: map[string]Driver{}}
}

// Register makes d the driver for configurations of type typ. It panics on
// an empty type, a nil driver or a type registered twice, because each is a
// wiring mistake that should stop the server at start rather than surface
// as failed runs later.
func (r *Registry) Register(typ string, d Driver) {
	if strings.TrimSpace(typ) == "" {
		panic("driver: Register with an empty type")
	}
	if d == nil {
		panic(fmt.Sprintf("driver: Register %q with a nil driver", typ))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.drivers[typ]; dup {
		panic(fmt.Sprintf("driver: Register called twice for type %q", typ))
	}
	r.drivers[typ] = d
}

// Types returns the registered driver types in alphabetical order, for
// error messages and the environment settings form.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.drivers))
	for typ := range r.drivers {
		types = append(types, typ)
	}
	slices.Sort(types)
	return types
}

// Lookup reads "type" from an environment's driver configuration and
// returns the driver registered for it. A configuration that is missing,
// not a JSON object, without a string "type", or naming an unknown type
// yields an error wrapping ErrPermanent that names the known types, because
// no retry can fix the configuration.
func (r *Registry) Lookup(config json.RawMessage) (Driver, error) {
	typ, err := ConfigType(config)
	if err != nil {
		return nil, Permanent(fmt.Errorf("%w; known driver types: %s", err, r.known()))
	}
	r.mu.RLock()
	d, ok := r.drivers[typ]
	r.mu.RUnlock()
	if !ok {
		return nil, Permanent(fmt.Errorf("unknown driver type %q; known driver types: %s", typ, r.known()))
	}
	return d, nil
}

// known lists the registered types for an error message.
func (r *Registry) known() string {
	types := r.Types()
	if len(types) == 0 {
		return "none registered"
	}
	return strings.Join(types, ", ")
}

// ConfigType returns the "type" field of a driver configuration. The API
// uses it to pick the right validator before saving an environment, and
// Lookup uses it to pick the driver.
func ConfigType(config json.RawMessage) (string, error) {
	trimmed := bytes.TrimSpace(config)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return "", errors.New(`driver config is missing; it must be a JSON object with a "type"`)
	}
	if !json.Valid(trimmed) {
		return "", errors.New(`driver config is not valid JSON; it must be a JSON object with a "type"`)
	}
	var fields map[string]json.RawMessage
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &fields) != nil {
		return "", fmt.Errorf(`driver config must be a JSON object with a "type", got %s`, jsonKind(trimmed[0]))
	}
	raw, ok := fields["type"]
	if !ok {
		return "", errors.New(`driver config has no "type"`)
	}
	var typ string
	if err := json.Unmarshal(raw, &typ); err != nil {
		return "", fmt.Errorf(`driver config "type" must be a string, got %s`, raw)
	}
	if strings.TrimSpace(typ) == "" {
		return "", errors.New(`driver config "type" must not be empty`)
	}
	return typ, nil
}

// jsonKind names the kind of JSON value that starts with first, for error
// messages read by people who wrote the value.
func jsonKind(first byte) string {
	switch first {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}
