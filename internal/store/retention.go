package store

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// RetentionConfig tunes a Retention service.
type RetentionConfig struct {
	// Interval between passes. Default 1h.
	Interval time.Duration
	// MetricWindows is how long metric windows are kept. Default 30 days.
	MetricWindows time.Duration
	// Logger receives what each pass removed. Default slog.Default().
	Logger *slog.Logger
}

// Retention removes what Flightdeck no longer needs, on a schedule:
// idempotency keys past their lifetime and metric windows past the
// retention period. Decisions keep the numbers they were based on, so old
// windows are not needed to explain past verdicts.
type Retention struct {
	store *Store
	cfg   RetentionConfig

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewRetention returns a Retention service on the store.
func NewRetention(s *Store, cfg RetentionConfig) *Retention {
	cfg.Interval = cmp.Or(cfg.Interval, time.Hour)
	cfg.MetricWindows = cmp.Or(cfg.MetricWindows, 30*24*time.Hour)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Retention{store: s, cfg: cfg}
}

// Start runs a pass at once and then every interval until Stop.
func (r *Retention) Start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			r.Pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the schedule and waits for a pass in flight. Safe twice.
func (r *Retention) Stop() {
	r.stopOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	})
}

// Pass removes expired idempotency keys, expired sessions and old metric
// windows once, each under its own timeout.
func (r *Retention) Pass(ctx context.Context) {
	run := func(what string, f func(ctx context.Context) (int64, error)) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		n, err := f(ctx)
		switch {
		case errors.Is(err, context.Canceled):
		case err != nil:
			r.cfg.Logger.WarnContext(ctx, "retention pass failed", slog.String("what", what), slog.String("error", err.Error()))
		case n > 0:
			r.cfg.Logger.InfoContext(ctx, "retention removed rows", slog.String("what", what), slog.Int64("rows", n))
		}
	}
	run("idempotency_keys", r.store.DeleteExpiredIdempotencyKeys)
	run("sessions", r.store.DeleteExpiredSessions)
	run("metric_windows", func(ctx context.Context) (int64, error) {
		return r.store.DeleteMetricWindowsBefore(ctx, r.store.Now().Add(-r.cfg.MetricWindows), 0)
	})
}
