package nginx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// Type is the driver type of nginx in an environment's driver
// configuration.
const Type = "nginx"

// Defaults for the fields a configuration leaves out.
const (
	// DefaultTestCommand checks nginx's configuration with the files in place.
	DefaultTestCommand = "nginx -t"
	// DefaultReloadCommand makes a running nginx load the new files.
	DefaultReloadCommand = "nginx -s reload"
	// DefaultLocation is the location the driver routes.
	DefaultLocation = "/"
	// DefaultCommandTimeout bounds each command the driver runs.
	DefaultCommandTimeout = 2 * time.Minute
	// DefaultReloadSettle is the wait after a reload before a phase counts
	// as applied.
	DefaultReloadSettle = time.Second
)

// Bounds of command_timeout: shorter than a second cannot even start a
// container, longer than an hour hides a hung deploy from the run.
const (
	minCommandTimeout = time.Second
	// maxReloadSettle bounds the wait after a reload.
	maxReloadSettle   = time.Minute
	maxCommandTimeout = time.Hour
)

// Names of the include files written into Config.Dir.
const (
	// HTTPFile goes inside nginx's http block: upstreams, maps and splits.
	HTTPFile = "http.conf"
	// ServerFile goes inside one server block: the routed location and the
	// internal mirror location.
	ServerFile = "server.conf"
)

// Config is the nginx driver's configuration for one environment.
type Config struct {
	// Dir is the directory the include files are written to.
	Dir string `json:"dir"`
	// Servers lists the addresses of each version's instances.
	Servers map[string][]string `json:"servers,omitempty"`
	// ServerTemplate gives the address of a version not in Servers, with
	// {version} and optionally {index} filled in.
	ServerTemplate string `json:"server_template,omitempty"`
	// Location is the prefix location the driver routes.
	Location string `json:"location"`
	// HashKeys maps the key of a hash cohort rule to the nginx variables
	// holding the user id.
	HashKeys map[string]string `json:"hash_keys,omitempty"`
	// TestCommand checks the configuration; a failure means nginx rejects it.
	TestCommand string `json:"test_command"`
	// ReloadCommand makes nginx load the new files.
	ReloadCommand string `json:"reload_command"`
	// StartCommand starts or resizes a version's instances.
	StartCommand string `json:"start_command,omitempty"`
	// StopCommand stops a version's instances.
	StopCommand string `json:"stop_command,omitempty"`
	// CommandTimeout bounds each command.
	CommandTimeout time.Duration `json:"command_timeout"`
	// ReloadSettle is how long the driver waits after a reload before it
	// reports the phase applied: nginx's reload returns once signalled, and
	// old workers keep taking new connections for a moment, so the bake
	// (and the stickiness of cohorts) starts on the new routing.
	ReloadSettle time.Duration `json:"reload_settle"`
}

