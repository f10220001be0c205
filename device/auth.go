package device

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// NamedSecret lets a lamp be recognised by name across reconnects.
type NamedSecret struct {
	Name   string
	Secret string
}

// secrets checks a lamp's first frame against the shared secret and the
// named ones. Comparing SHA-256 digests in constant time, and always walking
// every candidate, tells an attacker neither which prefix nor which secret
// came close.
type secrets struct {
	shared    [sha256.Size]byte
	hasShared bool
	named     []namedDigest
}

type namedDigest struct {
	name   string
	digest [sha256.Size]byte
}

func newSecrets(shared string, named []NamedSecret) secrets {
	s := secrets{hasShared: shared != ""}
	if s.hasShared {
		s.shared = sha256.Sum256([]byte(shared))
	}
	for _, n := range named {
		s.named = append(s.named, namedDigest{name: n.Name, digest: sha256.Sum256([]byte(n.Secret))})
	}
	return s
}

// match returns whether frame holds a known secret and, for a named secret,
// the lamp's name.
func (s secrets) match(frame []byte) (name string, ok bool) {
	d := sha256.Sum256(protocol.TrimSecret(frame))
	found := 0
	if s.hasShared {
		found = subtle.ConstantTimeCompare(d[:], s.shared[:])
	}
	for _, n := range s.named {
		if subtle.ConstantTimeCompare(d[:], n.digest[:]) == 1 {
			name, found = n.name, 1
		}
	}
	return name, found == 1
}

// backoff slows down repeated wrong secrets from one address: each failure
// doubles the delay before the refusal is sent, up to max; a success or a
// quiet period clears it. Only the failing connection waits, so good lamps
// behind the same address are not held up.
type backoff struct {
	base, max time.Duration
	mu        sync.Mutex
	failures  map[string]failure
}

type failure struct {
	count int
	last  time.Time
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, failures: make(map[string]failure)}
}

// fail records a failure from ip and returns how long to wait before answering.
func (b *backoff) fail(ip string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.failures[ip]
	if now.Sub(f.last) > 2*b.max {
		f.count = 0
	}
	f.count++
	f.last = now
	b.failures[ip] = f
	if len(b.failures) > 10000 {
		b.prune(now)
	}
	d := b.base
	for i := 1; i < f.count && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

func (b *backoff) succeed(ip string) {
	b.mu.Lock()
	delete(b.failures, ip)
	b.mu.Unlock()
}

// prune drops entries quiet for long; b.mu is held.
func (b *backoff) prune(now time.Time) {
	for ip, f := range b.failures {
		if now.Sub(f.last) > 2*b.max {
			delete(b.failures, ip)
		}
	}
}
