package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"--version", "v2", "--listen", "127.0.0.1:0", "--error-rate", "0.2", "--latency", "5ms"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, config{Version: "v2", Listen: "127.0.0.1:0", ErrorRate: 0.2, Latency: 5 * time.Millisecond}, cfg)

	cfg, err = parseConfig(nil, env(map[string]string{"SAMPLEAPP_VERSION": "v1", "SAMPLEAPP_ERROR_RATE": "0.5"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, config{Version: "v1", Listen: "127.0.0.1:8081", ErrorRate: 0.5}, cfg)

	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "--version is required"},
		{[]string{"--version", "v1", "--error-rate", "1.5"}, `invalid error rate "1.5": want a number from 0 to 1`},
		{[]string{"--version", "v1", "--error-rate", "often"}, `invalid error rate "often"`},
		{[]string{"--version", "v1", "--latency", "slow"}, `invalid latency "slow"`},
		{[]string{"--version", "v1", "--latency", "-1s"}, `invalid latency "-1s"`},
		{[]string{"--version", "v1", "extra"}, `unexpected argument "extra"`},
	} {
		_, err := parseConfig(tt.args, env(nil), io.Discard)
		require.ErrorContains(t, err, tt.want, "%v", tt.args)
	}
}

func TestHandlerAnswersWithItsVersionAndCounts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler(config{Version: "v2", ErrorRate: 0.2}, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)

	codes := map[int]int{}
	for range 50 {
		resp, err := http.Get(srv.URL + "/checkout")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, "v2", resp.Header.Get("X-Version"))
		require.Contains(t, string(body), "version v2")
		codes[resp.StatusCode]++
	}
	require.Equal(t, map[int]int{200: 40, 500: 10}, codes, "an error rate of 0.2 fails every fifth request")

	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	metrics := string(body)
	require.Contains(t, metrics, `http_requests_total{code="200",version="v2"} 40`)
	require.Contains(t, metrics, `http_requests_total{code="500",version="v2"} 10`)
	require.Contains(t, metrics, `http_request_duration_seconds_count{version="v2"} 50`)
}

func TestHealthyVersionReportsZeroErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler(config{Version: "v1"}, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Contains(t, string(body), `http_requests_total{code="500",version="v1"} 0`)
	require.Contains(t, string(body), `http_requests_total{code="200",version="v1"} 0`)
}
