package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Thresholds are the rules of the rollback decision. Every field is a
// parameter of the environment (its "thresholds" object) and can be
// overridden per run (the run's "thresholds" parameter).
type Thresholds struct {
	// Warmup is ignored after each traffic change. Default 5m.
	Warmup plan.Duration `json:"warmup"`
	// FastFailRatio: during warm-up, a candidate error rate this many times
	// the baseline's (with statistical support and FastFailMinRequests
	// requests) rolls back at once. Default 10.
	FastFailRatio float64 `json:"fast_fail_ratio"`
	// FastFailMinRequests is the evidence the fast-fail guard needs. Default 200.
	FastFailMinRequests int64 `json:"fast_fail_min_requests"`
	// ErrorRatePP is how many percentage points the candidate's error rate
	// may exceed the baseline's. Default 2.
	ErrorRatePP float64 `json:"error_rate_pp"`
	// LatencyRatio is how many times the baseline's p99 the candidate's may
	// reach. Default 1.5.
	LatencyRatio float64 `json:"p99_ratio"`
	// HealthCheckFailures is how many failed health checks are tolerated. Default 0.
	HealthCheckFailures int64 `json:"health_check_failures"`
	// CPUIncrease and MemoryIncrease are how far the candidate's mean
	// utilisation (0..1) may exceed the baseline's. Default 0.2 each.
	CPUIncrease    float64 `json:"cpu_increase"`
	MemoryIncrease float64 `json:"memory_increase"`
	// Confidence of every statistical test. Default 0.99.
	Confidence float64 `json:"confidence"`
	// Strict makes the error rate degraded only when it exceeds the
	// threshold with confidence, not merely the baseline.
	Strict bool `json:"strict"`
	// ExposureLimit is the share of users above which a degraded candidate
	// is rolled back rather than watched longer. Default 0.10.
	ExposureLimit float64 `json:"exposure_limit"`
	// TrendWindows is how many recent windows decide "getting worse". Default 3.
	TrendWindows int `json:"trend_windows"`
	// Window is the length of one analysis window. Default 30s.
	Window plan.Duration `json:"window"`
	// MinSignatureCount is how often an error message must be seen in the
	// candidate, and never in the baseline, to count as new. Default 5.
	MinSignatureCount int64 `json:"min_signature_count"`
}

// DefaultThresholds returns the thresholds of the 5-minute framework.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Warmup: plan.Duration(5 * time.Minute), FastFailRatio: 10, FastFailMinRequests: 200,
		ErrorRatePP: 2, LatencyRatio: 1.5, HealthCheckFailures: 0, CPUIncrease: 0.2, MemoryIncrease: 0.2,
		Confidence: 0.99, ExposureLimit: 0.10, TrendWindows: 3, Window: plan.Duration(30 * time.Second),
		MinSignatureCount: 5,
	}
}

// ParseThresholds overlays the JSON objects on the defaults in order
// (environment first, then the run's override) and checks the result. An
// unknown field or an out-of-range value is a *plan.ValidationError whose
// field paths start with prefix.
func ParseThresholds(prefix string, layers ...json.RawMessage) (Thresholds, error) {
	t := DefaultThresholds()
	var errs []plan.FieldError
	for _, raw := range layers {
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			errs = append(errs, plan.FieldError{Field: prefix, Message: "invalid thresholds: " + err.Error()})
			return Thresholds{}, &plan.ValidationError{Errors: errs}
		}
	}
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, plan.FieldError{Field: prefix + "." + field, Message: fmt.Sprintf(format, args...)})
		}
	}
	check(t.Warmup >= 0 && time.Duration(t.Warmup) <= time.Hour, "warmup", "must be between 0s and 1h")
	check(t.FastFailRatio >= 1, "fast_fail_ratio", "must be at least 1")
	check(t.FastFailMinRequests >= 1, "fast_fail_min_requests", "must be at least 1")
	check(t.ErrorRatePP >= 0 && t.ErrorRatePP <= 100, "error_rate_pp", "must be between 0 and 100 percentage points")
	check(t.LatencyRatio >= 1, "p99_ratio", "must be at least 1")
	check(t.HealthCheckFailures >= 0, "health_check_failures", "must not be negative")
	check(t.CPUIncrease >= 0 && t.CPUIncrease <= 1, "cpu_increase", "must be between 0 and 1")
	check(t.MemoryIncrease >= 0 && t.MemoryIncrease <= 1, "memory_increase", "must be between 0 and 1")
	check(t.Confidence >= 0.5 && t.Confidence < 1, "confidence", "must be at least 0.5 and below 1")
	check(t.ExposureLimit >= 0 && t.ExposureLimit <= 1, "exposure_limit", "must be between 0 and 1")
	check(t.TrendWindows >= 2 && t.TrendWindows <= 20, "trend_windows", "must be between 2 and 20")
	check(time.Duration(t.Window) >= time.Second && time.Duration(t.Window) <= 15*time.Minute, "window", "must be between 1s and 15m")
	check(t.MinSignatureCount >= 1, "min_signature_count", "must be at least 1")
	if len(errs) > 0 {
		return Thresholds{}, &plan.ValidationError{Errors: errs}
	}
	return t, nil
}
