// Package jetstore keeps cloudcloud's records and objects in NATS
// JetStream (docs/cluster.md): every storage bucket is a key-value bucket,
// every object set an object store, so several cloudcloud nodes share them
// and a change through one node is seen by all of them (Watch).
//
// Keys map to NATS keys with '.' for '/' ("lamps/bedroom" is
// "lamps.bedroom"), so a prefix watch is a subject wildcard; bucket
// "" is the key-value bucket "cloudcloud", bucket "firmware"
// "cloudcloud_firmware".
package jetstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// timeout bounds one storage call, so a change through a node that lost
// NATS answers at once instead of hanging the request.
const timeout = 5 * time.Second

// Store is the JetStream side of storage: it opens buckets and object sets.
type Store struct {
	nc *nats.Conn
	js jetstream.JetStream
	// reconnected is closed and replaced at every reconnect, so the
	// watches start again from the last revision they saw: a watch does not
	// survive a NATS server's restart by itself.
	reconnectMu sync.Mutex
	reconnected chan struct{}
	replicas    int
	cache       string // where objects are kept once fetched (they are named by their digest)

	mu      sync.Mutex
	buckets map[string]*bucket
	objects map[string]*objects
}

// Open connects to the NATS servers of url (comma-separated, credentials as
// nats://user:pass@host). replicas is how many copies JetStream keeps of
// each bucket; cache is a local directory for fetched objects.
func Open(url string, replicas int, cache string, opts ...nats.Option) (*Store, error) {
	s := &Store{reconnected: make(chan struct{}), replicas: max(replicas, 1), cache: cache,
		buckets: map[string]*bucket{}, objects: map[string]*objects{}}
	opts = append([]nats.Option{
		nats.Name("cloudcloud"),
		nats.MaxReconnects(-1), // keep trying: a node outlives a NATS restart
		nats.ReconnectWait(time.Second),
		nats.ReconnectHandler(func(*nats.Conn) {
			s.reconnectMu.Lock()
			close(s.reconnected)
			s.reconnected = make(chan struct{})
			s.reconnectMu.Unlock()
		}),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster.nats_url %s: cannot reach NATS (%w); start a NATS server with JetStream there (nats-server -js) or correct the URL", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster.nats_url %s: %w", redact(url), err)
	}
	// A NATS server without JetStream accepts the connection and fails
	// every bucket later; say so now, and what to do.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("cluster.nats_url %s: the NATS server has JetStream off; start it with -js (or jetstream {} in its config): cloudcloud keeps its state there", redact(url))
		}
		return nil, fmt.Errorf("cluster.nats_url %s: JetStream does not answer: %w", redact(url), err)
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		nc.Close()
		return nil, fmt.Errorf("object cache: %w", err)
	}
	s.nc, s.js = nc, js
	return s, nil
}

// nextReconnect is closed at the next reconnect.
func (s *Store) nextReconnect() <-chan struct{} {
	s.reconnectMu.Lock()
	defer s.reconnectMu.Unlock()
	return s.reconnected
}

// connected says whether NATS can be reached now; a change is refused at
// once while it cannot, instead of waiting for the call's timeout.
func (s *Store) connected() error {
	if s.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("%w: the connection is %s", storage.ErrUnavailable, strings.ToLower(s.nc.Status().String()))
	}
	return nil
}

// Conn is the NATS connection, for what nodes tell each other beside the
// stored records (internal/cluster).
func (s *Store) Conn() *nats.Conn { return s.nc }

// Close drops the connection.
func (s *Store) Close() { s.nc.Close() }

// redact hides the password of a URL for messages.
func redact(url string) string {
	if at := strings.LastIndex(url, "@"); at >= 0 {
		if scheme := strings.Index(url, "://"); scheme >= 0 && scheme < at {
			return url[:scheme+3] + "…" + url[at:]
		}
	}
	return url
}

func streamName(name string) string {
	if name == "" {
		return "cloudcloud"
	}
	return "cloudcloud_" + strings.ReplaceAll(name, "/", "_")
}

// Bucket opens (creating it if needed) the key-value bucket of name.
func (s *Store) Bucket(name string) (storage.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[name]; ok {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streamName(name), Replicas: s.replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("open the %s bucket in JetStream: %w", streamName(name), unavailable(err))
	}
	b := &bucket{kv: kv, name: streamName(name), store: s, large: large{now: time.Now}}
	s.buckets[name] = b
	return b, nil
}

