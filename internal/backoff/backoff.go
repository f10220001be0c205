// Package backoff slows down repeated failures per client address: wrong
// lamp secrets on the device port, wrong passwords on the web port. After
// each failure the address waits twice as long as the last time (base,
// 2×base, 4×base … up to max); a success or a quiet spell of twice max
// starts it over. Memory stays bounded however many addresses an attacker
// uses.
package backoff

import (
	"sync"
	"time"
)

// MaxTracked bounds the number of addresses remembered.
const MaxTracked = 10000

// PerAddress is the back-off state of every address that failed lately.
type PerAddress struct {
	base, max time.Duration
	now       func() time.Time

	mu       sync.Mutex
	failures map[string]failures
}

type failures struct {
	count     int
	last      time.Time
	nextAllow time.Time
}

// New returns a back-off from base up to max; now is the clock (time.Now
// when nil).
func New(base, max time.Duration, now func() time.Time) *PerAddress {
	if now == nil {
		now = time.Now
	}
	return &PerAddress{base: base, max: max, now: now, failures: make(map[string]failures)}
}

// Wait returns how long addr must still wait before its next attempt; 0
// means go.
func (b *PerAddress) Wait(addr string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.failures[addr]
	if !ok {
		return 0
	}
	return max(0, f.nextAllow.Sub(b.now()))
}

// Fail records a failure from addr and returns the delay it now faces.
func (b *PerAddress) Fail(addr string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	f := b.failures[addr]
	if now.Sub(f.last) > 2*b.max {
		f.count = 0 // quiet for long: start over
	}
	f.count++
	f.last = now
	d := b.base
	for i := 1; i < f.count && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	f.nextAllow = now.Add(d)
	if _, ok := b.failures[addr]; !ok && len(b.failures) >= MaxTracked {
		b.prune(now)
	}
	b.failures[addr] = f
	return d
}

// Succeed forgets addr's failures.
func (b *PerAddress) Succeed(addr string) {
	b.mu.Lock()
	delete(b.failures, addr)
	b.mu.Unlock()
}

// prune drops addresses quiet for long, then, if an attack keeps the map
// full, the oldest half; b.mu is held.
func (b *PerAddress) prune(now time.Time) {
	for addr, f := range b.failures {
		if now.Sub(f.last) > 2*b.max {
			delete(b.failures, addr)
		}
	}
	if len(b.failures) < MaxTracked {
		return
	}
	cutoff := now.Add(-b.max)
	for addr, f := range b.failures {
		if f.last.Before(cutoff) || len(b.failures) >= MaxTracked/2 {
			delete(b.failures, addr)
		}
		if len(b.failures) < MaxTracked/2 {
			return
		}
	}
}
