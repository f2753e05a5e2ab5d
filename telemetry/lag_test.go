package telemetry

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for deterministic lag tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLagTrackerLifecycle(t *testing.T) {
	clk := newFakeClock()
	lt := NewLagTracker(LagOptions{Now: clk.Now, HeartbeatPeriod: time.Second})
	if got := lt.StaleAfter(); got != 3*time.Second {
		t.Fatalf("default stale window = %s, want 2×heartbeat+1s = 3s", got)
	}
	if r := lt.Read(); r.State != LagUnknown || r.Lag != 0 {
		t.Fatalf("fresh tracker: %+v, want unknown", r)
	}

	// Catch-up: an event committed 42 s ago is read now.
	lt.Event(clk.Now().Add(-42 * time.Second))
	if r := lt.Read(); r.State != LagStreaming || r.Lag != 42*time.Second {
		t.Fatalf("after old event: %+v, want streaming 42s", r)
	}
	// Within the stale window, the reading stays the event's lag.
	clk.Advance(2 * time.Second)
	if r := lt.Read(); r.State != LagStreaming || r.Lag != 42*time.Second || r.Silence != 2*time.Second {
		t.Fatalf("2s later: %+v, want streaming 42s silence 2s", r)
	}
	// Live event: lag small.
	lt.Event(clk.Now().Add(-300 * time.Millisecond))
	if r := lt.Read(); r.Lag != 300*time.Millisecond {
		t.Fatalf("live event: %+v, want 300ms", r)
	}
	// The workload stops; a heartbeat arrives: lag drops to 0 instead of
	// staying frozen at 300ms.
	clk.Advance(time.Second)
	lt.Heartbeat()
	if r := lt.Read(); r.State != LagCaughtUp || r.Lag != 0 {
		t.Fatalf("after heartbeat: %+v, want caught_up 0", r)
	}
	// Idle with heartbeats every period: stays 0 indefinitely.
	for range 10 {
		clk.Advance(time.Second)
		lt.Heartbeat()
		if r := lt.Read(); r.Lag != 0 || r.State != LagCaughtUp {
			t.Fatalf("idle with heartbeats: %+v", r)
		}
	}
	// Heartbeats stop (stalled connection): within the window still 0, after
	// it the reading grows with the silence.
	clk.Advance(3 * time.Second)
	if r := lt.Read(); r.Lag != 0 || r.State != LagCaughtUp {
		t.Fatalf("silence = window: %+v, want still caught_up", r)
	}
	clk.Advance(2 * time.Second)
	if r := lt.Read(); r.State != LagStale || r.Lag != 5*time.Second {
		t.Fatalf("silence 5s > window 3s: %+v, want stale 5s", r)
	}
	clk.Advance(10 * time.Second)
	if r := lt.Read(); r.State != LagStale || r.Lag != 15*time.Second {
		t.Fatalf("silence 15s: %+v, want stale 15s", r)
	}
	// Evidence again: back to truthful values.
	lt.Heartbeat()
	if r := lt.Read(); r.State != LagCaughtUp || r.Lag != 0 {
		t.Fatalf("heartbeat after stall: %+v", r)
	}
}

func TestLagTrackerDisconnectGrowsImmediately(t *testing.T) {
	clk := newFakeClock()
	lt := NewLagTracker(LagOptions{Now: clk.Now, HeartbeatPeriod: 5 * time.Second})
	lt.Event(clk.Now().Add(-2 * time.Second))
	clk.Advance(time.Second)
	lt.Disconnected()
	if r := lt.Read(); r.State != LagStale || r.Lag != 3*time.Second {
		t.Fatalf("disconnected: %+v, want stale 2s+1s", r)
	}
	clk.Advance(4 * time.Second)
	if r := lt.Read(); r.Lag != 7*time.Second {
		t.Fatalf("disconnected 5s: %+v, want 7s", r)
	}
	// Reconnected: the first event read is again the truth (catching up).
	lt.Event(clk.Now().Add(-6 * time.Second))
	if r := lt.Read(); r.State != LagStreaming || r.Lag != 6*time.Second {
		t.Fatalf("reconnected: %+v, want streaming 6s", r)
	}
}

func TestLagTrackerClockSkewAndEdgeCases(t *testing.T) {
	clk := newFakeClock()
	lt := NewLagTracker(LagOptions{Now: clk.Now})
	// Zero timestamps (e.g. fake rotate events) carry no information.
	lt.Event(time.Time{})
	if r := lt.Read(); r.State != LagUnknown {
		t.Fatalf("zero ts: %+v, want unknown", r)
	}
	// Source clock 2 s ahead of ours: without correction the lag would be
	// negative; it is clamped at 0.
	lt.Event(clk.Now().Add(2 * time.Second))
	if r := lt.Read(); r.Lag != 0 {
		t.Fatalf("future ts: %+v, want 0", r)
	}
	// Source clock 10 s behind ours: an event committed 1 s ago carries a
	// timestamp 11 s old. With the offset known, the lag is 1 s, not 11 s.
	lt.SetSourceClockOffset(-10 * time.Second)
	lt.Event(clk.Now().Add(-11 * time.Second))
	if r := lt.Read(); r.Lag != time.Second {
		t.Fatalf("skewed source: %+v, want 1s", r)
	}
	// Explicit stale window wins over the default.
	lt2 := NewLagTracker(LagOptions{Now: clk.Now, HeartbeatPeriod: time.Second, StaleAfter: 10 * time.Second})
	if lt2.StaleAfter() != 10*time.Second {
		t.Fatalf("StaleAfter = %s", lt2.StaleAfter())
	}
}

func TestLagStateString(t *testing.T) {
	for s, want := range map[LagState]string{LagUnknown: "unknown", LagStreaming: "streaming", LagCaughtUp: "caught_up", LagStale: "stale"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestLagTrackerConcurrent(t *testing.T) {
	lt := NewLagTracker(LagOptions{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 1000 {
				switch (i + j) % 4 {
				case 0:
					lt.Event(time.Now())
				case 1:
					lt.Heartbeat()
				case 2:
					lt.Read()
				case 3:
					lt.Disconnected()
				}
			}
		}()
	}
	wg.Wait()
	lt.Heartbeat()
	if r := lt.Read(); r.State != LagCaughtUp {
		t.Fatalf("after concurrent use then heartbeat: %+v", r)
	}
}
