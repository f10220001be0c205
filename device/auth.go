package device

import (
	"crypto/sha256"
	"crypto/subtle"

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
