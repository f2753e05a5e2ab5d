package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ParallelWorkload runs several Workloads at once, each on its own
// connection with its own seed (seed, seed+1, ...), so that their commits
// share the server's group commit instead of waiting for one another's
// log flush. One connection reaches about 200 changes/s on this machine;
// the rate scales with the connections until the server's CPU is the
// limit. The workloads retry deadlocks and lock waits between them (see
// Workload). It is not safe for concurrent use.
type ParallelWorkload struct {
	ws   []*Workload
	wall time.Duration // wall time of every Run and LargeTransaction
}

// NewParallelWorkload prepares connections workloads (at least 1) on db.
// db must allow that many open connections.
func NewParallelWorkload(db *sql.DB, seed int64, connections int, opts WorkloadOptions) *ParallelWorkload {
	p := &ParallelWorkload{}
	for i := 0; i < max(1, connections); i++ {
		p.ws = append(p.ws, NewWorkload(db, seed+int64(i), opts))
	}
	return p
}

// LargeTransaction runs Workload.LargeTransaction on the first connection.
func (p *ParallelWorkload) LargeTransaction(ctx context.Context, rows int) (int, error) {
	start := time.Now()
	defer func() { p.wall += time.Since(start) }()
	return p.ws[0].LargeTransaction(ctx, rows)
}

// Stats returns the counts of everything applied so far by every
// connection; Duration is the wall time spent in Run and LargeTransaction.
func (p *ParallelWorkload) Stats() WorkloadStats {
	out := WorkloadStats{Kinds: map[Kind]int{}}
	for _, w := range p.ws {
		out.add(w.Stats())
	}
	out.Duration = p.wall
	return out
}

// Run applies n changes spread over the workloads, paced at rate changes
// per second in total (rate <= 0: as fast as possible). The returned
// Duration is the wall time of the run, not the sum of the workloads'.
func (p *ParallelWorkload) Run(ctx context.Context, n int, rate float64) (WorkloadStats, error) {
	if n < 0 {
		return WorkloadStats{}, errors.New("workload: negative number of changes")
	}
	start := time.Now()
	parts := make([]WorkloadStats, len(p.ws))
	errs := make([]error, len(p.ws))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, w := range p.ws {
		share := n / len(p.ws)
		if i < n%len(p.ws) {
			share++
		}
		r := rate
		if rate > 0 {
			r = rate * float64(share) / float64(n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := w.Run(ctx, share, r)
			parts[i] = st
			if err != nil {
				errs[i] = fmt.Errorf("connection %d: %w", i+1, err)
				cancel() // the others stop too
			}
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	out := WorkloadStats{Kinds: map[Kind]int{}}
	for _, st := range parts {
		out.add(st)
	}
	out.Duration = time.Since(start)
	p.wall += out.Duration
	return out, err
}
