// Package promql is Flightdeck's prometheus metric source: it answers
// analysis queries by running PromQL range queries against a Prometheus
// server, with the app, version and cohort of the run filled into query
// templates that the platform team writes per environment.
//
// An environment's metrics configuration selects it with a JSON object such as
//
//	{
//	  "type": "prometheus",
//	  "url": "http://prometheus:9090",
//	  "timeout": "10s",
//	  "step": "1m",
//	  "queries": {
//	    "error_rate": {
//	      "count": "sum(increase(http_requests_total{app=\"{{.App}}\",version=\"{{.Version}}\"}[{{.Step}}]))",
//	      "sum": "sum(increase(http_requests_total{app=\"{{.App}}\",version=\"{{.Version}}\",code=~\"5..\"}[{{.Step}}])) or vector(0)"
//	    },
//	    "latency": {
//	      "count": "…", "sum": "…",
//	      "p99": "histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket{version=\"{{.Version}}\"}[{{.Step}}]))) * 1000"
//	    }
//	  }
//	}
//
// Only "url" is required. Each metric's templates follow the meaning of
// analysis.Window for that metric: "count" and "sum" are required and must
// each return exactly one series (aggregate in the query); "p50", "p95" and
// "p99" are optional and only accepted for latency, in milliseconds. Error
// rate and latency have defaults (see DefaultQueries) over the conventional
// http_requests_total and http_request_duration_seconds metrics; a metric set
// to null turns its default off.
//
// Templates are Go text/template strings with the fields .App,
// .Environment, .Version, .Cohort, .RunID and .Step (the window length as a
// PromQL duration such as "30s"). String fields are escaped for use inside a
// double-quoted PromQL string, so they must be written inside double quotes.
// A template that uses a field the query does not have (an empty version, for
// example) fails the evaluation rather than silently matching every series.
//
// Every failure to get an answer, including a result without series, is an
// error of that evaluation, so the decision records it as inconclusive and
// never as a pass.
package promql
