package store

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// MetricWindow is what one cohort of a run reported for one metric over one
// stretch of time [Start, End). Count and Sum add up across rows of the same
// window; the quantiles do not, so they are nil when unknown.
type MetricWindow struct {
	RunID  int64
	Cohort string
	Metric string
	Start  time.Time
	End    time.Time
	Count  int64
	Sum    float64
	P50    *float64
	P95    *float64
	P99    *float64
}

// InsertMetricWindows writes windows with one COPY and returns how many
// rows it wrote. COPY is all or nothing: a window for a run that does not
// exist is ErrNotFound, one that breaks a schema rule is ErrInvalid, and
// in both cases nothing is written.
func (s *Store) InsertMetricWindows(ctx context.Context, windows []MetricWindow) (int64, error) {
	if len(windows) == 0 {
		return 0, nil
	}
	rows := make([]sqlcdb.MetricWindowsInsertParams, len(windows))
	for i, w := range windows {
		rows[i] = sqlcdb.MetricWindowsInsertParams{
			RunID: w.RunID, Cohort: w.Cohort, Metric: w.Metric,
			WindowStart: w.Start, WindowEnd: w.End, Count: w.Count, Sum: w.Sum,
			P50: float8(w.P50), P95: float8(w.P95), P99: float8(w.P99),
		}
	}
	n, err := s.q.MetricWindowsInsert(ctx, rows)
	if err != nil {
		return 0, fmt.Errorf("copying metric windows: %w", mapError(err))
	}
	// The run pages chart these windows; announcing the runs lets them
	// show the new points.
	ids := make([]int64, 0, 1)
	for _, w := range windows {
		if !slices.Contains(ids, w.RunID) {
			ids = append(ids, w.RunID)
		}
	}
	s.runChanged(ids...)
	return n, nil
}

// RecordObservedWindows stores the windows an analysis read from a source
// that keeps its data elsewhere (the simulator, Prometheus), so the run
// page can chart them: only complete windows (ending at or before upTo)
// that start at or after the newest stored window of their cohort and
// metric, so reading the same windows again stores nothing twice.
func (s *Store) RecordObservedWindows(ctx context.Context, runID int64, windows []MetricWindow, upTo time.Time) (int64, error) {
	latest, err := s.q.MetricWindowsLatestEnds(ctx, runID)
	if err != nil {
		return 0, mapError(err)
	}
	ends := make(map[[2]string]time.Time, len(latest))
	for _, l := range latest {
		ends[[2]string{l.Cohort, l.Metric}] = l.LatestEnd
	}
	fresh := windows[:0:0]
	for _, w := range windows {
		if w.RunID != runID || w.End.After(upTo) || w.Start.Before(ends[[2]string{w.Cohort, w.Metric}]) {
			continue
		}
		fresh = append(fresh, w)
	}
	return s.InsertMetricWindows(ctx, fresh)
}

// insertMetricWindowsRows writes the same rows as InsertMetricWindows with a
// multi-row INSERT instead of COPY. Flightdeck does not use it; it exists so
// the ingest benchmark can measure COPY against the next best way.
func (s *Store) insertMetricWindowsRows(ctx context.Context, windows []MetricWindow) (int64, error) {
	if len(windows) == 0 {
		return 0, nil
	}
	n := len(windows)
	p := sqlcdb.MetricWindowsInsertRowsParams{
		RunIds: make([]int64, n), Cohorts: make([]string, n), Metrics: make([]string, n),
		WindowStarts: make([]time.Time, n), WindowEnds: make([]time.Time, n),
		Counts: make([]int64, n), Sums: make([]float64, n),
		P50s: make([]float64, n), P95s: make([]float64, n), P99s: make([]float64, n),
	}
	for i, w := range windows {
		p.RunIds[i], p.Cohorts[i], p.Metrics[i] = w.RunID, w.Cohort, w.Metric
		p.WindowStarts[i], p.WindowEnds[i] = w.Start, w.End
		p.Counts[i], p.Sums[i] = w.Count, w.Sum
		p.P50s[i], p.P95s[i], p.P99s[i] = orNaN(w.P50), orNaN(w.P95), orNaN(w.P99)
	}
	written, err := s.q.MetricWindowsInsertRows(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("inserting metric windows: %w", mapError(err))
	}
	return written, nil
}

// ListMetricWindows returns the windows of one cohort's metric of a run
// that start in [from, to), oldest first. Several rows may share a window
// when it was written by several batches; callers add them up.
func (s *Store) ListMetricWindows(ctx context.Context, runID int64, cohort, metric string, from, to time.Time) ([]MetricWindow, error) {
	rows, err := s.q.MetricWindowsList(ctx, sqlcdb.MetricWindowsListParams{
		RunID: runID, Cohort: cohort, Metric: metric, FromStart: from, ToStart: to,
	})
	if err != nil {
		return nil, fmt.Errorf("listing metric windows: %w", mapError(err))
	}
	out := make([]MetricWindow, len(rows))
	for i, r := range rows {
		out[i] = MetricWindow{
			RunID: runID, Cohort: cohort, Metric: metric,
			Start: r.WindowStart, End: r.WindowEnd, Count: r.Count, Sum: r.Sum,
			P50: floatPtr(r.P50), P95: floatPtr(r.P95), P99: floatPtr(r.P99),
		}
	}
	return out, nil
}

// DeleteMetricWindowsBefore removes every window that started before
// before, batch rows per statement, and returns how many it removed. Small
// batches keep each statement's locks and WAL short, so retention can run
// beside ingest; a batch of 0 or less means 10,000. When ctx ends between
// batches the rows removed so far stay removed and ctx's error is returned.
func (s *Store) DeleteMetricWindowsBefore(ctx context.Context, before time.Time, batch int) (int64, error) {
	batch = limitOr(batch, 10_000)
	if batch > math.MaxInt32 {
		batch = math.MaxInt32
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.q.MetricWindowsDeleteBefore(ctx, sqlcdb.MetricWindowsDeleteBeforeParams{Before: before, Batch: int32(batch)})
		total += n
		if err != nil {
			return total, fmt.Errorf("deleting metric windows before %s: %w", before.Format(time.RFC3339), mapError(err))
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

func float8(p *float64) pgtype.Float8 {
	if p == nil {
		return pgtype.Float8{}
	}
	return pgtype.Float8{Float64: *p, Valid: true}
}

func floatPtr(f pgtype.Float8) *float64 {
	if !f.Valid {
		return nil
	}
	v := f.Float64
	return &v
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
