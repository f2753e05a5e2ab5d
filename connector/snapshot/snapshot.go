// Package snapshot paces full syncs: the feeds enumerate their own keys in
// primary-key chunks, and a Throttle decides when the next chunk may be
// read. ReplicaLag reads a replica's lag for it.
//
// Invariants:
//   - A throttled full sync never reads more than RowsPerSecond rows per
//     second on average since its first chunk, and it pauses while the Lag
//     function reports more than MaxLag (a replica falling behind its
//     primary), resuming when it recovers.
//   - Every wait ends when its context ends, with the context's error.
package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// LagFunc reports the source's replication lag (0 on a primary).
type LagFunc func(ctx context.Context) (time.Duration, error)

// Throttle paces a full sync that is driven by someone else (a feed's own
// key enumeration): Wait blocks before each chunk of n rows so that the rate
// stays under RowsPerSecond and nothing is read while Lag exceeds MaxLag.
type Throttle struct {
	RowsPerSecond float64 // 0: unlimited
	MaxLag        time.Duration
	Lag           LagFunc       // nil or MaxLag 0: no lag check
	LagPoll       time.Duration // how often lag is re-checked while paused (default 1 s)
	Logger        *slog.Logger
	Name          string // for logs

	start time.Time
	stats ThrottleStats
}

// ThrottleStats counts what a Throttle did: the chunks and rows it
// accounted (one Wait each) and how many of those Waits blocked (rate or
// replica lag).
type ThrottleStats struct {
	Chunks int64 `json:"chunks"`
	Rows   int64 `json:"rows"`
	Paused int64 `json:"paused"`
}

// Stats returns the counts so far. Like Wait, it is not safe for use
// concurrently with Wait.
func (t *Throttle) Stats() ThrottleStats { return t.stats }

// Wait accounts for n rows about to be read and blocks as needed.
func (t *Throttle) Wait(ctx context.Context, n int) error {
	paused, err := t.waitLag(ctx)
	if err != nil {
		return err
	}
	if t.start.IsZero() {
		t.start = time.Now()
	}
	slept, err := t.pace(ctx)
	t.stats.Chunks++
	t.stats.Rows += int64(n)
	if paused || slept {
		t.stats.Paused++
	}
	return err
}

// pace sleeps so that the rows accounted since start stay under
// RowsPerSecond; slept says whether it had to.
func (t *Throttle) pace(ctx context.Context) (slept bool, err error) {
	if t.RowsPerSecond <= 0 {
		return false, nil
	}
	due := t.start.Add(time.Duration(float64(t.stats.Rows) / t.RowsPerSecond * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		return true, sleep(ctx, wait)
	}
	return false, nil
}

// waitLag blocks while the lag is above MaxLag; paused says whether it
// had to.
func (t *Throttle) waitLag(ctx context.Context) (paused bool, err error) {
	if t.MaxLag <= 0 || t.Lag == nil {
		return false, nil
	}
	poll := t.LagPoll
	if poll <= 0 {
		poll = time.Second
	}
	logged := false
	for {
		lag, err := t.Lag(ctx)
		if err != nil {
			return paused, fmt.Errorf("snapshot: read replication lag: %w", err)
		}
		if lag <= t.MaxLag {
			if logged && t.Logger != nil {
				t.Logger.Info("replica caught up, resuming full sync", "feed", t.Name, "lag", lag)
			}
			return paused, nil
		}
		paused = true
		if !logged && t.Logger != nil {
			t.Logger.Warn("replica lag above limit, pausing full sync", "feed", t.Name, "lag", lag, "max_lag", t.MaxLag)
			logged = true
		}
		if err := sleep(ctx, poll); err != nil {
			return paused, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// ErrNotReplica is returned by ReplicaLag on a server that is not a replica.
var ErrNotReplica = errors.New("snapshot: server is not a replica")

// ReplicaLag reads Seconds_Behind_Master (MariaDB, MySQL < 8.0.22) or
// Seconds_Behind_Source (MySQL 8.0.22+) of the server behind db. A server
// that is not a replica has no lag (0, nil). A replica whose SQL thread is
// stopped reports an error: its lag is unknown.
func ReplicaLag(ctx context.Context, db *sql.DB) (time.Duration, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		rows, err = db.QueryContext(ctx, "SHOW REPLICA STATUS")
		if err != nil {
			return 0, fmt.Errorf("snapshot: SHOW SLAVE STATUS (needs REPLICATION CLIENT, and SLAVE MONITOR on MariaDB 10.5+): %w", err)
		}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	if !rows.Next() {
		return 0, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return 0, err
	}
	for i, c := range cols {
		if c == "Seconds_Behind_Master" || c == "Seconds_Behind_Source" {
			if !vals[i].Valid {
				return 0, errors.New("snapshot: replica lag is unknown (replication SQL thread not running)")
			}
			var secs int64
			if _, err := fmt.Sscan(vals[i].String, &secs); err != nil {
				return 0, fmt.Errorf("snapshot: parse %s=%q: %w", c, vals[i].String, err)
			}
			return time.Duration(secs) * time.Second, nil
		}
	}
	return 0, nil
}
