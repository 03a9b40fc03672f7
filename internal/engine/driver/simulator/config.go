package simulator

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Type is the driver type of the simulator in an environment's driver
// configuration.
const Type = "simulator"

// Defaults of the modelled fleet, used for every field a configuration
// leaves out. They give the demo a busy but healthy service.
const (
	// DefaultRequestsPerSecond is the traffic of the whole environment.
	DefaultRequestsPerSecond = 20
	// DefaultBaseErrorRate is the share of requests that fail on a healthy
	// version.
	DefaultBaseErrorRate = 0.01
	// DefaultBaseLatencyMS is the median latency of a healthy version.
	DefaultBaseLatencyMS = 120
)

// MaxRequestsPerSecond bounds requests_per_second so request counts over
// long windows stay far inside int64 and the error draws stay fast.
const MaxRequestsPerSecond = 1_000_000

// DefaultInstances is the simulated fleet size when none is configured.
const DefaultInstances = 10

// MaxInstances bounds the simulated fleet, as plans do.
const MaxInstances = 10_000

// Config is the simulator's driver configuration for one environment.
type Config struct {
	// Instances is the fleet size plans are built for.
	Instances int `json:"instances"`
	// RequestsPerSecond is the user traffic of the whole environment, split
	// between versions by their weights.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// BaseErrorRate is the share of failing requests, 0 to 1, of a version
	// without an error_rate fault.
	BaseErrorRate float64 `json:"base_error_rate"`
	// BaseLatencyMS is the median latency of a version without a
	// latency_ms fault.
	BaseLatencyMS float64 `json:"base_latency_ms"`
	// Faults are the faults of versions, by version string.
	Faults map[string]Fault `json:"faults,omitempty"`
}

// Fault is how a version misbehaves in the simulator. A zero field leaves
// that aspect of the version at the environment's base behaviour, so a fault
// only needs to name what goes wrong.
type Fault struct {
	// ErrorRate is the share of the version's requests that fail, 0 to 1.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// LatencyMS is the version's median latency in milliseconds.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// HealthCheckFailures is how many health checks fail in every observed
	// window while the version runs.
	HealthCheckFailures int `json:"health_check_failures,omitempty"`
	// CrashOnStart makes every apply that asks the version to run fail
	// permanently, as a version that crashes while starting would.
	CrashOnStart bool `json:"crash_on_start,omitempty"`
	// CPU is the version's CPU utilisation, 0 to 1.
	CPU float64 `json:"cpu,omitempty"`
	// Memory is the version's memory utilisation, 0 to 1.
	Memory float64 `json:"memory,omitempty"`
}

// Validate checks the fault's numbers, so a fault injected at runtime is
// held to the same rules as one in a configuration.
func (f Fault) Validate() error {
	var errs fieldErrors
	f.check("", &errs)
	return errs.err()
}

// check records every problem with the fault's numbers under prefix.
func (f Fault) check(prefix string, errs *fieldErrors) {
	checkRate(errs, prefix+"error_rate", f.ErrorRate)
	checkNonNegative(errs, prefix+"latency_ms", f.LatencyMS)
	if f.HealthCheckFailures < 0 {
		errs.add(prefix+"health_check_failures", "must not be negative, got %d", f.HealthCheckFailures)
	}
	checkRate(errs, prefix+"cpu", f.CPU)
	checkRate(errs, prefix+"memory", f.Memory)
}

// ValidateConfig checks an environment's simulator configuration, so the
// API can reject a bad one before saving it instead of failing the first run
// that uses it. It returns a *driver.ConfigError listing every problem.
func ValidateConfig(raw json.RawMessage) error {
	_, err := ParseConfig(raw)
	return err
}

