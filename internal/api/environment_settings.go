package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/promql"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/nginx"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/driver/webhook"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// The values the database allows for an environment's enumerated fields.
var (
	tiers           = []string{"development", "staging", "production"}
	failurePolicies = []string{"rollback", "pause"}
)

// Driver types. Only the simulator has a driver today; the others are
// named so that an environment asking for one hears that it is coming
// rather than that it is unknown.
var (
	availableDrivers = []string{simulator.Type, nginx.Type, webhook.Type}
	reservedDrivers  []string
)

// Metric source types.
const (
	metricsSimulator = "simulator"
	metricsPush      = "push"
)

var metricSources = []string{metricsSimulator, metricsPush, promql.SourceType}

// checkDriver returns every problem with an environment's driver
// configuration, checked as the driver would read it, so a bad one is
// refused now instead of failing the first run. raw is a JSON object.
func checkDriver(raw json.RawMessage) []plan.FieldError {
	typ, errs := configType("driver", raw, availableDrivers, reservedDrivers)
	if len(errs) > 0 {
		return errs
	}
	switch typ {
	case simulator.Type:
		err := simulator.ValidateConfig(raw)
		if cfgErr, ok := errors.AsType[*driver.ConfigError](err); ok {
			return prefixed("driver", "config", cfgErr.Errors)
		}
		if err != nil {
			return []plan.FieldError{{Field: "driver", Message: err.Error()}}
		}
	case webhook.Type:
		err := webhook.ValidateConfig(raw)
		if cfgErr, ok := errors.AsType[*driver.ConfigError](err); ok {
			return prefixed("driver", "config", cfgErr.Errors)
		}
		if err != nil {
			return []plan.FieldError{{Field: "driver", Message: err.Error()}}
		}
	case nginx.Type:
		err := nginx.ValidateConfig(raw)
		if cfgErr, ok := errors.AsType[*driver.ConfigError](err); ok {
			return prefixed("driver", "config", cfgErr.Errors)
		}
		if err != nil {
			return []plan.FieldError{{Field: "driver", Message: err.Error()}}
		}
	default:
		return []plan.FieldError{{Field: "driver.type", Message: fmt.Sprintf("the %s driver is not available yet; use %s", typ, quoteAll(availableDrivers))}}
	}
	return nil
}

// checkMetrics returns every problem with an environment's metric source
// configuration. raw is a JSON object.
func checkMetrics(raw json.RawMessage) []plan.FieldError {
	typ, errs := configType("metrics", raw, metricSources, nil)
	if len(errs) > 0 {
		return errs
	}
	switch typ {
	case promql.SourceType:
		_, err := promql.ParseConfig(raw)
		if vErr, ok := errors.AsType[*promql.ValidationError](err); ok {
			return prefixed("metrics", "config", vErr.Errors)
		}
		if err != nil {
			return []plan.FieldError{{Field: "metrics", Message: err.Error()}}
		}
	default:
		// The simulator and push sources take no settings: the simulator
		// reads the simulated fleet, and push reads what is pushed.
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(raw, &fields)
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if name != "type" {
				errs = append(errs, plan.FieldError{Field: "metrics." + name,
					Message: fmt.Sprintf("is not a setting of the %s metric source, which has none besides type", typ)})
			}
		}
	}
	return errs
}

// configType reads the "type" of a driver or metric source configuration
// and checks it is one of known or reserved.
func configType(field string, raw json.RawMessage, known, reserved []string) (string, []plan.FieldError) {
	var head map[string]json.RawMessage
	_ = json.Unmarshal(raw, &head)
	all := append(slices.Clone(known), reserved...)
	typeRaw, ok := head["type"]
	if !ok {
		return "", []plan.FieldError{{Field: field + ".type", Message: "is required; one of " + quoteAll(all)}}
	}
	var typ string
	if isNull(typeRaw) || json.Unmarshal(typeRaw, &typ) != nil {
		return "", []plan.FieldError{{Field: field + ".type", Message: fmt.Sprintf("must be a string, one of %s, got %s", quoteAll(all), jsonKind(typeRaw))}}
	}
	if !slices.Contains(all, typ) {
		return "", []plan.FieldError{{Field: field + ".type", Message: fmt.Sprintf("must be one of %s, got %q", quoteAll(all), typ)}}
	}
	return typ, nil
}

