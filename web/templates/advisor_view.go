package templates

import "github.com/flightdeckhq/flightdeck/internal/engine/plan"

// AdvisorView is what the strategy advisor shows: its questions with the
// answers given, and the advice once they are all answered.
type AdvisorView struct {
	Questions []AdvisorQuestion
	// Advice is nil until every question is answered.
	Advice *AdvisorAdvice
	// Environments are where the member may make the advice the default
	// strategy; Environment is the one chosen.
	Environments []AdvisorEnvironment
	Environment  string
	// Errors holds the problems with the answers or the choice of
	// environment, by field name; Error is a problem with the whole form.
	Errors map[string]string
	Error  string
}

// AdvisorQuestion is one question of the advisor with its answer.
type AdvisorQuestion struct {
	Name    string
	Label   string
	Help    string
	Options []AdvisorOption
	Value   string
}

// AdvisorOption is one possible answer.
type AdvisorOption struct {
	Value string
	Label string
}

// AdvisorAdvice is the recommended strategy with why, and what else would
// do.
type AdvisorAdvice struct {
	Info plan.StrategyInfo
	// RollbackSpeed says how fast a rollback returns users to the old
	// version.
	RollbackSpeed string
	Reasons       []string
	Alternatives  []AdvisorAlternative
}

// AdvisorAlternative is a runner-up strategy and when it is the better
// choice.
type AdvisorAlternative struct {
	Info          plan.StrategyInfo
	RollbackSpeed string
	Why           string
}

// AdvisorEnvironment is an environment the advice can become the default
// of.
type AdvisorEnvironment struct {
	// Key is "app/environment".
	Key             string
	DefaultStrategy string
}

// advisorDowntime says whether users see downtime during a run.
func advisorDowntime(info plan.StrategyInfo) string {
	if info.Downtime {
		return "yes: nothing serves while the new version starts"
	}
	return "none"
}
