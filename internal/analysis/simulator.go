package analysis

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
)

// SimulatorSource reads samples from the simulated fleet.
type SimulatorSource struct {
	Fleet *simulator.Fleet
}

// Sample observes one version of the simulated fleet over the window.
func (s SimulatorSource) Sample(_ context.Context, app, env, version string, from, to time.Time) (Sample, error) {
	o := s.Fleet.Observe(app, env, version, from, to)
	return Sample{Requests: o.Requests, Errors: o.Errors, LatencyP99: o.LatencyP99, HealthCheckFailures: o.HealthCheckFailures}, nil
}
