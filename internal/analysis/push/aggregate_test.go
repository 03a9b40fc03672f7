package push

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHundredSamplesInThreeWindowsMakeThreeRows(t *testing.T) {
	t.Parallel()
	start := created.Add(10 * time.Minute) // on a window boundary
	var batch Batch
	var wantCount [3]int64
	var wantSum [3]float64
	for i := range 100 {
		at := start.Add(time.Duration(i) * 300 * time.Millisecond) // 30 seconds in all
		batch.Samples = append(batch.Samples, Sample{
			Cohort: "candidate", Metric: "latency", Timestamp: ts(at), Value: Num(float64(i)),
		})
		w := int(at.Sub(start) / Window)
		wantCount[w]++
		wantSum[w] += float64(i)
	}
	windows, res := Prepare(RunSubject(testRun), now, batch)
	require.Equal(t, 100, res.Accepted)
	require.Empty(t, res.Rejected)
	require.Len(t, windows, 3)
	var total int64
	for i, w := range windows {
		require.True(t, w.Start.Equal(start.Add(time.Duration(i)*Window)), "window %d starts at %v", i, w.Start)
		require.Equal(t, Window, w.End.Sub(w.Start))
		require.Equal(t, testRun.ID, w.RunID)
		require.Equal(t, wantCount[i], w.Count)
		require.Equal(t, wantSum[i], w.Sum)
		require.NotNil(t, w.P99, "single values make exact quantiles")
		total += w.Count
	}
	require.Equal(t, int64(100), total)
	// The first window holds the values 0..33: the nearest-rank median of
	// 34 values is the 17th, 16.
	require.Equal(t, 16.0, *windows[0].P50)
	require.Equal(t, 33.0, *windows[0].P99)
}

func TestCohortsAndMetricsGetTheirOwnRows(t *testing.T) {
	t.Parallel()
	at := ts(created.Add(time.Minute))
	batch := Batch{Samples: []Sample{
		{Cohort: "candidate", Metric: "error_rate", Timestamp: at, Count: Num(100), Sum: Num(2)},
		{Version: "v2", Metric: "error_rate", Timestamp: at, Count: Num(50), Sum: Num(1)},
		{Cohort: "baseline", Metric: "error_rate", Timestamp: at, Count: Num(80), Sum: Num(0)},
		{Cohort: "candidate", Metric: "cpu", Timestamp: at, Value: Num(0.5)},
		{Cohort: "candidate", Metric: "cpu", Timestamp: at, Value: Num(0.7)},
	}}
	windows, res := Prepare(RunSubject(testRun), now, batch)
	require.Equal(t, 5, res.Accepted)
	require.Len(t, windows, 3)
	type row struct {
		cohort, metric string
		count          int64
		sum            float64
	}
	var got []row
	for _, w := range windows {
		got = append(got, row{w.Cohort, w.Metric, w.Count, w.Sum})
		require.Nil(t, w.P50, "only latency has quantiles")
	}
	require.Equal(t, []row{
		{"baseline", "error_rate", 80, 0},
		{"candidate", "cpu", 2, 1.2},
		{"candidate", "error_rate", 150, 3},
	}, got)
}

func TestLatencyWithoutADistributionHasNoQuantiles(t *testing.T) {
	t.Parallel()
	at := ts(created.Add(time.Minute))
	windows, _ := Prepare(RunSubject(testRun), now, Batch{Samples: []Sample{
		{Cohort: "candidate", Metric: "latency", Timestamp: at, Buckets: map[string]Number{"10": Num(10)}},
		{Cohort: "candidate", Metric: "latency", Timestamp: at, Count: Num(100), Sum: Num(1500)},
	}})
	require.Len(t, windows, 1)
	require.Equal(t, int64(110), windows[0].Count)
	require.Equal(t, 1550.0, windows[0].Sum)
	require.Nil(t, windows[0].P99, "100 observations of unknown spread would make any quantile a guess")
}

