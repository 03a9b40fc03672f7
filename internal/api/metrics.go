package api

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts and times requests by route pattern (never by raw
// path, which would explode the number of series) and status.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flightdeck",
			Subsystem: "http",
			Name:      "request_duration_seconds",
			Help:      "Time to serve HTTP requests, by route, method and status.",
			Buckets:   prometheus.DefBuckets,
		}, []string{"route", "method", "status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flightdeck",
			Subsystem: "http",
			Name:      "requests_total",
			Help:      "HTTP requests served, by route, method and status.",
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.duration, m.requests)
	return m
}

func (m *httpMetrics) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			labels := prometheus.Labels{
				"route":  route,
				"method": c.Request().Method,
				"status": strconv.Itoa(c.Response().Status),
			}
			m.duration.With(labels).Observe(time.Since(start).Seconds())
			m.requests.With(labels).Inc()
			return err
		}
	}
}
