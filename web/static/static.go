// Package static holds Flightdeck's stylesheets and scripts, embedded into
// the binary so the server needs nothing else on disk.
package static

import "embed"

// Files are the static assets, served under /static/.
//
//go:embed *.css
var Files embed.FS
