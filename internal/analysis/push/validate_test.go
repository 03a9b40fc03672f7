package push

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

// created is when the test run was created; now is the ingest clock.
var (
	created = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now     = created.Add(time.Hour)
	testRun = store.Run{ID: 7, FromVersion: "v1", ToVersion: "v2", CreatedAt: created}
)

func ts(t time.Time) string { return t.Format(time.RFC3339Nano) }

// good is a valid sample that each case below breaks in one way.
func good() Sample {
	return Sample{Cohort: "candidate", Metric: "error_rate", Timestamp: ts(now.Add(-time.Minute)), Count: Num(100), Sum: Num(3)}
}

func TestValidationNamesEveryReason(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mutate func(*Sample)
		want   []string
	}{
		"unknown metric": {func(s *Sample) { s.Metric = "latncy" }, []string{`metric "latncy" is unknown; use one of error_rate, latency, health_checks, cpu, memory, conversion, response_diff`}},
		"missing metric": {func(s *Sample) { s.Metric = "" }, []string{"metric is missing"}},
		"no cohort or version": {func(s *Sample) { s.Cohort = "" }, []string{
			"cohort or version is missing; give cohort (candidate or baseline) or the version the sample comes from"}},
		"unknown cohort": {func(s *Sample) { s.Cohort = "canary" }, []string{`cohort "canary" is unknown; use candidate or baseline`}},
		"version not in the run": {func(s *Sample) { s.Cohort, s.Version = "", "v3" }, []string{
			`version "v3" is not part of run 7, which deploys v2 over v1`}},
		"version and cohort disagree": {func(s *Sample) { s.Version = "v1" }, []string{
			`version "v1" is the baseline of run 7, but cohort says candidate`}},
		"NaN value":      {func(s *Sample) { s.Count, s.Sum, s.Value = Number{}, Number{}, Num(math.NaN()) }, []string{"value is NaN"}},
		"infinite count": {func(s *Sample) { s.Count = Num(math.Inf(1)) }, []string{"count is infinite"}},
		"null sum": {func(s *Sample) { s.Sum = Number{Null: true} }, []string{
			"sum is null; JSON has no NaN, and JavaScript writes NaN as null"}},
		"count is text":     {func(s *Sample) { s.Count = Number{Invalid: `"lots"`} }, []string{`count is not a number: "lots"`}},
		"negative count":    {func(s *Sample) { s.Count = Num(-3) }, []string{"count must be a whole number from 0 to 10^12, got -3"}},
		"fractional count":  {func(s *Sample) { s.Count = Num(2.5) }, []string{"count must be a whole number from 0 to 10^12, got 2.5"}},
		"negative sum":      {func(s *Sample) { s.Sum = Num(-1) }, []string{"sum -1 must not be negative"}},
		"errors over count": {func(s *Sample) { s.Count, s.Sum = Num(10), Num(12) }, []string{"sum (failed requests) 12 exceeds count 10"}},
		"cpu over count": {func(s *Sample) { s.Metric, s.Count, s.Sum = "cpu", Num(2), Num(2.5) }, []string{
			"sum (utilisation, each sample from 0 to 1) 2.5 exceeds count 2"}},
		"future timestamp": {func(s *Sample) { s.Timestamp = ts(now.Add(6 * time.Minute)) }, []string{
			"timestamp 2026-03-01T13:06:00Z is more than 5 minutes ahead of the server's clock (2026-03-01T13:00:00Z)"}},
		"before the run": {func(s *Sample) { s.Timestamp = ts(created.Add(-time.Second)) }, []string{
			"timestamp 2026-03-01T11:59:59Z is before run 7 was created (2026-03-01T12:00:00Z)"}},
		"bad timestamp": {func(s *Sample) { s.Timestamp = "yesterday" }, []string{
			`timestamp "yesterday" is not an RFC 3339 time such as 2026-03-01T12:00:00Z`}},
		"missing timestamp": {func(s *Sample) { s.Timestamp = "" }, []string{"timestamp is missing"}},
		"no measurement": {func(s *Sample) { s.Count, s.Sum = Number{}, Number{} }, []string{
			"count is missing; give value, or count and sum", "sum is missing; give value, or count and sum"}},
		"value and count": {func(s *Sample) { s.Value = Num(1) }, []string{
			"give value alone, or count and sum, or buckets; not value together with them"}},
		"value out of range": {func(s *Sample) { s.Count, s.Sum, s.Value = Number{}, Number{}, Num(2) }, []string{
			"value 2 is out of range for error_rate: use 1 for a failed request, 0 for a good one"}},
		"negative latency": {func(s *Sample) { s.Metric, s.Count, s.Sum, s.Value = "latency", Number{}, Number{}, Num(-1) }, []string{
			"value -1 must not be negative: use the request's latency in ms"}},
		"buckets for error rate": {func(s *Sample) {
			s.Count, s.Sum, s.Buckets = Number{}, Number{}, map[string]Number{"10": Num(1)}
		}, []string{"buckets are only accepted for latency; send count and sum for error_rate"}},
		"bucket bound is not a number": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Number{}, Number{}, map[string]Number{"fast": Num(1), "10": Num(2)}
		}, []string{`buckets: "fast" is not an upper bound in ms; use numbers such as "250", and "+Inf" for the rest`}},
		"negative bucket count": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Number{}, Number{}, map[string]Number{"10": Num(-1)}
		}, []string{`buckets: bucket "10" must count a whole number of observations, got -1`}},
		"NaN bucket count": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Number{}, Number{}, map[string]Number{"10": Num(math.NaN())}
		}, []string{`buckets: bucket "10" is NaN`}},
		"only overflow bucket": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Number{}, Number{}, map[string]Number{"+Inf": Num(4)}
		}, []string{"buckets need at least one finite upper bound besides +Inf"}},
		"bucket total differs from count": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Num(5), Number{}, map[string]Number{"10": Num(1), "20": Num(2)}
		}, []string{"count 5 does not match the 3 observations in buckets"}},
		"several faults at once": {func(s *Sample) { s.Metric, s.Cohort, s.Timestamp = "latncy", "", "" }, []string{
			`metric "latncy" is unknown`, "cohort or version is missing", "timestamp is missing"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := good()
			tc.mutate(&s)
			_, reasons := validate(RunSubject(testRun), now, &s)
			require.Len(t, reasons, len(tc.want), "reasons: %q", reasons)
			for i, want := range tc.want {
				require.True(t, strings.HasPrefix(reasons[i], want), "reason %d is %q, want it to start with %q", i, reasons[i], want)
			}
		})
	}
}

