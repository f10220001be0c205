// Package credentials keeps the secrets the server makes up for itself on
// first start (the UI password, the lamp secret, the session-cookie key) in
// the data directory, so the next start reuses them and lamps and phones
// stay connected across restarts.
package credentials

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cloudcloud/cloudcloud/atomicfile"
)

// FileName is the credentials file inside the data directory (mode 0600).
const FileName = "credentials.json"

// Credentials are the generated secrets.
type Credentials struct {
	WebPassword  string `json:"web_password"`
	DeviceSecret string `json:"device_auth_secret"`
	SessionKey   string `json:"session_key"` // base64, 32 random bytes
}

// Generated says which values were made up on this start (so the caller
// prints them once).
type Generated struct {
	WebPassword, DeviceSecret bool
}

// Ensure loads dir/credentials.json and fills in whatever is missing. It
// fails rather than silently replacing an unreadable file: replacing it would
// lock out every lamp flashed with the old secret.
func Ensure(dir string) (Credentials, Generated, error) {
	path := filepath.Join(dir, FileName)
	var c Credentials
	var g Generated
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &c); err != nil {
			return c, g, fmt.Errorf("%s is unreadable (%v); restore it, or delete it to generate new secrets (lamps must then be given the new secret)", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return c, g, fmt.Errorf("read credentials: %w", err)
	}
	changed := false
	if c.WebPassword == "" {
		c.WebPassword, g.WebPassword, changed = random(12), true, true
	}
	if c.DeviceSecret == "" {
		c.DeviceSecret, g.DeviceSecret, changed = random(18), true, true
	}
	if key, err := base64.StdEncoding.DecodeString(c.SessionKey); err != nil || len(key) < 32 {
		c.SessionKey, changed = base64.StdEncoding.EncodeToString(randomBytes(32)), true
	}
	if changed {
		if err := atomicfile.WriteJSON(path, c, 0o600); err != nil {
			return c, g, fmt.Errorf("save generated credentials: %w", err)
		}
	}
	return c, g, nil
}

// Key returns the session key bytes.
func (c Credentials) Key() []byte {
	k, _ := base64.StdEncoding.DecodeString(c.SessionKey)
	return k
}

// random returns n random bytes as URL-safe text a person can type.
func random(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("credentials: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return b
}
