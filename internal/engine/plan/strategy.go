package plan

import "encoding/json"

// Strategy names how a run moves users to a new version. The values are the
// identifiers used in the API and the database.
type Strategy string

// The seven strategies, all first-class.
const (
	// Recreate stops the old version, then starts the new one: simple and
	// cheap, with downtime.
	Recreate Strategy = "recreate"
	// Rolling replaces instances a batch at a time, watching each batch.
	Rolling Strategy = "rolling"
	// BlueGreen starts the new version beside the old and switches all
	// traffic at once, keeping the old warm for a fast flip back.
	BlueGreen Strategy = "blue_green"
	// Canary moves a growing share of traffic to the new version, comparing
	// it with the old at every step.
	Canary Strategy = "canary"
	// Shadow mirrors real traffic to the new version without users seeing
	// its responses, and reports how it compares.
	Shadow Strategy = "shadow"
	// ABTest splits users stickily between the versions to measure which
	// converts better.
	ABTest Strategy = "ab_test"
	// Ring releases to growing audiences (employees, early adopters,
	// everyone) with a person approving each next ring.
	Ring Strategy = "ring"
)

// Strategies lists every strategy in the order pages and the API show them.
var Strategies = []Strategy{Recreate, Rolling, BlueGreen, Canary, Shadow, ABTest, Ring}

// Valid reports whether s is one of Strategies, so the API can reject an
// unknown strategy before storing it.
func (s Strategy) Valid() bool {
	_, ok := definitions[s]
	return ok
}

// StrategyInfo summarises a strategy as the design's strategy table does,
// for the strategy advisor, the environment settings page and the API.
type StrategyInfo struct {
	// Strategy is the identifier.
	Strategy Strategy `json:"strategy"`
	// Title is the name shown to people.
	Title string `json:"title"`
	// Phases summarises the phases with default parameters.
	Phases string `json:"phases"`
	// Rollback says what a rollback does.
	Rollback string `json:"rollback"`
	// InfraCost is the capacity needed while a run is active, relative to
	// the fleet.
	InfraCost string `json:"infra_cost"`
	// Downtime is true when users see an outage during a run.
	Downtime bool `json:"downtime"`
	// FirstDeploy is true when the strategy can deploy to an environment
	// with no running version.
	FirstDeploy bool `json:"first_deploy"`
	// Defaults are the strategy's parameters with every default, as
	// NormalizeParams returns them for empty input.
	Defaults json.RawMessage `json:"defaults"`
}

// Describe returns the summary of a strategy, or the zero StrategyInfo for
// an unknown one.
func Describe(s Strategy) StrategyInfo {
	def, ok := definitions[s]
	if !ok {
		return StrategyInfo{}
	}
	info := def.info
	info.Strategy = s
	info.FirstDeploy = def.firstDeploy
	// Defaults always normalize; an error here would be a bug in a reader.
	info.Defaults, _ = NormalizeParams(s, nil)
	return info
}

// definition is what the package knows about one strategy.
type definition struct {
	info StrategyInfo
	// firstDeploy is whether the strategy works without a running version.
	// Shadow and A/B compare the new version with a running one, so they
	// cannot be used for a first deploy.
	firstDeploy bool
	// read validates the parameters and fills in defaults.
	read func(o *object) strategyParams
}

// definitions holds every strategy; Strategies gives their order.
var definitions = map[Strategy]definition{
	Recreate: {
		info: StrategyInfo{
			Title:     "Recreate",
			Phases:    "stop old → start new → health check",
			Rollback:  "restart old version",
			InfraCost: "1×",
			Downtime:  true,
		},
		firstDeploy: true,
		read:        readRecreate,
	},
	Rolling: {
		info: StrategyInfo{
			Title:     "Rolling",
			Phases:    "replace a batch of instances at a time (batch_size or batch_percent) → watch each batch → next",
			Rollback:  "reverse rolling",
			InfraCost: "1×",
		},
		firstDeploy: true,
		read:        readRolling,
	},
	BlueGreen: {
		info: StrategyInfo{
			Title:     "Blue-green",
			Phases:    "start green beside blue → pre-switch checks → switch 100% → keep blue warm for scale_down_delay → retire blue",
			Rollback:  "flip traffic back",
			InfraCost: "2×",
		},
		firstDeploy: true,
		read:        readBlueGreen,
	},
	Canary: {
		info: StrategyInfo{
			Title:    "Canary",
			Phases:   "5% → 25% → 50% → 100%, analysis (canary vs stable) at every step",
			Rollback: "weight 0 to canary",
			// The stable fleet stays at full size until the last step, so the
			// canary's own instances are the extra cost: about 5% at the
			// first step, growing with its weight.
			InfraCost: "~1.05× at the first step, up to ~1.5× at the 50% step",
		},
		firstDeploy: true,
		read:        readCanary,
	},
	Shadow: {
		info: StrategyInfo{
			Title:     "Shadow",
			Phases:    "start shadow → mirror a copy of traffic → compare latency and responses → report; users only see stable",
			Rollback:  "stop mirroring",
			InfraCost: "2×",
		},
		read: readShadow,
	},
	ABTest: {
		info: StrategyInfo{
			Title:     "A/B test",
			Phases:    "split users by hash of user id (or header or cookie rule) → collect conversion per arm → stop at significance or max duration → report winner",
			Rollback:  "remove split",
			InfraCost: "~1.5×",
		},
		read: readABTest,
	},
	Ring: {
		info: StrategyInfo{
			Title:     "Ring",
			Phases:    "ring 0 (employees) → bake 24h → approval → ring 1 (early adopters) → bake 3d → approval → ring 2 (everyone)",
			Rollback:  "stop progression, route rings back",
			InfraCost: "~1×",
		},
		firstDeploy: true,
		read:        readRing,
	},
}
