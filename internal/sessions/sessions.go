// Package sessions keeps the browser logins on the server, so that signing
// out really ends a login: a cookie whose session is not in the store is
// refused, however well it is signed. The list is written atomically to the
// data directory, so a restart logs nobody out, and it carries a
// fingerprint of the credentials it was made under: when the server starts
// with another password, every session ends.
//
// In a cluster the record is shared: each change is a compare-and-set of
// the list another node may have changed, and a node reads the record
// again when what it read is RefreshEvery old, and whenever a cookie is not
// in its list, so a login through one node is one on every node (a load
// balancer may send each request elsewhere), and signing out ends it
// everywhere within RefreshEvery.
package sessions

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	revision uint64     // of the record sessions were read from or written to; 0: none
	checked  time.Time  // when the record was last read
}

// RefreshEvery is how often the record is read again for changes made by
// another node of a cluster (a session ended there).
const RefreshEvery = time.Second

// Open loads the sessions from records. credentials is a fingerprint of
// the login (never the password itself); when the record was written under
// another one the password changed, and every session is dropped. A
// missing record is an empty store; an unusable one is set aside and the
// store starts empty, so everybody signs in again but the server starts.
func Open(records storage.Bucket, credentials string, now time.Time, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{records: records, credentials: credentials, log: logger, checked: now}
	var f file
	revision, found, err := storage.LoadJSON(records, Key, &f, nil, logger, "browser logins")
	if err != nil || !found {
		return s, err
	}
	s.revision = revision
	if f.Credentials != credentials {
		if len(f.Sessions) > 0 {
			logger.Info("the web password changed: every browser is signed out", "sessions_ended", len(f.Sessions))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.change(func([]Session) ([]Session, error) { return nil, nil }); err != nil {
			return nil, fmt.Errorf("end the sessions of the old password: %w", err)
		}
		return s, nil
	}
	s.sessions = f.live(now)
	return s, nil
}

// live are the usable sessions of f that have not expired at now (the
// zero time: whatever their expiry).
func (f file) live(now time.Time) []Session {
	var out []Session
	for _, r := range f.Sessions {
		if r.TokenHash == "" || r.ID == "" || !now.Before(r.Expires) {
			continue
		}
		r.Session.tokenHash = r.TokenHash
		out = append(out, r.Session)
	}
	return out
}

// refresh reads the record again if another node changed it since it was
// read: with force at once, else at most once per RefreshEvery. A record
// that cannot be read or used leaves the sessions as they are. s.mu is
// held.
func (s *Store) refresh(now time.Time, force bool) {
	if !force && now.Sub(s.checked) < RefreshEvery && !now.Before(s.checked) {
		return
	}
	s.checked = now
	e, err := s.records.Get(Key)
	if err != nil || e.Revision == s.revision {
		return
	}
	var f file
	if json.Unmarshal(e.Value, &f) != nil {
		return
	}
	// Expired ones stay, as in memory: Lookup and List skip them, the next
	// Create drops them.
	next := f.live(time.Time{})
	if f.Credentials != s.credentials {
		next = nil // made under another password: none is ours
	}
	// When each was last used is kept in memory only (see Lookup): keep
	// the later of the two.
	for i := range next {
		if j := slices.IndexFunc(s.sessions, func(x Session) bool { return x.ID == next[i].ID }); j >= 0 && s.sessions[j].LastSeen.After(next[i].LastSeen) {
			next[i].LastSeen = s.sessions[j].LastSeen
		}
	}
	s.sessions, s.revision = next, e.Revision
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
	err := s.change(func(cur []Session) ([]Session, error) {
		next := slices.DeleteFunc(cur, func(x Session) bool { return !now.Before(x.Expires) })
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
		return append(next, sess), nil
	})
	if err != nil {
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
	s.refresh(now, false)
	i := slices.IndexFunc(s.sessions, func(x Session) bool { return x.tokenHash == h })
	if i < 0 {
		// Perhaps made through another node a moment ago.
		s.refresh(now, true)
		i = slices.IndexFunc(s.sessions, func(x Session) bool { return x.tokenHash == h })
	}
	if i < 0 || !now.Before(s.sessions[i].Expires) {
		return Session{}, false
	}
	s.sessions[i].LastSeen = now
	return s.sessions[i], true
}

// Renew moves the end of a session to expires.
func (s *Store) Renew(id string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(func(cur []Session) ([]Session, error) {
		i := slices.IndexFunc(cur, func(x Session) bool { return x.ID == id })
		if i < 0 {
			return nil, ErrNotFound
		}
		cur[i].Expires = expires
		return cur, nil
	})
}

// Delete ends one session.
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(func(cur []Session) ([]Session, error) {
		i := slices.IndexFunc(cur, func(x Session) bool { return x.ID == id })
		if i < 0 {
			return nil, ErrNotFound
		}
		return slices.Delete(cur, i, i+1), nil
	})
}

// DeleteAll ends every session except the one named keep (empty: all of
// them) and answers how many ended.
func (s *Store) DeleteAll(keep string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ended := 0
	err := s.change(func(cur []Session) ([]Session, error) {
		next := slices.DeleteFunc(slices.Clone(cur), func(x Session) bool { return x.ID != keep })
		if ended = len(cur) - len(next); ended == 0 {
			return nil, errUnchanged
		}
		return next, nil
	})
	if err != nil {
		return 0, err
	}
	return ended, nil
}

// List returns the live sessions, most recently used first.
func (s *Store) List(now time.Time) []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh(now, false)
	out := slices.DeleteFunc(slices.Clone(s.sessions), func(x Session) bool { return !now.Before(x.Expires) })
	slices.SortStableFunc(out, func(a, b Session) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

// errUnchanged, from an edit, saves nothing.
var errUnchanged = errors.New("unchanged")

// change saves what edit makes of the sessions and makes it current; s.mu
// is held. The save is a compare-and-set of the record as last read: when
// another node changed it meanwhile, the record is read again and edit
// applies to that. On an error (edit's, or the save's) the sessions in
// memory stay as they were.
func (s *Store) change(edit func(cur []Session) ([]Session, error)) error {
	for range 5 {
		next, err := edit(slices.Clone(s.sessions))
		if err == errUnchanged {
			return nil
		}
		if err != nil {
			return err
		}
		f := file{Credentials: s.credentials, Sessions: make([]record, 0, len(next))}
		for _, x := range next {
			f.Sessions = append(f.Sessions, record{Session: x, TokenHash: x.tokenHash})
		}
		revision, err := storage.UpdateJSON(s.records, Key, f, s.revision)
		var conflict *storage.ConflictError
		if errors.As(err, &conflict) {
			s.refresh(time.Now(), true)
			continue
		}
		if err != nil {
			return fmt.Errorf("save sessions (nothing was changed): %w", err)
		}
		s.sessions, s.revision = next, revision
		return nil
	}
	return errors.New("save sessions: other nodes kept changing them; try again")
}
