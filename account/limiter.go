package account

import (
	"sync"
	"time"
)

// limiter counts failed logins per key (an account's email or a client address) and answers
// how long the key must wait before it may try again. After free failures, each further
// failure doubles the wait, from base up to max. Counts are kept in memory, per replica: a
// bounded map (at most size keys; the least recently failed key is evicted first), so an
// attacker spraying keys cannot exhaust memory. With several replicas behind a load balancer,
// an attacker gets at most the replicas' combined budget, which backoff still keeps small.
type limiter struct {
	mu      sync.Mutex
	free    int
	base    time.Duration
	max     time.Duration
	forget  time.Duration // a key with no failure for this long starts over
	size    int
	entries map[string]*limitEntry
}

type limitEntry struct {
	failures    int
	lastFailure time.Time
	lockedUntil time.Time
}

func newLimiter(free int, base, max time.Duration, size int) *limiter {
	return &limiter{free: free, base: base, max: max, forget: time.Hour, size: size, entries: map[string]*limitEntry{}}
}

// wait returns how long key must still wait at now (0: it may try).
func (l *limiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return 0
	}
	if now.Sub(e.lastFailure) > l.forget && !now.Before(e.lockedUntil) {
		delete(l.entries, key)
		return 0
	}
	if now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now)
	}
	return 0
}

// fail records a failure of key at now.
func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if ok && now.Sub(e.lastFailure) > l.forget && !now.Before(e.lockedUntil) {
		ok = false
	}
	if !ok {
		if len(l.entries) >= l.size {
			l.evict(now)
		}
		e = &limitEntry{}
		l.entries[key] = e
	}
	e.failures++
	e.lastFailure = now
	if over := e.failures - l.free; over > 0 {
		d := l.base
		for i := 1; i < over && d < l.max; i++ {
			d *= 2
		}
		e.lockedUntil = now.Add(min(d, l.max))
	}
}

// reset forgets key, after a successful login.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

// evict drops forgotten entries, or else the least recently failed one. Called with mu held.
func (l *limiter) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, e := range l.entries {
		if now.Sub(e.lastFailure) > l.forget && !now.Before(e.lockedUntil) {
			delete(l.entries, k)
			continue
		}
		if oldestKey == "" || e.lastFailure.Before(oldest) {
			oldestKey, oldest = k, e.lastFailure
		}
	}
	if len(l.entries) >= l.size && oldestKey != "" {
		delete(l.entries, oldestKey)
	}
}
