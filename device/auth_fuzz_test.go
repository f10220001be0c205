package device

import (
	"bytes"
	"testing"
)

// FuzzHandshakeSecret: whatever a lamp sends as its first frame, matching
// never panics and accepts exactly the configured secrets (white space aside).
func FuzzHandshakeSecret(f *testing.F) {
	s := newSecrets("shared-secret", []NamedSecret{{Name: "bedroom", Secret: "bedroom-secret"}})
	for _, seed := range []string{"shared-secret", " shared-secret\r\n", "bedroom-secret", "", "shared-secre", "\x00"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		name, ok := s.match(frame)
		trimmed := string(bytes.TrimSpace(frame))
		switch trimmed {
		case "shared-secret":
			if !ok || name != "" {
				t.Fatalf("shared secret %q: %q %v", frame, name, ok)
			}
		case "bedroom-secret":
			if !ok || name != "bedroom" {
				t.Fatalf("named secret %q: %q %v", frame, name, ok)
			}
		default:
			if ok {
				t.Fatalf("accepted %q", frame)
			}
		}
	})
}