// checkStrategyDefaults returns every problem with an environment's
// strategy defaults: each key must name a strategy, and its parameters
// must compile as a run's would. raw is a JSON object.
func checkStrategyDefaults(raw json.RawMessage) []plan.FieldError {
	var defaults map[string]json.RawMessage
	_ = json.Unmarshal(raw, &defaults)
	var errs []plan.FieldError
	for _, key := range slices.Sorted(maps.Keys(defaults)) {
		field := "strategy_defaults." + key
		strategy := plan.Strategy(key)
		switch {
		case !strategy.Valid():
			errs = append(errs, plan.FieldError{Field: field, Message: "is not a strategy; strategies are " + strategyNames()})
			continue
		case !isObject(defaults[key]):
			errs = append(errs, plan.FieldError{Field: field, Message: fmt.Sprintf("must be an object of %s parameters, got %s", key, jsonKind(defaults[key]))})
			continue
		}
		_, err := plan.NormalizeParams(strategy, defaults[key])
		if vErr, ok := errors.AsType[*plan.ValidationError](err); ok {
			errs = append(errs, prefixed(field, "params", vErr.Errors)...)
		} else if err != nil {
			errs = append(errs, plan.FieldError{Field: field, Message: err.Error()})
		}
	}
	return errs
}

// checkThresholds returns every problem with an environment's thresholds.
// Each field is checked on its own, so an unknown field or a wrong type is
// named rather than reported as one decoding error for the whole object.
// raw is a JSON object.
func checkThresholds(raw json.RawMessage) []plan.FieldError {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	kinds := thresholdKinds()
	var errs []plan.FieldError
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		field := "thresholds." + name
		kind, known := kinds[name]
		switch {
		case !known:
			errs = append(errs, plan.FieldError{Field: field, Message: "is not a threshold; thresholds are " + strings.Join(slices.Sorted(maps.Keys(kinds)), ", ")})
			continue
		case isNull(fields[name]):
			errs = append(errs, plan.FieldError{Field: field, Message: fmt.Sprintf("must be %s, got null; leave it out for the default", kind)})
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{name: fields[name]})
		_, err := analysis.ParseThresholds("thresholds", one)
		vErr, ok := errors.AsType[*plan.ValidationError](err)
		switch {
		case ok:
			for _, fe := range vErr.Errors {
				if fe.Field == "thresholds" {
					// The value did not decode: say what it should be.
					fe = plan.FieldError{Field: field, Message: fmt.Sprintf("must be %s, got %s", kind, jsonKind(fields[name]))}
				}
				errs = append(errs, fe)
			}
		case err != nil:
			errs = append(errs, plan.FieldError{Field: field, Message: err.Error()})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// Every field is right on its own; the whole must be too.
	if _, err := analysis.ParseThresholds("thresholds", raw); err != nil {
		if vErr, ok := errors.AsType[*plan.ValidationError](err); ok {
			return vErr.Errors
		}
		return []plan.FieldError{{Field: "thresholds", Message: err.Error()}}
	}
	return nil
}

// thresholdKinds maps each threshold's JSON name to the kind of value it
// takes, read from analysis.Thresholds so a new threshold is accepted
// without a change here.
func thresholdKinds() map[string]string {
	durationType := reflect.TypeFor[plan.Duration]()
	t := reflect.TypeFor[analysis.Thresholds]()
	kinds := make(map[string]string, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch {
		case f.Type == durationType:
			kinds[name] = `a duration such as "30s", "5m" or "1h"`
		case f.Type.Kind() == reflect.Bool:
			kinds[name] = "true or false"
		case f.Type.Kind() == reflect.Float64:
			kinds[name] = "a number"
		default:
			kinds[name] = "a whole number"
		}
	}
	return kinds
}

// strategyNames lists the strategies for messages.
func strategyNames() string {
	names := make([]string, len(plan.Strategies))
	for i, s := range plan.Strategies {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// quoteAll lists names for a message, each quoted.
func quoteAll(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	switch len(quoted) {
	case 1:
		return quoted[0]
	case 2:
		return quoted[0] + " or " + quoted[1]
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}
