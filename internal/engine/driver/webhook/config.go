package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Type is the driver type of the webhook driver in an environment's driver
// configuration.
const Type = "webhook"

// Defaults for the fields a configuration leaves out.
const (
	// DefaultTimeout bounds one POST to the receiver.
	DefaultTimeout = 10 * time.Second
	// DefaultDeadline bounds how long one desired state may take to be
	// applied, retries and the receiver's asynchronous work included.
	DefaultDeadline = 10 * time.Minute
)

// Bounds of the configuration, so a typo cannot make a phase wait for days.
const (
	// MinSecretBytes is the shortest shared secret accepted: shorter ones
	// are guessable.
	MinSecretBytes = 16
	// MaxTimeout bounds the timeout of one request. A request must end
	// well inside one step of the engine (20s by default), which also
	// records the attempt; a slower deploy answers 202 and reports later.
	MaxTimeout = 15 * time.Second
	// MaxDeadline bounds the deadline of one desired state.
	MaxDeadline = 24 * time.Hour
)

// Names of the headers every delivery carries.
const (
	// SignatureHeader holds "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" keyed with the shared secret>".
	SignatureHeader = "Flightdeck-Signature"
	// DeliveryHeader holds the delivery's id, new for every attempt and
	// repeated in the signed body, so a receiver can refuse replays.
	DeliveryHeader = "Flightdeck-Delivery"
)

// reservedHeaders are set by the driver; a configuration may not override
// them, or a delivery could go out unsigned or mislabelled.
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "User-Agent", SignatureHeader, DeliveryHeader}

// Config is the webhook driver's configuration for one environment.
type Config struct {
	// URL receives the desired states: an absolute http or https URL.
	URL string
	// Secret signs every delivery; SecretFile, when set instead, names a
	// file holding it, read at every apply so the secret can be rotated
	// without editing the environment.
	Secret     string
	SecretFile string
	// Timeout bounds one request; Deadline bounds how long a desired state
	// may take to be applied before the phase fails.
	Timeout  time.Duration
	Deadline time.Duration
	// Headers are added to every request, e.g. an Authorization header the
	// receiver's gateway wants.
	Headers map[string]string
}

// ValidateConfig checks an environment's webhook configuration, so the API
// can refuse a bad one before saving it instead of failing the first run
// that uses it. It returns a *driver.ConfigError listing every problem.
func ValidateConfig(raw json.RawMessage) error {
	_, err := ParseConfig(raw)
	return err
}

// ParseConfig reads an environment's webhook configuration, fills the
// defaults for the fields left out, and checks it. Unknown fields are
// errors, so a misspelt "deadline" does not silently become the default.
// It returns a *driver.ConfigError listing every problem.
func ParseConfig(raw json.RawMessage) (Config, error) {
	cfg := Config{Timeout: DefaultTimeout, Deadline: DefaultDeadline}
	var errs fieldErrors
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		if !json.Valid(raw) {
			errs.add("config", "is not valid JSON")
		} else {
			errs.add("config", "must be a JSON object")
		}
		return Config{}, errs.err()
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		value := fields[name]
		if isNull(value) {
			continue
		}
		switch name {
		case "type":
			var typ string
			if json.Unmarshal(value, &typ) != nil || typ != Type {
				errs.add(name, "must be %q, got %s", Type, value)
			}
		case "url":
			if readString(value, name, &cfg.URL, &errs) {
				checkURL(cfg.URL, &errs)
			}
		case "secret":
			if readString(value, name, &cfg.Secret, &errs) && len(cfg.Secret) < MinSecretBytes {
				// The secret itself is never repeated in a message.
				errs.add(name, "must be at least %d bytes, got %d", MinSecretBytes, len(cfg.Secret))
			}
		case "secret_file":
			if readString(value, name, &cfg.SecretFile, &errs) && !filepath.IsAbs(cfg.SecretFile) {
				errs.add(name, "must be an absolute path, got %q", cfg.SecretFile)
			}
		case "timeout":
			readDuration(value, name, MaxTimeout, &cfg.Timeout, &errs)
		case "deadline":
			readDuration(value, name, MaxDeadline, &cfg.Deadline, &errs)
		case "headers":
			cfg.Headers = readHeaders(value, &errs)
		default:
			errs.add(name, "is not a webhook setting; known settings are type, url, secret, secret_file, timeout, deadline and headers")
		}
	}
	if cfg.URL == "" && !hasField(errs, "url") {
		errs.add("url", "is required: the http or https URL that receives the desired states")
	}
	switch {
	case cfg.Secret != "" && cfg.SecretFile != "":
		errs.add("secret_file", "cannot be set together with secret; set one of them")
	case cfg.Secret == "" && cfg.SecretFile == "" && !hasField(errs, "secret") && !hasField(errs, "secret_file"):
		errs.add("secret", "is required (or secret_file): every delivery is signed with it")
	}
	if cfg.Deadline < cfg.Timeout && !hasField(errs, "timeout") && !hasField(errs, "deadline") {
		errs.add("deadline", "must not be shorter than timeout (%s), got %s", cfg.Timeout, cfg.Deadline)
	}
	if err := errs.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkURL records a problem unless u is an absolute http or https URL.
