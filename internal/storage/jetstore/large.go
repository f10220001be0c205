package jetstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A JetStream key-value record is one NATS message, and NATS refuses a
// message over the server's max_payload (1 MB unless configured). Some of
// cloudcloud's records grow past that: a node's debug log (up to
// device.log_total_bytes, 4 MiB), the firmware update history of a few
// thousand lamps. Such a value goes to the bucket's object store, which
// splits it into chunks, and the record holds only a pointer to it:
// largeMarker followed by the object's name. Get and Watch follow the
// pointer, so callers see the value as they wrote it; a compare-and-set
// Update still works on the record's revision.
//
// Objects are named by the key and the value's digest, so two writes of a
// record never share an object; the ones no record points to any more are
// deleted by sweep.

// largeMarker starts a record that points to an object. cloudcloud's
// values are JSON, which never starts with a NUL; a value that does is
// stored as an object too, so a stored record is never misread.
const largeMarker = "\x00cloudcloud-object:"

// headroom is what a key-value message needs beside the value (the
// subject and the compare-and-set header).
const headroom = 4 << 10

// sweepAge is how long an object no record points to is kept: a write on
// another node may have stored it and not yet its pointer, and a reader
// may still be fetching one just replaced; each takes at most a call's
// timeout. Short, because a node's debug log is written whole every few
// seconds while its lamps log, and each write is a new object.
const sweepAge = 2 * timeout

// large is a bucket's object store for values that do not fit a record;
// opened on the first one.
type large struct {
	mu        sync.Mutex
	obs       jetstream.ObjectStore
	lastSweep time.Time
	now       func() time.Time // tests move it
}

// isLarge says whether value must go to the object store.
func (b *bucket) isLarge(value []byte) bool {
	limit := int(b.store.nc.MaxPayload())
	if limit <= 0 {
		limit = 1 << 20 // not known yet: NATS's default
	}
	return len(value) > limit-headroom || bytes.HasPrefix(value, []byte(largeMarker))
}

// values opens the bucket's object store.
func (b *bucket) values(ctx context.Context) (jetstream.ObjectStore, error) {
	b.large.mu.Lock()
	defer b.large.mu.Unlock()
	if b.large.obs != nil {
		return b.large.obs, nil
	}
	obs, err := b.store.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: b.name + "_values", Replicas: b.store.replicas})
	if err != nil {
		return nil, fmt.Errorf("open the %s_values object store in JetStream: %w", b.name, unavailable(err))
	}
	b.large.obs = obs
	return obs, nil
}

// largeName is the object that holds value for the record of NATS key nk.
func largeName(nk string, value []byte) string {
	sum := sha256.Sum256(value)
	return nk + "@" + hex.EncodeToString(sum[:16])
}

// record is what the record of NATS key nk holds for value: value itself,
// or, for a large one, a pointer to the object it was put in.
func (b *bucket) record(ctx context.Context, nk string, value []byte) ([]byte, error) {
	if !b.isLarge(value) {
		return value, nil
	}
	obs, err := b.values(ctx)
	if err != nil {
		return nil, err
	}
	name := largeName(nk, value)
	if _, err := obs.PutBytes(ctx, name, value); err != nil {
		return nil, fmt.Errorf("write %s (%d bytes, kept as an object): %w", ourKey(nk), len(value), unavailable(err))
	}
	return []byte(largeMarker + name), nil
}

// resolve returns the value a record holds: itself, or the object it
// points to. ok is false when that object is gone: a later write replaced
// the record and swept it, so the caller reads the record again.
func (b *bucket) resolve(ctx context.Context, nk string, record []byte) (value []byte, ok bool, err error) {
	name, isPointer := strings.CutPrefix(string(record), largeMarker)
	if !isPointer {
		return record, true, nil
	}
	obs, err := b.values(ctx)
	if err != nil {
		return nil, false, err
	}
	value, err = obs.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s (kept as an object): %w", ourKey(nk), unavailable(err))
	}
	return value, true, nil
}

// sweepSoon deletes, at most once per sweepAge, the objects that no record
// points to any more and that are older than sweepAge. It runs after a
// large write, so a bucket that has them sweeps; an object left by a
// record that shrank or was deleted goes at the next large write.
func (b *bucket) sweepSoon() {
	b.large.mu.Lock()
	now := b.large.now()
	if now.Sub(b.large.lastSweep) < sweepAge || b.large.obs == nil {
		b.large.mu.Unlock()
		return
	}
	b.large.lastSweep = now
	obs := b.large.obs
	b.large.mu.Unlock()
	go b.sweep(obs, now)
}

func (b *bucket) sweep(obs jetstream.ObjectStore, now time.Time) {
	ctx, cancel := call()
	defer cancel()
	infos, err := obs.List(ctx)
	if err != nil {
		return // none, or NATS is away: the next sweep tries again
	}
	for _, info := range infos {
		if info.Deleted || now.Sub(info.ModTime) < sweepAge {
			continue
		}
		nk, _, _ := strings.Cut(info.Name, "@")
		e, err := b.kv.Get(ctx, nk)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			continue
		case string(e.Value()) == largeMarker+info.Name:
			continue // still the record's value
		}
		_ = obs.Delete(ctx, info.Name)
	}
}
