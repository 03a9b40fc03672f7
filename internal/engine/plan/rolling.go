package plan

import "fmt"

// rollingParams are the parameters of the rolling strategy. Exactly one of
// BatchSize and BatchPercent is set, so the normalized parameters keep the
// form the person chose.
type rollingParams struct {
	// BatchSize is how many instances are replaced at a time.
	BatchSize int `json:"batch_size,omitempty"`
	// BatchPercent is the share of the fleet replaced at a time, rounded up
	// to whole instances, for environments whose fleet size changes.
	BatchPercent int `json:"batch_percent,omitempty"`
	// Bake is how long each batch is watched before the next.
	Bake Duration `json:"bake"`
	// Analysis is whether new instances are compared with old ones during
	// each bake.
	Analysis bool `json:"analysis"`
}

// readRolling reads rolling parameters: batch_size (default 1) or
// batch_percent (1 to 100), but not both; bake defaults to 2m and analysis
// to true.
func readRolling(o *object) strategyParams {
	p := rollingParams{
		Bake:     durationParam(o, "bake", 2*minute, false),
		Analysis: true,
	}
	if analysis, ok := value[bool](o, "analysis"); ok {
		p.Analysis = analysis
	}
	size := intParam(o, "batch_size", 1, 1, MaxInstances)
	percent := intParam(o, "batch_percent", 0, 1, 100)
	switch {
	case o.has("batch_size") && o.has("batch_percent"):
		o.errs.add(o.field("batch_percent"), "cannot be combined with batch_size; give one or the other")
	case o.has("batch_percent"):
		p.BatchPercent = percent
	default:
		p.BatchSize = size
	}
	return p
}

// batch is how many instances each batch replaces on a fleet of n.
func (p rollingParams) batch(n int) int {
	if p.BatchPercent > 0 {
		return ceilShare(n, p.BatchPercent)
	}
	return min(p.BatchSize, n)
}

// batchState is the desired state once c of n instances run the new
// version. Weights follow instances, but each version serving keeps at
// least 1% so every running instance is seen by the analysis.
func batchState(t Target, c int) DesiredState {
	n := t.Instances
	if c >= n {
		return state(stable(t, 0, 0), candidate(t, n, 100))
	}
	if c <= 0 {
		return backToStable(t)
	}
	w := min(max((200*c+n)/(2*n), 1), 99)
	return state(stable(t, n-c, 100-w), candidate(t, c, w))
}

// candidates lists how many instances run the new version after each batch.
func (p rollingParams) candidates(n int) []int {
	b := p.batch(n)
	var counts []int
	for c := b; ; c += b {
		counts = append(counts, min(c, n))
		if c >= n {
			return counts
		}
	}
}

// phases replaces one batch per phase, the new version growing as the old
// shrinks, and bakes each batch.
func (p rollingParams) phases(t Target) []Phase {
	counts := p.candidates(t.Instances)
	phases := make([]Phase, len(counts))
	for i, c := range counts {
		desired := batchState(t, c)
		phases[i] = Phase{
			Name:         fmt.Sprintf("batch %d of %d: %d of %d instances", i+1, len(counts), c, t.Instances),
			Kind:         KindBatch,
			Desired:      desired,
			Bake:         p.Bake,
			Analysis:     p.Analysis,
			ExposedShare: share(desired.Versions[1].Weight),
		}
		if p.Analysis {
			phases[i].Baseline = BaselineStable
		}
	}
	return phases
}

// rollback walks the batches back in reverse order, ending with the old
// version at full size. The engine starts at the first step with fewer new
// instances than the phase the run reached.
func (p rollingParams) rollback(t Target) Rollback {
	counts := p.candidates(t.Instances)
	steps := make([]DesiredState, 0, len(counts))
	for i := len(counts) - 2; i >= 0; i-- {
		steps = append(steps, batchState(t, counts[i]))
	}
	steps = append(steps, backToStable(t))
	return Rollback{
		Description:      "Reverse rolling: put the old version back a batch at a time, in reverse order, until it serves everyone.",
		Steps:            steps,
		ExpectedDuration: Duration(len(steps)) * instanceStartTime,
	}
}

// firstDeployBake is the bake of one batch.
func (p rollingParams) firstDeployBake() Duration {
	return p.Bake
}
