package store

import (
	"context"
	"strings"
	"unicode/utf8"
)

// Origin is where a change came from: the address and user agent of the
// request that caused it. The events a request writes carry its origin, so
// the audit log can say from where a person or an API token acted. The
// engine's own steps have none.
type Origin struct {
	Addr      string
	UserAgent string
}

// Longest origin parts kept, in bytes; the columns refuse longer ones.
const (
	maxOriginAddr      = 100
	maxOriginUserAgent = 300
)

type originKey struct{}

// WithOrigin returns a context whose events are recorded as coming from o.
// Parts too long to keep are shortened, on a character boundary.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	o.Addr = clip(strings.TrimSpace(o.Addr), maxOriginAddr)
	o.UserAgent = clip(strings.TrimSpace(o.UserAgent), maxOriginUserAgent)
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin WithOrigin put in ctx, and whether there
// was one.
func OriginFrom(ctx context.Context) (Origin, bool) {
	o, ok := ctx.Value(originKey{}).(Origin)
	return o, ok
}

// originColumns is the origin of ctx as nullable column values: nil where a
// part is unknown, and for the engine's own steps and the system's, which
// no request caused even when a request set them off.
func originColumns(ctx context.Context, actor string) (addr, userAgent *string) {
	o, ok := OriginFrom(ctx)
	if !ok || actor == "engine" || actor == "system" {
		return nil, nil
	}
	if o.Addr != "" {
		addr = &o.Addr
	}
	if o.UserAgent != "" {
		userAgent = &o.UserAgent
	}
	return addr, userAgent
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
