package push

import (
	"cmp"
	"slices"
)

// histogram is a latency histogram as a sample sends it: counts[i]
// observations fell in (bounds[i-1], bounds[i]], the first bucket starting
// at 0, and overflow observations above the highest bound.
type histogram struct {
	bounds   []float64
	counts   []int64
	overflow int64
}

// sort orders the buckets by bound, which JSON objects do not keep.
func (h *histogram) sort() {
	idx := make([]int, len(h.bounds))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(h.bounds[a], h.bounds[b]) })
	bounds, counts := make([]float64, len(idx)), make([]int64, len(idx))
	for i, j := range idx {
		bounds[i], counts[i] = h.bounds[j], h.counts[j]
	}
	h.bounds, h.counts = bounds, counts
}

func (h histogram) total() int64 {
	t := h.overflow
	for _, c := range h.counts {
		t += c
	}
	return t
}

// midpointSum estimates the sum of the observations by putting each one in
// the middle of its bucket. Overflow observations count at the highest
// bound, the least they can be, as nothing better is known of them.
func (h histogram) midpointSum() float64 {
	var sum, lo float64
	for i, hi := range h.bounds {
		sum += float64(h.counts[i]) * (lo + hi) / 2
		lo = hi
	}
	return sum + float64(h.overflow)*h.bounds[len(h.bounds)-1]
}

// appendPieces adds the histogram's mass to ps: each bucket spread evenly
// over its range, which is the linear interpolation Prometheus's
// histogram_quantile uses, and the overflow at the highest bound, which is
// where Prometheus puts a quantile that falls into it.
func (h histogram) appendPieces(ps []piece) []piece {
	lo := 0.0
	for i, hi := range h.bounds {
		if h.counts[i] > 0 {
			ps = append(ps, piece{lo: lo, hi: hi, weight: float64(h.counts[i])})
		}
		lo = hi
	}
	if h.overflow > 0 {
		ps = append(ps, piece{lo: lo, hi: lo, weight: float64(h.overflow)})
	}
	return ps
}

// piece is part of a distribution: weight observations spread evenly over
// [lo, hi], or all at lo when lo == hi. Single values and histogram buckets
// are both pieces, so a window's quantiles can combine any mix of them,
// including histograms with different bucket bounds.
type piece struct {
	lo, hi float64
	weight float64
}

// quantiles returns, for each q in qs (ascending, in (0, 1]), the smallest
// x at which the combined distribution of pieces reaches q of its weight.
// For one histogram this is Prometheus's interpolation; for single values
// it is the nearest-rank quantile.
func quantiles(pieces []piece, qs []float64) []float64 {
	// The cumulative weight is piecewise linear between the ends of the
	// pieces, with jumps where single values sit. Walk those breakpoints
	// in order, tracking the slope of the spread pieces.
	type event struct {
		x     float64
		mass  float64 // weight sitting exactly at x
		slope float64 // change of the slope at x
	}
	events := make([]event, 0, 2*len(pieces))
	var total float64
	for _, p := range pieces {
		total += p.weight
		if p.hi <= p.lo {
			events = append(events, event{x: p.lo, mass: p.weight})
			continue
		}
		s := p.weight / (p.hi - p.lo)
		events = append(events, event{x: p.lo, slope: s}, event{x: p.hi, slope: -s})
	}
	slices.SortFunc(events, func(a, b event) int { return cmp.Compare(a.x, b.x) })

	out := make([]float64, len(qs))
	qi := 0
	var cum, slope float64
	prev := events[0].x
	for i := 0; i < len(events) && qi < len(qs); {
		x := events[i].x
		left := cum + slope*(x-prev) // the weight below x, without what sits at x
		for qi < len(qs) && qs[qi]*total <= left && slope > 0 {
			out[qi] = prev + (qs[qi]*total-cum)/slope
			qi++
		}
		cum = left
		for ; i < len(events) && events[i].x == x; i++ {
			cum += events[i].mass
			slope += events[i].slope
		}
		for qi < len(qs) && qs[qi]*total <= cum {
			out[qi] = x
			qi++
		}
		prev = x
	}
	// Rounding can leave the last quantiles a hair above the total; they
	// are the largest point of the distribution.
	for ; qi < len(qs); qi++ {
		out[qi] = events[len(events)-1].x
	}
	return out
}
