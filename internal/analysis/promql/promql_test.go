package promql

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// A full configuration, with every metric written out.
const fullConfig = `{
	"type": "prometheus",
	"url": "http://127.0.0.1:9090",
	"timeout": "5s",
	"step": "30s",
	"queries": {
		"error_rate": {
			"count": "sum(increase(http_requests_total{app=\"{{.App}}\",version=\"{{.Version}}\"}[{{.Step}}]))",
			"sum": "sum(increase(http_requests_total{app=\"{{.App}}\",version=\"{{.Version}}\",code=~\"5..\"}[{{.Step}}]))"
		},
		"latency": {
			"count": "sum(increase(http_request_duration_seconds_count{version=\"{{.Version}}\"}[{{.Step}}]))",
			"sum": "sum(increase(http_request_duration_seconds_sum{version=\"{{.Version}}\"}[{{.Step}}])) * 1000",
			"p99": "histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket{version=\"{{.Version}}\"}[{{.Step}}]))) * 1000"
		},
		"health_checks": {
			"count": "sum(increase(probe_total{env=\"{{.Environment}}\",cohort=\"{{.Cohort}}\"}[{{.Step}}]))",
			"sum": "sum(increase(probe_failed_total{env=\"{{.Environment}}\",cohort=\"{{.Cohort}}\"}[{{.Step}}]))"
		},
		"cpu": {
			"count": "count(count_over_time(cpu_utilisation{run=\"{{.RunID}}\"}[{{.Step}}]))",
			"sum": "sum(avg_over_time(cpu_utilisation{run=\"{{.RunID}}\"}[{{.Step}}]))"
		},
		"memory": null
	}
}`

func TestParseConfigMinimalUsesDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(json.RawMessage(`{"type":"prometheus","url":"http://prometheus:9090"}`))
	require.NoError(t, err)
	require.Equal(t, Config{
		URL:     "http://prometheus:9090",
		Timeout: DefaultTimeout,
		Step:    DefaultStep,
		Queries: DefaultQueries(),
	}, cfg)

	// The type may be left out when the caller has already picked the source.
	_, err = ParseConfig(json.RawMessage(`{"url":"https://user:pw@prom.example/prefix"}`))
	require.NoError(t, err)
}

func TestParseConfigFull(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(json.RawMessage(fullConfig))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, cfg.Timeout)
	require.Equal(t, 30*time.Second, cfg.Step)
	require.ElementsMatch(t, []string{analysis.MetricErrorRate, analysis.MetricLatency, analysis.MetricHealthChecks, analysis.MetricCPU},
		keys(cfg.Queries), "memory: null turns the metric off; the rest are as written")
	require.NotContains(t, cfg.Queries[analysis.MetricErrorRate][PartSum], "vector(0)", "a metric written out replaces its default")
	require.NotContains(t, cfg.Queries[analysis.MetricLatency], PartP50)

	src, err := New(cfg)
	require.NoError(t, err)
	require.Equal(t, []string{analysis.MetricErrorRate, analysis.MetricLatency, analysis.MetricHealthChecks, analysis.MetricCPU}, src.Metrics())

	// Turning a default off leaves the other default in place.
	cfg, err = ParseConfig(json.RawMessage(`{"url":"http://p:9090","queries":{"latency":null}}`))
	require.NoError(t, err)
	require.Equal(t, []string{analysis.MetricErrorRate}, keys(cfg.Queries))
}

func TestParseConfigRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []plan.FieldError // Message holds a part of the expected message.
	}{
		{"empty", ``, []plan.FieldError{{Field: "url", Message: "is required"}}},
		{"null", `null`, []plan.FieldError{{Field: "url", Message: "is required"}}},
		{"bad JSON", `{"url":`, []plan.FieldError{{Field: "config", Message: "is not valid JSON"}}},
		{"not an object", `["http://p:9090"]`, []plan.FieldError{{Field: "config", Message: "must be a JSON object"}}},
		{"no url", `{"type":"prometheus"}`, []plan.FieldError{{Field: "url", Message: "is required"}}},
		{"blank url", `{"url":"  "}`, []plan.FieldError{{Field: "url", Message: "is required"}}},
		{"url not a string", `{"url":9090}`, []plan.FieldError{{Field: "url", Message: "must be a string"}}},
		{"url without scheme", `{"url":"prometheus:9090"}`, []plan.FieldError{{Field: "url", Message: "http or https"}}},
		{"url of another scheme", `{"url":"ftp://prometheus"}`, []plan.FieldError{{Field: "url", Message: "http or https"}}},
		{"url without host", `{"url":"http:///api"}`, []plan.FieldError{{Field: "url", Message: "must name a host"}}},
		{"url with fragment", `{"url":"http://p:9090/#x"}`, []plan.FieldError{{Field: "url", Message: "fragment"}}},
		{"url that does not parse", `{"url":"http://p:99999999999999999999/\u007f"}`, []plan.FieldError{{Field: "url", Message: "not a valid URL"}}},
		{"wrong type", `{"type":"push","url":"http://p:9090"}`, []plan.FieldError{{Field: "type", Message: `must be "prometheus"`}}},
		{"unknown field", `{"url":"http://p:9090","address":"x"}`, []plan.FieldError{{Field: "address", Message: "not a known field"}}},
		{"timeout not a duration", `{"url":"http://p:9090","timeout":"soon"}`, []plan.FieldError{{Field: "timeout", Message: "must be a duration"}}},
		{"timeout a number", `{"url":"http://p:9090","timeout":5}`, []plan.FieldError{{Field: "timeout", Message: "must be a string"}}},
		{"timeout zero", `{"url":"http://p:9090","timeout":"0s"}`, []plan.FieldError{{Field: "timeout", Message: "positive duration of at most 1m0s"}}},
		{"timeout negative", `{"url":"http://p:9090","timeout":"-1s"}`, []plan.FieldError{{Field: "timeout", Message: "positive"}}},
		{"timeout too long", `{"url":"http://p:9090","timeout":"61s"}`, []plan.FieldError{{Field: "timeout", Message: "at most 1m0s"}}},
		{"step too short", `{"url":"http://p:9090","step":"500ms"}`, []plan.FieldError{{Field: "step", Message: "between 1s and 1h0m0s"}}},
		{"step too long", `{"url":"http://p:9090","step":"2h"}`, []plan.FieldError{{Field: "step", Message: "between"}}},
		{"step below a millisecond", `{"url":"http://p:9090","step":"1.0000001s"}`, []plan.FieldError{{Field: "step", Message: "whole number of milliseconds"}}},
		{"queries not an object", `{"url":"http://p:9090","queries":[]}`, []plan.FieldError{{Field: "queries", Message: "must be an object"}}},
		{"unknown metric", `{"url":"http://p:9090","queries":{"errors":{"count":"up","sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.errors", Message: "not a known metric; known metrics are error_rate, latency"},
		}},
		{"metric not an object", `{"url":"http://p:9090","queries":{"cpu":"avg(cpu)"}}`, []plan.FieldError{
			{Field: "queries.cpu", Message: "or null to turn the metric off"},
		}},
		{"unknown part", `{"url":"http://p:9090","queries":{"cpu":{"count":"up","sum":"up","avg":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.avg", Message: "not a known query part; known parts are count, sum, p50, p95, p99"},
		}},
		{"quantile of a metric without quantiles", `{"url":"http://p:9090","queries":{"error_rate":{"count":"up","sum":"up","p99":"up"}}}`, []plan.FieldError{
			{Field: "queries.error_rate.p99", Message: "only reported for latency"},
		}},
		{"missing count", `{"url":"http://p:9090","queries":{"cpu":{"sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "is required"},
		}},
		{"empty metric", `{"url":"http://p:9090","queries":{"cpu":{}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "is required"},
			{Field: "queries.cpu.sum", Message: "set the metric to null to turn it off"},
		}},
		{"part not a string", `{"url":"http://p:9090","queries":{"cpu":{"count":1,"sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "must be a string"},
		}},
		{"empty template", `{"url":"http://p:9090","queries":{"cpu":{"count":" ","sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "must not be empty"},
		}},
		{"template that does not parse", `{"url":"http://p:9090","queries":{"cpu":{"count":"up{v=\"{{.Version\"}","sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "is not a valid template"},
		}},
		{"template with an unknown field", `{"url":"http://p:9090","queries":{"cpu":{"count":"up{v=\"{{.Release}}\"}","sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: `cannot be filled in: 1:8: executing "queries.cpu.count" at <.Release>: map has no entry for key "Release"`},
		}},
		{"template that renders nothing", `{"url":"http://p:9090","queries":{"cpu":{"count":"{{if false}}up{{end}}","sum":"up"}}}`, []plan.FieldError{
			{Field: "queries.cpu.count", Message: "renders an empty query"},
		}},
		{"everything wrong at once", `{"type":"x","url":"p","timeout":"1h","step":"1ms","extra":1,"queries":{"cpu":{"sum":"{{.Nope}}"}}}`, []plan.FieldError{
			{Field: "extra", Message: "not a known field"},
			{Field: "type", Message: "must be"},
			{Field: "url", Message: "http or https"},
			{Field: "timeout", Message: "at most"},
			{Field: "step", Message: "between"},
			{Field: "queries.cpu.sum", Message: "cannot be filled in"},
			{Field: "queries.cpu.count", Message: "is required"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(json.RawMessage(tt.raw))
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			require.Len(t, verr.Errors, len(tt.want), "%v", verr.Errors)
			for i, want := range tt.want {
				require.Equal(t, want.Field, verr.Errors[i].Field, "%v", verr.Errors)
				require.Contains(t, verr.Errors[i].Message, want.Message)
			}
			require.True(t, strings.HasPrefix(err.Error(), "invalid prometheus metric source: "), err.Error())
		})
	}
}

func TestConfigErrorsNeverShowTheURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"url":"ftp://user:s3cret@prometheus"}`,
		`{"url":"http://user:s3cret@:9090#frag"}`,
		`{"url":"http://user:s3cret@p:99999999999999999999/\u007f"}`,
	} {
		_, err := ParseConfig(json.RawMessage(raw))
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret")
	}
}

func TestValidateConfigInCode(t *testing.T) {
	t.Parallel()
	require.NoError(t, ValidateConfig(Config{URL: "http://p:9090"}), "zero values mean the defaults")
	err := ValidateConfig(Config{URL: "http://p:9090", Timeout: -time.Second, Queries: map[string]Templates{
		analysis.MetricLatency: {PartCount: "up", PartSum: "up", "p999": "up"},
	}})
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, []string{"timeout", "queries.latency.p999"}, fields(verr))

	_, err = New(Config{URL: "http://p:9090", Queries: map[string]Templates{"cpu": {PartCount: "{{"}}})
	require.ErrorAs(t, err, &verr)
	require.Equal(t, []string{"queries.cpu.count", "queries.cpu.sum"}, fields(verr))
}

func TestDefaultTemplatesRender(t *testing.T) {
	t.Parallel()
	src, err := New(Config{URL: "http://p:9090"})
	require.NoError(t, err)
	q := analysis.Query{App: "checkout", Environment: "production", RunID: 42, Cohort: "candidate", Version: "v2"}
	render := func(metric, part string, q analysis.Query, step time.Duration) string {
		var out strings.Builder
		require.NoError(t, src.templates[metric][part].Execute(&out, templateData(q, step)))
		return out.String()
	}
	require.Equal(t, `sum(increase(http_requests_total{app="checkout",version="v2"}[30s]))`,
		render(analysis.MetricErrorRate, PartCount, q, 30*time.Second))
	require.Equal(t, `sum(increase(http_requests_total{app="checkout",version="v2",code=~"5.."}[1m30s])) or vector(0)`,
		render(analysis.MetricErrorRate, PartSum, q, 90*time.Second))
	require.Equal(t, `sum(increase(http_request_duration_seconds_sum{app="checkout",version="v2"}[1m])) * 1000`,
		render(analysis.MetricLatency, PartSum, q, time.Minute))
	require.Equal(t, `histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket{app="checkout",version="v2"}[1s500ms]))) * 1000`,
		render(analysis.MetricLatency, PartP99, q, 1500*time.Millisecond))

	// A version cannot break out of its string and change the query.
	q.Version = `v2"} or vector(1) or x{a="\`
	require.Equal(t, `sum(increase(http_requests_total{app="checkout",version="v2\"} or vector(1) or x{a=\"\\"}[30s]))`,
		render(analysis.MetricErrorRate, PartCount, q, 30*time.Second))

	// A field the query lacks fails rather than matching every version.
	q.Version = ""
	err = src.templates[analysis.MetricErrorRate][PartCount].Execute(new(strings.Builder), templateData(q, time.Minute))
	require.ErrorContains(t, err, `map has no entry for key "Version"`)
}

func TestNewGrid(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		from, to    time.Time
		step        time.Duration
		first       time.Time
		n           int
		description string
	}{
		{"aligned", base, base.Add(5 * time.Minute), time.Minute, base.Add(time.Minute), 5, "windows 12:00–12:05"},
		{"unaligned", base.Add(10 * time.Second), base.Add(5*time.Minute + 50*time.Second), time.Minute, base.Add(2 * time.Minute), 4, "12:01–12:05, only whole windows"},
		{"sub-millisecond from", base.Add(time.Nanosecond), base.Add(3 * time.Minute), time.Minute, base.Add(2 * time.Minute), 2, "the window starting before from is left out"},
		{"shorter than a step", base.Add(10 * time.Second), base.Add(50 * time.Second), time.Minute, base.Add(2 * time.Minute), 0, "no whole window"},
		{"empty", base, base, time.Minute, base.Add(time.Minute), 0, "from == to"},
		{"odd step", base, base.Add(time.Minute), 7 * time.Second, time.UnixMilli(ceilDiv(base.UnixMilli(), 7000)*7000 + 7000).UTC(), 8, "multiples of 7s since the epoch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGrid(tt.from, tt.to, tt.step)
			require.Equal(t, tt.n, g.n, tt.description)
			if g.n == 0 {
				return
			}
			require.Equal(t, tt.first, g.first, tt.description)
			require.False(t, g.at(0).Add(-tt.step).Before(tt.from))
			require.False(t, g.at(g.n-1).After(tt.to))
			i, ok := g.index(promTime(g.at(g.n - 1)))
			require.True(t, ok)
			require.Equal(t, g.n-1, i)
			_, ok = g.index(promTime(g.at(g.n)))
			require.False(t, ok, "past the last window")
			_, ok = g.index(promTime(g.at(0).Add(tt.step / 2)))
			require.False(t, ok, "between two windows")
		})
	}
	require.Equal(t, int64(-2), floorDiv(-3, 2))
	require.Equal(t, int64(-2), floorDiv(-4, 2))
	require.Equal(t, int64(-1), ceilDiv(-3, 2))
	require.Equal(t, int64(2), ceilDiv(3, 2))
}

// fakeResponse is what the fake Prometheus answers to one query.
type fakeResponse struct {
	status int
	body   string
	delay  time.Duration
}

// fakeRequest is one query_range request the fake Prometheus received.
type fakeRequest struct {
	query           string
	start, end      float64
	step            string
	timeoutInParams string
}

// fakePrometheus serves query_range with answers chosen by answer, for the
// error paths a real Prometheus does not easily produce. It records every
// request.
func fakePrometheus(t *testing.T, answer func(r fakeRequest) fakeResponse) (string, func() []fakeRequest) {
	t.Helper()
	var (
		mu       sync.Mutex
		requests []fakeRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" || r.ParseForm() != nil {
			http.NotFound(w, r)
			return
		}
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		req := fakeRequest{query: r.Form.Get("query"), start: start, end: end, step: r.Form.Get("step"), timeoutInParams: r.Form.Get("timeout")}
		mu.Lock()
		requests = append(requests, req)
		mu.Unlock()
		resp := answer(req)
		if resp.delay > 0 {
			select {
			case <-time.After(resp.delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(cmp.Or(resp.status, http.StatusOK))
		_, _ = w.Write([]byte(resp.body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []fakeRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]fakeRequest(nil), requests...)
	}
}

// matrix renders a successful range answer with one series per entry of
// series, each a list of [unix seconds, value] points.
func matrix(warnings []string, series ...[][2]string) string {
	type stream struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	result := []stream{}
	for i, points := range series {
		s := stream{Metric: map[string]string{"series": strconv.Itoa(i)}}
		for _, p := range points {
			sec, _ := strconv.ParseFloat(p[0], 64)
			s.Values = append(s.Values, [2]any{sec, p[1]})
		}
		result = append(result, s)
	}
	body, _ := json.Marshal(map[string]any{
		"status":   "success",
		"data":     map[string]any{"resultType": "matrix", "result": result},
		"warnings": warnings,
	})
	return string(body)
}

// fakeConfig is a source over the fake server with one template per part,
// so the fake can tell the parts apart by the query text.
func fakeConfig(url string) Config {
	return Config{URL: url, Timeout: 2 * time.Second, Step: time.Minute, Queries: map[string]Templates{
		analysis.MetricLatency: {
			PartCount: `count{v="{{.Version}}"}`, PartSum: `sum{v="{{.Version}}"}`,
			PartP50: `p50{v="{{.Version}}"}`, PartP99: `p99{v="{{.Version}}"}`,
		},
		analysis.MetricErrorRate: {PartCount: `ecount{v="{{.Version}}"}`, PartSum: `esum{v="{{.Version}}"}`},
	}}
}

var fakeBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fakeQuery(version string) analysis.Query {
	return analysis.Query{App: "checkout", Environment: "production", Cohort: "candidate", Version: version,
		From: fakeBase, To: fakeBase.Add(3*time.Minute + 20*time.Second)}
}

// at is the unix time of fakeBase plus minutes, as the fake writes it.
func at(minutes int) string {
	return strconv.FormatInt(fakeBase.Add(time.Duration(minutes)*time.Minute).Unix(), 10)
}

func TestWindowsAssemblesAlignedWindows(t *testing.T) {
	t.Parallel()
	url, requests := fakePrometheus(t, func(r fakeRequest) fakeResponse {
		switch {
		case strings.HasPrefix(r.query, "count"):
			// Minute 1 has no value at all: no window for it.
			return fakeResponse{body: matrix(nil, [][2]string{{at(2), "99.6"}, {at(3), "0"}})}
		case strings.HasPrefix(r.query, "sum"):
			return fakeResponse{body: matrix(nil, [][2]string{{at(1), "5"}, {at(2), "1234.5"}, {at(3), "0"}})}
		case strings.HasPrefix(r.query, "p50"):
			return fakeResponse{body: matrix(nil)}
		case strings.HasPrefix(r.query, "p99"):
			return fakeResponse{body: matrix(nil, [][2]string{{at(2), "250"}, {at(3), "NaN"}})}
		}
		return fakeResponse{status: http.StatusBadRequest, body: `{"status":"error","errorType":"bad_data","error":"unexpected query"}`}
	})
	src, err := New(fakeConfig(url))
	require.NoError(t, err)

	got, err := src.Windows(t.Context(), fakeQuery("v2"), []string{analysis.MetricLatency, "conversion", analysis.MetricLatency, "nonsense"})
	require.NoError(t, err)
	require.Equal(t, []string{analysis.MetricLatency}, keys(got), "metrics without templates are left out")
	p99 := 250.0
	require.Equal(t, []analysis.Window{
		{Start: fakeBase.Add(time.Minute), End: fakeBase.Add(2 * time.Minute), Count: 100, Sum: 1234.5, P99: &p99},
		{Start: fakeBase.Add(2 * time.Minute), End: fakeBase.Add(3 * time.Minute), Count: 0, Sum: 0},
	}, got[analysis.MetricLatency])

	reqs := requests()
	require.Len(t, reqs, 4, "one query per part, duplicates asked once")
	for _, r := range reqs {
		require.Equal(t, float64(fakeBase.Add(time.Minute).Unix()), r.start, "the first whole window ends a step after From")
		require.Equal(t, float64(fakeBase.Add(3*time.Minute).Unix()), r.end, "the last whole window ends before To")
		require.Equal(t, "60", r.step)
		require.Equal(t, "2s", r.timeoutInParams, "Prometheus stops evaluating when the client gives up")
		require.Contains(t, r.query, `{v="v2"}`)
	}

	// The caller's step wins over the configured one.
	q := fakeQuery("v2")
	q.Step = 100 * time.Second
	q.To = q.From.Add(10 * time.Minute)
	_, _ = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.Equal(t, "100", requests()[len(reqs)].step)
}

func TestWindowsShorterThanAStep(t *testing.T) {
	t.Parallel()
	url, requests := fakePrometheus(t, func(fakeRequest) fakeResponse { return fakeResponse{body: matrix(nil)} })
	src, err := New(fakeConfig(url))
	require.NoError(t, err)
	q := fakeQuery("v2")
	q.From, q.To = fakeBase.Add(10*time.Second), fakeBase.Add(50*time.Second)
	got, err := src.Windows(t.Context(), q, []string{analysis.MetricErrorRate, analysis.MetricLatency})
	require.NoError(t, err)
	require.Equal(t, map[string][]analysis.Window{analysis.MetricErrorRate: {}, analysis.MetricLatency: {}}, got)
	require.Empty(t, requests(), "nothing to ask for before a whole window has passed")
}

func TestWindowsSplitsLongRanges(t *testing.T) {
	t.Parallel()
	url, requests := fakePrometheus(t, func(r fakeRequest) fakeResponse {
		var points [][2]string
		for s := r.start; s <= r.end; s++ {
			points = append(points, [2]string{strconv.FormatFloat(s, 'f', -1, 64), "1"})
		}
		return fakeResponse{body: matrix(nil, points)}
	})
	cfg := fakeConfig(url)
	cfg.Step = time.Second
	src, err := New(cfg)
	require.NoError(t, err)
	q := fakeQuery("v2")
	q.To = q.From.Add(25_000 * time.Second)
	got, err := src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.NoError(t, err)
	windows := got[analysis.MetricErrorRate]
	require.Len(t, windows, 25_000)
	for i, w := range windows {
		require.Equal(t, q.From.Add(time.Duration(i)*time.Second), w.Start)
		require.Equal(t, int64(1), w.Count)
	}
	require.Len(t, requests(), 6, "three ranges of at most 10,000 points for each of two parts")

	q.To = q.From.Add(time.Duration(maxWindows+1) * time.Second)
	_, err = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.ErrorContains(t, err, "use a longer step")
}

func TestWindowsErrors(t *testing.T) {
	t.Parallel()
	count := fakeResponse{body: matrix(nil, [][2]string{{at(1), "10"}, {at(2), "10"}, {at(3), "10"}})}
	tests := []struct {
		name    string
		answer  func(r fakeRequest) fakeResponse
		want    []string
		noData  bool
		timeout time.Duration
	}{
		{
			name:   "server error",
			answer: func(fakeRequest) fakeResponse { return fakeResponse{status: 500, body: "boom"} },
			want:   []string{"the count query of latency for v2 (candidate, checkout, production): querying Prometheus: server_error: server error: 500"},
		},
		{
			name: "bad request",
			answer: func(fakeRequest) fakeResponse {
				return fakeResponse{status: 400, body: `{"status":"error","errorType":"bad_data","error":"parse error at char 3"}`}
			},
			want: []string{"the count query of latency", "bad_data: parse error at char 3"},
		},
		{
			name: "malformed JSON",
			answer: func(fakeRequest) fakeResponse {
				return fakeResponse{body: `{"status":"success","data":{"resultType":"matrix","result":[{`}
			},
			want: []string{"the count query of latency", "querying Prometheus: bad_response"},
		},
		{
			name: "not a range",
			answer: func(fakeRequest) fakeResponse {
				return fakeResponse{body: `{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`}
			},
			want: []string{"the count query of latency", "Prometheus returned a scalar instead of a range of values"},
		},
		{
			name: "several series",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "sum") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "1"}}, [][2]string{{at(1), "2"}}, [][2]string{{at(1), "3"}})}
				}
				return count
			},
			want: []string{"the sum query of latency", `returned 3 series ({series="0"}, {series="1"}, …); the template must aggregate them into one`},
		},
		{
			name: "no series",
			answer: func(r fakeRequest) fakeResponse {
				return fakeResponse{body: matrix([]string{"PromQL info: metric might not be a counter"})}
			},
			noData: true,
			want: []string{
				"no data for latency of v2 (candidate, checkout, production) between 2026-03-01T12:00:00Z and 2026-03-01T12:03:20Z: the count query returned no series; Prometheus warned: PromQL info: metric might not be a counter; query: count{v=\"v2\"}",
			},
		},
		{
			name: "no series for the sum",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "sum") {
					return fakeResponse{body: matrix(nil)}
				}
				return count
			},
			noData: true,
			want:   []string{"no data for latency of v2", "the sum query returned no series"},
		},
		{
			name: "sum missing in a window",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "sum") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "1"}, {at(3), "1"}})}
				}
				return count
			},
			want: []string{"the sum query of latency for v2 (candidate, checkout, production) has no value at 2026-03-01T12:02:00Z where the count query has one"},
		},
		{
			name: "NaN count",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "count") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "NaN"}})}
				}
				return count
			},
			want: []string{"the count query of latency for v2 (candidate, checkout, production) is NaN at 2026-03-01T12:01:00Z"},
		},
		{
			name: "infinite count",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "count") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "+Inf"}})}
				}
				return count
			},
			want: []string{"the count query of latency", "is +Inf at"},
		},
		{
			name: "negative count",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "count") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "-3"}})}
				}
				return count
			},
			want: []string{"is -3 at 2026-03-01T12:01:00Z, which is not a number of samples"},
		},
		{
			name: "NaN sum",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "sum") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(1), "NaN"}, {at(2), "1"}, {at(3), "1"}})}
				}
				return count
			},
			want: []string{"the sum query of latency for v2 (candidate, checkout, production) is NaN at 2026-03-01T12:01:00Z"},
		},
		{
			name: "infinite quantile",
			answer: func(r fakeRequest) fakeResponse {
				if strings.HasPrefix(r.query, "p99") {
					return fakeResponse{body: matrix(nil, [][2]string{{at(2), "+Inf"}})}
				}
				return count
			},
			want: []string{"the p99 query of latency for v2 (candidate, checkout, production) is +Inf at 2026-03-01T12:02:00Z", "add a larger bucket"},
		},
		{
			name: "timeout",
			answer: func(r fakeRequest) fakeResponse {
				return fakeResponse{delay: 5 * time.Second, body: matrix(nil)}
			},
			timeout: 100 * time.Millisecond,
			want:    []string{"the count query of latency", "querying Prometheus: no answer within 100ms", "context deadline exceeded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := fakePrometheus(t, tt.answer)
			cfg := fakeConfig(url)
			if tt.timeout > 0 {
				cfg.Timeout = tt.timeout
			}
			src, err := New(cfg)
			require.NoError(t, err)
			started := time.Now()
			got, err := src.Windows(t.Context(), fakeQuery("v2"), []string{analysis.MetricLatency})
			require.Error(t, err)
			require.Nil(t, got, "a failing source reports no windows at all")
			for _, want := range tt.want {
				require.Contains(t, err.Error(), want)
			}
			require.Equal(t, tt.noData, errors.Is(err, ErrNoData), err.Error())
			if tt.timeout > 0 {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Less(t, time.Since(started), 3*time.Second)
			}
		})
	}
}

func TestWindowsRejectsBadQueries(t *testing.T) {
	t.Parallel()
	url, requests := fakePrometheus(t, func(fakeRequest) fakeResponse { return fakeResponse{body: matrix(nil)} })
	src, err := New(fakeConfig(url))
	require.NoError(t, err)

	q := fakeQuery("")
	_, err = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.ErrorContains(t, err, `the count query of error_rate for the candidate cohort (candidate, checkout, production): filling in the template: `)
	require.ErrorContains(t, err, `map has no entry for key "Version"`)

	q = fakeQuery("v2")
	q.Step = 10 * time.Millisecond
	_, err = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.ErrorContains(t, err, "step 10ms must be at least 1s")

	q = fakeQuery("v2")
	q.From, q.To = q.To, q.From
	_, err = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.ErrorContains(t, err, "is before From")

	q = fakeQuery("v2")
	q.From = time.Time{}
	_, err = src.Windows(t.Context(), q, []string{analysis.MetricErrorRate})
	require.ErrorContains(t, err, "needs both From and To")
	require.Empty(t, requests())
}

func TestWindowsErrorsNeverShowCredentials(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	for _, u := range []string{
		"http://flightdeck:s3cret@127.0.0.1:" + port,
		"http://127.0.0.1:" + port + "/prefix?token=s3cret",
	} {
		src, err := New(Config{URL: u})
		require.NoError(t, err)
		_, err = src.Windows(t.Context(), fakeQuery("v2"), []string{analysis.MetricErrorRate})
		require.ErrorContains(t, err, "connection refused")
		require.ErrorContains(t, err, "127.0.0.1:"+port)
		require.NotContains(t, err.Error(), "s3cret")
	}
}

// freePort returns a loopback TCP port that nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return port
}

// prometheusBinary finds the Prometheus server. Outside CI a machine without
// it skips the real-server test; in CI a missing binary fails, so the test
// can never be skipped without anyone noticing.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("prometheus"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the prometheus binary is needed in CI: install the Debian package prometheus")
	}
	t.Skip("prometheus is not installed (Debian package prometheus); skipping the real-server test")
	return ""
}

// startTestApp serves /metrics for two versions of an app "checkout" that a
// goroutine keeps busy: 1,000 requests a second each, v1 failing 1% and
// answering in 20ms (2% in 60ms), v2 failing 10% and answering in 80ms (10% in
// 400ms). It returns the address Prometheus should scrape.
func startTestApp(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests by version and status code.",
	}, []string{"app", "version", "code"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "HTTP request latency.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	}, []string{"app", "version"})
	reg.MustRegister(requests, durations)

	type profile struct {
		version               string
		errorsPer100          int
		fast, slow            float64
		slowPer100            int
		served, failed, slowN int
	}
	profiles := []*profile{
		{version: "v1", errorsPer100: 1, fast: 0.02, slow: 0.06, slowPer100: 2},
		{version: "v2", errorsPer100: 10, fast: 0.08, slow: 0.4, slowPer100: 10},
	}
	serve := func(p *profile) {
		p.served++
		code := "200"
		if p.failed*100 < p.served*p.errorsPer100 {
			p.failed++
			code = "500"
		}
		latency := p.fast
		if p.slowN*100 < p.served*p.slowPer100 {
			p.slowN++
			latency = p.slow
		}
		requests.WithLabelValues("checkout", p.version, code).Inc()
		durations.WithLabelValues("checkout", p.version).Observe(latency)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for _, p := range profiles {
					for range 10 {
						serve(p)
					}
				}
			}
		}
	}()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

// startPrometheus runs a Prometheus server on a loopback port, scraping
// target every second, with its data in a temporary directory. It returns the
// server's URL once Prometheus is ready, and stops it when the test ends.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	binary := prometheusBinary(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1m
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: [%q]
`, target)
	configPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configPath, []byte(config), 0o600))

	addr := "127.0.0.1:" + freePort(t)
	var output bytes.Buffer
	cmd := exec.Command(binary,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--web.max-connections=32",
		"--query.max-concurrency=4",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &output, &output
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited before it was ready: %v\n%s", err, output.String())
		default:
		}
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus was not ready within 20s:\n%s", output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWindowsAgainstRealPrometheus(t *testing.T) {
	t.Parallel()
	from := time.Now()
	url := startPrometheus(t, startTestApp(t))
	cfg, err := ParseConfig(json.RawMessage(`{"type":"prometheus","url":"` + url + `","timeout":"5s","step":"2s"}`))
	require.NoError(t, err)
	src, err := New(cfg)
	require.NoError(t, err)

	query := func(version string) analysis.Query {
		return analysis.Query{App: "checkout", Environment: "test", RunID: 7, Cohort: "candidate", Version: version, From: from, To: time.Now()}
	}
	metrics := []string{analysis.MetricErrorRate, analysis.MetricLatency}

	// Wait until a few scrapes are in: three whole windows of both versions.
	var v1, v2 map[string][]analysis.Window
	deadline := time.Now().Add(20 * time.Second)
	for {
		v1, err = src.Windows(t.Context(), query("v1"), metrics)
		if err == nil {
			v2, err = src.Windows(t.Context(), query("v2"), metrics)
		}
		if err == nil && len(v1[analysis.MetricErrorRate]) >= 3 && len(v2[analysis.MetricErrorRate]) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three windows of both versions within 20s; last error: %v", err)
		}
		time.Sleep(time.Second)
	}

	for version, got := range map[string]map[string][]analysis.Window{"v1": v1, "v2": v2} {
		for _, metric := range metrics {
			windows := got[metric]
			require.NotEmpty(t, windows, "%s %s", version, metric)
			for i, w := range windows {
				require.Equal(t, 2*time.Second, w.End.Sub(w.Start))
				require.Zero(t, w.Start.UnixMilli()%2000, "windows lie on the step grid")
				require.False(t, w.Start.Before(from), "windows lie inside the queried range")
				require.Positive(t, w.Count, "%s %s window %d", version, metric, i)
				if i > 0 {
					require.True(t, w.Start.After(windows[i-1].Start), "oldest first")
				}
			}
		}
	}

	errorShare := func(windows []analysis.Window) float64 {
		var count int64
		var sum float64
		for _, w := range windows {
			count += w.Count
			sum += w.Sum
		}
		return sum / float64(count)
	}
	shareV1, shareV2 := errorShare(v1[analysis.MetricErrorRate]), errorShare(v2[analysis.MetricErrorRate])
	t.Logf("error share: v1 %.4f, v2 %.4f", shareV1, shareV2)
	require.Less(t, shareV1, 0.03)
	require.Greater(t, shareV2, 0.05)

	meanP99 := func(windows []analysis.Window) float64 {
		var total float64
		var n int
		for _, w := range windows {
			require.NotNil(t, w.P99, "every window had traffic")
			require.NotNil(t, w.P50)
			require.NotNil(t, w.P95)
			require.LessOrEqual(t, *w.P50, *w.P99)
			total += *w.P99
			n++
		}
		return total / float64(n)
	}
	p99V1, p99V2 := meanP99(v1[analysis.MetricLatency]), meanP99(v2[analysis.MetricLatency])
	t.Logf("p99 latency: v1 %.1fms, v2 %.1fms; mean latency: v1 %.1fms, v2 %.1fms", p99V1, p99V2,
		errorShare(v1[analysis.MetricLatency]), errorShare(v2[analysis.MetricLatency]))
	require.Greater(t, p99V2, p99V1)
	require.Greater(t, p99V2, 250.0, "v2's slowest 10%% answer in 400ms")
	require.Less(t, p99V1, 100.0, "v1's slowest 2%% answer in 60ms")
	require.InDelta(t, 20, errorShare(v1[analysis.MetricLatency]), 5, "mean latency in ms")

	t.Run("unknown version", func(t *testing.T) {
		_, err := src.Windows(t.Context(), query("v9"), metrics)
		require.ErrorIs(t, err, ErrNoData)
		require.ErrorContains(t, err, "no data for error_rate of v9 (candidate, checkout, test)")
		require.ErrorContains(t, err, "no data for latency of v9")
	})

	t.Run("query that does not aggregate", func(t *testing.T) {
		src, err := New(Config{URL: url, Step: 2 * time.Second, Queries: map[string]Templates{analysis.MetricErrorRate: {
			PartCount: `sum by (version) (increase(http_requests_total{app="{{.App}}"}[{{.Step}}]))`,
			PartSum:   `sum(increase(http_requests_total{app="{{.App}}",code="500"}[{{.Step}}]))`,
		}}})
		require.NoError(t, err)
		_, err = src.Windows(t.Context(), query(""), []string{analysis.MetricErrorRate})
		require.ErrorContains(t, err, "the count query of error_rate for the candidate cohort (candidate, checkout, test): returned 2 series")
	})

	t.Run("query Prometheus rejects", func(t *testing.T) {
		src, err := New(Config{URL: url, Step: 2 * time.Second, Queries: map[string]Templates{analysis.MetricErrorRate: {
			PartCount: `sum(increase(http_requests_total{version="{{.Version}}"}))`, PartSum: `vector(0)`,
		}}})
		require.NoError(t, err)
		_, err = src.Windows(t.Context(), query("v1"), []string{analysis.MetricErrorRate})
		require.ErrorContains(t, err, "the count query of error_rate for v1 (candidate, checkout, test): querying Prometheus: bad_data")
		require.False(t, errors.Is(err, ErrNoData))
	})

	t.Run("server not listening", func(t *testing.T) {
		src, err := New(Config{URL: "http://127.0.0.1:" + freePort(t), Timeout: time.Second, Step: 2 * time.Second})
		require.NoError(t, err)
		_, err = src.Windows(t.Context(), query("v1"), metrics)
		require.ErrorContains(t, err, "connection refused")
		require.False(t, errors.Is(err, ErrNoData))
	})
}

// keys lists the keys of m in order.
func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// fields lists the field paths of a validation error in order.
func fields(verr *ValidationError) []string {
	out := make([]string, len(verr.Errors))
	for i, fe := range verr.Errors {
		out[i] = fe.Field
	}
	return out
}

// promTime is t as Prometheus writes timestamps.
func promTime(t time.Time) model.Time {
	return model.TimeFromUnixNano(t.UnixNano())
}
