-- name: AppInsert :one
INSERT INTO apps (slug, name, description, created_at, updated_at)
VALUES (@slug, @name, @description, @now, @now)
RETURNING *;

-- name: AppGetBySlug :one
SELECT * FROM apps WHERE slug = @slug;

-- name: AppGetByID :one
SELECT * FROM apps WHERE id = @id;

-- name: AppList :many
SELECT * FROM apps
WHERE slug > @after_slug
ORDER BY slug
LIMIT @max;

-- name: AppUpdate :one
UPDATE apps
SET name = @name, description = @description, updated_at = @now
WHERE slug = @slug
RETURNING *;

-- name: AppDelete :execrows
DELETE FROM apps WHERE slug = @slug;
