package telemetry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHotPath measures what the connector pays per metric call, as a
// ratio to an atomic counter increment measured in the same run (the
// cheapest possible counter). Run: go test -run '^$' -bench HotPath ./telemetry
func BenchmarkHotPath(b *testing.B) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	m := tel.Metrics
	f := m.Feed("products")
	q := m.Queue("changes")
	ts := time.Now()
	var counter atomic.Int64
	const n = 1_000_000
	measure := func(fn func()) time.Duration {
		for range 1000 {
			fn()
		}
		start := time.Now()
		for range n {
			fn()
		}
		return time.Since(start) / n
	}
	// The baseline is measured three times and the fastest kept: the first
	// loop of a run pays for CPU frequency ramp-up on a shared machine.
	base := min(measure(func() { counter.Add(1) }), measure(func() { counter.Add(1) }), measure(func() { counter.Add(1) }))
	cases := []struct {
		name string
		fn   func()
	}{
		{"RowsRead", func() { m.RowsRead(1) }},
		{"Feed.Sent", func() { f.Sent(1) }},
		{"ItemsSent(name)", func() { m.ItemsSent("products", 1) }},
		{"Feed.BuildDuration", func() { f.BuildDuration(time.Millisecond) }},
		{"Queue.Depth", func() { q.Depth(10, 1000) }},
		{"SourceEvent", func() { m.SourceEvent(ts) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := measure(c.fn)
			b.ReportMetric(float64(d.Nanoseconds()), "ns/call")
			b.ReportMetric(float64(d)/float64(max(base, 1)), "x-atomic-add")
			b.Logf("%s: %s per call, %.1fx an atomic add (%s)", c.name, d, float64(d)/float64(max(base, 1)), base)
			for range b.N {
				c.fn()
			}
		})
	}
}
