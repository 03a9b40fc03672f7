// Package push is the metric source for agents and CI that send samples to
// Flightdeck instead of being scraped. Ingest validates each sample of a
// batch on its own, adds the good ones up into 10-second windows per
// cohort and metric, and writes those windows with one COPY; Source reads
// them back for the rollback decision.
package push

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// Window is the length of the windows samples are added up into. Windows
// are aligned to the Unix epoch, so every replica and every batch puts a
// sample into the same window.
const Window = 10 * time.Second

// MaxClockSkew is how far ahead of Flightdeck's clock a sample's timestamp
// may be. A little allows for agents whose clocks run fast; more would let
// a wrong clock fill windows the decision has not reached yet.
const MaxClockSkew = 5 * time.Minute

// The cohorts a sample can belong to.
const (
	CohortCandidate = "candidate"
	CohortBaseline  = "baseline"
)

// ErrUnknownRun is returned when a batch names a run that does not exist.
var ErrUnknownRun = errors.New("unknown run")

// Subject is what a batch of samples reports on: a run, or the guarded
// rollout of a feature flag, whose cohorts are the variant being released
// and the one the other users keep.
type Subject struct {
	ID int64
	// Name is how messages refer to the subject: "run 12".
	Name string
	// CreatedAt is when the subject began; earlier samples cannot be
	// about it.
	CreatedAt time.Time
	// Label is what samples name their cohort by besides cohort:
	// "version" for runs, "variant" for flag rollouts.
	Label string
	// Candidate and Baseline are the version (or variant) of each cohort;
	// Baseline is empty when only the candidate serves.
	Candidate string
	Baseline  string
	// Change says what the subject changes, for messages:
	// "deploys v2 over v1".
	Change string
}

// RunSubject is the subject of a run's samples.
func RunSubject(run store.Run) Subject {
	change := fmt.Sprintf("deploys %s over %s", run.ToVersion, run.FromVersion)
	if run.FromVersion == "" {
		change = fmt.Sprintf("deploys %s as a first release", run.ToVersion)
	}
	return Subject{
		ID: run.ID, Name: fmt.Sprintf("run %d", run.ID), CreatedAt: run.CreatedAt, Label: "version",
		Candidate: run.ToVersion, Baseline: run.FromVersion, Change: change,
	}
}

// metricRule says what a metric's Sum counts, so validation can keep it
// within what the analysis assumes.
type metricRule struct {
	// sumIs names what Sum adds up, for messages.
	sumIs string
	// fraction means every observation is between 0 and 1, so Sum never
	// exceeds Count.
	fraction bool
	// valueHint says what a single value means, for messages.
	valueHint string
}

var rules = map[string]metricRule{
	analysis.MetricErrorRate:    {sumIs: "failed requests", fraction: true, valueHint: "1 for a failed request, 0 for a good one"},
	analysis.MetricLatency:      {sumIs: "total latency in ms", valueHint: "the request's latency in ms"},
	analysis.MetricHealthChecks: {sumIs: "failed health checks", fraction: true, valueHint: "1 for a failed check, 0 for a passed one"},
	analysis.MetricCPU:          {sumIs: "utilisation, each sample from 0 to 1", fraction: true, valueHint: "utilisation from 0 to 1"},
	analysis.MetricMemory:       {sumIs: "utilisation, each sample from 0 to 1", fraction: true, valueHint: "utilisation from 0 to 1"},
	analysis.MetricConversion:   {sumIs: "users who converted", fraction: true, valueHint: "1 for a user who converted, 0 otherwise"},
	analysis.MetricResponseDiff: {sumIs: "responses that differed", fraction: true, valueHint: "1 for a response that differed from the primary's, 0 otherwise"},
}

// metricNames lists the accepted metrics in the order messages name them.
var metricNames = []string{
	analysis.MetricErrorRate, analysis.MetricLatency, analysis.MetricHealthChecks,
	analysis.MetricCPU, analysis.MetricMemory, analysis.MetricConversion, analysis.MetricResponseDiff,
}

// maxCount bounds a sample's count. A trillion observations in one sample
// is already absurd; the bound keeps the sum of a whole batch of them far
// from overflowing a window's count.
const maxCount = 1_000_000_000_000

// RunStore is what ingest needs from the store.
type RunStore interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	InsertMetricWindows(ctx context.Context, windows []store.MetricWindow) (int64, error)
}

// Ingester validates batches of samples and writes them as metric windows.
// It keeps no state between batches, so any number of replicas can ingest
// side by side.
type Ingester struct {
	store RunStore
	now   func() time.Time
}

