package plan

import "fmt"

// shadowParams are the parameters of the shadow strategy.
type shadowParams struct {
	// MirrorPercent is the share of the running version's requests copied
	// to the shadow.
	MirrorPercent int `json:"mirror_percent"`
	// Duration is how long traffic is mirrored and compared.
	Duration Duration `json:"duration"`
}

// readShadow reads shadow parameters; mirror_percent defaults to 100 and
// duration to 30m.
func readShadow(o *object) strategyParams {
	return shadowParams{
		MirrorPercent: intParam(o, "mirror_percent", 100, 1, 100),
		Duration:      durationParam(o, "duration", 30*minute, true),
	}
}

// phases starts the shadow sized for its share of mirrored traffic, mirrors
// traffic while comparing latency and responses with the primary, then
// stops the shadow and reports. Users only ever see the running version;
// the run waits at the report for a person to promote the new version
// through a user-facing strategy or to close the run.
func (p shadowParams) phases(t Target) []Phase {
	n := t.Instances
	size := ceilShare(n, p.MirrorPercent)
	mirrored := state(stable(t, n, 100), candidate(t, size, 0))
	mirrored.Mirror = &Mirror{From: t.FromVersion, To: t.ToVersion, Percent: p.MirrorPercent}
	return []Phase{
		{
			Name:    "start shadow",
			Kind:    KindStartShadow,
			Desired: state(stable(t, n, 100), candidate(t, size, 0)),
		},
		{
			Name:     fmt.Sprintf("mirror %d%% of traffic to shadow", p.MirrorPercent),
			Kind:     KindMirror,
			Desired:  mirrored,
			Bake:     p.Duration,
			Analysis: true,
			Baseline: BaselinePrimary,
		},
		{
			Name:          "shadow report",
			Kind:          KindReport,
			Desired:       backToStable(t),
			ManualPromote: true,
		},
	}
}

// rollback stops mirroring and the shadow; users were never affected.
func (p shadowParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Stop mirroring and stop the shadow; users only ever saw the running version.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: trafficShiftTime,
	}
}

// firstDeployBake is never used: a shadow needs a running version.
func (p shadowParams) firstDeployBake() Duration {
	return p.Duration
}
