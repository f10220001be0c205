// Package storage is where cloudcloud keeps what must survive a restart: the
// display state, debug switches, favourites, the firmware update history,
// the generated credentials (small JSON records in buckets) and firmware
// images (large objects).
//
// The interfaces are shaped like NATS JetStream's key-value and object
// stores (docs/cluster.md), so a replicated implementation can stand beside
// the file one (Dir): keyed records, a revision per record for
// compare-and-set where two writers could race, and change notification.
package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// ErrNotFound means the key or object does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable means the storage cannot be reached now (the cluster's
// NATS servers are down or unreachable): nothing was changed, and the same
// call may succeed later.
var ErrUnavailable = errors.New("the cluster's storage (NATS JetStream) cannot be reached")

// CheckKey says whether key is a valid key: one or more segments of a-z,
// 0-9, '_' and '-', separated by '/'.
func CheckKey(key string) error {
	if !validKey(key) {
		return fmt.Errorf("storage: %q is not a valid key", key)
	}
	return nil
}

// Watched says whether a watch of prefix takes a change of key: a prefix
// ending in '/' (or "") takes every key under it, any other prefix is one
// key and takes that key only. (A replicated store then watches one
// subject for a key, not the whole bucket.)
func Watched(prefix, key string) bool {
	if prefix == "" || strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(key, prefix)
	}
	return key == prefix
}

// ConflictError refuses an Update whose revision is not the record's
// current one: somebody else changed it since it was read.
type ConflictError struct {
	Key      string
	Revision uint64 // the revision the caller had read (0: none, it was to be new)
	Current  uint64 // the record's revision now (0: it does not exist)
}

func (e *ConflictError) Error() string {
	if e.Revision == 0 {
		return fmt.Sprintf("%s already exists (revision %d)", e.Key, e.Current)
	}
	return fmt.Sprintf("%s changed since it was read (read revision %d, now %d); read it again", e.Key, e.Revision, e.Current)
}

// Entry is one record.
type Entry struct {
	Key      string
	Value    []byte // nil for a deletion seen by a watcher
	Revision uint64 // grows with every change of the key
	Deleted  bool
}

// Bucket is a set of small records under keys. Keys are one or more
// segments of a-z, 0-9, '_' and '-', separated by '/' ("state",
// "lamps/bedroom"). Every method is safe for concurrent use.
type Bucket interface {
	// Get returns the record, or ErrNotFound.
	Get(key string) (Entry, error)
	// Put stores value, durably, and returns its new revision.
	Put(key string, value []byte) (uint64, error)
	// Update stores value only if the record is still at revision (0: only
	// if it does not exist); else it returns a *ConflictError.
	Update(key string, value []byte, revision uint64) (uint64, error)
	// Delete removes the record; a missing one is not an error.
	Delete(key string) error
	// Keys lists the keys that start with prefix, sorted.
	Keys(prefix string) ([]string, error)
	// Watch calls fn with every later change of a key that Watched(prefix,
	// key) takes, in the order of the changes, on a goroutine of its own
	// (the writer does not wait for it), until stop is called; stop waits
	// for a call under way to return.
	Watch(prefix string, fn func(Entry)) (stop func())
	// SetAside moves an unusable record out of the way, keeping its bytes
	// for a person to look at, and says where they went.
	SetAside(key string) (string, error)
}

// Object is one stored object opened for reading: streamed (a download
// with Range) or read at offsets (checking an image's segments).
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	Size() int64
}

// Objects keeps large values (firmware images), written as a stream and
// never held in memory.
type Objects interface {
	// Create starts a new object. Its bytes become visible under name only
	// when Commit is called; Abort (or a crash) leaves nothing behind.
	Create() (ObjectWriter, error)
	// Open opens an object for reading, or returns ErrNotFound. A reader
	// keeps reading what it opened even if the object is replaced or
	// deleted meanwhile.
	Open(name string) (Object, error)
	// Delete removes an object; a missing one is not an error.
	Delete(name string) error
	// Names lists the objects.
	Names() ([]string, error)
}

// ObjectWriter receives a new object's bytes. It is also an io.ReaderAt and
// io.Seeker over what was written, so the bytes can be checked before
// Commit.
type ObjectWriter interface {
	io.Writer
	io.ReaderAt
	// Commit makes the bytes durable and visible as name, replacing any
	// object of that name.
	Commit(name string) error
	// Abort discards the bytes; after Commit it does nothing.
	Abort()
}

// PutJSON stores v as JSON.
func PutJSON(b Bucket, key string, v any) (uint64, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(key, append(data, '\n'))
}

// UpdateJSON stores v as JSON if the record is still at revision.
func UpdateJSON(b Bucket, key string, v any, revision uint64) (uint64, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Update(key, append(data, '\n'), revision)
}

// LoadJSON decodes the record under key into v and returns its revision.
// It is the one place that handles a record that cannot be used: one that
// does not decode, or that check refuses, is set aside, logged with what,
// and LoadJSON returns found = false with no error, so the caller goes on
// from its defaults and the evidence is kept. A missing record is found =
// false too. Only a failure to read at all is an error.
func LoadJSON(b Bucket, key string, v any, check func() error, log *slog.Logger, what string) (revision uint64, found bool, err error) {
	e, err := b.Get(key)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load %s: %w", what, err)
	}
	problem := json.Unmarshal(e.Value, v)
	if problem == nil && check != nil {
		problem = check()
	}
	if problem == nil {
		return e.Revision, true, nil
	}
	where, err := b.SetAside(key)
	if err != nil {
		return 0, false, fmt.Errorf("the saved %s is unusable (%v) and could not be set aside: %w", what, problem, err)
	}
	log.Error("the saved "+what+" is unusable; starting from defaults", "key", key, "kept_as", where, "err", problem)
	return 0, false, nil
}

// setAsideName is where SetAside keeps a record's bytes: the original name
// with the time it was set aside.
func setAsideName(name string, now time.Time) string {
	return name + ".corrupt-" + now.UTC().Format("20060102T150405.000Z")
}
