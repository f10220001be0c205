// Package sessions keeps the browser logins on the server, so that signing
// out really ends a login: a cookie whose session is not in the store is
// refused, however well it is signed. The list is written atomically to the
// data directory, so a restart logs nobody out, and it carries a
// fingerprint of the credentials it was made under: when the server starts
// with another password, every session ends.
package sessions

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// Key is the sessions' record in the storage bucket (sessions.json in the
// data directory).
const Key = "sessions"

// Max is the most sessions kept. A new login beyond it ends the one used
// least recently, so forgotten browsers cannot grow the file without bound.
const Max = 32

// ErrNotFound is returned for a session id the store does not hold.
var ErrNotFound = errors.New("no such session (it ended or never existed)")

// Session is one login of one browser.
type Session struct {
	// ID names the session in lists and in DELETE /api/sessions/<id>. It is
	// not the secret the cookie carries: showing it gives nobody a login.
	ID       string    `json:"id"`
	Created  time.Time `json:"created_at"`
	LastSeen time.Time `json:"last_seen"`
	Expires  time.Time `json:"expires_at"`
	Client   string    `json:"client"`  // the browser's User-Agent, shortened
	Address  string    `json:"address"` // where it signed in from

	tokenHash string // hex SHA-256 of the cookie's secret
}

// record is the on-disk form of a session. The file holds a hash of each
// cookie secret, never the secret, so a copy of the data directory signs
// nobody in.
type record struct {
	Session
	TokenHash string `json:"token_sha256"`
}

type file struct {
	// Credentials is the fingerprint of the user name and password the
	// sessions were created under.
	Credentials string   `json:"credentials"`
	Sessions    []record `json:"sessions"`
}

// Store holds the sessions. It is safe for concurrent use.
type Store struct {
	records     storage.Bucket
	credentials string
	log         *slog.Logger

	mu       sync.Mutex // serialises writes so the file and memory agree
	sessions []Session  // oldest first
}

// Open loads the sessions from records. credentials is a fingerprint of
// the login (never the password itself); when the record was written under
// another one the password changed, and every session is dropped. A
// missing record is an empty store; an unusable one is set aside and the
// store starts empty, so everybody signs in again but the server starts.
func Open(records storage.Bucket, credentials string, now time.Time, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{records: records, credentials: credentials, log: logger}
	var f file
	_, found, err := storage.LoadJSON(records, Key, &f, nil, logger, "browser logins")
	if err != nil || !found {
		return s, err
	}
	if f.Credentials != credentials {
		if len(f.Sessions) > 0 {
			logger.Info("the web password changed: every browser is signed out", "sessions_ended", len(f.Sessions))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.commit(nil); err != nil {
			return nil, fmt.Errorf("end the sessions of the old password: %w", err)
		}
		return s, nil
	}
	for _, r := range f.Sessions {
		if r.TokenHash == "" || r.ID == "" || !now.Before(r.Expires) {
			continue
		}
		r.Session.tokenHash = r.TokenHash
		s.sessions = append(s.sessions, r.Session)
	}
	return s, nil
}

// NewToken returns a new unguessable cookie secret: 128 random bits in hex.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Create stores a new session for the cookie secret token (from NewToken)
// and answers it. meta gives Client, Address and Expires; ID, Created and
// LastSeen are filled in.
func (s *Store) Create(token string, meta Session, now time.Time) (Session, error) {
	id := NewToken()[:16]
	sess := meta
	sess.ID, sess.Created, sess.LastSeen, sess.tokenHash = id, now, now, hashToken(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.sessions), func(x Session) bool { return !now.Before(x.Expires) })
	for len(next) >= Max {
		// End the one used least recently.
		i := 0
		for j := range next {
			if next[j].LastSeen.Before(next[i].LastSeen) {
				i = j
			}
		}
		next = slices.Delete(next, i, i+1)
	}
	if err := s.commit(append(next, sess)); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// Lookup finds the live session of a cookie secret and notes that it was
// used now (in memory: writing the file on every request would wear out an
// SD card; the time is saved with the next change).
func (s *Store) Lookup(token string, now time.Time) (Session, bool) {
	h := hashToken(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.sessions {
		if s.sessions[i].tokenHash == h {
			if !now.Before(s.sessions[i].Expires) {
				return Session{}, false
			}
			s.sessions[i].LastSeen = now
			return s.sessions[i], true
		}
	}
	return Session{}, false
}

// Renew moves the end of a session to expires.
func (s *Store) Renew(id string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.sessions, func(x Session) bool { return x.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	next := slices.Clone(s.sessions)
	next[i].Expires = expires
	return s.commit(next)
}

// Delete ends one session.
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.sessions, func(x Session) bool { return x.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	return s.commit(slices.Delete(slices.Clone(s.sessions), i, i+1))
}

// DeleteAll ends every session except the one named keep (empty: all of
// them) and answers how many ended.
func (s *Store) DeleteAll(keep string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.sessions), func(x Session) bool { return x.ID != keep })
	ended := len(s.sessions) - len(next)
	if ended == 0 {
		return 0, nil
	}
	return ended, s.commit(next)
}

// List returns the live sessions, most recently used first.
func (s *Store) List(now time.Time) []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.DeleteFunc(slices.Clone(s.sessions), func(x Session) bool { return !now.Before(x.Expires) })
	slices.SortStableFunc(out, func(a, b Session) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

// commit writes next and makes it current; s.mu is held. On an error the
// sessions in memory stay as they were.
func (s *Store) commit(next []Session) error {
	f := file{Credentials: s.credentials, Sessions: make([]record, 0, len(next))}
	for _, x := range next {
		f.Sessions = append(f.Sessions, record{Session: x, TokenHash: x.tokenHash})
	}
	if _, err := storage.PutJSON(s.records, Key, f); err != nil {
		return fmt.Errorf("save sessions (nothing was changed): %w", err)
	}
	s.sessions = next
	return nil
}
