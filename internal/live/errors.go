package live

import "errors"

// Errors a Feed's Class wraps.
var (
	ErrUnknownTopic = errors.New("no such topic")
	ErrForbidden    = errors.New("not allowed to watch this topic")
)
