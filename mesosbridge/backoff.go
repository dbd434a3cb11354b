package mesosbridge

import (
	"math/rand/v2"
	"time"
)

// backoff is a truncated exponential backoff with ±jitter: Next returns
// base, 2·base, 4·base, ... capped at max, each scaled by a random factor in
// [1-jitter, 1+jitter]. Not safe for concurrent use.
type backoff struct {
	base, max time.Duration
	jitter    float64 // 0.2 = ±20%
	cur       time.Duration
}

func newBackoff(base, max time.Duration, jitter float64) *backoff {
	return &backoff{base: base, max: max, jitter: jitter}
}

// Next returns the next wait.
func (b *backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur *= 2
		if b.cur > b.max || b.cur <= 0 {
			b.cur = b.max
		}
	}
	return jittered(b.cur, b.jitter)
}

// Reset starts over at base.
func (b *backoff) Reset() { b.cur = 0 }

func jittered(d time.Duration, jitter float64) time.Duration {
	if jitter <= 0 || d <= 0 {
		return d
	}
	f := 1 + jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// sleepCtx waits d or until done closes; it reports whether the full wait passed.
func sleepCtx(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
