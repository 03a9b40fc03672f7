// Package db holds Flightdeck's SQL migrations, embedded so that the server
// binary can bring any database up to date at start.
package db

import "embed"

// Migrations are the goose-format schema migrations, in order.
//
//go:embed migrations/*.sql
var Migrations embed.FS
