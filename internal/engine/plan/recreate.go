package plan

// recreateParams are the parameters of the recreate strategy.
type recreateParams struct {
	// HealthCheckTimeout is how long the new version is watched after it
	// starts; it also bounds how long restarting the old version takes.
	HealthCheckTimeout Duration `json:"health_check_timeout"`
}

// readRecreate reads recreate parameters; health_check_timeout defaults to 2m.
func readRecreate(o *object) strategyParams {
	return recreateParams{
		HealthCheckTimeout: durationParam(o, "health_check_timeout", 2*minute, true),
	}
}

// phases stops the old version, leaving nothing serving (the downtime is
// expected and recorded), starts the new one and watches its health. The
// old version stays listed at zero instances so a rollback restarts it
// rather than deploying it anew.
func (p recreateParams) phases(t Target) []Phase {
	n := t.Instances
	return []Phase{
		{
			Name:    "stop old version",
			Kind:    KindStopOld,
			Desired: state(stable(t, 0, 0)),
		},
		{
			Name:         "start new version",
			Kind:         KindStartNew,
			Desired:      state(stable(t, 0, 0), candidate(t, n, 100)),
			ExposedShare: 1,
		},
		{
			Name:         "health check",
			Kind:         KindHealthCheck,
			Desired:      state(stable(t, 0, 0), candidate(t, n, 100)),
			Bake:         p.HealthCheckTimeout,
			Analysis:     true,
			ExposedShare: 1,
		},
	}
}

// rollback restarts the old version at full size and stops the new one,
// which takes about as long as a health check.
func (p recreateParams) rollback(t Target) Rollback {
	return Rollback{
		Description:      "Restart the old version at full size and stop the new one; users see downtime until the old version is healthy.",
		Steps:            []DesiredState{backToStable(t)},
		ExpectedDuration: p.HealthCheckTimeout,
	}
}

// firstDeployBake is the health check timeout.
func (p recreateParams) firstDeployBake() Duration {
	return p.HealthCheckTimeout
}
