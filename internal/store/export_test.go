package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// InsertMetricWindowsRows lets the ingest benchmark compare COPY with a
// multi-row INSERT over arrays; production code only ever writes with COPY.
var InsertMetricWindowsRows = (*Store).insertMetricWindowsRows

// InsertMetricWindowsValues writes windows with INSERT … VALUES lists of
// many rows each, the textbook multi-row INSERT. It exists only to give the
// ingest benchmark a second yardstick; its statement text is built per call
// because a VALUES list has a fixed number of rows, which sqlc cannot
// express.
func InsertMetricWindowsValues(s *Store, ctx context.Context, windows []MetricWindow) (int64, error) {
	// Postgres takes at most 65,535 parameters per statement.
	const cols, perStatement = 10, 6000
	var written int64
	for len(windows) > 0 {
		chunk := windows[:min(perStatement, len(windows))]
		windows = windows[len(chunk):]
		var sql strings.Builder
		sql.WriteString("INSERT INTO metric_windows (run_id, cohort, metric, window_start, window_end, count, sum, p50, p95, p99) VALUES ")
		args := make([]any, 0, cols*len(chunk))
		for i, w := range chunk {
			if i > 0 {
				sql.WriteByte(',')
			}
			sql.WriteByte('(')
			for c := range cols {
				if c > 0 {
					sql.WriteByte(',')
				}
				sql.WriteByte('$')
				sql.WriteString(strconv.Itoa(i*cols + c + 1))
			}
			sql.WriteByte(')')
			args = append(args, w.RunID, w.Cohort, w.Metric, w.Start, w.End, w.Count, w.Sum, w.P50, w.P95, w.P99)
		}
		tag, err := s.db.Exec(ctx, sql.String(), args...)
		if err != nil {
			return written, fmt.Errorf("inserting metric windows: %w", mapError(err))
		}
		written += tag.RowsAffected()
	}
	return written, nil
}
