package promql

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// SourceType is the value of the "type" field that selects this source in an
// environment's metrics configuration.
const SourceType = "prometheus"

// The parts of a metric's query set. Count and Sum fill the additive fields
// of analysis.Window; the quantiles fill its per-window quantiles.
const (
	PartCount = "count"
	PartSum   = "sum"
	PartP50   = "p50"
	PartP95   = "p95"
	PartP99   = "p99"
)

// Parts lists every query part in the order results are assembled and
// errors are reported.
var Parts = []string{PartCount, PartSum, PartP50, PartP95, PartP99}

// Defaults and bounds of the configuration.
const (
	// DefaultTimeout bounds each query when the configuration sets none. It
	// is well below the engine's evaluation interval, so a hanging Prometheus
	// turns into an inconclusive evaluation instead of a stuck one.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout is the longest timeout accepted. A query that needs longer
	// is too expensive to run on every evaluation of every run.
	MaxTimeout = 60 * time.Second
	// DefaultStep is the window length when neither the query nor the
	// configuration sets one. A minute holds several scrapes at the usual
	// 15s–30s scrape intervals, which increase() needs to be meaningful.
	DefaultStep = time.Minute
	// MinStep and MaxStep bound the window length. Below a second PromQL
	// resolution ends; above an hour a window hides the trend the decision
	// looks for.
	MinStep = time.Second
	MaxStep = time.Hour
)

// Templates maps query parts (count, sum, p50, p95, p99) to PromQL text/template
// strings for one metric.
type Templates map[string]string

// Config is the prometheus source's part of an environment's settings.
type Config struct {
	// URL is the base address of the Prometheus HTTP API, such as
	// "http://prometheus:9090" or "https://user:password@host/prometheus".
	// Credentials in it are sent as basic auth and never shown in errors.
	URL string
	// Timeout bounds each query, both on the client and as Prometheus's own
	// evaluation timeout. Zero means DefaultTimeout.
	Timeout time.Duration
	// Step is the window length used when a query does not ask for one.
	// Zero means DefaultStep.
	Step time.Duration
	// Queries holds the templates per metric name (analysis.Metrics). A nil
	// map means DefaultQueries; a metric missing from a non-nil map is not
	// answered by this source.
	Queries map[string]Templates
}

// DefaultQueries returns the templates used for metrics the configuration
// does not mention. They follow the conventional instrumentation of HTTP
// services: a counter http_requests_total{app,version,code} and a histogram
// http_request_duration_seconds{app,version} in seconds. The error count ends
// in "or vector(0)" because the 5xx series of a healthy version often does not
// exist at all, which means no errors rather than no data.
func DefaultQueries() map[string]Templates {
	const (
		requests = `http_requests_total{app="{{.App}}",version="{{.Version}}"}`
		errored  = `http_requests_total{app="{{.App}}",version="{{.Version}}",code=~"5.."}`
		duration = `http_request_duration_seconds%s{app="{{.App}}",version="{{.Version}}"}`
	)
	increase := func(selector string) string {
		return "sum(increase(" + selector + "[{{.Step}}]))"
	}
	quantile := func(q string) string {
		return "histogram_quantile(" + q + ", sum by (le) (increase(" +
			fmt.Sprintf(duration, "_bucket") + "[{{.Step}}]))) * 1000"
	}
	return map[string]Templates{
		analysis.MetricErrorRate: {
			PartCount: increase(requests),
			PartSum:   increase(errored) + " or vector(0)",
		},
		analysis.MetricLatency: {
			PartCount: increase(fmt.Sprintf(duration, "_count")),
			PartSum:   increase(fmt.Sprintf(duration, "_sum")) + " * 1000",
			PartP50:   quantile("0.5"),
			PartP95:   quantile("0.95"),
			PartP99:   quantile("0.99"),
		},
	}
}

// ValidationError reports every problem found in a configuration at once, so
// the person editing an environment's settings sees all of them in one round
// trip. Field paths are relative to the metrics configuration object, such as
// "timeout" or "queries.latency.p99".
type ValidationError struct {
	Errors []plan.FieldError `json:"errors"`
}

// Error joins the field errors into one line for logs and CLI output.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return "invalid prometheus metric source: " + strings.Join(parts, "; ")
}

// fieldErrors collects problems so validation carries on past the first one.
type fieldErrors []plan.FieldError

// add records a problem with one field.
func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, plan.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the collected problems as a *ValidationError, or nil.
func (e fieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &ValidationError{Errors: slices.Clone(e)}
}

