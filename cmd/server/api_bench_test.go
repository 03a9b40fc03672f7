package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// load sends requests from concurrent workers for a fixed time and returns
// every request's latency. The server runs in its own process, so the
// figures include the network stack and nothing of the load generator's
// own work is counted against the server.
func load(b *testing.B, workers int, d time.Duration, do func(client *http.Client, worker, i int) (int, error)) (lat []time.Duration, errs int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			var mine []time.Duration
			bad := 0
			for i := 0; ctx.Err() == nil; i++ {
				start := time.Now()
				status, err := do(client, w, i)
				if err != nil || status >= 300 {
					bad++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, errs
}

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}

// BenchmarkAPI measures GET /runs/{id} and run creation against a server
// binary with a load generator in this process.
func BenchmarkAPI(b *testing.B) {
	token, _, _, err := auth.Generate()
	require.NoError(b, err)
	s := startServer(b, []string{"DATABASE_URL=" + dbtest.URL(b), "FLIGHTDECK_ADMIN_TOKEN=" + token})
	call := func(client *http.Client, method, path, body string) (int, []byte, error) {
		req, err := http.NewRequest(method, s.url+path, bytes.NewBufferString(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, out, err
	}
	client := http.DefaultClient
	st, body, err := call(client, "POST", "/api/v1/apps", `{"slug": "shop", "name": "Shop"}`)
	require.NoError(b, err)
	require.Equal(b, http.StatusCreated, st, string(body))
	const envs = 50
	for i := range envs {
		st, body, err = call(client, "POST", "/api/v1/apps/shop/environments",
			fmt.Sprintf(`{"name": "env-%d", "driver": {"type": "simulator"}, "strategy_defaults": {"canary": {"step_bake": "1h"}}}`, i))
		require.NoError(b, err)
		require.Equal(b, http.StatusCreated, st, string(body))
	}
	st, body, err = call(client, "POST", "/api/v1/apps/shop/environments/env-0/runs", `{"version": "v1", "strategy": "canary"}`)
	require.NoError(b, err)
	require.Equal(b, http.StatusCreated, st, string(body))
	time.Sleep(time.Second) // let the engine start the run

	const workers = 16
	b.ResetTimer()
	lat, errs := load(b, workers, 10*time.Second, func(c *http.Client, _, _ int) (int, error) {
		st, _, err := call(c, "GET", "/api/v1/runs/1", "")
		return st, err
	})
	b.ReportMetric(float64(len(lat))/10, "get_run_req/s")
	b.ReportMetric(float64(quantile(lat, 0.5).Microseconds())/1000, "get_run_p50_ms")
	b.ReportMetric(float64(quantile(lat, 0.99).Microseconds())/1000, "get_run_p99_ms")
	b.ReportMetric(float64(errs), "get_run_errors")

	lat, errs = load(b, workers, 10*time.Second, func(c *http.Client, w, i int) (int, error) {
		st, _, err := call(c, "POST", fmt.Sprintf("/api/v1/apps/shop/environments/env-%d/runs", 1+(w*7+i)%(envs-1)),
			fmt.Sprintf(`{"version": "w%d-%d", "strategy": "canary"}`, w, i))
		return st, err
	})
	b.ReportMetric(float64(len(lat))/10, "create_run/s")
	b.ReportMetric(float64(quantile(lat, 0.99).Microseconds())/1000, "create_run_p99_ms")
	b.ReportMetric(float64(errs), "create_run_errors")
	b.ReportMetric(0, "ns/op")
}
