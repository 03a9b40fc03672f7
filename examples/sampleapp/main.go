// Command sampleapp is a small HTTP service for trying Flightdeck on a real
// stack: one process serves one version, answers every request with that
// version in the X-Version header and the body, and exposes Prometheus
// metrics in the conventional shape Flightdeck's prometheus metric source
// reads by default. Faults can be injected so a release manager can watch a
// bad canary being rolled back:
//
//	sampleapp --version v1 --listen 127.0.0.1:9001
//	sampleapp --version v2 --listen 127.0.0.1:9002 --error-rate 0.2 --latency 50ms
//
// Every flag has an environment variable (SAMPLEAPP_VERSION, SAMPLEAPP_LISTEN,
// SAMPLEAPP_ERROR_RATE, SAMPLEAPP_LATENCY); a flag wins over its variable.
//
// Metrics, at /metrics:
//
//	http_requests_total{version, code}             requests answered, by status code
//	http_request_duration_seconds{version}         latency histogram
//
// The app label that Flightdeck's default queries select on is added by the
// Prometheus scrape configuration, as it would be for any service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// config is what one process serves.
type config struct {
	Version   string
	Listen    string
	ErrorRate float64
	Latency   time.Duration
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sampleapp:", err)
		os.Exit(1)
	}
}

// run parses the configuration, serves until ctx ends or a SIGINT or SIGTERM
// arrives, and then shuts the server down.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: newHandler(cfg, prometheus.NewRegistry()), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	logger.InfoContext(ctx, "sampleapp is serving",
		slog.String("version", cfg.Version), slog.String("addr", l.Addr().String()),
		slog.Float64("error_rate", cfg.ErrorRate), slog.String("latency", cfg.Latency.String()))

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// parseConfig reads the flags, with the environment variables as their
// defaults, and checks them.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	fs := flag.NewFlagSet("sampleapp", flag.ContinueOnError)
	fs.SetOutput(output)
	var cfg config
	fs.StringVar(&cfg.Version, "version", getenv("SAMPLEAPP_VERSION"), "version this process serves, such as v1 (SAMPLEAPP_VERSION; required)")
	fs.StringVar(&cfg.Listen, "listen", or(getenv("SAMPLEAPP_LISTEN"), "127.0.0.1:8081"), "listen address (SAMPLEAPP_LISTEN)")
	errorRate := or(getenv("SAMPLEAPP_ERROR_RATE"), "0")
	fs.Func("error-rate", "share of requests answered with 500, from 0 to 1 (SAMPLEAPP_ERROR_RATE, default 0)", func(v string) error {
		errorRate = v
		return nil
	})
	latency := or(getenv("SAMPLEAPP_LATENCY"), "0s")
	fs.Func("latency", "time added to every answer, such as 50ms (SAMPLEAPP_LATENCY, default 0s)", func(v string) error {
		latency = v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Version == "" {
		return config{}, errors.New("--version is required: the version this process serves, such as v1")
	}
	rate, err := strconv.ParseFloat(errorRate, 64)
	if err != nil || rate < 0 || rate > 1 {
		return config{}, fmt.Errorf("invalid error rate %q: want a number from 0 to 1, such as 0.2", errorRate)
	}
	cfg.ErrorRate = rate
	d, err := time.ParseDuration(latency)
	if err != nil || d < 0 {
		return config{}, fmt.Errorf("invalid latency %q: want a duration of 0s or more, such as 50ms", latency)
	}
	cfg.Latency = d
	return cfg, nil
}

// or returns v, or fallback when v is empty.
func or(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

// newHandler serves the app, /metrics and /healthz. Metrics are registered
// on reg so each handler (and each test) has its own.
func newHandler(cfg config, reg *prometheus.Registry) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests answered, by version and status code.",
	}, []string{"version", "code"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to answer HTTP requests, by version.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"version"})
	reg.MustRegister(requests, durations)
	// The series exist from the start, so a version without traffic reports
	// zero requests rather than no data, and a healthy version reports zero
	// errors.
	requests.WithLabelValues(cfg.Version, "200")
	requests.WithLabelValues(cfg.Version, "500")
	durations.WithLabelValues(cfg.Version)

	faults := &faultInjector{rate: cfg.ErrorRate}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", cfg.Version)
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if cfg.Latency > 0 {
			select {
			case <-time.After(cfg.Latency):
			case <-r.Context().Done():
			}
		}
		code := http.StatusOK
		if faults.fail() {
			code = http.StatusInternalServerError
		}
		w.Header().Set("X-Version", cfg.Version)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		if code == http.StatusOK {
			fmt.Fprintf(w, "version %s\n", cfg.Version)
		} else {
			fmt.Fprintf(w, "version %s: injected failure\n", cfg.Version)
		}
		requests.WithLabelValues(cfg.Version, strconv.Itoa(code)).Inc()
		durations.WithLabelValues(cfg.Version).Observe(time.Since(start).Seconds())
	})
	return mux
}

// faultInjector fails an exact share of requests, spread evenly, so a
// version with an error rate of 0.2 fails every fifth request rather than a
// random number of them.
type faultInjector struct {
	rate float64

	mu             sync.Mutex
	served, failed int64
}

// fail reports whether the next request is to fail.
func (f *faultInjector) fail() bool {
	if f.rate <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served++
	if float64(f.failed) < float64(f.served)*f.rate {
		f.failed++
		return true
	}
	return false
}
