package notify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// The formats a subscription can be sent in.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
	FormatTeams = "teams"
)

// Formats lists the formats, for messages and forms.
var Formats = []string{FormatJSON, FormatSlack, FormatTeams}

// Limits of a subscription's fields.
const (
	MaxNameLength   = 100
	MaxURLLength    = 2048
	MaxEventTypes   = 50
	MinSecretLength = 16
	MaxSecretLength = 256
)

// namePattern is the rule of app slugs and environment names.
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate checks a subscription's fields and returns every problem, one
// per field, named as in the API (name, app, environment, event_types,
// url, secret, format). An empty Secret is allowed: NewSecret makes one.
func Validate(s store.NotificationSubscription) []plan.FieldError {
	var errs []plan.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch name := strings.TrimSpace(s.Name); {
	case name == "":
		add("name", "is required")
	case utf8.RuneCountInString(name) > MaxNameLength:
		add("name", "is longer than %d characters", MaxNameLength)
	case name != s.Name:
		add("name", "must not start or end with spaces")
	}
	if s.App != "*" && !namePattern.MatchString(s.App) {
		add("app", "must be an app slug or * for every app, got %q", s.App)
	}
	if s.Environment != "*" && !namePattern.MatchString(s.Environment) {
		add("environment", "must be an environment name or * for every environment, got %q", s.Environment)
	}
	switch {
	case len(s.EventTypes) == 0:
		add("event_types", "is empty; name at least one event type such as run.* or flag.killed")
	case len(s.EventTypes) > MaxEventTypes:
		add("event_types", "has %d entries; at most %d are allowed", len(s.EventTypes), MaxEventTypes)
	default:
		var unknown []string
		for _, t := range s.EventTypes {
			if !ValidPattern(t) {
				unknown = append(unknown, fmt.Sprintf("%q", t))
			}
		}
		if len(unknown) > 0 {
			add("event_types", "unknown event type %s; use * , a group (%s) or one of the types listed in the API description",
				strings.Join(unknown, ", "), strings.Join(Groups(), ", "))
		}
	}
	if msg := checkURL(s.URL); msg != "" {
		add("url", "%s", msg)
	}
	if s.Secret != "" && (len(s.Secret) < MinSecretLength || len(s.Secret) > MaxSecretLength) {
		add("secret", "must be %d to %d characters, got %d; leave it out to have one made", MinSecretLength, MaxSecretLength, len(s.Secret))
	}
	if !slices.Contains(Formats, s.Format) {
		add("format", "must be one of %s, got %q", strings.Join(Formats, ", "), s.Format)
	}
	return errs
}

// checkURL says what is wrong with a receiver's URL, or "".
func checkURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > MaxURLLength {
		return fmt.Sprintf("is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("is not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("must be an http or https URL, got %q", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "has no host"
	}
	if u.User != nil {
		return "must not carry a user name or password; receivers check the signature instead"
	}
	if u.Fragment != "" {
		return "must not have a #fragment"
	}
	return ""
}

// NewSecret returns a random signing secret (64 hex digits).
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a notification secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
