package store

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RunsChannel is the Postgres channel on which changed run ids are announced.
const RunsChannel = "flightdeck_runs"

// maxPayload stays below Postgres's 8000-byte NOTIFY payload limit.
const maxPayload = 7900

// NotifierConfig tunes a Notifier.
type NotifierConfig struct {
	// Interval is the coalescing window: the first change after a quiet
	// spell is announced at once, and a run changed many times within the
	// window after a flush is announced once at its end. Default 100ms.
	Interval time.Duration
	// Logger receives failures to notify. Default slog.Default().
	Logger *slog.Logger
}

// Notifier announces changed runs on RunsChannel after their transactions
// commit. Payloads carry ids only; listeners read what changed from
// run_events, so a lost notification costs latency, never data. Changes are
// coalesced so that the lock NOTIFY takes at commit never throttles writes.
type Notifier struct {
	pool     *pgxpool.Pool
	interval time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	pending map[int64]struct{}
	// wake tells the flush loop that something is pending.
	wake chan struct{}

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewNotifier returns a Notifier on the pool; call Start to run it.
func NewNotifier(pool *pgxpool.Pool, cfg NotifierConfig) *Notifier {
	return &Notifier{
		pool:     pool,
		interval: cmp.Or(cfg.Interval, 100*time.Millisecond),
		logger:   cmp.Or(cfg.Logger, slog.Default()),
		pending:  map[int64]struct{}{},
		wake:     make(chan struct{}, 1),
	}
}

// RunChanged queues a run id to be announced. A change after a quiet spell
// is announced at once; changes that follow within the interval wait for
// the next flush, so the rate of NOTIFYs stays bounded under load.
func (n *Notifier) RunChanged(id int64) {
	n.mu.Lock()
	n.pending[id] = struct{}{}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Start runs the flush loop until Stop or until ctx ends.
func (n *Notifier) Start(ctx context.Context) error {
	ctx, n.cancel = context.WithCancel(ctx)
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		var last time.Time
		for {
			select {
			case <-ctx.Done():
				// Announce what is left so that listeners on other replicas
				// do not wait for their poll.
				flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				n.flush(flushCtx)
				cancel()
				return
			case <-n.wake:
			}
			if wait := n.interval - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					continue
				case <-t.C:
				}
			}
			n.flush(ctx)
			last = time.Now()
		}
	}()
	return nil
}

// Stop ends the flush loop after a final flush. It is safe to call twice.
func (n *Notifier) Stop() {
	n.stopOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
			<-n.done
		}
	})
}

func (n *Notifier) flush(ctx context.Context) {
	n.mu.Lock()
	if len(n.pending) == 0 {
		n.mu.Unlock()
		return
	}
	ids := make([]int64, 0, len(n.pending))
	for id := range n.pending {
		ids = append(ids, id)
	}
	clear(n.pending)
	n.mu.Unlock()

	for _, payload := range payloads(ids) {
		_, err := n.pool.Exec(ctx, "SELECT pg_notify($1, $2)", RunsChannel, payload)
		if err != nil && !errors.Is(err, context.Canceled) {
			n.logger.WarnContext(ctx, "announcing changed runs", slog.String("error", err.Error()), slog.Int("runs", len(ids)))
		}
	}
}

// payloads joins ids with commas into as few payloads as fit the limit.
func payloads(ids []int64) []string {
	var out []string
	var b strings.Builder
	for _, id := range ids {
		s := strconv.FormatInt(id, 10)
		if b.Len() > 0 && b.Len()+1+len(s) > maxPayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// ParseRunIDs reads the run ids from a RunsChannel payload, skipping
// anything that is not an id.
func ParseRunIDs(payload string) []int64 {
	var ids []int64
	for _, f := range strings.Split(payload, ",") {
		if id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}
