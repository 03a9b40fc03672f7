package promql

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
)

// ErrNoData marks an evaluation for which Prometheus had no series at all,
// such as a version that is not running or not scraped yet. Callers can tell
// it apart from a failing server, but both are inconclusive, never a pass.
var ErrNoData = errors.New("no data")

const (
	// maxPointsPerQuery keeps each range query below Prometheus's limit of
	// 11,000 points per series; longer ranges are split into several queries.
	maxPointsPerQuery = 10_000
	// maxWindows bounds one call, so a zero or mistaken From cannot make the
	// source issue thousands of queries.
	maxWindows = 100_000
	// maxConcurrentQueries bounds the queries one call runs at once, so one
	// evaluation does not take all of Prometheus's query slots.
	maxConcurrentQueries = 4
)

// Source answers analysis queries from a Prometheus server. It is safe for
// concurrent use; each call runs its own queries.
type Source struct {
	cfg       Config
	api       v1.API
	templates map[string]map[string]*template.Template
	host      string
}

var _ analysis.Source = (*Source)(nil)

// New builds a source from a configuration, as read by ParseConfig or built
// in code (zero Timeout and Step mean their defaults, nil Queries means
// DefaultQueries). An invalid configuration yields a *ValidationError.
func New(cfg Config) (*Source, error) {
	cfg = withDefaults(cfg)
	if err := ValidateConfig(cfg); err != nil {
		return nil, err
	}
	client, err := api.NewClient(api.Config{Address: cfg.URL})
	if err != nil {
		// The underlying error repeats the URL, which may hold a password.
		return nil, errors.New("creating the Prometheus client: the URL cannot be used")
	}
	u, _ := url.Parse(cfg.URL)
	s := &Source{
		cfg:       cfg,
		api:       v1.NewAPI(client),
		templates: map[string]map[string]*template.Template{},
		host:      u.Host,
	}
	for metric, templates := range cfg.Queries {
		s.templates[metric] = map[string]*template.Template{}
		for part, text := range templates {
			tmpl, err := parseTemplate("queries."+metric+"."+part, text)
			if err != nil {
				return nil, fmt.Errorf("queries.%s.%s: %w", metric, part, err)
			}
			s.templates[metric][part] = tmpl
		}
	}
	return s, nil
}

// Metrics lists the metrics this source answers, in the order of
// analysis.Metrics.
func (s *Source) Metrics() []string {
	var out []string
	for _, m := range analysis.Metrics {
		if _, ok := s.templates[m]; ok {
			out = append(out, m)
		}
	}
	return out
}

// grid is the set of evaluation times of one call: n timestamps, step apart,
// starting at first. The window of timestamp t is [t-step, t), which is what
// increase(…[step]) evaluated at t covers.
type grid struct {
	first time.Time
	step  time.Duration
	n     int
}

// newGrid places the windows of [from, to] on a grid of multiples of step
// since the Unix epoch, so windows of successive evaluations line up and can
// be stored by their start. Only whole windows inside [from, to] are
// reported: a window still in progress would undercount, and one starting
// before from would mix in traffic from before the change being judged.
func newGrid(from, to time.Time, step time.Duration) grid {
	stepMs := step.Milliseconds()
	fromMs := from.UnixMilli()
	if from.After(time.UnixMilli(fromMs)) {
		fromMs++
	}
	firstEnd := ceilDiv(fromMs, stepMs)*stepMs + stepMs
	lastEnd := floorDiv(to.UnixMilli(), stepMs) * stepMs
	g := grid{first: time.UnixMilli(firstEnd).UTC(), step: step}
	if lastEnd >= firstEnd {
		g.n = int((lastEnd-firstEnd)/stepMs) + 1
	}
	return g
}

// at is the evaluation time of window i, which is also its end.
func (g grid) at(i int) time.Time {
	return g.first.Add(time.Duration(i) * g.step)
}

// index is the window whose evaluation time is ts, and whether ts is one.
func (g grid) index(ts model.Time) (int, bool) {
	offset := ts.Time().Sub(g.first)
	i := int(math.Round(float64(offset) / float64(g.step)))
	if i < 0 || i >= g.n || (offset-time.Duration(i)*g.step).Abs() > time.Millisecond {
		return 0, false
	}
	return i, true
}