// NewIngester returns an Ingester writing to st. now is the clock that
// future timestamps are judged by; nil means the wall clock.
func NewIngester(st RunStore, now func() time.Time) *Ingester {
	if now == nil {
		now = time.Now
	}
	return &Ingester{store: st, now: now}
}

// Rejection names a sample that was refused and every reason why.
type Rejection struct {
	// Index is the sample's position in the batch, from 0.
	Index  int      `json:"index"`
	Errors []string `json:"errors"`
}

// Result says what became of a batch.
type Result struct {
	// Accepted counts the samples that were kept.
	Accepted int `json:"accepted"`
	// Rejected lists the samples that were refused, in batch order.
	Rejected []Rejection `json:"rejected"`
	// WindowsWritten counts the metric window rows the accepted samples
	// were added up into.
	WindowsWritten int64 `json:"windows_written"`
}

// Ingest validates every sample of the batch against run runID, adds the
// good ones up into windows and writes them with one COPY. Bad samples are
// listed in the result and do not stop the good ones. A run that does not
// exist is ErrUnknownRun and nothing is written.
func (in *Ingester) Ingest(ctx context.Context, runID int64, b Batch) (Result, error) {
	run, err := in.store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, fmt.Errorf("run %d: %w", runID, ErrUnknownRun)
	}
	if err != nil {
		return Result{}, fmt.Errorf("reading run %d: %w", runID, err)
	}
	windows, res := Prepare(RunSubject(run), in.now(), b)
	if len(windows) == 0 {
		return res, nil
	}
	n, err := in.store.InsertMetricWindows(ctx, windows)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, fmt.Errorf("run %d: %w", runID, ErrUnknownRun)
	}
	if err != nil {
		return Result{}, fmt.Errorf("writing metric windows of run %d: %w", runID, err)
	}
	res.WindowsWritten = n
	return res, nil
}

// Prepare validates a batch about sub and adds the accepted samples up into
// windows, whose RunID is the subject's ID. It is pure, so every rule is
// tested without a database.
func Prepare(sub Subject, now time.Time, b Batch) ([]store.MetricWindow, Result) {
	res := Result{Rejected: []Rejection{}}
	obs := make([]observation, 0, len(b.Samples))
	for i := range b.Samples {
		o, reasons := validate(sub, now, &b.Samples[i])
		if len(reasons) > 0 {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Errors: reasons})
			continue
		}
		obs = append(obs, o)
	}
	res.Accepted = len(obs)
	return aggregate(sub.ID, obs), res
}

// observation is a validated sample, ready to be added to its window.
type observation struct {
	cohort string
	metric string
	// start is the window's start in Unix nanoseconds.
	start int64
	count int64
	sum   float64
	// shape is what is known of the latency distribution: one point, a
	// histogram, or nothing (added-up count and sum).
	shape shape
	point float64
	hist  histogram
}

type shape int

const (
	shapeUnknown shape = iota
	shapePoint
	shapeHistogram
)

