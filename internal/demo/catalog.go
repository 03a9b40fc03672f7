package demo

import (
	"encoding/json"
	"fmt"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver/simulator"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// appSpec is one app of the demo with its environments.
type appSpec struct {
	slug, name, description string
	envs                    []envSpec
}

// envSpec is one demo environment on the simulator.
type envSpec struct {
	name, tier string
	// stable is the version serving everyone when the demo starts.
	stable string
	// instances and rps size the simulated fleet and its traffic.
	instances int
	rps       float64
	// rotation lists the strategies the loop takes turns with; the first is
	// the environment's default strategy.
	rotation []plan.Strategy
	// run is the run put in flight by Seed, nil for an environment that
	// starts idle.
	run *runSpec
}

// runSpec is a run Seed starts.
type runSpec struct {
	version  string
	strategy plan.Strategy
	// fault, when set, is how the simulator makes the version misbehave.
	fault *simulator.Fault
}

// catalog is the demo: eight apps, each with a run in flight that shows one
// strategy, and a staging environment that starts idle so the loop has
// somewhere to deploy from its first minute.
var catalog = []appSpec{
	{
		slug: "storefront", name: "Storefront", description: "The web shop customers browse and buy in.",
		envs: []envSpec{
			{
				name: "production", tier: "production", stable: "v3.7.2", instances: 10, rps: 240,
				rotation: []plan.Strategy{plan.Canary, plan.Rolling, plan.BlueGreen},
				run:      &runSpec{version: "v3.8.0", strategy: plan.Canary},
			},
			{
				name: "staging", tier: "staging", stable: "v3.8.0", instances: 4, rps: 60,
				rotation: []plan.Strategy{plan.Rolling, plan.Canary, plan.Recreate},
			},
		},
	},
	{
		slug: "payments", name: "Payments", description: "Takes card payments and refunds for every shop.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v5.1.4", instances: 10, rps: 300,
			rotation: []plan.Strategy{plan.Canary, plan.BlueGreen},
			// The version fails 8% of its requests against the stable
			// version's 1%: the analysis sees it and rolls the canary back.
			run: &runSpec{version: "v5.2.0", strategy: plan.Canary, fault: &simulator.Fault{ErrorRate: 0.08}},
		}},
	},
	{
		slug: "mobile-api", name: "Mobile API", description: "The backend of the iOS and Android apps.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v7.0.3", instances: 12, rps: 300,
			rotation: []plan.Strategy{plan.Ring},
			run:      &runSpec{version: "v7.1.0", strategy: plan.Ring},
		}},
	},
	{
		slug: "search", name: "Search", description: "Product search and autocomplete.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v2.3.1", instances: 8, rps: 200,
			rotation: []plan.Strategy{plan.BlueGreen, plan.Canary},
			run:      &runSpec{version: "v2.4.0", strategy: plan.BlueGreen},
		}},
	},
	{
		slug: "recommendations", name: "Recommendations", description: "\"Customers also bought\" and personalised picks.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v1.8.5", instances: 6, rps: 200,
			rotation: []plan.Strategy{plan.Shadow, plan.Canary},
			run:      &runSpec{version: "v1.9.0", strategy: plan.Shadow},
		}},
	},
	{
		slug: "onboarding", name: "Onboarding", description: "Sign-up and first-run flow for new customers.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v3.12.0", instances: 6, rps: 120,
			rotation: []plan.Strategy{plan.ABTest, plan.Canary},
			run:      &runSpec{version: "v4.0.0", strategy: plan.ABTest},
		}},
	},
	{
		slug: "notifications", name: "Notifications", description: "Sends order e-mails and push notifications.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v1.11.3", instances: 8, rps: 150,
			rotation: []plan.Strategy{plan.Rolling, plan.Canary},
			run:      &runSpec{version: "v1.12.0", strategy: plan.Rolling},
		}},
	},
	{
		slug: "reports", name: "Reports", description: "Nightly batch job that builds the sales reports.",
		envs: []envSpec{{
			name: "production", tier: "production", stable: "v0.8.7", instances: 2, rps: 40,
			rotation: []plan.Strategy{plan.Recreate},
			run:      &runSpec{version: "v0.9.0", strategy: plan.Recreate},
		}},
	},
}

// strategyDefaults are the strategy parameters of every demo environment:
// the shapes of the defaults with bakes of a minute or a few, so that a
// run moves while someone watches instead of over days. The first ring
// bakes 30 seconds, so a ring run waits for its first approval within a
// minute of starting.
var strategyDefaults = json.RawMessage(`{
	"recreate": {"health_check_timeout": "2m"},
	"rolling": {"batch_percent": 25, "bake": "90s"},
	"blue_green": {"pre_switch_checks": "1m", "scale_down_delay": "3m"},
	"canary": {"steps": [5, 25, 50, 100], "step_bake": "2m"},
	"shadow": {"mirror_percent": 50, "duration": "4m"},
	"ab_test": {"split_percent": 50, "min_duration": "2m", "max_duration": "5m"},
	"ring": {"rings": [
		{"name": "employees", "audience": {"kind": "header", "key": "X-User-Group", "values": ["employees"]}, "bake": "30s", "expected_percent": 2},
		{"name": "early_adopters", "audience": {"kind": "hash", "key": "user_id", "percent": 20}, "bake": "3m"},
		{"name": "everyone", "audience": {"kind": "all"}, "bake": "2m"}
	]}
}`)

// thresholds are the decision thresholds of every demo environment: the
// 5-minute framework's rules with a 20-second warm-up and 10-second
// windows, so that the first judgement comes half a minute after a traffic
// change rather than five minutes.
var thresholds = json.RawMessage(`{"warmup": "20s", "window": "10s"}`)

// driverConfig is the simulator configuration of an environment, with the
// faults of the versions that misbehave.
func driverConfig(e envSpec, faults map[string]simulator.Fault) (json.RawMessage, error) {
	cfg := map[string]any{"type": simulator.Type, "instances": e.instances, "requests_per_second": e.rps}
	if len(faults) > 0 {
		cfg["faults"] = faults
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := simulator.ValidateConfig(raw); err != nil {
		return nil, fmt.Errorf("the demo's simulator settings for %s: %w", e.name, err)
	}
	return raw, nil
}
