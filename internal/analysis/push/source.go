package push

import (
	"context"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// SourceType is the value of the "type" field that selects push in an
// environment's metrics configuration.
const SourceType = "push"

// WindowStore is what Source needs from the store.
type WindowStore interface {
	ListMetricWindows(ctx context.Context, runID int64, cohort, metric string, from, to time.Time) ([]store.MetricWindow, error)
}

// Source reports the windows that agents and CI pushed for a run. It
// implements analysis.Source and reads only Postgres, so every replica
// sees the same data.
type Source struct {
	store WindowStore
}

var _ analysis.Source = (*Source)(nil)

// ReadsStoredWindows marks the source as one that reads Flightdeck's own
// metric_windows, which the analyzer need not record again.
func (*Source) ReadsStoredWindows() {}

// NewSource returns a Source reading from st.
func NewSource(st WindowStore) *Source { return &Source{store: st} }

// Windows returns, for each requested metric push knows, the windows of
// the queried run and cohort that overlap [q.From, q.To), oldest first.
// A metric nobody pushed has no windows, which the decision reads as no
// data. Several batches may have written the same window; their counts and
// sums are added, and the quantiles are those of the row that saw the most
// observations, since quantiles cannot be added.
func (s *Source) Windows(ctx context.Context, q analysis.Query, metrics []string) (map[string][]analysis.Window, error) {
	if q.Cohort != CohortCandidate && q.Cohort != CohortBaseline {
		return nil, fmt.Errorf("push source: cohort %q is neither %s nor %s", q.Cohort, CohortCandidate, CohortBaseline)
	}
	out := make(map[string][]analysis.Window, len(metrics))
	for _, metric := range metrics {
		if _, ok := rules[metric]; !ok {
			continue
		}
		if !q.To.After(q.From) {
			// An empty range, such as right at the start of a phase,
			// holds no windows; that is no data, not a failure.
			out[metric] = []analysis.Window{}
			continue
		}
		// Windows are Window long, so one that overlaps From starts at
		// most a window earlier.
		rows, err := s.store.ListMetricWindows(ctx, q.RunID, q.Cohort, metric, q.From.Add(-Window+time.Nanosecond), q.To)
		if err != nil {
			return nil, fmt.Errorf("push source: reading %s of run %d: %w", metric, q.RunID, err)
		}
		out[metric] = merge(rows, q.From)
	}
	return out, nil
}

// merge adds up rows of the same window; rows arrive ordered by start.
func merge(rows []store.MetricWindow, from time.Time) []analysis.Window {
	windows := make([]analysis.Window, 0, len(rows))
	var largest int64 // the count of the row the current quantiles came from
	for _, r := range rows {
		if !r.End.After(from) {
			continue
		}
		if n := len(windows); n > 0 && windows[n-1].Start.Equal(r.Start) && windows[n-1].End.Equal(r.End) {
			w := &windows[n-1]
			w.Count += r.Count
			w.Sum += r.Sum
			if r.Count > largest {
				largest = r.Count
				w.P50, w.P95, w.P99 = r.P50, r.P95, r.P99
			}
			continue
		}
		largest = r.Count
		windows = append(windows, analysis.Window{
			Start: r.Start, End: r.End, Count: r.Count, Sum: r.Sum, P50: r.P50, P95: r.P95, P99: r.P99,
		})
	}
	return windows
}