// validate checks one sample and returns it as an observation, or every
// reason it cannot be accepted.
func validate(sub Subject, now time.Time, s *Sample) (observation, []string) {
	if s.decodeErr != "" {
		return observation{}, []string{s.decodeErr}
	}
	var reasons []string
	fail := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }
	var o observation

	rule, known := rules[s.Metric]
	switch {
	case s.Metric == "":
		fail("metric is missing; use one of %s", strings.Join(metricNames, ", "))
	case !known:
		fail("metric %q is unknown; use one of %s", truncate(s.Metric), strings.Join(metricNames, ", "))
	}
	o.metric = s.Metric

	o.cohort = cohortOf(sub, s, fail)

	switch ts, err := time.Parse(time.RFC3339, s.Timestamp); {
	case s.Timestamp == "":
		fail("timestamp is missing; give an RFC 3339 time such as 2026-03-01T12:00:00Z")
	case err != nil:
		fail("timestamp %q is not an RFC 3339 time such as 2026-03-01T12:00:00Z", truncate(s.Timestamp))
	case ts.After(now.Add(MaxClockSkew)):
		fail("timestamp %s is more than %s ahead of the server's clock (%s)",
			ts.UTC().Format(time.RFC3339Nano), minutes(MaxClockSkew), now.UTC().Format(time.RFC3339))
	case ts.Before(sub.CreatedAt):
		fail("timestamp %s is before %s was created (%s)",
			ts.UTC().Format(time.RFC3339Nano), sub.Name, sub.CreatedAt.UTC().Format(time.RFC3339Nano))
	default:
		ns := ts.UnixNano()
		o.start = ns - mod(ns, int64(Window))
	}

	hasValue, hasCount, hasSum, hasBuckets := s.Value.present(), s.Count.present(), s.Sum.present(), s.Buckets != nil
	switch {
	case hasValue && (hasCount || hasSum || hasBuckets):
		fail("give value alone, or count and sum, or buckets; not value together with them")
	case hasValue:
		v, ok := finite("value", s.Value, fail)
		if ok && known {
			switch {
			case rule.fraction && (v < 0 || v > 1):
				fail("value %s is out of range for %s: use %s", format(v), s.Metric, rule.valueHint)
			case v < 0:
				fail("value %s must not be negative: use %s", format(v), rule.valueHint)
			}
		}
		o.count, o.sum = 1, v
		o.shape, o.point = shapePoint, v
	case hasBuckets:
		if known && s.Metric != analysis.MetricLatency {
			fail("buckets are only accepted for latency; send count and sum for %s", s.Metric)
			break
		}
		h, ok := parseBuckets(s.Buckets, fail)
		if !ok {
			break
		}
		o.count, o.sum = h.total(), h.midpointSum()
		o.shape, o.hist = shapeHistogram, h
		if hasCount {
			if c, ok := wholeCount(s.Count, fail); ok && c != o.count {
				fail("count %d does not match the %d observations in buckets", c, o.count)
			}
		}
		if hasSum {
			if v, ok := finite("sum", s.Sum, fail); ok {
				if v < 0 {
					fail("sum %s must not be negative", format(v))
				}
				o.sum = v
			}
		}
	default:
		if !hasCount {
			fail("count is missing; give value, or count and sum")
		}
		if !hasSum {
			fail("sum is missing; give value, or count and sum")
		}
		c, cok := int64(0), false
		if hasCount {
			c, cok = wholeCount(s.Count, fail)
		}
		v, sok := 0.0, false
		if hasSum {
			v, sok = finite("sum", s.Sum, fail)
		}
		switch {
		case sok && v < 0:
			fail("sum %s must not be negative", format(v))
		case sok && cok && known && rule.fraction && v > float64(c):
			fail("sum (%s) %s exceeds count %d", rule.sumIs, format(v), c)
		}
		o.count, o.sum = c, v
	}
	if len(reasons) > 0 {
		return observation{}, reasons
	}
	return o, nil
}

// cohortOf finds the sample's cohort from its cohort or its version (a
// flag rollout's samples may name it variant).
func cohortOf(sub Subject, s *Sample, fail func(string, ...any)) string {
	cohort := s.Cohort
	if s.Cohort != "" && s.Cohort != CohortCandidate && s.Cohort != CohortBaseline {
		fail("cohort %q is unknown; use %s or %s", truncate(s.Cohort), CohortCandidate, CohortBaseline)
		cohort = ""
	}
	named := s.Version
	switch {
	case s.Variant != "" && sub.Label != "variant":
		fail("variant is for the samples of a flag rollout; give the version the sample comes from")
		return ""
	case s.Variant != "" && s.Version != "" && s.Variant != s.Version:
		fail("version %q and variant %q disagree; give one of them", truncate(s.Version), truncate(s.Variant))
		return ""
	case s.Variant != "":
		named = s.Variant
	}
	if named == "" {
		if s.Cohort == "" {
			fail("cohort or %s is missing; give cohort (%s or %s) or the %s the sample comes from", sub.Label, CohortCandidate, CohortBaseline, sub.Label)
		}
		return cohort
	}
	var byName string
	switch named {
	case sub.Candidate:
		byName = CohortCandidate
	case sub.Baseline:
		byName = CohortBaseline
	}
	switch {
	case byName == "":
		fail("%s %q is not part of %s, which %s", sub.Label, truncate(named), sub.Name, sub.Change)
	case cohort != "" && cohort != byName:
		fail("%s %q is the %s of %s, but cohort says %s", sub.Label, named, byName, sub.Name, cohort)
	}
	return byName
}

// finite reads a number that must be finite.
func finite(name string, n Number, fail func(string, ...any)) (float64, bool) {
	switch {
	case n.Null:
		fail("%s is null; JSON has no NaN, and JavaScript writes NaN as null", name)
	case n.Invalid != "":
		fail("%s is not a number: %s", name, n.Invalid)
	case math.IsNaN(n.Value):
		fail("%s is NaN", name)
	case math.IsInf(n.Value, 0):
		fail("%s is infinite", name)
	default:
		return n.Value, true
	}
	return 0, false
}