func TestValidSamples(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mutate     func(*Sample)
		cohort     string
		count      int64
		sum        float64
		windowFrom time.Time
	}{
		"cohort and count":            {func(*Sample) {}, "candidate", 100, 3, now.Add(-time.Minute)},
		"candidate version":           {func(s *Sample) { s.Cohort, s.Version = "", "v2" }, "candidate", 100, 3, now.Add(-time.Minute)},
		"baseline version":            {func(s *Sample) { s.Cohort, s.Version = "", "v1" }, "baseline", 100, 3, now.Add(-time.Minute)},
		"agreeing cohort and version": {func(s *Sample) { s.Cohort, s.Version = "baseline", "v1" }, "baseline", 100, 3, now.Add(-time.Minute)},
		"one failed request":          {func(s *Sample) { s.Count, s.Sum, s.Value = Number{}, Number{}, Num(1) }, "candidate", 1, 1, now.Add(-time.Minute)},
		"zero traffic":                {func(s *Sample) { s.Count, s.Sum = Num(0), Num(0) }, "candidate", 0, 0, now.Add(-time.Minute)},
		"at the clock's edge": {func(s *Sample) { s.Timestamp = ts(now.Add(MaxClockSkew)) }, "candidate", 100, 3,
			now.Add(MaxClockSkew)},
		"at the run's start": {func(s *Sample) { s.Timestamp = "2026-03-01T13:00:07.5+01:00" }, "candidate", 100, 3, created},
		"latency histogram": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Number{}, Number{}, map[string]Number{"10": Num(10), "20": Num(10)}
		}, "candidate", 20, 200, now.Add(-time.Minute)},
		"histogram with exact figures": {func(s *Sample) {
			s.Metric, s.Count, s.Sum, s.Buckets = "latency", Num(20), Num(187.5), map[string]Number{"10": Num(10), "20": Num(10)}
		}, "candidate", 20, 187.5, now.Add(-time.Minute)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := good()
			tc.mutate(&s)
			o, reasons := validate(RunSubject(testRun), now, &s)
			require.Empty(t, reasons)
			require.Equal(t, tc.cohort, o.cohort)
			require.Equal(t, tc.count, o.count)
			require.InDelta(t, tc.sum, o.sum, 1e-9)
			require.Equal(t, tc.windowFrom.Truncate(Window).UnixNano(), o.start, "windows are aligned to 10 seconds")
		})
	}
}

func TestRejectedSamplesDoNotStopTheOthers(t *testing.T) {
	t.Parallel()
	bad := good()
	bad.Metric = "latncy"
	alsoBad := good()
	alsoBad.Count = Num(math.NaN())
	windows, res := Prepare(RunSubject(testRun), now, Batch{Samples: []Sample{good(), bad, good(), alsoBad}})
	require.Equal(t, 2, res.Accepted)
	require.Equal(t, []Rejection{
		{Index: 1, Errors: []string{`metric "latncy" is unknown; use one of error_rate, latency, health_checks, cpu, memory, conversion, response_diff`}},
		{Index: 3, Errors: []string{"count is NaN"}},
	}, res.Rejected)
	require.Len(t, windows, 1, "the two good samples share a window")
	require.Equal(t, int64(200), windows[0].Count)
	require.Equal(t, 6.0, windows[0].Sum)
}

func TestFirstReleaseHasNoBaselineVersion(t *testing.T) {
	t.Parallel()
	run := testRun
	run.FromVersion = ""
	s := good()
	s.Cohort, s.Version = "", "v1"
	_, reasons := validate(RunSubject(run), now, &s)
	require.Equal(t, []string{`version "v1" is not part of run 7, which deploys v2 as a first release`}, reasons)
}