// Objects opens (creating it if needed) the object store of name.
func (s *Store) Objects(name string) (storage.Objects, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.objects[name]; ok {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	obs, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: streamName(name), Replicas: s.replicas})
	if err != nil {
		return nil, fmt.Errorf("open the %s object store in JetStream: %w", streamName(name), unavailable(err))
	}
	dir := filepath.Join(s.cache, streamName(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	o := &objects{obs: obs, dir: dir}
	s.objects[name] = o
	return o, nil
}

// unavailable marks the errors that mean NATS cannot be reached now, so the
// web layer answers 503 with a reason instead of 500.
func unavailable(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

func natsKey(key string) string { return strings.ReplaceAll(key, "/", ".") }
func ourKey(key string) string  { return strings.ReplaceAll(key, ".", "/") }

type bucket struct {
	kv    jetstream.KeyValue
	name  string
	store *Store
	large large // for values too large for a record (large.go)
}

func call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

func (b *bucket) Get(key string) (storage.Entry, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.Entry{}, err
	}
	ctx, cancel := call()
	defer cancel()
	// A large value's object is swept only after a later write replaced
	// the record, so reading the record again finds the newer one.
	for range 3 {
		e, err := b.kv.Get(ctx, natsKey(key))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return storage.Entry{}, fmt.Errorf("%s: %w", key, storage.ErrNotFound)
		}
		if err != nil {
			return storage.Entry{}, fmt.Errorf("read %s: %w", key, unavailable(err))
		}
		value, ok, err := b.resolve(ctx, e.Key(), e.Value())
		if err != nil {
			return storage.Entry{}, err
		}
		if ok {
			return storage.Entry{Key: key, Value: value, Revision: e.Revision()}, nil
		}
	}
	return storage.Entry{}, fmt.Errorf("read %s: it changed three times while being read; try again", key)
}

func (b *bucket) Put(key string, value []byte) (uint64, error) {
	return b.write(key, value, nil)
}

func (b *bucket) Update(key string, value []byte, revision uint64) (uint64, error) {
	return b.write(key, value, &revision)
}

// write stores value under key: at any revision when revision is nil, else
// only at that one (0: only a new record).
func (b *bucket) write(key string, value []byte, revision *uint64) (uint64, error) {
	if err := storage.CheckKey(key); err != nil {
		return 0, err
	}
	if err := b.store.connected(); err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	ctx, cancel := call()
	defer cancel()
	nk := natsKey(key)
	record, err := b.record(ctx, nk, value)
	if err != nil {
		return 0, err
	}
	var rev uint64
	switch {
	case revision == nil:
		rev, err = b.kv.Put(ctx, nk, record)
	case *revision == 0:
		rev, err = b.kv.Create(ctx, nk, record)
	default:
		rev, err = b.kv.Update(ctx, nk, record, *revision)
	}
	if revision != nil && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongSequence(err)) {
		cur, _ := b.Get(key)
		return cur.Revision, &storage.ConflictError{Key: key, Revision: *revision, Current: cur.Revision}
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, unavailable(err))
	}
	if len(record) != len(value) {
		b.sweepSoon()
	}
	return rev, nil
}

// isWrongSequence reports JetStream's "wrong last sequence", which an Update
// of a record that changed meanwhile gets from servers that do not map it
// to ErrKeyRevisionMismatch.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func (b *bucket) Delete(key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	ctx, cancel := call()
	defer cancel()
	if err := b.kv.Delete(ctx, natsKey(key)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s: %w", key, unavailable(err))
	}
	return nil
}

