package analysis

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
)

// SimulatorSource reads metric windows from the simulated fleet.
type SimulatorSource struct {
	Fleet *simulator.Fleet
}

// Windows observes the queried version of the simulated fleet window by
// window.
func (s SimulatorSource) Windows(_ context.Context, q Query, metrics []string) (map[string][]Window, error) {
	step := q.Step
	if step <= 0 {
		step = 30 * time.Second
	}
	want := map[string]bool{}
	for _, m := range metrics {
		want[m] = true
	}
	out := map[string][]Window{}
	for start := q.From; start.Before(q.To); start = start.Add(step) {
		end := start.Add(step)
		if end.After(q.To) {
			end = q.To
		}
		o := s.Fleet.Observe(q.App, q.Environment, q.Version, start, end)
		add := func(metric string, w Window) {
			if want[metric] {
				w.Start, w.End = start, end
				out[metric] = append(out[metric], w)
			}
		}
		p50, p95, p99 := o.LatencyP50, o.LatencyP95, o.LatencyP99
		add(MetricErrorRate, Window{Count: o.Requests, Sum: float64(o.Errors)})
		if o.Requests > 0 {
			add(MetricLatency, Window{Count: o.Requests, Sum: p50 * float64(o.Requests), P50: &p50, P95: &p95, P99: &p99})
		}
		if o.Instances > 0 {
			add(MetricHealthChecks, Window{Count: int64(o.Instances), Sum: float64(min(o.HealthCheckFailures, o.Instances))})
			add(MetricCPU, Window{Count: 1, Sum: o.CPU})
			add(MetricMemory, Window{Count: 1, Sum: o.Memory})
		}
	}
	return out, nil
}
