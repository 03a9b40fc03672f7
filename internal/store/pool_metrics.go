package store

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports the connection pool's statistics, so an operator can
// see when requests queue for a database connection.
type PoolCollector struct {
	pool *pgxpool.Pool

	acquired      *prometheus.Desc
	idle          *prometheus.Desc
	total         *prometheus.Desc
	max           *prometheus.Desc
	acquires      *prometheus.Desc
	emptyAcquires *prometheus.Desc
	waitSeconds   *prometheus.Desc
}

// NewPoolCollector returns a collector for the pool's statistics.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("flightdeck_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{
		pool:          pool,
		acquired:      d("acquired_connections", "Connections currently in use."),
		idle:          d("idle_connections", "Connections currently idle."),
		total:         d("total_connections", "Connections open, in use or idle."),
		max:           d("max_connections", "Largest number of connections the pool opens."),
		acquires:      d("acquires_total", "Connections handed out since start."),
		emptyAcquires: d("empty_acquires_total", "Acquires that had to wait because no connection was idle."),
		waitSeconds:   d("acquire_wait_seconds_total", "Time spent waiting for a connection since start."),
	}
}

// Describe sends the descriptors of every metric the collector exports.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.waitSeconds} {
		ch <- d
	}
}

// Collect reads the pool's statistics at scrape time.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waitSeconds, prometheus.CounterValue, s.AcquireDuration().Seconds())
}
