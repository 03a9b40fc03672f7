-- +goose Up

-- metric_windows is written in bulk with COPY and grows fastest. Its
-- foreign key made every copied row look up (and key-share lock) its run,
-- roughly halving ingest speed, while protecting little: runs are never
-- deleted (their append-only events forbid it) and ingest checks that the
-- run exists before writing. Without it the table can also be partitioned
-- by time for cheap retention.
ALTER TABLE metric_windows DROP CONSTRAINT metric_windows_run_id_fkey;

-- +goose Down
ALTER TABLE metric_windows
    ADD CONSTRAINT metric_windows_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE RESTRICT;
