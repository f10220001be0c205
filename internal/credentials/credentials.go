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

	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// Key is the credentials' record in the storage bucket (credentials.json in
// the data directory, mode 0600).
const Key = "credentials"

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

// Ensure loads the credentials from records and fills in whatever is
// missing. It fails rather than setting aside an unreadable record (as other
// records are): replacing it would lock out every lamp flashed with the old
// secret. where names the record for that message.
//
// Nodes of a cluster share the record, and start together (a Compose file
// starts them at once): what one node makes up is created only if no other
// node did first, else that node's values are taken, so every node signs
// cookies with the same key.
func Ensure(records storage.Bucket, where string) (Credentials, Generated, error) {
	for range 5 {
		c, g, err := ensureOnce(records, where)
		var conflict *storage.ConflictError
		if !errors.As(err, &conflict) {
			return c, g, err
		}
	}
	return Credentials{}, Generated{}, errors.New("save generated credentials: other nodes kept changing them; start again")
}

// ensureOnce is one try of Ensure: a *storage.ConflictError when another node
// saved the credentials meanwhile.
func ensureOnce(records storage.Bucket, where string) (Credentials, Generated, error) {
	var c Credentials
	var g Generated
	e, err := records.Get(Key)
	switch {
	case err == nil:
		if err := json.Unmarshal(e.Value, &c); err != nil {
			return c, g, fmt.Errorf("%s is unreadable (%v); restore it, or delete it to generate new secrets (lamps must then be given the new secret)", where, err)
		}
	case !errors.Is(err, storage.ErrNotFound):
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
		// e.Revision is 0 for a missing record: only a new one is made.
		if _, err := storage.UpdateJSON(records, Key, c, e.Revision); err != nil {
			var conflict *storage.ConflictError
			if errors.As(err, &conflict) {
				return c, g, err
			}
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
