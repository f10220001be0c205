package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
)

// Dir keeps buckets and objects as files under one directory (storage.dir),
// each record one JSON file written with atomicfile: bucket "" is the
// directory itself, so key "state" is state.json; bucket "firmware" key
// "state" is firmware/state.json; objects "firmware" name "<sha256>" is
// firmware/<sha256>.bin. These are the file names of earlier versions, so
// an existing data directory is read as it is.
//
// A Dir is itself the top-level bucket.
type Dir struct {
	*fileBucket // bucket "": the directory itself
	root        string
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*fileBucket
	objects map[string]*fileObjects
}

// OpenDir opens (creating it if needed, mode 0700: it holds secrets) the
// data directory.
func OpenDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("storage.dir %q: %w", root, err)
	}
	d := &Dir{root: root, now: time.Now, buckets: map[string]*fileBucket{}, objects: map[string]*fileObjects{}}
	top, err := d.Bucket("")
	if err != nil {
		return nil, err
	}
	d.fileBucket = top.(*fileBucket)
	return d, nil
}

// Bucket returns the bucket name ("" for the top level), creating its
// directory. (atomicfile.RemoveTemps clears what crashed writes left.)
func (d *Dir) Bucket(name string) (Bucket, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.buckets[name]; ok {
		return b, nil
	}
	dir, err := d.sub(name)
	if err != nil {
		return nil, err
	}
	b := &fileBucket{dir: dir, now: d.now}
	d.buckets[name] = b
	return b, nil
}

// Objects returns the object set name, creating its directory, and removes
// uploads that a crash left unfinished.
func (d *Dir) Objects(name string) (Objects, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[name]; ok {
		return o, nil
	}
	if name == "" {
		return nil, errors.New("storage: objects need a name of their own")
	}
	dir, err := d.sub(name)
	if err != nil {
		return nil, err
	}
	o := &fileObjects{dir: dir}
	d.objects[name] = o
	return o, nil
}

// sub makes the directory of a bucket or object set and clears the
// uploads that never finished (a crash between create and commit): nothing
// else uses them, and left there they would only fill the disk.
func (d *Dir) sub(name string) (string, error) {
	dir := d.root
	if name != "" {
		if !validKey(name) {
			return "", fmt.Errorf("storage: %q is not a valid bucket name", name)
		}
		dir = filepath.Join(d.root, filepath.FromSlash(name))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("storage: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("storage: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && strings.HasPrefix(n, uploadPrefix) {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	return dir, nil
}

// validKey reports whether key is segments of a-z 0-9 _ - joined by '/'.
// The same keys are valid NATS key-value keys once '/' becomes '.'.
func validKey(key string) bool {
	if key == "" || len(key) > 200 {
		return false
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return false
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// watcher gets the changes of a prefix on a goroutine of its own, in
// order: the writer never waits for it, so a watcher may take locks the
// writer holds (as one on another node would).
type watcher struct {
	prefix string
	fn     func(Entry)

	mu    sync.Mutex
	queue []Entry
	wake  chan struct{} // has room for one wake-up
	done  chan struct{} // closed by stop
	ended chan struct{} // closed when the goroutine is gone
}

func (w *watcher) run() {
	defer close(w.ended)
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case <-w.done:
				return
			default:
				w.fn(e)
			}
		}
	}
}

func (w *watcher) push(e Entry) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

type fileBucket struct {
	dir string
	now func() time.Time

	mu       sync.Mutex // serialises changes, so files, revisions and watchers agree on one order
	watchers map[*watcher]struct{}
}

func (b *fileBucket) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.dir, filepath.FromSlash(key)+".json"), nil
}

// revision returns the record's revision, 0 when it does not exist. The
// revision is the file's modification time in nanoseconds, which every
// write sets (see write): so it survives restarts, and a change by another
// process sharing the directory is seen too.
func revision(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: %w", err)
	}
	return max(uint64(fi.ModTime().UnixNano()), 1), nil
}

func (b *fileBucket) Get(key string) (Entry, error) {
	path, err := b.path(key)
	if err != nil {
		return Entry{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("storage: %w", err)
	}
	rev, err := revision(path)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Value: data, Revision: rev}, nil
}

func (b *fileBucket) Put(key string, value []byte) (uint64, error) {
	return b.write(key, value, nil)
}

func (b *fileBucket) Update(key string, value []byte, revision uint64) (uint64, error) {
	return b.write(key, value, &revision)
}

