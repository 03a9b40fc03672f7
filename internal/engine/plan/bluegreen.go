package plan

// blueGreenParams are the parameters of the blue-green strategy. Blue is the
// running version, green the new one.
type blueGreenParams struct {
	// PreSwitchChecks is how long green is checked (health and synthetic
	// checks) before it gets any user traffic.
	PreSwitchChecks Duration `json:"pre_switch_checks"`
	// ScaleDownDelay is how long blue is kept warm after the switch, so
	// flipping back takes seconds rather than a restart.
	ScaleDownDelay Duration `json:"scale_down_delay"`
}

// readBlueGreen reads blue-green parameters; pre_switch_checks defaults to
// 1m and scale_down_delay to 30m.
func readBlueGreen(o *object) strategyParams {
	return blueGreenParams{
		PreSwitchChecks: durationParam(o, "pre_switch_checks", minute, false),
		ScaleDownDelay:  durationParam(o, "scale_down_delay", 30*minute, false),
	}
}

// phases starts green at full size beside blue, checks it without user
// traffic, switches all traffic at once, watches green against blue while
// blue stays warm, then retires blue.
func (p blueGreenParams) phases(t Target) []Phase {
	n := t.Instances
	return []Phase{
		{
			Name:    "start green beside blue",
			Kind:    KindStartGreen,
			Desired: state(stable(t, n, 100), candidate(t, n, 0)),
		},
		{
			// Green has no user traffic yet, so it is judged on its own
			// health and synthetic checks rather than against blue.
			Name:     "pre-switch checks on green",
			Kind:     KindPreSwitch,
			Desired:  state(stable(t, n, 100), candidate(t, n, 0)),
			Bake:     p.PreSwitchChecks,
			Analysis: true,
		},
		{
			Name:         "switch traffic to green",
			Kind:         KindSwitch,
			Desired:      state(stable(t, n, 0), candidate(t, n, 100)),
			ExposedShare: 1,
		},
		{
			// Blue serves no traffic now; green is compared with blue's
			// metrics from before the switch.
			Name:         "keep blue warm",
			Kind:         KindKeepWarm,
			Desired:      state(stable(t, n, 0), candidate(t, n, 100)),
			Bake:         p.ScaleDownDelay,
			Analysis:     true,
			Baseline:     BaselineBlue,
			ExposedShare: 1,
		},
		{
			Name:         "retire blue",
			Kind:         KindRetire,
			Desired:      state(stable(t, 0, 0), candidate(t, n, 100)),
			ExposedShare: 1,
		},
	}
}

// rollback flips all traffic back to blue, which takes seconds while blue is
// warm, and stops green.
func (p blueGreenParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Flip all traffic back to blue and stop green; this takes seconds while blue is still warm, and a restart of blue once it is retired.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: trafficShiftTime,
	}
}

// firstDeployBake is the pre-switch check duration.
func (p blueGreenParams) firstDeployBake() Duration {
	return p.PreSwitchChecks
}