// wholeCount reads a count: a whole number of observations.
func wholeCount(n Number, fail func(string, ...any)) (int64, bool) {
	v, ok := finite("count", n, fail)
	if !ok {
		return 0, false
	}
	if v < 0 || v != math.Trunc(v) || v > maxCount {
		fail("count must be a whole number from 0 to 10^12, got %s", format(v))
		return 0, false
	}
	return int64(v), true
}

// parseBuckets reads a latency histogram; see Sample for its shape.
func parseBuckets(buckets map[string]Number, fail func(string, ...any)) (histogram, bool) {
	if len(buckets) == 0 {
		fail("buckets is empty; give at least one upper bound in ms with its count")
		return histogram{}, false
	}
	var h histogram
	ok := true
	keys := make([]string, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys) // for a stable order of messages
	for _, key := range keys {
		n := buckets[key]
		c, cok := bucketCount(key, n, fail)
		bound, err := strconv.ParseFloat(strings.TrimSpace(key), 64)
		switch {
		case err == nil && math.IsInf(bound, 1):
			h.overflow += c
		case err != nil || math.IsNaN(bound) || math.IsInf(bound, -1):
			fail("buckets: %q is not an upper bound in ms; use numbers such as \"250\", and \"+Inf\" for the rest", truncate(key))
			ok = false
		case bound < 0:
			fail("buckets: upper bound %s must not be negative", key)
			ok = false
		default:
			h.bounds = append(h.bounds, bound)
			h.counts = append(h.counts, c)
		}
		ok = ok && cok
	}
	if !ok {
		return histogram{}, false
	}
	if len(h.bounds) == 0 {
		fail("buckets need at least one finite upper bound besides +Inf")
		return histogram{}, false
	}
	h.sort()
	if t := h.total(); t > maxCount {
		fail("buckets hold %d observations, more than 10^12", t)
		return histogram{}, false
	}
	return h, true
}

func bucketCount(key string, n Number, fail func(string, ...any)) (int64, bool) {
	var bad string
	v, ok := finite("bucket "+strconv.Quote(truncate(key)), n, func(f string, args ...any) { bad = fmt.Sprintf(f, args...) })
	switch {
	case !ok:
		fail("buckets: %s", bad)
	case v < 0 || v != math.Trunc(v) || v > maxCount:
		fail("buckets: bucket %q must count a whole number of observations, got %s", truncate(key), format(v))
	default:
		return int64(v), true
	}
	return 0, false
}

// aggregate adds observations up into one window per cohort, metric and
// window start, so a batch writes a handful of rows however many samples
// it holds. Windows come out sorted, so a batch always writes the same rows
// in the same order.
func aggregate(runID int64, obs []observation) []store.MetricWindow {
	type key struct {
		cohort, metric string
		start          int64
	}
	type acc struct {
		count   int64
		sum     float64
		unknown bool
		pieces  []piece
	}
	groups := make(map[key]*acc)
	for i := range obs {
		o := &obs[i]
		k := key{o.cohort, o.metric, o.start}
		a := groups[k]
		if a == nil {
			a = &acc{}
			groups[k] = a
		}
		a.count += o.count
		a.sum += o.sum
		if o.metric != analysis.MetricLatency || o.count == 0 {
			continue
		}
		switch o.shape {
		case shapePoint:
			a.pieces = append(a.pieces, piece{lo: o.point, hi: o.point, weight: 1})
		case shapeHistogram:
			a.pieces = o.hist.appendPieces(a.pieces)
		default:
			// Without the distribution of these observations no quantile
			// of the window can be right, so the window gets none.
			a.unknown = true
		}
	}
	out := make([]store.MetricWindow, 0, len(groups))
	for k, a := range groups {
		start := time.Unix(0, k.start).UTC()
		w := store.MetricWindow{
			RunID: runID, Cohort: k.cohort, Metric: k.metric,
			Start: start, End: start.Add(Window), Count: a.count, Sum: a.sum,
		}
		if !a.unknown && len(a.pieces) > 0 {
			q := quantiles(a.pieces, []float64{0.50, 0.95, 0.99})
			w.P50, w.P95, w.P99 = &q[0], &q[1], &q[2]
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b store.MetricWindow) int {
		return cmp.Or(cmp.Compare(a.Cohort, b.Cohort), cmp.Compare(a.Metric, b.Metric), a.Start.Compare(b.Start))
	})
	return out
}

// mod is the remainder that is never negative, so times before the epoch
// would also fall into the window that contains them.
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func format(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func minutes(d time.Duration) string {
	return strconv.Itoa(int(d/time.Minute)) + " minutes"
}