// ParseConfig reads an environment's simulator configuration, fills the
// defaults for every field left out, and checks it. Unknown fields are
// errors, because a misspelt fault would otherwise silently do nothing
// during a demo. It returns a *driver.ConfigError listing every problem.
func ParseConfig(raw json.RawMessage) (Config, error) {
	cfg := Config{
		Instances:         DefaultInstances,
		RequestsPerSecond: DefaultRequestsPerSecond,
		BaseErrorRate:     DefaultBaseErrorRate,
		BaseLatencyMS:     DefaultBaseLatencyMS,
	}
	var errs fieldErrors
	fields, ok := readFields(raw, "", &errs)
	if !ok {
		return Config{}, errs.err()
	}
	for _, name := range sortedKeys(fields) {
		value := fields[name]
		if isNull(value) {
			continue
		}
		switch name {
		case "type":
			var typ string
			if json.Unmarshal(value, &typ) != nil || typ != Type {
				errs.add(name, "must be %q, got %s", Type, value)
			}
		case "requests_per_second":
			if readNumber(value, name, &cfg.RequestsPerSecond, &errs) {
				checkNonNegative(&errs, name, cfg.RequestsPerSecond)
				if cfg.RequestsPerSecond > MaxRequestsPerSecond {
					errs.add(name, "must be at most %d, got %g", MaxRequestsPerSecond, cfg.RequestsPerSecond)
				}
			}
		case "base_error_rate":
			if readNumber(value, name, &cfg.BaseErrorRate, &errs) {
				checkRate(&errs, name, cfg.BaseErrorRate)
			}
		case "base_latency_ms":
			if readNumber(value, name, &cfg.BaseLatencyMS, &errs) {
				checkNonNegative(&errs, name, cfg.BaseLatencyMS)
			}
		case "faults":
			cfg.Faults = readFaults(value, &errs)
		case "instances":
			var n float64
			if readNumber(value, name, &n, &errs) {
				if n != float64(int(n)) || n < 1 || n > MaxInstances {
					errs.add(name, "must be a whole number from 1 to %d, got %s", MaxInstances, value)
				} else {
					cfg.Instances = int(n)
				}
			}
		default:
			errs.add(name, "is not a simulator setting; known settings are type, instances, requests_per_second, base_error_rate, base_latency_ms and faults")
		}
	}
	if err := errs.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readFaults reads the faults object, one fault per version.
func readFaults(raw json.RawMessage, errs *fieldErrors) map[string]Fault {
	versions, ok := readFields(raw, "faults", errs)
	if !ok {
		return nil
	}
	faults := make(map[string]Fault, len(versions))
	for _, version := range sortedKeys(versions) {
		path := fmt.Sprintf("faults[%q]", version)
		if strings.TrimSpace(version) == "" {
			errs.add(path, "must name a version")
			continue
		}
		fields, ok := readFields(versions[version], path, errs)
		if !ok {
			continue
		}
		var f Fault
		for _, name := range sortedKeys(fields) {
			value := fields[name]
			if isNull(value) {
				continue
			}
			field := path + "." + name
			switch name {
			case "error_rate":
				readNumber(value, field, &f.ErrorRate, errs)
			case "latency_ms":
				readNumber(value, field, &f.LatencyMS, errs)
			case "cpu":
				readNumber(value, field, &f.CPU, errs)
			case "memory":
				readNumber(value, field, &f.Memory, errs)
			case "health_check_failures":
				if json.Unmarshal(value, &f.HealthCheckFailures) != nil {
					errs.add(field, "must be a whole number, got %s", value)
				}
			case "crash_on_start":
				if json.Unmarshal(value, &f.CrashOnStart) != nil {
					errs.add(field, "must be true or false, got %s", value)
				}
			default:
				errs.add(field, "is not a fault setting; known settings are error_rate, latency_ms, health_check_failures, crash_on_start, cpu and memory")
			}
		}
		f.check(path+".", errs)
		faults[version] = f
	}
	return faults
}

// readFields decodes a JSON object into its fields. Empty input and null
// count as an empty object.
func readFields(raw json.RawMessage, path string, errs *fieldErrors) (map[string]json.RawMessage, bool) {
	fields := map[string]json.RawMessage{}
	if isNull(raw) {
		return fields, true
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		switch {
		case !json.Valid(raw):
			errs.add(cmp.Or(path, "config"), "is not valid JSON")
		case path == "":
			errs.add("config", "must be a JSON object")
		default:
			errs.add(path, "must be a JSON object, got %s", raw)
		}
		return nil, false
	}
	return fields, true
}

// readNumber decodes a JSON number into dst, recording an error when the
// value is not a number.
func readNumber(raw json.RawMessage, field string, dst *float64, errs *fieldErrors) bool {
	if err := json.Unmarshal(raw, dst); err != nil {
		errs.add(field, "must be a number, got %s", raw)
		return false
	}
	return true
}

// checkRate records an error unless v is a share from 0 to 1.
func checkRate(errs *fieldErrors, field string, v float64) {
	if math.IsNaN(v) || v < 0 || v > 1 {
		errs.add(field, "must be between 0 and 1, got %g", v)
	}
}

// checkNonNegative records an error when v is negative.
func checkNonNegative(errs *fieldErrors, field string, v float64) {
	if math.IsNaN(v) || v < 0 {
		errs.add(field, "must not be negative, got %g", v)
	}
}

// isNull reports whether raw is empty or the JSON null, which both mean a
// field was left out.
func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null"))
}

// sortedKeys returns a map's keys in order, so problems are reported in the
// same order every time.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// fieldErrors collects configuration problems so validation can go on past
// the first one.
type fieldErrors []plan.FieldError

// add records a problem with one field.
func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems as a *driver.ConfigError, or nil when there are
// none.
func (e fieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &driver.ConfigError{Type: Type, Errors: slices.Clone(e)}
}