// Windows runs the templates of each requested metric over [q.From, q.To]
// and returns one window per step, oldest first. Metrics without templates
// are left out of the map. A range too short for one whole window yields
// empty slices. Any failure, including a metric with no series at all, is
// returned as an error naming the metric and query part.
func (s *Source) Windows(ctx context.Context, q analysis.Query, metrics []string) (map[string][]analysis.Window, error) {
	step := q.Step
	if step == 0 {
		step = s.cfg.Step
	}
	switch {
	case step < MinStep || step%time.Millisecond != 0:
		return nil, fmt.Errorf("prometheus source: step %s must be at least %s and a whole number of milliseconds", step, MinStep)
	case q.From.IsZero() || q.To.IsZero():
		return nil, errors.New("prometheus source: the query needs both From and To")
	case q.To.Before(q.From):
		return nil, fmt.Errorf("prometheus source: To %s is before From %s", q.To.Format(time.RFC3339), q.From.Format(time.RFC3339))
	}
	g := newGrid(q.From, q.To, step)
	if g.n > maxWindows {
		return nil, fmt.Errorf("prometheus source: %s to %s in steps of %s is %d windows, more than %d; use a longer step",
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), step, g.n, maxWindows)
	}

	var wanted []string
	for _, m := range metrics {
		if _, ok := s.templates[m]; ok && !slices.Contains(wanted, m) {
			wanted = append(wanted, m)
		}
	}
	out := make(map[string][]analysis.Window, len(wanted))
	if g.n == 0 {
		for _, m := range wanted {
			out[m] = []analysis.Window{}
		}
		return out, nil
	}

	data := templateData(q, step)
	results := map[string]map[string]*result{}
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxConcurrentQueries)
	for _, metric := range wanted {
		results[metric] = map[string]*result{}
		for part, tmpl := range s.templates[metric] {
			r := &result{}
			results[metric][part] = r
			var text strings.Builder
			if err := tmpl.Execute(&text, data); err != nil {
				r.err = fmt.Errorf("filling in the template: %s", trimTemplateError(err, tmpl.Name()))
				continue
			}
			r.query = text.String()
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				s.run(ctx, r, g)
			})
		}
	}
	wg.Wait()

	var errs []error
	for _, metric := range wanted {
		windows, err := s.assemble(ctx, q, metric, results[metric], g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[metric] = windows
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// result is what one query part returned: its value per window index.
type result struct {
	query    string
	values   map[int]float64
	warnings v1.Warnings
	err      error
}

// run executes one query over the grid, split into ranges Prometheus
// accepts, each under the configured timeout.
func (s *Source) run(ctx context.Context, r *result, g grid) {
	r.values = map[int]float64{}
	for start := 0; start < g.n; start += maxPointsPerQuery {
		end := min(start+maxPointsPerQuery, g.n) - 1
		qctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		value, warnings, _, err := s.api.QueryRange(qctx, r.query,
			v1.Range{Start: g.at(start), End: g.at(end), Step: g.step}, v1.WithTimeout(s.cfg.Timeout))
		cancel()
		r.warnings = append(r.warnings, warnings...)
		if err != nil {
			r.err = fmt.Errorf("querying Prometheus: %w", s.describeError(err))
			return
		}
		matrix, ok := value.(model.Matrix)
		if !ok {
			kind := "nothing"
			if value != nil {
				kind = "a " + value.Type().String()
			}
			r.err = fmt.Errorf("Prometheus returned %s instead of a range of values", kind)
			return
		}
		if len(matrix) > 1 {
			labels := make([]string, 0, 2)
			for _, stream := range matrix[:2] {
				labels = append(labels, stream.Metric.String())
			}
			r.err = fmt.Errorf("returned %d series (%s, …); the template must aggregate them into one, for example with sum()",
				len(matrix), strings.Join(labels, ", "))
			return
		}
		for _, stream := range matrix {
			if len(stream.Histograms) > 0 {
				r.err = errors.New("returned native histograms; the template must turn them into numbers, for example with histogram_quantile() or histogram_count()")
				return
			}
			for _, p := range stream.Values {
				if i, ok := g.index(p.Timestamp); ok {
					r.values[i] = float64(p.Value)
				}
			}
		}
	}
}

// describeError turns a client error into one that names the server by its
// host only: the URL of a request may carry a password or a token.
func (s *Source) describeError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = fmt.Errorf("%s %s: %w", urlErr.Op, s.host, urlErr.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)
	}
	return err
}

