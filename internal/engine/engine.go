package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Config tunes an Engine. Zero fields take the defaults noted.
type Config struct {
	Store    *store.Store
	Drivers  *driver.Registry
	Analyzer Analyzer
	Logger   *slog.Logger
	// Now is the clock; tests inject one to run a 3-day bake in milliseconds.
	Now func() time.Time
	// ID names this engine in leases and logs. Default: random.
	ID string
	// Workers is how many runs are stepped at once. Default 8.
	Workers int
	// BatchSize is how many due runs one claim takes. Default 64.
	BatchSize int
	// Lease is how long a claimed run is reserved for this engine; a crashed
	// engine's runs are picked up by another after it. Default 30s.
	Lease time.Duration
	// PollInterval is the fallback when no notification arrives; each wait
	// is jittered by up to half of it. Default 1s.
	PollInterval time.Duration
	// StepTimeout bounds one step of one run. Default 20s.
	StepTimeout time.Duration
	// AnalysisInterval is how often an analysed phase is judged. Default 30s.
	AnalysisInterval time.Duration
	// DriverAttempts is how many failed applies in a row a phase survives
	// before it fails and the run's failure policy applies. Default 5.
	DriverAttempts int
	// RetryBackoff is the first wait after a failed apply, doubled on each
	// further failure. Default 2s.
	RetryBackoff time.Duration
	// ConsecutiveErrorLimit is how many inconclusive analyses in a row
	// trigger the failure policy. Default 3.
	ConsecutiveErrorLimit int
	// MaxExtensions bounds "monitor longer". Default 3.
	MaxExtensions int
	// QueuePoll is how often a queued run checks whether its environment
	// is free, besides being woken when the active run ends. Default 30s.
	QueuePoll time.Duration
	// OnStep, when set, is told the lag between a run becoming due and its
	// step being committed; the benchmark reads it.
	OnStep func(lag time.Duration)

	// crashHook, set only by tests, is called between a side effect and
	// the commit that records it.
	crashHook func(runID int64, point string)
}

// Engine steps every active run through its plan. Any number of engines may
// run against one database: each due run is claimed by one of them, and
// every change is a compare-and-swap, so a stale engine cannot overwrite a
// newer state.
type Engine struct {
	cfg     Config
	store   *store.Store
	logger  *slog.Logger
	now     func() time.Time
	claims  atomic.Int64
	metrics *metrics

	wake     chan struct{}
	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New returns an engine; call Start to run it, or RunOnce to step by hand.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Drivers == nil || cfg.Analyzer == nil {
		return nil, errors.New("engine needs a store, drivers and an analyzer")
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.ID = cmp.Or(cfg.ID, fmt.Sprintf("engine-%08x", rand.Uint32()))
	cfg.Workers = cmp.Or(cfg.Workers, 8)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 64)
	cfg.Lease = cmp.Or(cfg.Lease, 30*time.Second)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.StepTimeout = cmp.Or(cfg.StepTimeout, 20*time.Second)
	cfg.AnalysisInterval = cmp.Or(cfg.AnalysisInterval, 30*time.Second)
	cfg.DriverAttempts = cmp.Or(cfg.DriverAttempts, 5)
	cfg.RetryBackoff = cmp.Or(cfg.RetryBackoff, 2*time.Second)
	cfg.ConsecutiveErrorLimit = cmp.Or(cfg.ConsecutiveErrorLimit, 3)
	cfg.MaxExtensions = cmp.Or(cfg.MaxExtensions, 3)
	cfg.QueuePoll = cmp.Or(cfg.QueuePoll, 30*time.Second)
	return &Engine{
		cfg:     cfg,
		store:   cfg.Store,
		logger:  cfg.Logger.With(slog.String("engine", cfg.ID)),
		now:     func() time.Time { return cfg.Now().UTC().Truncate(time.Microsecond) },
		wake:    make(chan struct{}, 1),
		metrics: newMetrics(),
	}, nil
}

// Start runs the claim loop and the notification listener until Stop or
// until ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	ctx, e.cancel = context.WithCancel(ctx)
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		e.listen(ctx, e.store.Pool())
	}()
	go func() {
		defer e.wg.Done()
		e.loop(ctx)
	}()
	e.logger.InfoContext(ctx, "engine started")
	return nil
}

