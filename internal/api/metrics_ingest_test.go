package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// runCreated is when the ingest tests' run was created.
var runCreated = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ingestSetup returns an API handler with push ingest on a fresh database,
// the store behind it and a canary run of v2 over v1. The ingest clock
// stands an hour after the run was created.
func ingestSetup(t testing.TB) (http.Handler, *store.Store, store.Run) {
	t.Helper()
	ctx := context.Background()
	s := store.New(dbtest.New(t), store.Options{Now: func() time.Time { return runCreated }})
	app, err := s.CreateApp(ctx, store.NewApp{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	env, err := s.CreateEnvironment(ctx, store.Environment{AppID: app.ID, Name: "production"})
	require.NoError(t, err)
	run, _, err := s.CreateRun(ctx, store.NewRun{
		AppID: app.ID, EnvironmentID: env.ID, FromVersion: "v1", ToVersion: "v2", Strategy: "canary", CreatedBy: "token:ci",
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := api.New(api.Config{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Readiness: readiness{}, Gatherer: reg, Registerer: reg,
		Ingest: push.NewIngester(s, func() time.Time { return runCreated.Add(time.Hour) }),
	})
	return h, s, run
}

func postMetrics(h http.Handler, path, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func metricsPath(runID int64) string {
	return "/api/v1/runs/" + strconv.FormatInt(runID, 10) + "/metrics"
}

func TestPushedSamplesAreKeptAndBadOnesNamed(t *testing.T) {
	t.Parallel()
	h, s, run := ingestSetup(t)
	body := `{"samples": [
		{"version": "v2", "metric": "error_rate", "timestamp": "2026-03-01T12:10:01Z", "count": 100, "sum": 2},
		{"cohort": "candidate", "metric": "error_rate", "timestamp": "2026-03-01T12:10:05Z", "value": 1},
		{"cohort": "candidate", "metric": "error_rate", "timestamp": "2026-03-01T12:10:06Z", "count": 10, "sum": 12},
		{"cohort": "baseline", "metric": "latency", "timestamp": "2026-03-01T12:10:02Z",
		 "buckets": {"100": 50, "200": 40, "500": 8, "+Inf": 2}},
		{"cohort": "baseline", "metric": "latency", "timestamp": "2026-03-01T14:00:00Z", "value": NaN}
	]}`
	rec := postMetrics(h, metricsPath(run.ID), "application/json", body)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{
		"accepted": 3,
		"rejected": [
			{"index": 2, "errors": ["sum (failed requests) 12 exceeds count 10"]},
			{"index": 4, "errors": [
				"timestamp 2026-03-01T14:00:00Z is more than 5 minutes ahead of the server's clock (2026-03-01T13:00:00Z)",
				"value is NaN"
			]}
		],
		"windows_written": 2
	}`, rec.Body.String())

	ctx := context.Background()
	w0 := time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC)
	errs, err := s.ListMetricWindows(ctx, run.ID, "candidate", "error_rate", w0, w0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, errs, 1, "samples of one window in one batch make one row")
	require.Equal(t, int64(101), errs[0].Count)
	require.Equal(t, 3.0, errs[0].Sum)
	lat, err := s.ListMetricWindows(ctx, run.ID, "baseline", "latency", w0, w0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, lat, 1)
	require.Equal(t, int64(100), lat[0].Count)
	require.InDelta(t, 387.5, *lat[0].P95, 1e-9)
}

func TestABatchWithNothingGoodIsUnprocessable(t *testing.T) {
	t.Parallel()
	h, _, run := ingestSetup(t)
	rec := postMetrics(h, metricsPath(run.ID), "application/json", `{"samples": [
		{"version": "v9", "metric": "error_rate", "timestamp": "2026-03-01T12:10:01Z", "count": 1, "sum": 0},
		{"cohort": "candidate", "metric": "throughput", "timestamp": "2026-03-01T12:10:01Z", "value": 3}
	]}`)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	require.JSONEq(t, fmt.Sprintf(`{
		"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
		"detail": "none of the 2 samples could be accepted; errors lists each and why",
		"errors": [
			{"index": 0, "errors": ["version \"v9\" is not part of run %d, which deploys v2 over v1"]},
			{"index": 1, "errors": ["metric \"throughput\" is unknown; use one of error_rate, latency, health_checks, cpu, memory, conversion, response_diff"]}
		]
	}`, run.ID), rec.Body.String())
}

func TestRequestsThatAreNotBatches(t *testing.T) {
	t.Parallel()
	h, _, run := ingestSetup(t)
	good := `{"samples": [{"cohort": "candidate", "metric": "cpu", "timestamp": "2026-03-01T12:10:01Z", "value": 0.5}]}`
	for name, tc := range map[string]struct {
		path, contentType, body string
		status                  int
		detail                  string
	}{
		"unknown run":  {metricsPath(run.ID + 1000), "application/json", good, http.StatusNotFound, fmt.Sprintf("run %d does not exist", run.ID+1000)},
		"bad run id":   {"/api/v1/runs/abc/metrics", "application/json", good, http.StatusBadRequest, `run id "abc" is not a positive whole number`},
		"zero run id":  {"/api/v1/runs/0/metrics", "application/json", good, http.StatusBadRequest, `run id "0" is not a positive whole number`},
		"form body":    {metricsPath(run.ID), "application/x-www-form-urlencoded", good, http.StatusUnsupportedMediaType, "send the samples as application/json"},
		"no type":      {metricsPath(run.ID), "", good, http.StatusUnsupportedMediaType, "send the samples as application/json"},
		"broken JSON":  {metricsPath(run.ID), "application/json", `{"samples": [`, http.StatusBadRequest, "the body is not valid JSON"},
		"no samples":   {metricsPath(run.ID), "application/json; charset=utf-8", `{"samples": []}`, http.StatusBadRequest, "the body has no samples"},
		"wrong object": {metricsPath(run.ID), "application/json", `[1, 2]`, http.StatusBadRequest, "the body must be a JSON object"},
		"too large": {metricsPath(run.ID), "application/json", `{"samples": [` + strings.Repeat(" ", api.MaxMetricsBody) + `]}`,
			http.StatusRequestEntityTooLarge, "the body is larger than 10 MB"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := postMetrics(h, tc.path, tc.contentType, tc.body)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			require.Equal(t, tc.status, p.Status)
			require.Contains(t, p.Detail, tc.detail)
		})
	}
}

func TestVendorJSONTypesAreAccepted(t *testing.T) {
	t.Parallel()
	h, _, run := ingestSetup(t)
	rec := postMetrics(h, metricsPath(run.ID), "application/vnd.flightdeck.samples+json",
		`{"samples": [{"cohort": "candidate", "metric": "cpu", "timestamp": "2026-03-01T12:10:01Z", "value": 0.5}]}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"accepted": 1, "rejected": [], "windows_written": 1}`, rec.Body.String())
}

// pushBatchSize is how many samples one benchmark request carries.
const pushBatchSize = 5000

// pushBody builds a batch of pushBatchSize samples spread evenly over both
// cohorts, three metrics and windows consecutive 10-second windows from
// start, as a fleet of agents would report them.
func pushBody(start time.Time, windows int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"samples":[`)
	cohorts := []string{"candidate", "baseline"}
	for i := range pushBatchSize {
		if i > 0 {
			b.WriteByte(',')
		}
		cohort := cohorts[i%2]
		// Samples cycle through the six cohort and metric pairs, then
		// move on to the next window.
		at := start.Add(time.Duration((i/6)%windows)*push.Window + time.Duration(i)*time.Millisecond%push.Window)
		stamp := at.Format(time.RFC3339Nano)
		switch (i / 2) % 3 {
		case 0:
			fmt.Fprintf(&b, `{"cohort":%q,"metric":"latency","timestamp":%q,"value":%d}`, cohort, stamp, 20+i%200)
		case 1:
			fmt.Fprintf(&b, `{"cohort":%q,"metric":"error_rate","timestamp":%q,"count":%d,"sum":%d}`, cohort, stamp, 50+i%50, i%3)
		default:
			fmt.Fprintf(&b, `{"cohort":%q,"metric":"cpu","timestamp":%q,"value":0.%02d}`, cohort, stamp, i%100)
		}
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// BenchmarkPushAPI measures samples per second from HTTP clients through
// the push API into Postgres: JSON decoding, validation, aggregation and
// the COPY, with several clients posting at once as agents would.
func BenchmarkPushAPI(b *testing.B) {
	h, _, run := ingestSetup(b)
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	url := srv.URL + metricsPath(run.ID)

	// A few different bodies, each over 10 windows, so batches land in
	// different windows as well as the same ones.
	const windowsPerBatch = 10
	bodies := make([][]byte, 8)
	for i := range bodies {
		bodies[i] = pushBody(runCreated.Add(time.Duration(i*windowsPerBatch)*push.Window), windowsPerBatch)
	}
	var next atomic.Int64
	var rows atomic.Int64
	b.SetBytes(int64(len(bodies[0])))
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := srv.Client()
		for pb.Next() {
			body := bodies[next.Add(1)%int64(len(bodies))]
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			var res struct {
				Accepted       int   `json:"accepted"`
				WindowsWritten int64 `json:"windows_written"`
			}
			err = json.NewDecoder(resp.Body).Decode(&res)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || res.Accepted != pushBatchSize {
				b.Errorf("status %d, accepted %d: %v", resp.StatusCode, res.Accepted, err)
				return
			}
			rows.Add(res.WindowsWritten)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)*pushBatchSize/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(rows.Load())/float64(b.N), "rows/op")
}
