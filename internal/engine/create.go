package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// DefaultInstances is the fleet size assumed when an environment's driver
// configuration does not state "instances".
const DefaultInstances = 10

// BuildPlan compiles a run's plan: the environment's defaults for the
// strategy, overridden field by field by the run's own parameters.
func BuildPlan(strategy string, params json.RawMessage, env store.Environment, from, to string) (plan.Plan, error) {
	merged, err := mergeParams(env.StrategyDefaults, strategy, params)
	if err != nil {
		return plan.Plan{}, err
	}
	return plan.Build(plan.Strategy(strategy), merged, plan.Target{FromVersion: from, ToVersion: to, Instances: Instances(env)})
}

// Instances reads the fleet size from the environment's driver config.
func Instances(env store.Environment) int {
	var cfg struct {
		Instances int `json:"instances"`
	}
	_ = json.Unmarshal(env.Driver, &cfg)
	return cmp.Or(cfg.Instances, DefaultInstances)
}

func mergeParams(defaults json.RawMessage, strategy string, params json.RawMessage) (json.RawMessage, error) {
	merged := map[string]json.RawMessage{}
	if len(defaults) > 0 {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(defaults, &all); err != nil {
			return nil, fmt.Errorf("the environment's strategy defaults are not a JSON object: %w", err)
		}
		if d, ok := all[strategy]; ok && string(d) != "null" {
			if err := json.Unmarshal(d, &merged); err != nil {
				return nil, &plan.ValidationError{Errors: []plan.FieldError{{Field: "strategy_defaults." + strategy, Message: "must be a JSON object"}}}
			}
		}
	}
	if len(params) > 0 && string(params) != "null" {
		var own map[string]json.RawMessage
		if err := json.Unmarshal(params, &own); err != nil {
			return nil, &plan.ValidationError{Errors: []plan.FieldError{{Field: "params", Message: "must be a JSON object"}}}
		}
		maps.Copy(merged, own)
	}
	// Decision thresholds ride along with the run's parameters; they are the
	// analyzer's, not the strategy's.
	delete(merged, "thresholds")
	return json.Marshal(merged)
}

// RunValidator is implemented by analyzers that take per-run settings (such
// as threshold overrides), so a run with bad ones is refused at creation.
type RunValidator interface {
	ValidateRun(env store.Environment, params json.RawMessage) error
}

// NewRun is a request to deploy a version to an environment.
type NewRun struct {
	App         store.App
	Environment store.Environment
	Version     string
	// Strategy is empty for the environment's default.
	Strategy       string
	Params         json.RawMessage
	CreatedBy      string
	IdempotencyKey string
	Reason         string
	// SchemaOverride, when set, is an administrator's reason to deploy a
	// version the environment's schema changes would keep out (see
	// store.CheckSchemaForVersion); it is recorded on the run.
	SchemaOverride string
	// Override, when set, is an admin's reason to start the run despite
	// closed deploy windows and freezes (never the halt); see governance.go.
	Override string
}

// CreateRun validates the request by compiling its plan, then stores the
// run. It becomes active at once when the environment is free and waits in
// line otherwise (runs queue; they never supersede the active one). An
// invalid request returns a *plan.ValidationError and stores nothing.
func (e *Engine) CreateRun(ctx context.Context, n NewRun) (store.Run, bool, error) {
	strategy := cmp.Or(n.Strategy, n.Environment.DefaultStrategy)
	if n.Version == n.Environment.StableVersion {
		return store.Run{}, false, &plan.ValidationError{Errors: []plan.FieldError{{
			Field: "version", Message: fmt.Sprintf("%s is already the stable version of %s", n.Version, n.Environment.Name),
		}}}
	}
	if _, err := BuildPlan(strategy, n.Params, n.Environment, n.Environment.StableVersion, n.Version); err != nil {
		return store.Run{}, false, err
	}
	if v, ok := e.cfg.Analyzer.(RunValidator); ok {
		if err := v.ValidateRun(n.Environment, n.Params); err != nil {
			return store.Run{}, false, err
		}
	}
	overridden, err := e.checkSchema(ctx, n)
	if err != nil {
		return store.Run{}, false, err
	}
	if err := e.checkGate(ctx, n); err != nil {
		return store.Run{}, false, err
	}
	now := e.now()
	run, created, err := e.store.CreateRun(ctx, store.NewRun{
		AppID: n.App.ID, EnvironmentID: n.Environment.ID,
		FromVersion: n.Environment.StableVersion, ToVersion: n.Version,
		Strategy: strategy, Params: n.Params, CreatedBy: n.CreatedBy,
		IdempotencyKey: n.IdempotencyKey, Reason: n.Reason, NextEvalAt: &now,
	})
	if err != nil {
		return store.Run{}, false, err
	}
	if created && overridden != "" {
		if _, err := e.store.AppendRunEvent(ctx, run.ID, store.Event{Type: "schema.override", Actor: n.CreatedBy, Payload: map[string]any{
			"reason": n.SchemaOverride, "blocked": overridden,
		}}); err != nil {
			return store.Run{}, false, err
		}
	}
	if created && n.Override != "" {
		if run, err = e.store.RecordOverride(ctx, run, n.Override, n.CreatedBy); err != nil {
			return store.Run{}, false, fmt.Errorf("recording the override of run %d: %w", run.ID, err)
		}
	}
	if created {
		e.Wake()
	}
	return run, created, nil
}

// checkSchema refuses a version the environment's schema changes keep out
// with the *store.SchemaBlock, unless the request overrides it; it returns
// what was overridden.
func (e *Engine) checkSchema(ctx context.Context, n NewRun) (string, error) {
	err := e.store.CheckSchemaForVersion(ctx, n.App.ID, n.Environment, n.Version)
	var block *store.SchemaBlock
	switch {
	case err == nil:
		return "", nil
	case !errors.As(err, &block):
		return "", fmt.Errorf("checking the schema changes of %s: %w", n.Environment.Name, err)
	case strings.TrimSpace(n.SchemaOverride) == "":
		return "", block
	}
	return block.Message, nil
}
