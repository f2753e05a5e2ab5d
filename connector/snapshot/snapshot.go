// Package snapshot enumerates the keys of a source table in primary-key
// chunks for a full sync, without locks and without writing to the source.
//
// Invariants:
//   - A scan is a keyset scan (`WHERE key > last ORDER BY key LIMIT n`) on an
//     integer key: each chunk is one short autocommit SELECT, so no long
//     transaction or lock is held on the source, and a scan can resume after
//     the last completed chunk by passing its last key as After.
//   - Chunks are delivered in key order, each exactly once per scan; the
//     callback returns before the next chunk is read (memory is one chunk).
//   - The scan is throttled: never more than RowsPerSecond keys per second,
//     and it pauses while the Lag function reports more than MaxLag
//     (a replica falling behind its primary), resuming when it recovers.
package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Chunk is one chunk of keys, in ascending order.
type Chunk struct {
	Keys []int64
	// Last is the last key of the chunk: pass it as After to resume.
	Last int64
	// Index counts chunks from 1 within this scan.
	Index int
}

// LagFunc reports the source's replication lag (0 on a primary).
type LagFunc func(ctx context.Context) (time.Duration, error)

// Scanner scans one table's integer key column.
type Scanner struct {
	DB        *sql.DB
	Table     string // "table" or "db.table"
	KeyColumn string
	// Where is an optional extra condition (SQL, no user input).
	Where string
	// ChunkSize is the number of keys per chunk (default 1000).
	ChunkSize int
	// RowsPerSecond caps the scan rate; 0 means unlimited.
	RowsPerSecond float64
	// MaxLag pauses the scan while Lag reports more; 0 disables it.
	MaxLag time.Duration
	Lag    LagFunc
	// LagPoll is how often lag is re-checked while paused (default 1 s).
	LagPoll time.Duration
	Logger  *slog.Logger
}

var identRe = regexp.MustCompile(`^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)?$`)

func quoteIdent(s string) (string, error) {
	if !identRe.MatchString(s) {
		return "", fmt.Errorf("snapshot: %q is not a plain table or column name", s)
	}
	out := ""
	for i, part := range splitDot(s) {
		if i > 0 {
			out += "."
		}
		out += "`" + part + "`"
	}
	return out, nil
}

func splitDot(s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}

// Count returns the number of keys after `after` (an estimate of the work).
func (s *Scanner) Count(ctx context.Context, after int64) (int64, error) {
	table, col, where, err := s.parts()
	if err != nil {
		return 0, err
	}
	var n int64
	q := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s > ?%s", table, col, where)
	if err := s.DB.QueryRowContext(ctx, q, after).Scan(&n); err != nil {
		return 0, fmt.Errorf("snapshot: count %s: %w", s.Table, err)
	}
	return n, nil
}

func (s *Scanner) parts() (table, col, where string, err error) {
	if table, err = quoteIdent(s.Table); err != nil {
		return
	}
	if col, err = quoteIdent(s.KeyColumn); err != nil {
		return
	}
	if s.Where != "" {
		where = " AND (" + s.Where + ")"
	}
	return
}

// Scan reads chunks of keys greater than after and calls fn for each, in
// order, until the table is exhausted, fn fails or ctx ends.
func (s *Scanner) Scan(ctx context.Context, after int64, fn func(ctx context.Context, c Chunk) error) error {
	table, col, where, err := s.parts()
	if err != nil {
		return err
	}
	size := s.ChunkSize
	if size <= 0 {
		size = 1000
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s > ?%s ORDER BY %s LIMIT %d", col, table, col, where, col, size)
	start := time.Now()
	var total int64
	for idx := 1; ; idx++ {
		if err := s.waitLag(ctx); err != nil {
			return err
		}
		keys, err := s.chunk(ctx, q, after, size)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		c := Chunk{Keys: keys, Last: keys[len(keys)-1], Index: idx}
		if err := fn(ctx, c); err != nil {
			return err
		}
		after = c.Last
		total += int64(len(keys))
		if err := s.throttle(ctx, start, total); err != nil {
			return err
		}
		if len(keys) < size {
			return nil
		}
	}
}

func (s *Scanner) chunk(ctx context.Context, q string, after int64, size int) ([]int64, error) {
	rows, err := s.DB.QueryContext(ctx, q, after)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read keys of %s after %d: %w", s.Table, after, err)
	}
	defer rows.Close()
	keys := make([]int64, 0, size)
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("snapshot: scan key of %s: %w", s.Table, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot: read keys of %s: %w", s.Table, err)
	}
	return keys, nil
}

// throttle sleeps so that total keys since start stay under RowsPerSecond.
func (s *Scanner) throttle(ctx context.Context, start time.Time, total int64) error {
	if s.RowsPerSecond <= 0 {
		return nil
	}
	due := start.Add(time.Duration(float64(total) / s.RowsPerSecond * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		return sleep(ctx, wait)
	}
	return nil
}

func (s *Scanner) waitLag(ctx context.Context) error {
	if s.MaxLag <= 0 || s.Lag == nil {
		return nil
	}
	poll := s.LagPoll
	if poll <= 0 {
		poll = time.Second
	}
	logged := false
	for {
		lag, err := s.Lag(ctx)
		if err != nil {
			return fmt.Errorf("snapshot: read replication lag: %w", err)
		}
		if lag <= s.MaxLag {
			if logged && s.Logger != nil {
				s.Logger.Info("replica caught up, resuming full sync", "table", s.Table, "lag", lag)
			}
			return nil
		}
		if !logged && s.Logger != nil {
			s.Logger.Warn("replica lag above limit, pausing full sync", "table", s.Table, "lag", lag, "max_lag", s.MaxLag)
			logged = true
		}
		if err := sleep(ctx, poll); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Throttle paces a scan that is driven by someone else (a feed's own key
// enumeration): Wait blocks before each chunk of n rows so that the rate
// stays under RowsPerSecond and nothing is read while Lag exceeds MaxLag.
type Throttle struct {
	RowsPerSecond float64
	MaxLag        time.Duration
	Lag           LagFunc
	LagPoll       time.Duration
	Logger        *slog.Logger
	Name          string // for logs

	start time.Time
	total int64
}

// Wait accounts for n rows about to be read and blocks as needed.
func (t *Throttle) Wait(ctx context.Context, n int) error {
	s := Scanner{MaxLag: t.MaxLag, Lag: t.Lag, LagPoll: t.LagPoll, Logger: t.Logger, Table: t.Name, RowsPerSecond: t.RowsPerSecond}
	if err := s.waitLag(ctx); err != nil {
		return err
	}
	if t.start.IsZero() {
		t.start = time.Now()
	}
	err := s.throttle(ctx, t.start, t.total)
	t.total += int64(n)
	return err
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
