// Package favorites keeps the favourite colours every phone shows as one-tap
// swatches. They live on the server, not in a browser, so every phone sees
// the same list; the record is written atomically, so a crash keeps either
// the old list or the new one.
package favorites

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Key is the favourites' record in the storage bucket (favorites.json in
// the data directory).
const Key = "favorites"

// Max is the most favourites kept: a phone shows them in two rows of eight.
const Max = 16

// Defaults are the favourites of a fresh install, so the row is not empty
// the first time someone opens the page.
var Defaults = []protocol.RGB{
	{R: 255, G: 65, B: 174},  // the default warm pink
	{R: 255, G: 147, B: 41},  // candle
	{R: 255, G: 214, B: 170}, // warm white
	{R: 64, G: 156, B: 255},  // sky
	{R: 46, G: 204, B: 113},  // leaf
	{R: 155, G: 89, B: 255},  // violet
}

// List is the favourites as kept and as the API shows them. Revision grows
// with every change, so a phone that saves a whole list can say which list
// it changed, and loses nothing another phone added meanwhile.
type List struct {
	Colors   []protocol.RGB `json:"colors"`
	Revision uint64         `json:"revision"`
}

// record is the stored form; the revision is the storage's own.
type record struct {
	Colors []protocol.RGB `json:"colors"`
}

// StaleError refuses a whole-list change made to an older list than the
// current one.
type StaleError struct {
	Revision, Current uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("the favourites changed (on another phone?) since revision %d; they are at revision %d now: reload them and try again", e.Revision, e.Current)
}

// Store holds the list and announces every change on the bus as a
// favorites event. It is safe for concurrent use.
type Store struct {
	records storage.Bucket
	bus     events.Publisher

	mu  sync.Mutex // serialises writes so the record and memory agree
	cur List
}

// Open loads the favourites from records. A missing record gives the
// defaults; an unusable one is set aside (storage.LoadJSON keeps it for a
// person to inspect) and the defaults are used, so a bad file never keeps
// the server from starting.
func Open(records storage.Bucket, bus events.Publisher, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{records: records, bus: bus, cur: List{Colors: slices.Clone(Defaults)}}
	var disk record
	rev, found, err := storage.LoadJSON(records, Key, &disk, func() error { return Validate(disk.Colors) }, logger, "favourite colours")
	if err != nil {
		return nil, err
	}
	if found {
		s.cur = List{Colors: disk.Colors, Revision: rev}
	}
	// Changes through another node of a cluster sharing the record follow
	// as long as the process lives.
	records.Watch(Key, s.follow)
	return s, nil
}

// follow takes a change of the record made by another node: its list is
// the list here too, and the pages hear of it. The store's own writes come
// back through the watch too, at a revision it already has, and change
// nothing.
func (s *Store) follow(e storage.Entry) {
	if e.Key != Key || e.Deleted {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followLocked(e)
}

// followLocked is follow with s.mu held.
func (s *Store) followLocked(e storage.Entry) {
	var disk record
	if e.Revision <= s.cur.Revision || json.Unmarshal(e.Value, &disk) != nil || Validate(disk.Colors) != nil {
		return
	}
	s.become(List{Colors: disk.Colors, Revision: e.Revision})
}

// become makes l current and announces it; s.mu is held.
func (s *Store) become(l List) {
	s.cur = l
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: events.TypeFavorites, Data: s.cur.clone()})
	}
}

// Get returns a copy of the favourites, in the order people arranged them.
func (s *Store) Get() List {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.clone()
}

func (l List) clone() List { return List{Colors: slices.Clone(l.Colors), Revision: l.Revision} }

// Validate checks a list: at most Max colours, no colour twice.
func Validate(colors []protocol.RGB) error {
	if len(colors) > Max {
		return invalid.Field("colors", "%d colours is too many; keep at most %d", len(colors), Max)
	}
	for i, c := range colors {
		if j := slices.Index(colors[:i], c); j >= 0 {
			return invalid.Field(fmt.Sprintf("colors[%d]", i), "%s is already colors[%d]; each colour once", c.Hex(), j)
		}
	}
	return nil
}

// Set replaces the list after validating it and writing it to disk; on any
// error the old list stays. With ifRevision, the list must still be at that
// revision (else *StaleError): the caller changed the list it read then.
func (s *Store) Set(colors []protocol.RGB, ifRevision *uint64) (List, error) {
	if colors == nil {
		colors = []protocol.RGB{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := Validate(colors); err != nil {
		return s.cur.clone(), err
	}
	if ifRevision != nil && *ifRevision != s.cur.Revision {
		return s.cur.clone(), &StaleError{Revision: *ifRevision, Current: s.cur.Revision}
	}
	// The caller's list replaces what it read: with a revision, a newer
	// list (another node's change not followed here yet) makes it stale.
	return s.change(ifRevision != nil, func([]protocol.RGB) ([]protocol.RGB, error) { return slices.Clone(colors), nil })
}

// Add appends c unless it is already there (then the list is unchanged and
// no error is returned: tapping "add" twice is not a mistake).
func (s *Store) Add(c protocol.RGB) (List, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(false, func(cur []protocol.RGB) ([]protocol.RGB, error) {
		if slices.Contains(cur, c) {
			return nil, errUnchanged
		}
		if len(cur) >= Max {
			return nil, invalid.Field("color", "there are already %d favourites, the most kept; remove one first", Max)
		}
		return append(cur, c), nil
	})
}

// Remove deletes c; removing a colour that is not there changes nothing.
func (s *Store) Remove(c protocol.RGB) (List, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(false, func(cur []protocol.RGB) ([]protocol.RGB, error) {
		i := slices.Index(cur, c)
		if i < 0 {
			return nil, errUnchanged
		}
		return slices.Delete(cur, i, i+1), nil
	})
}

// errUnchanged, from an edit, writes nothing.
var errUnchanged = errors.New("unchanged")

// change writes what edit makes of the current colours, makes it current
// and announces it; s.mu is held. The write is a compare-and-set on the
// record's revision, so another writer of the record (another node) is
// never overwritten unseen: its list is taken, and edit applies to it,
// unless strict (a whole list the caller made from the older one: then
// *StaleError).
func (s *Store) change(strict bool, edit func(cur []protocol.RGB) ([]protocol.RGB, error)) (List, error) {
	for range 5 {
		next, err := edit(slices.Clone(s.cur.Colors))
		if err == errUnchanged {
			return s.cur.clone(), nil
		}
		if err != nil {
			return s.cur.clone(), err
		}
		rev, err := storage.UpdateJSON(s.records, Key, record{Colors: next}, s.cur.Revision)
		var conflict *storage.ConflictError
		if errors.As(err, &conflict) {
			read := s.cur.Revision
			if e, err := s.records.Get(Key); err == nil {
				s.followLocked(e)
			}
			if strict {
				return s.cur.clone(), &StaleError{Revision: read, Current: conflict.Current}
			}
			continue
		}
		if err != nil {
			return s.cur.clone(), fmt.Errorf("save favourite colours (nothing was changed): %w", err)
		}
		s.become(List{Colors: next, Revision: rev})
		return s.cur.clone(), nil
	}
	return s.cur.clone(), errors.New("save favourite colours (nothing was changed): other nodes kept changing them; try again")
}
