package engine

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus series; each engine has its own so
// tests and several engines in one process do not collide.
type metrics struct {
	steps *prometheus.CounterVec
	lag   prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flightdeck", Subsystem: "engine", Name: "steps_total",
			Help: "Run steps by outcome: committed, conflict (someone else changed the run), error.",
		}, []string{"outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flightdeck", Subsystem: "engine", Name: "step_lag_seconds",
			Help:    "Time from a run becoming due to its step being committed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

// Collectors returns the engine's metrics for registration.
func (e *Engine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.steps, e.metrics.lag}
}
