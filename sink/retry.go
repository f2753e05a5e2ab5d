package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff policy with jitter. The zero value is
// usable: 200 ms doubling up to 30 s, ±20% jitter, retrying until ctx ends.
type Backoff struct {
	Initial     time.Duration // first delay; default 200 ms
	Max         time.Duration // largest delay; default 30 s
	Multiplier  float64       // growth per attempt; default 2
	Jitter      float64       // fraction of random spread, (0,1]; 0 = default 0.2
	MaxAttempts int           // total attempts including the first; 0 = until ctx ends
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 200 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter <= 0 || b.Jitter > 1 {
		b.Jitter = 0.2
	}
	return b
}

// Delay is the wait after the given failed attempt (1 = after the first).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := float64(b.Initial)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	spread := d * b.Jitter
	d += (rand.Float64()*2 - 1) * spread
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

// Sleep waits for d or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendWithRetry sends recs through s and re-sends only the records whose
// result is Retryable, waiting per b (or the largest RetryAfter the sink
// asked for, if longer), until every record is OK or Rejected, the attempts
// run out, or ctx ends. It returns the final result of every record (those
// still failing keep their last Retryable result) and, when it stopped
// early, the reason (ctx's error or "attempts exhausted").
//
// A Router retries each of its sinks separately (see Router.SendWithRetry):
// a record is resent only to the sinks that have not accepted it yet.
func SendWithRetry(ctx context.Context, s Sink, recs []Record, b Backoff) ([]Result, error) {
	if rs, ok := s.(retrySender); ok {
		return rs.SendWithRetry(ctx, recs, b)
	}
	return sendWithRetry(ctx, s, recs, b)
}

// retrySender is implemented by sinks with their own retry loop.
type retrySender interface {
	SendWithRetry(ctx context.Context, recs []Record, b Backoff) ([]Result, error)
}

func sendWithRetry(ctx context.Context, s Sink, recs []Record, b Backoff) ([]Result, error) {
	b = b.withDefaults()
	final := make([]Result, len(recs))
	pending := make([]int, len(recs)) // indexes into recs still to send
	for i := range pending {
		pending[i] = i
	}
	batch := make([]Record, 0, len(recs))
	for attempt := 1; ; attempt++ {
		batch = batch[:0]
		for _, i := range pending {
			batch = append(batch, recs[i])
		}
		res, err := s.Send(ctx, batch)
		if err == nil && len(res) != len(batch) {
			err = fmt.Errorf("sink %s returned %d results for %d records", s.Name(), len(res), len(batch))
		}
		if err != nil {
			res = Fill(len(batch), StatusRetryable, err, err.Error())
		}
		var retryAfter time.Duration
		next := pending[:0]
		for j, i := range pending {
			final[i] = res[j]
			if res[j].Status == StatusRetryable {
				next = append(next, i)
				if res[j].RetryAfter > retryAfter {
					retryAfter = res[j].RetryAfter
				}
			}
		}
		pending = next
		if len(pending) == 0 {
			return final, nil
		}
		if b.MaxAttempts > 0 && attempt >= b.MaxAttempts {
			return final, fmt.Errorf("sink %s: %d of %d records still retryable after %d attempts", s.Name(), len(pending), len(recs), attempt)
		}
		wait := b.Delay(attempt)
		if retryAfter > wait {
			wait = retryAfter
		}
		if err := Sleep(ctx, wait); err != nil {
			return final, fmt.Errorf("sink %s: %d of %d records still retryable: %w", s.Name(), len(pending), len(recs), err)
		}
	}
}