func (b *fileBucket) write(key string, value []byte, want *uint64) (uint64, error) {
	path, err := b.path(key)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, err := revision(path)
	if err != nil {
		return 0, err
	}
	if want != nil && *want != cur {
		return cur, &ConflictError{Key: key, Revision: *want, Current: cur}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return cur, fmt.Errorf("storage: %w", err)
	}
	if err := atomicfile.Write(path, value, 0o600); err != nil {
		return cur, err
	}
	// The revision moves past the last one even if the clock stepped back.
	t := time.Unix(0, int64(max(cur+1, uint64(b.now().UnixNano()))))
	if err := os.Chtimes(path, t, t); err != nil {
		return cur, fmt.Errorf("storage: %w", err)
	}
	next, err := revision(path)
	if err != nil {
		return cur, err
	}
	b.notify(Entry{Key: key, Value: value, Revision: next})
	return next, nil
}

func (b *fileBucket) Delete(key string) error {
	path, err := b.path(key)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, err := revision(path)
	if err != nil || cur == 0 {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	b.notify(Entry{Key: key, Revision: max(cur+1, uint64(b.now().UnixNano())), Deleted: true})
	return nil
}

func (b *fileBucket) Keys(prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(b.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(b.dir, path)
		key, ok := strings.CutSuffix(filepath.ToSlash(rel), ".json")
		if ok && validKey(key) && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	slices.Sort(keys)
	return keys, nil
}

func (b *fileBucket) Watch(prefix string, fn func(Entry)) (stop func()) {
	w := &watcher{prefix: prefix, fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{}), ended: make(chan struct{})}
	go w.run()
	b.mu.Lock()
	if b.watchers == nil {
		b.watchers = map[*watcher]struct{}{}
	}
	b.watchers[w] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.watchers, w)
			b.mu.Unlock()
			close(w.done)
			<-w.ended
		})
	}
}

// notify queues e for the watchers of its key; b.mu is held, which keeps
// the changes in order.
func (b *fileBucket) notify(e Entry) {
	for w := range b.watchers {
		if Watched(w.prefix, e.Key) {
			w.push(e)
		}
	}
}

func (b *fileBucket) SetAside(key string) (string, error) {
	path, err := b.path(key)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	aside := setAsideName(path, b.now())
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("storage: %w", err)
	}
	return aside, nil
}

// uploadPrefix starts the name of an object still being written.
const uploadPrefix = ".upload-"

type fileObjects struct {
	dir string
}

func (o *fileObjects) path(name string) (string, error) {
	if !validKey(name) || strings.Contains(name, "/") {
		return "", fmt.Errorf("storage: %q is not a valid object name", name)
	}
	return filepath.Join(o.dir, name+".bin"), nil
}

type fileObject struct {
	*os.File
	size int64
}

func (f fileObject) Size() int64 { return f.size }

func (o *fileObjects) Open(name string) (Object, error) {
	path, err := o.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: %w", err)
	}
	return fileObject{File: f, size: fi.Size()}, nil
}

func (o *fileObjects) Delete(name string) error {
	path, err := o.path(name)
	if err != nil {
		return err
	}
	// On Linux an open reader keeps reading the unlinked file.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

func (o *fileObjects) Names() ([]string, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".bin"); ok && !e.IsDir() && validKey(name) {
			names = append(names, name)
		}
	}
	return names, nil
}

func (o *fileObjects) Create() (ObjectWriter, error) {
	f, err := os.CreateTemp(o.dir, uploadPrefix+"*")
	if err != nil {
		atomicfile.Note(err)
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &fileUpload{File: f, objects: o}, nil
}

// fileUpload is an object being written: a temporary file in the same
// directory, renamed into place on Commit. Its disk failures are counted
// like those of atomicfile.Write (atomicfile.Note), for /metrics.
type fileUpload struct {
	*os.File
	objects *fileObjects
	done    bool
}

func (u *fileUpload) Write(p []byte) (int, error) {
	n, err := u.File.Write(p)
	atomicfile.Note(err)
	return n, err
}

func (u *fileUpload) Commit(name string) error {
	err := u.commit(name)
	atomicfile.Note(err)
	return err
}

func (u *fileUpload) commit(name string) error {
	path, err := u.objects.path(name)
	if err != nil {
		u.Abort()
		return err
	}
	if err := u.Sync(); err != nil {
		u.Abort()
		return fmt.Errorf("storage: %w", err)
	}
	if err := u.Close(); err != nil {
		u.Abort()
		return fmt.Errorf("storage: %w", err)
	}
	if err := os.Rename(u.Name(), path); err != nil {
		u.Abort()
		return fmt.Errorf("storage: %w", err)
	}
	u.done = true
	return atomicfile.SyncDir(u.objects.dir)
}

func (u *fileUpload) Abort() {
	if u.done {
		return
	}
	u.done = true
	u.Close()
	_ = os.Remove(u.Name())
}
