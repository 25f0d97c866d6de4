package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDelay caps a retry's delay, Retry-After included.
const maxDelay = time.Hour

// Backoff is the delay before attempt n+1 after attempt n (n from 1) failed
// in a way worth retrying: base doubled n-1 times, within ±20% jitter
// (receivers that failed together do not all come back at once), at most
// maxDelay. With the default base of 30 s, 8 attempts span about an hour.
func Backoff(n int, base time.Duration, r *rand.Rand) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	jitter := 0.8 + 0.4*r.Float64()
	return time.Duration(float64(d) * jitter)
}

// RetryAfter reads a Retry-After header (seconds, or an HTTP date) at now:
// the delay it asks for, capped at maxDelay, and whether there was one.
func RetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxDelay/time.Second) {
			return maxDelay, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxDelay), true
}
