package analysis

import (
	"context"
	"time"
)

// The metrics Flightdeck compares between candidate and baseline. Each is
// reported as windows of (count, sum) so that windows can be added up
// without losing the sample size a statistical test needs.
const (
	// MetricErrorRate: Count is requests, Sum is failed requests.
	MetricErrorRate = "error_rate"
	// MetricLatency: Count is requests, Sum is total latency in ms, and the
	// quantiles are in ms.
	MetricLatency = "latency"
	// MetricHealthChecks: Count is health checks run, Sum is failed ones.
	MetricHealthChecks = "health_checks"
	// MetricCPU: Count is samples, Sum is the sum of utilisation (0..1).
	MetricCPU = "cpu"
	// MetricMemory: Count is samples, Sum is the sum of utilisation (0..1).
	MetricMemory = "memory"
	// MetricConversion: Count is users exposed, Sum is users who converted (A/B).
	MetricConversion = "conversion"
	// MetricResponseDiff: Count is responses compared, Sum is responses that
	// differed between shadow and primary.
	MetricResponseDiff = "response_diff"
)

// Metrics lists every metric a source may report.
var Metrics = []string{MetricErrorRate, MetricLatency, MetricHealthChecks, MetricCPU, MetricMemory, MetricConversion, MetricResponseDiff}

// Window is what a source reports for one cohort and one metric over one
// stretch of time. Count and Sum add up across windows; quantiles do not,
// so they are kept per window and nil when the source has none.
type Window struct {
	Start time.Time
	End   time.Time
	Count int64
	Sum   float64
	P50   *float64
	P95   *float64
	P99   *float64
}

// Query selects one cohort of one run over a time range.
type Query struct {
	App         string
	Environment string
	RunID       int64
	// Cohort is "candidate" or "baseline"; Version is the version that
	// cohort runs. Sources select by whichever they record.
	Cohort  string
	Version string
	From    time.Time
	To      time.Time
	// Step is the window length the caller wants; sources may return their
	// own (push keeps what was sent).
	Step time.Duration
}

// Source reports metric windows. It returns, for each requested metric it
// knows, the windows of the queried cohort that overlap [From, To), oldest
// first. A metric it cannot answer is absent from the map; an unreachable
// or failing source returns an error, which the decision records as
// inconclusive, never as a pass.
type Source interface {
	Windows(ctx context.Context, q Query, metrics []string) (map[string][]Window, error)
}

// SignatureSource is implemented by sources that also see error messages,
// so a decision can flag errors seen only in the candidate.
type SignatureSource interface {
	// Signatures returns how often each error signature was seen.
	Signatures(ctx context.Context, q Query) (map[string]int64, error)
}
