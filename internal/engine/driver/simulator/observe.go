package simulator

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Shape of the modelled metrics. They are fixed rather than configurable
// because the demo and the tests only need healthy versions to look alike
// and faulty ones to stand out.
const (
	// latencySigma is the log-normal shape of request latency; 0.3 puts the
	// p99 at about twice the median, as for a typical web service.
	latencySigma = 0.3
	// z95 and z99 are the standard normal quantiles of the 95th and 99th
	// percentiles.
	z95 = 1.6448536269514722
	z99 = 2.3263478740408408
	// latencyNoise is the relative noise of a latency quantile measured
	// over very many requests; fewer requests add sampling noise on top.
	latencyNoise = 0.02
	// baseCPU and baseMemory are the utilisation of a version without a
	// cpu or memory fault.
	baseCPU    = 0.35
	baseMemory = 0.45
	// usageNoise is the absolute noise of CPU and memory utilisation.
	usageNoise = 0.02
	// exactBinomialLimit is the largest request count whose errors are
	// drawn one request at a time; above it an approximation is exact
	// enough and does not grow with the window.
	exactBinomialLimit = 1000
)

// Observation is what the simulator reports for one version over one
// window, the same measures a metric source reads from a real fleet.
type Observation struct {
	// Requests is the number of requests the version served in the window,
	// including mirrored ones.
	Requests int64 `json:"requests"`
	// Errors is the number of those requests that failed.
	Errors int64 `json:"errors"`
	// LatencyP50 is the median latency in milliseconds, 0 without requests.
	LatencyP50 float64 `json:"latency_p50"`
	// LatencyP95 is the 95th percentile latency in milliseconds.
	LatencyP95 float64 `json:"latency_p95"`
	// LatencyP99 is the 99th percentile latency in milliseconds.
	LatencyP99 float64 `json:"latency_p99"`
	// HealthCheckFailures is the number of failed health checks.
	HealthCheckFailures int `json:"health_check_failures"`
	// CPU is the version's CPU utilisation, 0 to 1.
	CPU float64 `json:"cpu"`
	// Memory is the version's memory utilisation, 0 to 1.
	Memory float64 `json:"memory"`
	// Instances is how many instances of the version run.
	Instances int `json:"instances"`
	// Weight is the percent of user traffic the version serves.
	Weight int `json:"weight"`
}

// Observe reports how version behaved in app's environment env over the
// window from..to, as if the environment's current state held for the whole
// window. The engine observes windows that end now, so the difference only
// shows for a window that straddles a change, which the analysis's warm-up
// ignores anyway.
//
// Requests are the environment's requests per second times the version's
// share of traffic (its weight, plus the share mirrored to it) times the
// window's length; a version without instances serves nothing. Errors are a
// binomial draw at the version's error rate, and latencies the quantiles of
// a log-normal around its latency with mild noise. All draws come from a
// generator seeded by the fleet's seed, the app, the environment, the
// version and the window's start, so observing the same window again gives
// the same numbers. An unknown app, environment or version gives the zero
// Observation.
func (f *Fleet) Observe(app, env, version string, from, to time.Time) Observation {
	key := envKey{app, env}
	f.mu.RLock()
	s, ok := f.envs[key]
	if !ok {
		f.mu.RUnlock()
		return Observation{}
	}
	var (
		obs     Observation
		found   bool
		weights = map[string]int{}
	)
	for _, v := range s.state.Versions {
		if v.Instances > 0 {
			weights[v.Version] = v.Weight
		}
		if v.Version == version {
			found = true
			obs.Instances, obs.Weight = v.Instances, v.Weight
		}
	}
	cfg := s.config
	fault := f.faultLocked(key, cfg, version)
	var mirror struct {
		from    string
		percent int
	}
	if m := s.state.Mirror; m != nil && m.To == version {
		mirror.from, mirror.percent = m.From, m.Percent
	}
	f.mu.RUnlock()

	if !found || obs.Instances <= 0 {
		return obs
	}
	share := float64(obs.Weight) / 100
	if mirror.percent > 0 {
		share += float64(weights[mirror.from]) / 100 * float64(mirror.percent) / 100
	}
	seconds := max(to.Sub(from).Seconds(), 0)
	obs.Requests = int64(math.Round(cfg.RequestsPerSecond * share * seconds))

	rng := rand.New(windowSource(f.opts.Seed, app, env, version, from))
	obs.Errors = binomial(rng, obs.Requests, cmp.Or(fault.ErrorRate, cfg.BaseErrorRate))
	if obs.Requests > 0 {
		median := cmp.Or(fault.LatencyMS, cfg.BaseLatencyMS)
		// Fewer requests measure a quantile less precisely.
		noise := latencyNoise + latencySigma/math.Sqrt(float64(obs.Requests))
		common := math.Exp(noise * rng.NormFloat64())
		obs.LatencyP50 = median * common
		obs.LatencyP95 = max(obs.LatencyP50, median*math.Exp(latencySigma*z95+noise*rng.NormFloat64())*common)
		obs.LatencyP99 = max(obs.LatencyP95, median*math.Exp(latencySigma*z99+noise*rng.NormFloat64())*common)
	}
	obs.HealthCheckFailures = fault.HealthCheckFailures
	obs.CPU = clamp01(cmp.Or(fault.CPU, baseCPU) + usageNoise*rng.NormFloat64())
	obs.Memory = clamp01(cmp.Or(fault.Memory, baseMemory) + usageNoise*rng.NormFloat64())
	return obs
}

// windowSource seeds a generator for one version's window, so the same
// window always yields the same draws while neighbouring windows and other
// versions yield independent ones.
func windowSource(seed int64, app, env, version string, from time.Time) *rand.PCG {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(seed))
	h.Write(buf[:])
	for _, s := range []string{app, env, version} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	binary.LittleEndian.PutUint64(buf[:], uint64(from.UnixNano()))
	h.Write(buf[:])
	sum := h.Sum64()
	return rand.NewPCG(sum, splitmix64(sum))
}

// splitmix64 scrambles a 64-bit value, giving the generator a second seed
// word that is not a simple function of the first one's bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// binomial draws the number of successes in n trials of probability p.
// Small n are drawn trial by trial; large n use the normal approximation
// when the variance is large enough for it, and the Poisson approximation
// otherwise (n large, p small), so the cost never grows with the window.
func binomial(rng *rand.Rand, n int64, p float64) int64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		// The approximations below assume a small p.
		return n - binomial(rng, n, 1-p)
	case n <= exactBinomialLimit:
		var k int64
		for range n {
			if rng.Float64() < p {
				k++
			}
		}
		return k
	}
	mean := float64(n) * p
	variance := mean * (1 - p)
	if variance >= 10 {
		k := int64(math.Round(mean + math.Sqrt(variance)*rng.NormFloat64()))
		return min(max(k, 0), n)
	}
	// Knuth's method; the mean is below 20 here because p <= 0.5.
	limit := math.Exp(-mean)
	var k int64
	for prod := rng.Float64(); prod > limit; prod *= rng.Float64() {
		k++
	}
	return min(k, n)
}

// clamp01 keeps a utilisation between 0 and 1.
func clamp01(v float64) float64 {
	return min(max(v, 0), 1)
}