var (
	// hostPort is the syntax of one upstream server address: a host name or
	// IPv4 address, or a bracketed IPv6 address, and a port.
	hostPort = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$`)
	// locationPath is the syntax of the routed location.
	locationPath = regexp.MustCompile(`^/[A-Za-z0-9/._-]*$`)
	// variableList is one or more nginx variables, such as "$http_x_user".
	variableList = regexp.MustCompile(`^(\$[A-Za-z_][A-Za-z0-9_]*)+$`)
	// safeVersion is what a version may look like when it is put into an
	// address or an nginx name.
	safeVersion = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// knownFields lists the settings for the error about an unknown one.
const knownFields = "type, dir, servers, server_template, location, hash_keys, test_command, reload_command, start_command, stop_command, command_timeout and reload_settle"

// ValidateConfig checks an environment's nginx configuration, so the API can
// reject a bad one before saving it instead of failing the first run that
// uses it. It returns a *driver.ConfigError listing every problem.
func ValidateConfig(raw json.RawMessage) error {
	_, err := ParseConfig(raw)
	return err
}

// ParseConfig reads an environment's nginx configuration, fills the defaults
// for every field left out, and checks it. Unknown fields are errors, because
// a misspelt command would otherwise silently never run. It returns a
// *driver.ConfigError listing every problem.
func ParseConfig(raw json.RawMessage) (Config, error) {
	cfg := Config{
		Location:       DefaultLocation,
		TestCommand:    DefaultTestCommand,
		ReloadCommand:  DefaultReloadCommand,
		CommandTimeout: DefaultCommandTimeout,
		ReloadSettle:   DefaultReloadSettle,
	}
	var errs fieldErrors
	fields, ok := readObject(raw, "config", &errs)
	if !ok {
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
		case "dir":
			if s, ok := readString(value, name, &errs); ok {
				switch {
				case !filepath.IsAbs(s):
					errs.add(name, "must be an absolute directory path, got %q", s)
				case strings.ContainsAny(s, "\"'\\;{}$\n\r\t"):
					errs.add(name, "must not contain quotes, backslashes, ';', '{', '}', '$' or control characters, got %q", s)
				default:
					cfg.Dir = filepath.Clean(s)
				}
			}
		case "servers":
			cfg.Servers = readServers(value, &errs)
		case "server_template":
			if s, ok := readString(value, name, &errs); ok {
				checkTemplate(s, &errs)
				cfg.ServerTemplate = s
			}
		case "location":
			if s, ok := readString(value, name, &errs); ok {
				if !locationPath.MatchString(s) {
					errs.add(name, "must start with '/' and hold only letters, digits, '/', '.', '_' and '-', got %q", s)
				} else {
					cfg.Location = s
				}
			}
		case "hash_keys":
			cfg.HashKeys = readHashKeys(value, &errs)
		case "test_command", "reload_command":
			if s, ok := readString(value, name, &errs); ok {
				if strings.TrimSpace(s) == "" {
					errs.add(name, "must not be empty; leave it out for the default")
				} else if name == "test_command" {
					cfg.TestCommand = s
				} else {
					cfg.ReloadCommand = s
				}
			}
		case "start_command":
			if s, ok := readString(value, name, &errs); ok {
				checkCommand(name, s, &errs)
				cfg.StartCommand = strings.TrimSpace(s)
			}
		case "stop_command":
			if s, ok := readString(value, name, &errs); ok {
				checkCommand(name, s, &errs)
				cfg.StopCommand = strings.TrimSpace(s)
			}
		case "command_timeout":
			if s, ok := readString(value, name, &errs); ok {
				d, err := time.ParseDuration(s)
				switch {
				case err != nil:
					errs.add(name, "must be a duration such as \"30s\" or \"2m\", got %q", s)
				case d < minCommandTimeout || d > maxCommandTimeout:
					errs.add(name, "must be from %s to %s, got %s", minCommandTimeout, maxCommandTimeout, s)
				default:
					cfg.CommandTimeout = d
				}
			}
		case "reload_settle":
			if s, ok := readString(value, name, &errs); ok {
				d, err := time.ParseDuration(s)
				switch {
				case err != nil:
					errs.add(name, "must be a duration such as \"1s\" or \"0s\", got %q", s)
				case d < 0 || d > maxReloadSettle:
					errs.add(name, "must be from 0s to %s, got %s", maxReloadSettle, s)
				default:
					cfg.ReloadSettle = d
				}
			}
		default:
			errs.add(name, "is not an nginx setting; known settings are %s", knownFields)
		}
	}
	if _, ok := fields["dir"]; !ok || isNull(fields["dir"]) {
		errs.add("dir", "is required: the directory the driver writes %s and %s to", HTTPFile, ServerFile)
	}
	if len(cfg.Servers) == 0 && cfg.ServerTemplate == "" && !errs.has("servers") && !errs.has("server_template") {
		errs.add("servers", "set servers or server_template so the driver knows each version's addresses")
	}
	if err := errs.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readServers reads the servers object: version → list of host:port.
func readServers(raw json.RawMessage, errs *fieldErrors) map[string][]string {
	versions, ok := readObject(raw, "servers", errs)
	if !ok {
		return nil
	}
	servers := make(map[string][]string, len(versions))
	for _, version := range slices.Sorted(maps.Keys(versions)) {
		path := fmt.Sprintf("servers[%q]", version)
		if strings.TrimSpace(version) == "" {
			errs.add(path, "must name a version")
			continue
		}
		var list []string
		if err := json.Unmarshal(versions[version], &list); err != nil {
			errs.add(path, "must be a list of \"host:port\" addresses, got %s", versions[version])
			continue
		}
		if len(list) == 0 {
			errs.add(path, "must list at least one \"host:port\" address")
			continue
		}
		for i, addr := range list {
			if !hostPort.MatchString(addr) {
				errs.add(fmt.Sprintf("%s[%d]", path, i), "must be \"host:port\", such as \"10.0.0.5:8080\", got %q", addr)
			}
		}
		servers[version] = list
	}
	return servers
}

// checkTemplate checks a server_template: it must name {version} and read
// as an address once the placeholders are filled.
func checkTemplate(s string, errs *fieldErrors) {
	if !strings.Contains(s, "{version}") {
		errs.add("server_template", "must contain {version}, such as \"app-{version}:8080\", got %q", s)
		return
	}
	sample := strings.NewReplacer("{version}", "v1", "{index}", "1").Replace(s)
	if !hostPort.MatchString(sample) {
		errs.add("server_template", "must give \"host:port\" once {version} and {index} are filled in, got %q", s)
	}
}

// readHashKeys reads the hash_keys object: key → nginx variables.
func readHashKeys(raw json.RawMessage, errs *fieldErrors) map[string]string {
	keys, ok := readObject(raw, "hash_keys", errs)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(keys))
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		path := fmt.Sprintf("hash_keys[%q]", key)
		var expr string
		if json.Unmarshal(keys[key], &expr) != nil {
			errs.add(path, "must be a string of nginx variables such as \"$http_x_user_id\", got %s", keys[key])
			continue
		}
		if !variableList.MatchString(expr) {
			errs.add(path, "must be one or more nginx variables such as \"$http_x_user_id\" or \"$cookie_uid\", got %q", expr)
			continue
		}
		out[key] = expr
	}
	return out
}

// checkCommand checks a start or stop command.
func checkCommand(field, s string, errs *fieldErrors) {
	if strings.TrimSpace(s) == "" {
		errs.add(field, "must not be empty; leave it out to run nothing")
		return
	}
	if !strings.Contains(s, "{version}") && !strings.Contains(s, "$FLIGHTDECK_VERSION") && !strings.Contains(s, "${FLIGHTDECK_VERSION}") {
		errs.add(field, "must use {version} (or $FLIGHTDECK_VERSION) so it acts on one version, got %q", s)
	}
}

// readObject decodes a JSON object into its fields. Empty input and null
// count as an empty object.
func readObject(raw json.RawMessage, path string, errs *fieldErrors) (map[string]json.RawMessage, bool) {
	fields := map[string]json.RawMessage{}
	if isNull(raw) {
		return fields, true
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		if !json.Valid(raw) {
			errs.add(path, "is not valid JSON")
		} else {
			errs.add(path, "must be a JSON object, got %s", raw)
		}
		return nil, false
	}
	return fields, true
}

// readString decodes a JSON string, recording an error when the value is
// something else.
func readString(raw json.RawMessage, field string, errs *fieldErrors) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		errs.add(field, "must be a string, got %s", raw)
		return "", false
	}
	return s, true
}

// isNull reports whether raw is empty or the JSON null, which both mean a
// field was left out.
func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null"))
}

// fieldErrors collects configuration problems so validation can go on past
// the first one.
type fieldErrors []plan.FieldError

// add records a problem with one field.
func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// has reports whether a problem was recorded for field or a field under it.
func (e fieldErrors) has(field string) bool {
	for _, fe := range e {
		if fe.Field == field || strings.HasPrefix(fe.Field, field+"[") {
			return true
		}
	}
	return false
}

// err returns the problems as a *driver.ConfigError, or nil when there are
// none.
func (e fieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &driver.ConfigError{Type: Type, Errors: slices.Clone(e)}
}
