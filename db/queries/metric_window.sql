-- name: MetricWindowsInsert :copyfrom
-- metric_windows grows faster than any other table, so it is written with
-- COPY: one round trip and no per-row statement overhead.
INSERT INTO metric_windows (run_id, cohort, metric, window_start, window_end, count, sum, p50, p95, p99)
VALUES (@run_id, @cohort, @metric, @window_start, @window_end, @count, @sum, @p50, @p95, @p99);

-- name: MetricWindowsInsertRows :execrows
-- Writes the same rows with one multi-row INSERT over arrays. Flightdeck
-- writes with COPY; this statement is kept so the benchmark can measure
-- what COPY saves. Arrays cannot carry NULL from Go here, so NaN stands for
-- a missing quantile (ingest never accepts NaN).
INSERT INTO metric_windows (run_id, cohort, metric, window_start, window_end, count, sum, p50, p95, p99)
SELECT u.run_id, u.cohort, u.metric, u.window_start, u.window_end, u.count, u.sum,
       NULLIF(u.p50, 'NaN'::float8), NULLIF(u.p95, 'NaN'::float8), NULLIF(u.p99, 'NaN'::float8)
FROM (
    SELECT unnest(@run_ids::bigint[]) AS run_id,
           unnest(@cohorts::text[]) AS cohort,
           unnest(@metrics::text[]) AS metric,
           unnest(@window_starts::timestamptz[]) AS window_start,
           unnest(@window_ends::timestamptz[]) AS window_end,
           unnest(@counts::bigint[]) AS count,
           unnest(@sums::float8[]) AS sum,
           unnest(@p50s::float8[]) AS p50,
           unnest(@p95s::float8[]) AS p95,
           unnest(@p99s::float8[]) AS p99
) AS u;

-- name: MetricWindowsList :many
-- Reads one cohort's metric of a run in time order; served by the
-- metric_windows_lookup index on (run_id, cohort, metric, window_start).
SELECT window_start, window_end, count, sum, p50, p95, p99
FROM metric_windows
WHERE run_id = @run_id AND cohort = @cohort AND metric = @metric
  AND window_start >= @from_start AND window_start < @to_start
ORDER BY window_start;

-- name: MetricWindowsDeleteBefore :execrows
-- Deletes at most @batch windows that started before @before. Retention
-- calls it until it deletes fewer than @batch, so each statement holds its
-- locks and writes its WAL only briefly. The BRIN index on window_start
-- finds old rows cheaply because rows arrive roughly in time order, and the
-- ctid match deletes exactly the rows found without a second index lookup.
DELETE FROM metric_windows
WHERE ctid = ANY (ARRAY(
    SELECT w.ctid FROM metric_windows w
    WHERE w.window_start < @before
    LIMIT @batch
));

-- name: MetricWindowsLatestEnds :many
-- The end of the newest stored window of each cohort and metric of a run,
-- so that windows read again from a source are stored once.
SELECT cohort, metric, max(window_end)::timestamptz AS latest_end
FROM metric_windows
WHERE run_id = @run_id
GROUP BY cohort, metric;