// topLevelFields lists the fields of the configuration object in the order
// they are read, so error messages can name them.
var topLevelFields = []string{"type", "url", "timeout", "step", "queries"}

// ParseConfig reads the prometheus source's configuration from an
// environment's metrics settings, fills in defaults (DefaultTimeout,
// DefaultStep, DefaultQueries for metrics not mentioned) and validates the
// result. Bad input yields a *ValidationError listing every problem.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var errs fieldErrors
	cfg := Config{Timeout: DefaultTimeout, Step: DefaultStep}

	var fields map[string]json.RawMessage
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		errs.add("url", "is required")
		return Config{}, errs.err()
	}
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		if json.Valid(trimmed) {
			errs.add("config", "must be a JSON object")
		} else {
			errs.add("config", "is not valid JSON: %s", err.Error())
		}
		return Config{}, errs.err()
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(topLevelFields, name) {
			errs.add(name, "is not a known field; known fields are %s", strings.Join(topLevelFields, ", "))
		}
	}

	if typ, ok := readString(fields, "type", "type", &errs); ok && typ != SourceType {
		errs.add("type", "must be %q for this source, got %q", SourceType, typ)
	}
	// Fields whose value could not be read skip the checks below, which
	// would only repeat the problem.
	unreadable := map[string]bool{}
	if u, ok := readString(fields, "url", "url", &errs); ok {
		cfg.URL = u
	} else if !isNull(fields["url"]) {
		unreadable["url"] = true
	}
	// A duration that does not parse is reported here and replaced by its
	// default, so the checks below do not report it a second time.
	if d, ok := readDuration(fields, "timeout", &errs); ok {
		cfg.Timeout = d
	}
	if d, ok := readDuration(fields, "step", &errs); ok {
		cfg.Step = d
	}

	cfg.Queries = DefaultQueries()
	if raw, ok := fields["queries"]; ok && !isNull(raw) {
		var metrics map[string]json.RawMessage
		if err := json.Unmarshal(raw, &metrics); err != nil {
			errs.add("queries", "must be an object of metric names to query templates")
		}
		for _, metric := range slices.Sorted(maps.Keys(metrics)) {
			path := "queries." + metric
			if isNull(metrics[metric]) {
				delete(cfg.Queries, metric)
				continue
			}
			var parts map[string]json.RawMessage
			if err := json.Unmarshal(metrics[metric], &parts); err != nil {
				errs.add(path, "must be an object of query parts (%s) to templates, or null to turn the metric off", strings.Join(Parts, ", "))
				unreadable[path] = true
				cfg.Queries[metric] = Templates{}
				continue
			}
			templates := Templates{}
			for _, part := range slices.Sorted(maps.Keys(parts)) {
				if text, ok := readString(parts, part, path+"."+part, &errs); ok {
					templates[part] = text
				} else {
					unreadable[path] = true
				}
			}
			cfg.Queries[metric] = templates
		}
	}

	validate(cfg, &errs, unreadable)
	if err := errs.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ValidateConfig checks a configuration built in code or read by
// ParseConfig, with zero Timeout and Step meaning their defaults. It returns
// a *ValidationError listing every problem, or nil.
func ValidateConfig(cfg Config) error {
	var errs fieldErrors
	validate(withDefaults(cfg), &errs, nil)
	return errs.err()
}

// withDefaults fills the zero fields of cfg with their defaults.
func withDefaults(cfg Config) Config {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Step == 0 {
		cfg.Step = DefaultStep
	}
	if cfg.Queries == nil {
		cfg.Queries = DefaultQueries()
	}
	return cfg
}