func checkURL(u string, errs *fieldErrors) {
	parsed, err := url.Parse(u)
	switch {
	case err != nil:
		errs.add("url", "is not a URL: %v", err)
	case parsed.Scheme != "http" && parsed.Scheme != "https":
		errs.add("url", "must be an absolute http or https URL, got %q", u)
	case parsed.Host == "":
		errs.add("url", "must name a host, got %q", u)
	case parsed.User != nil:
		errs.add("url", "must not carry credentials; put them in headers or rely on the signature")
	}
}

// readDuration reads a Go duration such as "30s" or "10m" into dst.
func readDuration(raw json.RawMessage, field string, limit time.Duration, dst *time.Duration, errs *fieldErrors) {
	var s string
	if !readString(raw, field, &s, errs) {
		return
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		errs.add(field, "must be a duration such as \"30s\" or \"10m\", got %q", s)
	case d <= 0:
		errs.add(field, "must be positive, got %q", s)
	case d > limit:
		errs.add(field, "must be at most %s, got %q", limit, s)
	default:
		*dst = d
	}
}

// readHeaders reads the extra headers, refusing invalid names and values
// and the headers the driver sets itself.
func readHeaders(raw json.RawMessage, errs *fieldErrors) map[string]string {
	var headers map[string]string
	if err := json.Unmarshal(raw, &headers); err != nil || headers == nil {
		errs.add("headers", "must be an object of header names to string values")
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		field := fmt.Sprintf("headers[%q]", name)
		canonical := http.CanonicalHeaderKey(name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			errs.add(field, "is not a valid header name")
		case slices.Contains(reservedHeaders, canonical):
			errs.add(field, "is set by Flightdeck and cannot be configured; the reserved headers are %s", strings.Join(reservedHeaders, ", "))
		case !httpguts.ValidHeaderFieldValue(headers[name]):
			errs.add(field, "has a value that is not valid in a header (control characters or line breaks)")
		}
	}
	return headers
}

// readString decodes a JSON string into dst, recording an error when the
// value is not one.
func readString(raw json.RawMessage, field string, dst *string, errs *fieldErrors) bool {
	if err := json.Unmarshal(raw, dst); err != nil {
		errs.add(field, "must be a string, got %s", jsonKind(raw))
		return false
	}
	return true
}

// jsonKind names the kind of a JSON value without repeating it, since the
// value may be a secret.
func jsonKind(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "nothing"
	}
	switch trimmed[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// isNull reports whether raw is empty or the JSON null, which both mean a
// field was left out.
func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null"))
}

// hasField reports whether a problem with field was already recorded, so a
// follow-on problem is not reported on top of it.
func hasField(errs fieldErrors, field string) bool {
	return slices.ContainsFunc(errs, func(fe plan.FieldError) bool { return fe.Field == field })
}

// fieldErrors collects configuration problems so validation can go on past
// the first one.
type fieldErrors []plan.FieldError

// add records a problem with one field.
func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems as a *driver.ConfigError, or nil when there are
// none.
func (e fieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &driver.ConfigError{Type: Type, Errors: slices.Clone(e)}
}