// assemble turns the results of one metric's queries into windows, or
// returns the first problem in the order of Parts.
func (s *Source) assemble(ctx context.Context, q analysis.Query, metric string, results map[string]*result, g grid) ([]analysis.Window, error) {
	for _, part := range Parts {
		r, ok := results[part]
		if !ok {
			continue
		}
		if r.err != nil {
			return nil, fmt.Errorf("the %s query of %s for %s: %w", part, metric, describeQuery(q), r.err)
		}
		if len(r.values) == 0 && (part == PartCount || part == PartSum) {
			detail := fmt.Sprintf("for %s of %s between %s and %s: the %s query returned no series",
				metric, describeQuery(q), q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339), part)
			if len(r.warnings) > 0 {
				detail += "; Prometheus warned: " + strings.Join(r.warnings, "; ")
			}
			return nil, fmt.Errorf("%w %s; query: %s", ErrNoData, detail, r.query)
		}
		if len(r.warnings) > 0 {
			slog.WarnContext(ctx, "prometheus query returned warnings",
				"metric", metric, "part", part, "warnings", strings.Join(r.warnings, "; "))
		}
	}

	counts, sums := results[PartCount], results[PartSum]
	windows := make([]analysis.Window, 0, len(counts.values))
	for _, i := range slices.Sorted(maps.Keys(counts.values)) {
		end := g.at(i)
		at := end.Format(time.RFC3339)
		count := counts.values[i]
		switch {
		case math.IsNaN(count) || math.IsInf(count, 0):
			return nil, fmt.Errorf("the count query of %s for %s is %v at %s", metric, describeQuery(q), count, at)
		case count < 0 || count >= math.MaxInt64:
			return nil, fmt.Errorf("the count query of %s for %s is %v at %s, which is not a number of samples", metric, describeQuery(q), count, at)
		}
		sum, ok := sums.values[i]
		switch {
		case !ok:
			return nil, fmt.Errorf("the sum query of %s for %s has no value at %s where the count query has one; end it in \"or vector(0)\" when no series means zero",
				metric, describeQuery(q), at)
		case math.IsNaN(sum) || math.IsInf(sum, 0):
			return nil, fmt.Errorf("the sum query of %s for %s is %v at %s", metric, describeQuery(q), sum, at)
		}
		w := analysis.Window{Start: end.Add(-g.step), End: end, Count: int64(math.Round(count)), Sum: sum}
		for part, field := range map[string]**float64{PartP50: &w.P50, PartP95: &w.P95, PartP99: &w.P99} {
			r, ok := results[part]
			if !ok {
				continue
			}
			v, ok := r.values[i]
			switch {
			case !ok || math.IsNaN(v):
				// No traffic in the window: there is no quantile, which is
				// different from a quantile of zero.
			case math.IsInf(v, 0):
				return nil, fmt.Errorf("the %s query of %s for %s is %v at %s: the histogram's highest finite bucket is below that quantile; add a larger bucket",
					part, metric, describeQuery(q), v, at)
			default:
				*field = &v
			}
		}
		windows = append(windows, w)
	}
	return windows, nil
}

// describeQuery names the cohort of a query for error messages, the way a
// release manager would: version, cohort, app and environment.
func describeQuery(q analysis.Query) string {
	var details []string
	for _, d := range []string{q.Cohort, q.App, q.Environment} {
		if d != "" {
			details = append(details, d)
		}
	}
	who := q.Version
	if who == "" {
		who = "the " + cmp.Or(q.Cohort, "queried") + " cohort"
	}
	if len(details) > 0 {
		who += " (" + strings.Join(details, ", ") + ")"
	}
	return who
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// ceilDiv divides rounding towards positive infinity.
func ceilDiv(a, b int64) int64 {
	return -floorDiv(-a, b)
}