// validate records every problem of cfg. Paths in unreadable ("url", or a
// metric such as "queries.latency") had values that could not be read and
// were reported already, so the checks that would repeat that are skipped.
func validate(cfg Config, errs *fieldErrors, unreadable map[string]bool) {
	if msg := checkURL(cfg.URL); msg != "" && !unreadable["url"] {
		errs.add("url", "%s", msg)
	}
	if cfg.Timeout <= 0 || cfg.Timeout > MaxTimeout {
		errs.add("timeout", "must be a positive duration of at most %s, got %s", MaxTimeout, cfg.Timeout)
	}
	switch {
	case cfg.Step < MinStep || cfg.Step > MaxStep:
		errs.add("step", "must be between %s and %s, got %s", MinStep, MaxStep, cfg.Step)
	case cfg.Step%time.Millisecond != 0:
		errs.add("step", "must be a whole number of milliseconds, got %s", cfg.Step)
	}
	for _, metric := range slices.Sorted(maps.Keys(cfg.Queries)) {
		path := "queries." + metric
		if !slices.Contains(analysis.Metrics, metric) {
			errs.add(path, "is not a known metric; known metrics are %s", strings.Join(analysis.Metrics, ", "))
			continue
		}
		templates := cfg.Queries[metric]
		for _, part := range slices.Sorted(maps.Keys(templates)) {
			field := path + "." + part
			switch {
			case !slices.Contains(Parts, part):
				errs.add(field, "is not a known query part; known parts are %s", strings.Join(Parts, ", "))
				continue
			case part != PartCount && part != PartSum && metric != analysis.MetricLatency:
				errs.add(field, "quantiles are only reported for %s", analysis.MetricLatency)
				continue
			}
			if _, err := parseTemplate(field, templates[part]); err != nil {
				errs.add(field, "%s", err.Error())
			}
		}
		if unreadable[path] {
			continue
		}
		for _, part := range []string{PartCount, PartSum} {
			if _, ok := templates[part]; !ok {
				errs.add(path+"."+part, "is required: every metric needs a %q and a %q query; set the metric to null to turn it off", PartCount, PartSum)
			}
		}
	}
}

// checkURL returns what is wrong with the Prometheus address, or "". The
// message never repeats the address, which may carry a password.
func checkURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return "is required"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return `must be an http or https URL such as "http://prometheus:9090"`
	case u.Host == "":
		return "must name a host"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment"
	}
	return ""
}

// sampleData stands in for a real query when templates are checked, so a
// template that fails on a field name fails when the configuration is saved
// rather than during a run.
var sampleData = templateData(analysis.Query{
	App: "app", Environment: "production", RunID: 1, Cohort: "candidate", Version: "v1",
}, DefaultStep)

// parseTemplate parses one query template and executes it once with sample
// data, which catches references to fields that do not exist.
func parseTemplate(name, text string) (*template.Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("must not be empty")
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("is not a valid template: %s", trimTemplateError(err, name))
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, sampleData); err != nil {
		return nil, fmt.Errorf("cannot be filled in: %s; the fields are .App, .Environment, .Version, .Cohort, .RunID and .Step",
			trimTemplateError(err, name))
	}
	if strings.TrimSpace(out.String()) == "" {
		return nil, errors.New("renders an empty query")
	}
	return tmpl, nil
}

// trimTemplateError drops the "template: name:" prefix text/template puts
// on its errors, since the field path already says which template it is.
func trimTemplateError(err error, name string) string {
	return strings.TrimPrefix(err.Error(), "template: "+name+":")
}

// templateData is what a template sees for one query. String values are
// escaped for a double-quoted PromQL string, so a version such as `v2"}`
// cannot change the query. Empty values are left out, so that a template
// using one fails (missingkey=error) instead of matching every series.
func templateData(q analysis.Query, step time.Duration) map[string]any {
	data := map[string]any{"Step": model.Duration(step).String()}
	for key, value := range map[string]string{
		"App": q.App, "Environment": q.Environment, "Version": q.Version, "Cohort": q.Cohort,
	} {
		if value != "" {
			data[key] = escape(value)
		}
	}
	if q.RunID != 0 {
		data["RunID"] = q.RunID
	}
	return data
}

// escape makes s safe inside a double-quoted PromQL string, which follows
// Go's escaping rules.
func escape(s string) string {
	quoted := strconv.Quote(s)
	return quoted[1 : len(quoted)-1]
}

// readString reads the string field name of fields, recording a problem
// under path when it is present but not a string. It reports whether a
// string was read.
func readString(fields map[string]json.RawMessage, name, path string, errs *fieldErrors) (string, bool) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		errs.add(path, "must be a string")
		return "", false
	}
	return s, true
}

// readDuration reads a duration written as a string such as "5s" or "1m",
// recording a problem when it is not one. It reports whether one was read.
func readDuration(fields map[string]json.RawMessage, name string, errs *fieldErrors) (time.Duration, bool) {
	text, ok := readString(fields, name, name, errs)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(text))
	if err != nil {
		errs.add(name, `must be a duration such as "10s" or "1m", got %q`, text)
		return 0, false
	}
	return d, true
}

// isNull reports whether raw is empty or the JSON null.
func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null"))
}