// Stop ends the loops and waits for steps in flight. Safe to call twice.
func (e *Engine) Stop() {
	e.stopOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
			e.wg.Wait()
		}
	})
}

// Wake makes the loop claim at once, e.g. after an action made a run due.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) loop(ctx context.Context) {
	for {
		n, err := e.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.logger.ErrorContext(ctx, "claiming runs", slog.String("error", err.Error()))
		}
		if n >= e.cfg.BatchSize {
			continue // more may be due
		}
		wait := e.cfg.PollInterval/2 + rand.N(e.cfg.PollInterval/2+1)
		// Sleep only until the next run falls due, not a whole poll: a run
		// becoming due by time sends no notification.
		if next, err := e.store.NextClaimable(ctx, e.now()); err == nil && next != nil {
			wait = min(wait, max(next.Sub(e.now()), 0)+rand.N(5*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// listen wakes the loop on every run change announced by any replica. A
// lost notification only delays a step until the next poll.
func (e *Engine) listen(ctx context.Context, pool *pgxpool.Pool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			pooled, err := pool.Acquire(ctx)
			if err != nil {
				return err
			}
			// The connection carries a LISTEN; it never goes back to the pool.
			conn := pooled.Hijack()
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+store.RunsChannel); err != nil {
				return err
			}
			backoff = 100 * time.Millisecond
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				e.Wake()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		e.logger.WarnContext(ctx, "listening for run changes", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// RunOnce claims the runs that are due and steps each once. It returns how
// many it claimed.
func (e *Engine) RunOnce(ctx context.Context) (int, error) {
	now := e.now()
	owner := fmt.Sprintf("%s/%d", e.cfg.ID, e.claims.Add(1))
	runs, err := e.store.ClaimDueRuns(ctx, owner, now, now.Add(e.cfg.Lease), e.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("claiming due runs: %w", err)
	}
	if len(runs) == 0 {
		return 0, nil
	}
	work := make(chan store.Run)
	var wg sync.WaitGroup
	for range min(e.cfg.Workers, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range work {
				e.stepClaimed(ctx, run)
			}
		}()
	}
	for _, r := range runs {
		work <- r
	}
	close(work)
	wg.Wait()
	return len(runs), nil
}

// stepClaimed steps one claimed run under its own timeout. A panic in a step
// is contained: the run keeps its lease and is retried after it expires,
// exactly as if this engine had crashed.
func (e *Engine) stepClaimed(ctx context.Context, run store.Run) {
	defer func() {
		if r := recover(); r != nil {
			e.logger.ErrorContext(ctx, "step panicked; the run is retried when its lease expires",
				slog.Int64("run_id", run.ID), slog.Any("panic", r))
		}
	}()
	stepCtx, cancel := context.WithTimeout(ctx, e.cfg.StepTimeout)
	defer cancel()
	due := run.NextEvalAt
	err := e.step(stepCtx, run)
	var conflict *store.ConflictError
	switch {
	case err == nil:
		e.metrics.steps.WithLabelValues("committed").Inc()
		if due != nil {
			lag := e.now().Sub(*due)
			e.metrics.lag.Observe(lag.Seconds())
			if e.cfg.OnStep != nil {
				e.cfg.OnStep(lag)
			}
		}
	case errors.As(err, &conflict), errors.Is(err, store.ErrTerminal):
		// Someone changed the run meanwhile (an action, or an engine that
		// took over an expired lease); their state stands.
		e.metrics.steps.WithLabelValues("conflict").Inc()
		e.logger.DebugContext(ctx, "run changed while stepping", slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
		e.release(ctx, run)
	case errors.Is(err, context.Canceled):
		e.release(ctx, run)
	default:
		e.metrics.steps.WithLabelValues("error").Inc()
		e.logger.ErrorContext(ctx, "stepping run", slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
		e.release(ctx, run)
	}
}

func (e *Engine) release(ctx context.Context, run store.Run) {
	if err := e.store.ReleaseLease(context.WithoutCancel(ctx), run.ID, run.LeaseOwner); err != nil {
		e.logger.WarnContext(ctx, "releasing lease", slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
	}
}

func (e *Engine) crashPoint(runID int64, point string) {
	if e.cfg.crashHook != nil {
		e.cfg.crashHook(runID, point)
	}
}
