// Package static holds Flightdeck's stylesheets and scripts, embedded into
// the binary so the server needs nothing else on disk. The libraries the
// pages use (htmx, its websocket extension and uPlot) are vendored under
// vendor/, with their versions and licenses listed in vendor/VERSIONS.
package static

import "embed"

// Files are the static assets, served under /static/.
//
//go:embed *.css *.js vendor
var Files embed.FS
