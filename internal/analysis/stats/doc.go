// Package stats holds the pure statistics behind Flightdeck's rollback
// decision: an always-valid test of error rates that may be re-evaluated
// after every analysis window, Wald's sequential test for sizing bakes, the
// Mann-Whitney U test and quantile ratios for latency, the A/B comparison of
// conversion, and the intervals shown for shadow traffic.
//
// Every function is a pure function of its inputs: counts and samples in,
// numbers out. Degenerate inputs (no requests, identical samples, rates of 0
// or 1) return documented, finite values rather than NaN, because their
// results end up in decision records that are stored as JSON and drawn on the
// run page, and JSON has no NaN or infinity. Where an interval is unbounded,
// its bound is reported as ±math.MaxFloat64 for the same reason.
//
// The functions are checked against reference values computed independently
// with SciPy; testdata/generate.py writes them to testdata/fixtures.json.
package stats
