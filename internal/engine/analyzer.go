package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Verdict is what an analysis concluded about a phase.
type Verdict string

// The verdicts of the rollback decision.
const (
	// VerdictWarmingUp: too soon after a traffic change to judge.
	VerdictWarmingUp Verdict = "warming_up"
	// VerdictContinue: the candidate is not degraded.
	VerdictContinue Verdict = "continue"
	// VerdictMonitorLonger: degraded but stable and few users exposed; the
	// bake is extended (a bounded number of times).
	VerdictMonitorLonger Verdict = "monitor_longer"
	// VerdictRollback: degraded badly enough to return to stable now.
	VerdictRollback Verdict = "rollback"
	// VerdictInconclusive: no data or the metric source failed. Never a pass.
	VerdictInconclusive Verdict = "inconclusive"
)

// AnalysisRequest is everything an analyzer may look at to judge a phase.
type AnalysisRequest struct {
	Run         store.Run
	App         store.App
	Environment store.Environment
	Plan        plan.Plan
	PhaseIndex  int
	Phase       plan.Phase
	// PhaseStartedAt is when the phase's traffic change was confirmed;
	// warm-up counts from here.
	PhaseStartedAt time.Time
	Now            time.Time
}

// Analysis is an analyzer's verdict with its explanation and full record.
type Analysis struct {
	Verdict Verdict
	// Explanation is one sentence for people.
	Explanation string
	// Record holds every input and the branch taken, as a JSON object.
	Record json.RawMessage
	// EndPhase says the phase has its answer before its bake is over (an
	// A/B test that reached significance after its minimum duration).
	EndPhase bool
}

// Analyzer judges a phase from metrics: candidate against baseline.
type Analyzer interface {
	Analyze(ctx context.Context, req AnalysisRequest) (Analysis, error)
}
