package plan

import "fmt"

// canaryParams are the parameters of the canary strategy.
type canaryParams struct {
	// Steps are the canary's traffic weights in percent, strictly
	// increasing and ending at 100.
	Steps []int `json:"steps"`
	// StepBake is how long each step is watched before the next.
	StepBake Duration `json:"step_bake"`
}

// readCanary reads canary parameters; steps default to 5, 25, 50, 100 and
// step_bake to 5m.
func readCanary(o *object) strategyParams {
	p := canaryParams{
		Steps:    []int{5, 25, 50, 100},
		StepBake: durationParam(o, "step_bake", 5*minute, false),
	}
	items, ok := o.list("steps")
	if !ok {
		return p
	}
	path := o.field("steps")
	if len(items) == 0 {
		o.errs.add(path, "must list at least one step, the last being 100")
		return p
	}
	steps := make([]int, 0, len(items))
	valid := true
	previous := 0
	for i, raw := range items {
		at := indexPath(path, i)
		w, ok := decodeAt[int](raw, at, o.errs)
		switch {
		case !ok:
			valid = false
			continue
		case w < 1 || w > 100:
			o.errs.add(at, "must be between 1 and 100, got %d", w)
			valid = false
		case w <= previous:
			o.errs.add(at, "must be greater than the step before it (%d), got %d", previous, w)
			valid = false
		case i == len(items)-1 && w != 100:
			o.errs.add(at, "the last step must be 100 so the canary ends serving everyone, got %d", w)
			valid = false
		}
		previous = max(previous, w)
		steps = append(steps, w)
	}
	if valid {
		p.Steps = steps
	}
	return p
}

// phases moves each step's weight to the canary, with canary instances in
// proportion to its weight (rounded up, at least one) and the stable fleet
// kept at full size so a rollback only moves traffic. Every step but the
// last compares the canary with stable; the last retires stable and watches
// the new version's own health, as no stable traffic is left to compare.
func (p canaryParams) phases(t Target) []Phase {
	n := t.Instances
	phases := make([]Phase, len(p.Steps))
	for i, w := range p.Steps {
		ph := Phase{
			Name:         fmt.Sprintf("canary %d%%", w),
			Kind:         KindShift,
			Bake:         p.StepBake,
			Analysis:     true,
			ExposedShare: share(w),
		}
		if w == 100 {
			ph.Desired = state(stable(t, 0, 0), candidate(t, n, 100))
		} else {
			ph.Desired = state(stable(t, n, 100-w), candidate(t, ceilShare(n, w), w))
			ph.Baseline = BaselineStable
		}
		phases[i] = ph
	}
	return phases
}

// rollback moves all traffic back to stable, which is still at full size
// before the last step, and stops the canary.
func (p canaryParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Set the canary's weight to 0 so stable serves everyone again, then stop the canary.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: trafficShiftTime,
	}
}

// firstDeployBake is the bake of one step.
func (p canaryParams) firstDeployBake() Duration {
	return p.StepBake
}
