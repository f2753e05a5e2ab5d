package sink

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// HealthReporter is implemented by sinks that track, from their own sends,
// whether their destination is reachable. It plugs into readiness checks
// (telemetry.Connected).
type HealthReporter interface {
	// Health is true unless the destination failed the most recent send as
	// a whole (every record retryable); detail says why and since when.
	Health() (ok bool, detail string)
}

// Pinger is implemented by sinks that can check their destination without
// sending items (feedcdc check, start-up): brokers reachable and
// authenticated, directory writable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Health is the passive health state of a sink, updated after every send.
// Rejected records do not make a sink unhealthy (they are the items'
// fault); a send whose records were all retryable does, until a send
// succeeds for at least one record. The zero value is healthy.
type Health struct {
	mu      sync.Mutex
	down    bool
	since   time.Time
	reason  string
	lastErr time.Time
}

// Observe updates the state from one send's results.
func (h *Health) Observe(res []Result, now time.Time) {
	if len(res) == 0 {
		return
	}
	var ok, retry int
	reason := ""
	for _, r := range res {
		switch r.Status {
		case StatusOK:
			ok++
		case StatusRetryable:
			retry++
			if reason == "" {
				reason = r.Reason
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case ok > 0:
		h.down = false
	case retry == len(res):
		if !h.down {
			h.down, h.since = true, now
		}
		h.reason, h.lastErr = reason, now
	}
}

// Health implements HealthReporter.
func (h *Health) Health() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return true, ""
	}
	return false, fmt.Sprintf("every record of the last send failed since %s: %s", h.since.UTC().Format(time.RFC3339), h.reason)
}