func TestQuantilesFromBuckets(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		buckets       []map[string]float64
		values        []float64
		count         int64
		sum           float64
		p50, p95, p99 float64
	}{
		// Two even buckets: the median is the first bucket's top; p95's
		// rank 19 is 9/10 into (10, 20].
		"two buckets": {buckets: []map[string]float64{{"10": 10, "20": 10}}, count: 20, sum: 200, p50: 10, p95: 19, p99: 19.8},
		// Ranks 50, 95 and 99 of 100: p50 tops the first bucket; p95 is
		// 5/8 into (200, 500]; p99 falls into the overflow and, as in
		// Prometheus, reads as the highest bound.
		"overflow": {
			buckets: []map[string]float64{{"100": 50, "200": 40, "500": 8, "+Inf": 2}},
			count:   100, sum: 50*50 + 40*150 + 8*350 + 2*500, p50: 100, p95: 387.5, p99: 500,
		},
		// The same histogram sent in two halves of the window combines to
		// the same quantiles.
		"split over two samples": {
			buckets: []map[string]float64{{"100": 25, "200": 20, "500": 4, "+Inf": 1}, {"100": 25, "200": 20, "500": 4, "+Inf": 1}},
			count:   100, sum: 50*50 + 40*150 + 8*350 + 2*500, p50: 100, p95: 387.5, p99: 500,
		},
		// Different bounds: 10 observations spread over 0..10 and 10 over
		// 0..20 give 1.5 per ms up to 10 and 0.5 per ms above it. The
		// median (rank 10) is at 10/1.5; rank 19 is 15 + 0.5·8, at 18.
		"different bounds": {
			buckets: []map[string]float64{{"10": 10}, {"20": 10}},
			count:   20, sum: 10*5 + 10*10, p50: 10.0 / 1.5, p95: 18, p99: 19.6,
		},
		// Single values are point masses: nearest rank.
		"single values": {values: seq(1, 100), count: 100, sum: 5050, p50: 50, p95: 95, p99: 99},
		// A histogram and single values together: 10 observations spread
		// over 0..10 plus ten at 100. Rank 10 is the top of the bucket;
		// everything above sits at 100.
		"histogram and values": {
			buckets: []map[string]float64{{"10": 10}}, values: []float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100},
			count: 20, sum: 50 + 1000, p50: 10, p95: 100, p99: 100,
		},
		// A zero-width first bucket holds observations of exactly 0 ms.
		"zero bucket": {buckets: []map[string]float64{{"0": 60, "10": 40}}, count: 100, sum: 200, p50: 0, p95: 8.75, p99: 9.75},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			at := ts(created.Add(time.Minute))
			var batch Batch
			for _, b := range tc.buckets {
				s := Sample{Cohort: "candidate", Metric: "latency", Timestamp: at, Buckets: map[string]Number{}}
				for k, v := range b {
					s.Buckets[k] = Num(v)
				}
				batch.Samples = append(batch.Samples, s)
			}
			for _, v := range tc.values {
				batch.Samples = append(batch.Samples, Sample{Cohort: "candidate", Metric: "latency", Timestamp: at, Value: Num(v)})
			}
			windows, res := Prepare(RunSubject(testRun), now, batch)
			require.Empty(t, res.Rejected)
			require.Len(t, windows, 1)
			w := windows[0]
			require.Equal(t, tc.count, w.Count)
			require.InDelta(t, tc.sum, w.Sum, 1e-9)
			require.NotNil(t, w.P50)
			require.InDelta(t, tc.p50, *w.P50, 1e-9, "p50")
			require.InDelta(t, tc.p95, *w.P95, 1e-9, "p95")
			require.InDelta(t, tc.p99, *w.P99, 1e-9, "p99")
		})
	}
}

func seq(from, to int) []float64 {
	out := make([]float64, 0, to-from+1)
	for i := from; i <= to; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestBucketOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	// JSON objects have no order, and bounds sort as numbers, not text.
	h, ok := parseBuckets(map[string]Number{"1000": Num(1), "50": Num(2), "250": Num(3), "+Inf": Num(4)}, func(string, ...any) {})
	require.True(t, ok)
	require.Equal(t, []float64{50, 250, 1000}, h.bounds)
	require.Equal(t, []int64{2, 3, 1}, h.counts)
	require.Equal(t, int64(4), h.overflow)
	require.Equal(t, int64(10), h.total())
	require.Equal(t, 2*25.0+3*150+1*625+4*1000, h.midpointSum())
}
