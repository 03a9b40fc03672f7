-- +goose Up

-- An environment may take approvals only while its deploy window is open,
-- so nobody moves a release on at a time the team cannot watch it.
ALTER TABLE approval_policies ADD COLUMN in_window_only boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE approval_policies DROP COLUMN in_window_only;
