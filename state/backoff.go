package state

import (
	"math/rand/v2"
	"time"
)

// Defaults for NextBackoff when base or max is not positive.
const (
	DefaultBackoffBase = time.Minute
	DefaultBackoffMax  = time.Hour
)

// NextBackoff returns how long to wait before retry number attempts (1 for
// the first retry): base·2^(attempts-1), capped at max, then jittered
// uniformly into [d/2, d] so that items failed together do not retry
// together.
func NextBackoff(attempts int, base, max time.Duration) time.Duration {
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if max <= 0 {
		max = DefaultBackoffMax
	}
	if base > max {
		base = max
	}
	d := base
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
