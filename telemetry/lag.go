package telemetry

import (
	"sync"
	"time"
)

// LagState says what a lag reading is based on.
type LagState int

const (
	// LagUnknown: nothing has been heard from the source yet.
	LagUnknown LagState = iota
	// LagStreaming: the reading comes from the newest event's timestamp.
	LagStreaming
	// LagCaughtUp: the newest evidence is a server heartbeat, which the
	// server sends only when it has nothing more to send: the reader is at
	// the end of the binlog, so the lag is zero.
	LagCaughtUp
	// LagStale: nothing (no event, no heartbeat) arrived for longer than
	// the stale window, or the connection is down. The reading grows with
	// the silence, because anything committed since the last contact may be
	// unread.
	LagStale
)

func (s LagState) String() string {
	switch s {
	case LagStreaming:
		return "streaming"
	case LagCaughtUp:
		return "caught_up"
	case LagStale:
		return "stale"
	}
	return "unknown"
}

// LagReading is one lag computation.
type LagReading struct {
	Lag     time.Duration // how far the reader is behind the source (upper bound)
	State   LagState
	Silence time.Duration // time since the last event or heartbeat (0 if none yet)
}

// LagOptions configures a LagTracker.
type LagOptions struct {
	// Now is the clock; time.Now when nil. Tests inject a fake clock.
	Now func() time.Time
	// HeartbeatPeriod is the binlog heartbeat period the connector asked the
	// server for (default 5s).
	HeartbeatPeriod time.Duration
	// StaleAfter is how long a silence (no event and no heartbeat) is
	// tolerated before the reading is reported stale and starts growing
	// (default 2 × HeartbeatPeriod + 1s: one heartbeat may be late or lost).
	StaleAfter time.Duration
}

// LagTracker computes how far the binlog reader is behind the source,
// truthfully in the three situations where naive lag metrics lie:
//
//   - streaming: lag = arrival time − event timestamp, for the newest event
//     read (clamped at 0; corrected by the source clock offset when known).
//     Binlog event timestamps have whole-second precision, so the reading is
//     an upper bound that may exceed the truth by up to 1 s.
//   - idle: a server heartbeat means the server had nothing more to send, so
//     the lag is 0 — it does not stay frozen at the last event's value.
//   - stalled or disconnected: when neither events nor heartbeats arrive for
//     longer than StaleAfter (or Disconnected was called), the reading is the
//     last lag plus the silence, and keeps growing, instead of pretending
//     nothing happens on the source.
//
// Lag is computed when read (at scrape time), never cached, so it cannot go
// stale. All methods are safe for concurrent use.
type LagTracker struct {
	now        func() time.Time
	staleAfter time.Duration

	mu           sync.Mutex
	state        LagState      // state at the last evidence (Streaming or CaughtUp)
	lastEvidence time.Time     // local time of the last event or heartbeat
	lastLag      time.Duration // lag at lastEvidence
	disconnected bool
	clockOffset  time.Duration // source clock minus local clock
}

// NewLagTracker returns a tracker with no evidence yet (LagUnknown).
func NewLagTracker(o LagOptions) *LagTracker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HeartbeatPeriod <= 0 {
		o.HeartbeatPeriod = 5 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2*o.HeartbeatPeriod + time.Second
	}
	return &LagTracker{now: o.Now, staleAfter: o.StaleAfter}
}

// StaleAfter returns the tolerated silence.
func (l *LagTracker) StaleAfter() time.Duration { return l.staleAfter }

// Event records that an event whose source timestamp is ts has just been
// read. Call it per event or per transaction; a zero ts is ignored (some
// events, like artificial rotate events, carry no timestamp).
func (l *LagTracker) Event(ts time.Time) {
	if ts.IsZero() {
		return
	}
	now := l.now()
	l.mu.Lock()
	lag := now.Sub(ts.Add(-l.clockOffset))
	if lag < 0 {
		lag = 0
	}
	l.lastLag = lag
	l.lastEvidence = now
	l.state = LagStreaming
	l.disconnected = false
	l.mu.Unlock()
}

// Heartbeat records that a server heartbeat arrived: the reader is at the
// end of the source's binlog.
func (l *LagTracker) Heartbeat() {
	now := l.now()
	l.mu.Lock()
	l.lastLag = 0
	l.lastEvidence = now
	l.state = LagCaughtUp
	l.disconnected = false
	l.mu.Unlock()
}

// Disconnected records that the source connection was lost: from now on
// the reading grows with the time since the last contact, without waiting
// for the stale window. The next Event or Heartbeat clears it.
func (l *LagTracker) Disconnected() {
	l.mu.Lock()
	l.disconnected = true
	l.mu.Unlock()
}

// SetSourceClockOffset sets the source clock minus the local clock (for
// example measured at connect time from SELECT NOW(6)); event timestamps
// are corrected by it so a skewed source clock does not read as lag.
func (l *LagTracker) SetSourceClockOffset(d time.Duration) {
	l.mu.Lock()
	l.clockOffset = d
	l.mu.Unlock()
}

// Read computes the lag now.
func (l *LagTracker) Read() LagReading {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastEvidence.IsZero() {
		return LagReading{State: LagUnknown}
	}
	silence := now.Sub(l.lastEvidence)
	if silence < 0 {
		silence = 0
	}
	if l.disconnected || silence > l.staleAfter {
		return LagReading{Lag: l.lastLag + silence, State: LagStale, Silence: silence}
	}
	return LagReading{Lag: l.lastLag, State: l.state, Silence: silence}
}
