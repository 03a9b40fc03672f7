// Package rollout runs guarded flag rollouts: a variant of a feature flag
// released to a growing share of users, each step judged by the same
// decision as a canary (analysis.Decide) on metrics split by variant, the
// flag turned off when the decision says roll back.
//
// Applications push their metrics by variant (the samples' "variant"
// field), just as agents push a run's metrics by version. Every replica
// runs a Guard; each due rollout is leased to one of them.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// DefaultInterval is how often a running rollout is judged.
const DefaultInterval = 15 * time.Second

// poll is how often the guard looks for due rollouts, so that a new
// rollout's first check, and a step's end, are never late by more.
const poll = time.Second

// claimBatch bounds how many rollouts one pass leases.
const claimBatch = 50

// Config configures a Guard.
type Config struct {
	// Interval is how often a running rollout is judged; zero means
	// DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock decisions are made by; nil means the wall clock.
	Now func() time.Time
}

// Guard judges running rollouts and acts on the decisions.
type Guard struct {
	store    *store.Store
	interval time.Duration
	logger   *slog.Logger
	now      func() time.Time
	source   *push.Source

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New returns a Guard over st.
func New(st *store.Store, cfg Config) *Guard {
	g := &Guard{store: st, interval: cfg.Interval, logger: cfg.Logger, now: cfg.Now}
	if g.interval <= 0 {
		g.interval = DefaultInterval
	}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.source = push.NewSource(windows{st})
	return g
}

// windows reads a rollout's pushed windows where push.Source reads a run's.
type windows struct{ st *store.Store }

func (w windows) ListMetricWindows(ctx context.Context, rolloutID int64, cohort, metric string, from, to time.Time) ([]store.MetricWindow, error) {
	return w.st.ListFlagRolloutWindows(ctx, rolloutID, cohort, metric, from, to)
}

// Start judges due rollouts until Stop.
func (g *Guard) Start(ctx context.Context) error {
	ctx, g.cancel = context.WithCancel(ctx)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			if _, err := g.RunOnce(ctx); err != nil && ctx.Err() == nil {
				g.logger.ErrorContext(ctx, "judging flag rollouts", slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the loop and waits for a pass in flight. Safe to call twice.
func (g *Guard) Stop() {
	g.stopOnce.Do(func() {
		if g.cancel != nil {
			g.cancel()
			g.wg.Wait()
		}
	})
}

// RunOnce leases the due rollouts and judges each; it returns how many it
// judged.
func (g *Guard) RunOnce(ctx context.Context) (int, error) {
	due, err := g.store.ClaimDueFlagRollouts(ctx, g.now().Add(2*g.interval+time.Minute), claimBatch)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, r := range due {
		if _, err := g.Check(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("flag rollout %d: %w", r.ID, err))
		}
	}
	return len(due), errors.Join(errs...)
}

// Check judges one rollout now and applies the verdict: roll back turns
// the flag off; continue after the step's bake moves to the next step (or
// completes the rollout); anything else waits for the next check.
func (g *Guard) Check(ctx context.Context, r store.FlagRollout) (store.FlagRollout, error) {
	flag, err := g.store.FlagByID(ctx, r.FlagID)
	if err != nil {
		return r, err
	}
	env, err := g.store.EnvironmentByID(ctx, r.EnvironmentID)
	if err != nil {
		return r, err
	}
	now := g.now().UTC()
	d := g.decide(ctx, r, flag.Key(), env, now)

	c := store.FlagRolloutCheck{
		RolloutID: r.ID, StepIndex: r.StepIndex, Action: store.RolloutWait, Explanation: d.Explanation,
		NextCheckAt: now.Add(g.interval), Actor: "rollout:" + strconv.FormatInt(r.ID, 10),
	}
	stepEnds := r.StepStartedAt.Add(r.StepBake)
	switch {
	case d.Verdict == engine.VerdictRollback:
		c.Action = store.RolloutRollBack
	case d.Verdict == engine.VerdictContinue && !now.Before(stepEnds):
		c.Action = store.RolloutAdvance
	case d.Verdict == engine.VerdictContinue && stepEnds.Before(c.NextCheckAt):
		// Healthy: look again when the step has baked.
		c.NextCheckAt = stepEnds
	}
	if c.Decision, err = json.Marshal(d); err != nil {
		return r, fmt.Errorf("encoding the decision: %w", err)
	}
	out, err := g.store.FinishFlagRolloutCheck(ctx, c)
	if errors.Is(err, store.ErrRolloutMoved) {
		// Cancelled or turned off while it was judged: nothing to do.
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if c.Action != store.RolloutWait {
		g.logger.InfoContext(ctx, "flag rollout "+string(c.Action),
			slog.String("flag", flag.Key()), slog.String("environment", env.Name),
			slog.Float64("percent", out.Percent()), slog.String("state", string(out.State)),
			slog.String("explanation", d.Explanation))
	}
	return out, nil
}

// decide gathers the step's windows by variant and applies the decision
// with the environment's thresholds.
func (g *Guard) decide(ctx context.Context, r store.FlagRollout, key string, env store.Environment, now time.Time) analysis.Decision {
	obs := analysis.Observations{
		Now: now, PhaseStartedAt: r.StepStartedAt,
		CandidateVersion: key + "=" + r.Variant, BaselineVersion: key + "=" + r.ControlVariant,
		ExposedShare: r.Percent() / 100,
	}
	th, err := analysis.ParseThresholds("thresholds", env.Thresholds)
	if err != nil {
		obs.Thresholds = analysis.DefaultThresholds()
		obs.SourceErrors = append(obs.SourceErrors, err.Error())
		return analysis.Decide(obs)
	}
	obs.Thresholds = th
	q := analysis.Query{RunID: r.ID, From: r.StepStartedAt, To: now, Step: push.Window}
	read := func(cohort, variant string) analysis.Cohort {
		q := q
		q.Cohort, q.Version = cohort, variant
		ws, err := g.source.Windows(ctx, q, analysis.Metrics)
		if err != nil {
			obs.SourceErrors = append(obs.SourceErrors, fmt.Sprintf("%s metrics of variant %q: %v", cohort, variant, err))
		}
		return analysis.Cohort{Windows: ws}
	}
	obs.Candidate = read(push.CohortCandidate, r.Variant)
	obs.Baseline = read(push.CohortBaseline, r.ControlVariant)
	return analysis.Decide(obs)
}

// WindowWriter stores a rollout's windows; *store.Store implements it.
type WindowWriter interface {
	InsertFlagRolloutWindows(ctx context.Context, windows []store.MetricWindow) (int64, error)
}

// Ingest validates a batch of samples pushed for a rollout, split by
// variant, and stores the good ones as windows for its checks. Bad samples
// are listed in the result and do not stop the good ones.
func Ingest(ctx context.Context, st WindowWriter, r store.FlagRollout, flagKey, envName string, b push.Batch, now time.Time) (push.Result, error) {
	sub := push.Subject{
		ID: r.ID, Name: fmt.Sprintf("the rollout of %s in %s", flagKey, envName), CreatedAt: r.CreatedAt, Label: "variant",
		Candidate: r.Variant, Baseline: r.ControlVariant,
		Change: fmt.Sprintf("releases %q over %q", r.Variant, r.ControlVariant),
	}
	ws, res := push.Prepare(sub, now, b)
	n, err := st.InsertFlagRolloutWindows(ctx, ws)
	if err != nil {
		return push.Result{}, fmt.Errorf("writing metric windows of flag rollout %d: %w", r.ID, err)
	}
	res.WindowsWritten = n
	return res, nil
}