func (b *bucket) Keys(prefix string) ([]string, error) {
	ctx, cancel := call()
	defer cancel()
	// A prefix of whole segments lists only its subjects: the debug logs
	// are found without going through every lamp's record.
	filter := ">"
	if strings.HasSuffix(prefix, "/") {
		filter = natsKey(prefix) + ">"
	}
	lister, err := b.kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the %s bucket: %w", b.name, unavailable(err))
	}
	var keys []string
	for k := range lister.Keys() {
		if k := ourKey(k); strings.HasPrefix(k, prefix) && storage.CheckKey(k) == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (b *bucket) Watch(prefix string, fn func(storage.Entry)) (stop func()) {
	// A prefix of whole segments ("lamps/") is a subject wildcard, a key
	// ("state") its own subject: the bucket's other changes never reach
	// this watch (see storage.Watched).
	pattern := ">"
	switch {
	case strings.HasSuffix(prefix, "/"):
		pattern = natsKey(prefix) + ">"
	case prefix != "":
		pattern = natsKey(prefix)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The first watch starts before Watch returns, so no change made after
	// it is missed; later ones resume from the last revision passed on.
	reconnect := b.store.nextReconnect()
	w, err := b.kv.Watch(ctx, pattern, jetstream.UpdatesOnly())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last uint64 // the newest revision passed on
		for ctx.Err() == nil {
			if err == nil {
				b.follow(ctx, w, reconnect, prefix, &last, fn)
				// Stopping removes the watch's consumer, which waits for
				// NATS, up to its timeout when NATS went away; fn is not
				// called any more, so nobody needs to wait for that.
				go func(w jetstream.KeyWatcher) { _ = w.Stop() }(w)
			} else {
				select { // NATS is away: try again when it is back
				case <-ctx.Done():
				case <-reconnect:
				case <-time.After(time.Second):
				}
			}
			reconnect = b.store.nextReconnect()
			opt := jetstream.UpdatesOnly()
			if last > 0 {
				opt = jetstream.ResumeFromRevision(last + 1) // what came while it was away
			}
			w, err = b.kv.Watch(ctx, pattern, opt)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// follow passes a watch's updates to fn until ctx ends, the watch ends, or
// the connection comes back after a loss (then the caller watches again).
func (b *bucket) follow(ctx context.Context, w jetstream.KeyWatcher, reconnect <-chan struct{}, prefix string, last *uint64, fn func(storage.Entry)) {
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case <-reconnect:
			return
		case e, ok = <-w.Updates():
			if !ok {
				return
			}
		}
		if e == nil || e.Revision() <= *last {
			continue // the end of the initial values, or one already passed on
		}
		key := ourKey(e.Key())
		if !storage.Watched(prefix, key) {
			*last = e.Revision()
			continue
		}
		deleted := e.Operation() != jetstream.KeyValuePut
		entry := storage.Entry{Key: key, Revision: e.Revision(), Deleted: deleted}
		if !deleted {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			value, ok, err := b.resolve(rctx, e.Key(), e.Value())
			cancel()
			if err != nil {
				// The caller watches again from this change, after a pause
				// so an object that cannot be read is not asked for in a
				// loop.
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				return
			}
			if !ok {
				// Its object is gone: a later change, which comes next,
				// replaced it.
				*last = e.Revision()
				continue
			}
			entry.Value = value
		}
		*last = e.Revision()
		fn(entry)
	}
}

func (b *bucket) SetAside(key string) (string, error) {
	e, err := b.Get(key)
	if err != nil {
		return "", err
	}
	aside := key + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	ctx, cancel := call()
	defer cancel()
	// The aside name has a '.', which our keys never have, so no record of
	// the server's can collide with it.
	nk := natsKey(key) + strings.TrimPrefix(aside, key)
	record, err := b.record(ctx, nk, e.Value)
	if err != nil {
		return "", err
	}
	if _, err := b.kv.Put(ctx, nk, record); err != nil {
		return "", fmt.Errorf("set %s aside: %w", key, unavailable(err))
	}
	if err := b.Delete(key); err != nil {
		return "", err
	}
	return "JetStream bucket " + b.name + " key " + natsKey(aside), nil
}

type objects struct {
	obs jetstream.ObjectStore
	dir string // the local copies of objects, named by their name
}

func (o *objects) Create() (storage.ObjectWriter, error) {
	f, err := os.CreateTemp(o.dir, ".upload-*")
	if err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	return &upload{File: f, objects: o}, nil
}

// upload spools an object to a local file, so it can be checked before
// Commit sends it to the object store.
type upload struct {
	*os.File
	objects *objects
	done    bool
}

func (u *upload) Commit(name string) error {
	if err := storage.CheckKey(name); err != nil || strings.Contains(name, "/") {
		u.Abort()
		return fmt.Errorf("storage: %q is not a valid object name", name)
	}
	if _, err := u.Seek(0, io.SeekStart); err != nil {
		u.Abort()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	if _, err := u.objects.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, u.File); err != nil {
		u.Abort()
		return fmt.Errorf("store %s in JetStream: %w", name, unavailable(err))
	}
	u.done = true
	u.Close()
	// The local copy is the object's bytes: keep it as the cache.
	if err := os.Rename(u.Name(), filepath.Join(u.objects.dir, name)); err != nil {
		os.Remove(u.Name())
	}
	return nil
}

func (u *upload) Abort() {
	if u.done {
		return
	}
	u.done = true
	u.Close()
	_ = os.Remove(u.Name())
}

type localObject struct {
	*os.File
	size int64
}

func (l localObject) Size() int64 { return l.size }

// Open reads an object from the local copy, fetching it from the object
// store the first time. Objects are never changed under a name (the
// firmware store names them by their digest), so a copy stays true; a
// deleted object's copy is removed by Delete on the node that deletes it
// and found missing in the store by the others.
func (o *objects) Open(name string) (storage.Object, error) {
	if err := storage.CheckKey(name); err != nil || strings.Contains(name, "/") {
		return nil, fmt.Errorf("storage: %q is not a valid object name", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	info, err := o.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		_ = os.Remove(filepath.Join(o.dir, name))
		return nil, fmt.Errorf("%s: %w", name, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, unavailable(err))
	}
	path := filepath.Join(o.dir, name)
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(info.Size) {
		if err := o.fetch(ctx, name, path); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("object cache: %w", err)
	}
	return localObject{File: f, size: fi.Size()}, nil
}

func (o *objects) fetch(ctx context.Context, name, path string) error {
	r, err := o.obs.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, unavailable(err))
	}
	defer r.Close()
	tmp, err := os.CreateTemp(o.dir, ".fetch-*")
	if err != nil {
		return fmt.Errorf("object cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("read %s: %w", name, unavailable(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("object cache: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

func (o *objects) Delete(name string) error {
	ctx, cancel := call()
	defer cancel()
	if err := o.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete %s: %w", name, unavailable(err))
	}
	_ = os.Remove(filepath.Join(o.dir, name))
	return nil
}

func (o *objects) Names() ([]string, error) {
	ctx, cancel := call()
	defer cancel()
	infos, err := o.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", unavailable(err))
	}
	var names []string
	for _, i := range infos {
		if !i.Deleted {
			names = append(names, i.Name)
		}
	}
	return names, nil
}
