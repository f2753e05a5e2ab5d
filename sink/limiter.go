package sink

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// Limiter bounds the bytes in flight between the binlog reader and the sinks
// (backpressure). The reader Acquires the size of what it reads before
// handing it on, and the exporter Releases it once every sink has answered
// for it; when sinks are slow or down, Acquire blocks and the reader pauses,
// so memory stays bounded and nothing is dropped.
//
// Waiters are served first come, first served, so a large request is not
// starved by small ones. A request larger than the limit is admitted alone
// (when nothing else is in flight) so one oversized item cannot deadlock
// the pipeline.
type Limiter struct {
	mu      sync.Mutex
	max     int64
	cur     int64
	waiters list.List // of *limitWaiter
}

type limitWaiter struct {
	n     int64
	ready chan struct{}
}

// NewLimiter returns a limiter admitting at most maxBytes in flight.
// maxBytes must be positive.
func NewLimiter(maxBytes int64) *Limiter {
	if maxBytes <= 0 {
		maxBytes = 1
	}
	return &Limiter{max: maxBytes}
}

func (l *Limiter) clamp(n int) int64 {
	v := int64(n)
	if v < 0 {
		v = 0
	}
	if v > l.max {
		v = l.max
	}
	return v
}

// Acquire blocks until n bytes may be in flight, or ctx ends (then it returns
// ctx's error and holds nothing).
func (l *Limiter) Acquire(ctx context.Context, n int) error {
	v := l.clamp(n)
	l.mu.Lock()
	if l.waiters.Len() == 0 && l.cur+v <= l.max {
		l.cur += v
		l.mu.Unlock()
		return nil
	}
	w := &limitWaiter{n: v, ready: make(chan struct{})}
	elem := l.waiters.PushBack(w)
	l.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-w.ready:
			// Granted while we were giving up: hand it back.
			l.cur -= v
			l.notifyLocked()
		default:
			l.waiters.Remove(elem)
			// Our leaving may let the next waiters in.
			l.notifyLocked()
		}
		l.mu.Unlock()
		return fmt.Errorf("waiting for %d in-flight bytes (limit %d): %w", n, l.max, ctx.Err())
	}
}

// TryAcquire takes n bytes if they are available now, without waiting.
func (l *Limiter) TryAcquire(n int) bool {
	v := l.clamp(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters.Len() == 0 && l.cur+v <= l.max {
		l.cur += v
		return true
	}
	return false
}

// Release returns n bytes acquired earlier.
func (l *Limiter) Release(n int) {
	v := l.clamp(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur -= v
	if l.cur < 0 {
		panic(fmt.Sprintf("sink.Limiter: released %d bytes more than acquired", -l.cur))
	}
	l.notifyLocked()
}

func (l *Limiter) notifyLocked() {
	for {
		front := l.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*limitWaiter)
		if l.cur+w.n > l.max {
			return
		}
		l.cur += w.n
		l.waiters.Remove(front)
		close(w.ready)
	}
}

// Charge adds n bytes found in flight after the fact (e.g. a build that
// turned out larger than the bytes acquired for it) without waiting: the
// limit may be exceeded by it, and later Acquires wait until enough is
// Discharged or Released. It is not clamped to the limit.
func (l *Limiter) Charge(n int64) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	l.cur += n
	l.mu.Unlock()
}

// Discharge returns n bytes added by Charge.
func (l *Limiter) Discharge(n int64) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur -= n
	if l.cur < 0 {
		panic(fmt.Sprintf("sink.Limiter: discharged %d bytes more than charged", -l.cur))
	}
	l.notifyLocked()
}

// InFlight is the number of bytes currently held.
func (l *Limiter) InFlight() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// Waiting is the number of Acquire calls currently blocked (a reader paused
// by backpressure shows as 1).
func (l *Limiter) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters.Len()
}

// Max is the limit in bytes.
func (l *Limiter) Max() int64 { return l.max }
