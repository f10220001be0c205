package storage

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func openBucket(t *testing.T, root, name string) Bucket {
	t.Helper()
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Bucket(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBucketRecordsAreFilesOfEarlierVersions(t *testing.T) {
	root := t.TempDir()
	b := openBucket(t, root, "")
	if _, err := b.Get("state"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	r1, err := b.Put("state", []byte(`{"mode":"off"}`))
	if err != nil || r1 == 0 {
		t.Fatalf("Put: %d %v", r1, err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "state.json")); err != nil || string(data) != `{"mode":"off"}` {
		t.Fatalf("state.json: %q %v", data, err)
	}
	fw := openBucket(t, root, "firmware")
	if _, err := fw.Put("state", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "firmware", "state.json")); err != nil {
		t.Fatalf("firmware bucket: %v", err)
	}
	if _, err := b.Put("lamps/bedroom", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "lamps", "bedroom.json")); err != nil {
		t.Fatalf("nested key: %v", err)
	}
	keys, err := b.Keys("lamps/")
	if err != nil || !slices.Equal(keys, []string{"lamps/bedroom"}) {
		t.Fatalf("Keys(lamps/) = %q %v", keys, err)
	}
	for _, bad := range []string{"", "../etc/passwd", "State", "a//b", "a/", "x.json", "a b"} {
		if _, err := b.Put(bad, nil); err == nil {
			t.Errorf("Put(%q) accepted an invalid key", bad)
		}
	}
}

func TestUpdateIsCompareAndSet(t *testing.T) {
	root := t.TempDir()
	b := openBucket(t, root, "")
	if _, err := b.Update("favorites", []byte("a"), 1); err == nil {
		t.Fatal("Update at revision 1 of a missing record succeeded")
	}
	r1, err := b.Update("favorites", []byte("a"), 0)
	if err != nil {
		t.Fatalf("create with revision 0: %v", err)
	}
	if _, err := b.Update("favorites", []byte("b"), 0); err == nil {
		t.Fatal("create of an existing record succeeded")
	}
	r2, err := b.Update("favorites", []byte("b"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("Update at the current revision: %d %v", r2, err)
	}
	_, err = b.Update("favorites", []byte("stale"), r1)
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Current != r2 || !strings.Contains(err.Error(), "read it again") {
		t.Fatalf("stale Update: %v", err)
	}
	if e, _ := b.Get("favorites"); string(e.Value) != "b" || e.Revision != r2 {
		t.Fatalf("after a refused update: %q rev %d", e.Value, e.Revision)
	}

	// Two writers racing from the same revision: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for _, v := range []string{"c", "d", "e", "f", "g", "h", "i", "j"} {
		wg.Go(func() {
			if _, err := b.Update("favorites", []byte(v), r2); err == nil {
				wins <- v
			}
		})
	}
	wg.Wait()
	close(wins)
	var won []string
	for v := range wins {
		won = append(won, v)
	}
	if e, _ := b.Get("favorites"); len(won) != 1 || string(e.Value) != won[0] {
		t.Fatalf("racing updates: winners %q, stored %q", won, e.Value)
	}

	// Revisions keep growing after a restart.
	last, _ := b.Get("favorites")
	again := openBucket(t, root, "")
	e, err := again.Get("favorites")
	if err != nil || e.Revision == 0 {
		t.Fatalf("after reopening: %+v %v", e, err)
	}
	next, err := again.Update("favorites", []byte("k"), e.Revision)
	if err != nil || next <= last.Revision && next <= e.Revision {
		t.Fatalf("update after reopening: %d %v (before %d)", next, err, last.Revision)
	}
}

func TestWatchSeesChangesInOrder(t *testing.T) {
	b := openBucket(t, t.TempDir(), "")
	seen := make(chan string, 16)
	stop := b.Watch("lamps/", func(e Entry) {
		if e.Deleted {
			seen <- "-" + e.Key
			return
		}
		seen <- e.Key + "=" + string(e.Value)
	})
	b.Put("lamps/a", []byte("1"))
	b.Put("state", []byte("x")) // another prefix
	b.Put("lamps/a", []byte("2"))
	b.Delete("lamps/a")
	b.Delete("lamps/never") // nothing to delete: no event
	var got []string
	for range 3 {
		select {
		case s := <-seen:
			got = append(got, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("watched only %q", got)
		}
	}
	if want := []string{"lamps/a=1", "lamps/a=2", "-lamps/a"}; !slices.Equal(got, want) {
		t.Fatalf("watched %q, want %q", got, want)
	}
	stop()
	b.Put("lamps/a", []byte("3"))
	select {
	case s := <-seen:
		t.Errorf("a change after stop reached the watcher: %s", s)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestAWatcherMayTakeTheWritersLocks: the writer does not wait for the
// watcher, so a watcher that needs a lock the writer holds (a store that
// follows its own record) does not deadlock.
func TestAWatcherMayTakeTheWritersLocks(t *testing.T) {
	b := openBucket(t, t.TempDir(), "")
	var mu sync.Mutex
	got := make(chan uint64, 1)
	stop := b.Watch("state", func(e Entry) {
		mu.Lock()
		defer mu.Unlock()
		got <- e.Revision
	})
	defer stop()
	mu.Lock()
	rev, err := b.Put("state", []byte("x"))
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r != rev {
			t.Errorf("watched revision %d, wrote %d", r, rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher never ran")
	}
}

func TestLoadJSONSetsAsideWhatCannotBeUsed(t *testing.T) {
	root := t.TempDir()
	b := openBucket(t, root, "")
	var v struct{ N int }
	if _, found, err := LoadJSON(b, "state", &v, nil, quiet, "display state"); found || err != nil {
		t.Fatalf("missing record: found %v err %v", found, err)
	}
	os.WriteFile(filepath.Join(root, "state.json"), []byte("{not json"), 0o600)
	if _, found, err := LoadJSON(b, "state", &v, nil, quiet, "display state"); found || err != nil {
		t.Fatalf("corrupt record: found %v err %v", found, err)
	}
	aside, _ := filepath.Glob(filepath.Join(root, "state.json.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt file kept as %q", aside)
	}
	if data, _ := os.ReadFile(aside[0]); string(data) != "{not json" {
		t.Fatalf("set-aside bytes %q", data)
	}
	PutJSON(b, "state", struct{ N int }{N: -1})
	refuse := func() error {
		if v.N < 0 {
			return errors.New("N is negative")
		}
		return nil
	}
	if _, found, err := LoadJSON(b, "state", &v, refuse, quiet, "display state"); found || err != nil {
		t.Fatalf("refused record: found %v err %v", found, err)
	}
	PutJSON(b, "state", struct{ N int }{N: 7})
	rev, found, err := LoadJSON(b, "state", &v, refuse, quiet, "display state")
	if !found || err != nil || rev == 0 || v.N != 7 {
		t.Fatalf("good record: %v %v rev %d v %+v", found, err, rev, v)
	}
}

func TestOpeningClearsUnfinishedUploads(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "firmware"), 0o700)
	leftovers := []string{filepath.Join("firmware", ".upload-456"), filepath.Join("firmware", ".upload-9")}
	for _, n := range leftovers {
		os.WriteFile(filepath.Join(root, n), []byte("half"), 0o600)
	}
	os.WriteFile(filepath.Join(root, "keep.json"), []byte("{}"), 0o600)
	d, _ := OpenDir(root)
	d.Bucket("")
	d.Bucket("firmware")
	d.Objects("firmware")
	for _, n := range leftovers {
		if _, err := os.Stat(filepath.Join(root, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not removed: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "keep.json")); err != nil {
		t.Errorf("a record was removed: %v", err)
	}
}

func TestObjects(t *testing.T) {
	root := t.TempDir()
	d, _ := OpenDir(root)
	o, err := d.Objects("firmware")
	if err != nil {
		t.Fatal(err)
	}
	w, err := o.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "image bytes")
	head := make([]byte, 5)
	if _, err := w.ReadAt(head, 0); err != nil || string(head) != "image" {
		t.Fatalf("ReadAt before commit: %q %v", head, err)
	}
	if names, _ := o.Names(); len(names) != 0 {
		t.Fatalf("an uncommitted object is listed: %q", names)
	}
	if err := w.Commit("abc123"); err != nil {
		t.Fatal(err)
	}
	w.Abort() // after Commit: nothing happens
	r, err := o.Open("abc123")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Delete("abc123"); err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r) // still readable after the delete
	r.Close()
	if string(data) != "image bytes" || r.Size() != 11 {
		t.Fatalf("read %q size %d", data, r.Size())
	}
	if _, err := o.Open("abc123"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Delete: %v", err)
	}
	aborted, _ := o.Create()
	io.WriteString(aborted, "half an upload")
	aborted.Abort()
	entries, _ := os.ReadDir(filepath.Join(root, "firmware"))
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if _, err := o.Open("../x"); err == nil {
		t.Fatal("an invalid name was opened")
	}
}

func TestAnUnusableDirectoryIsAClearError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := OpenDir(filepath.Join(file, "data")); err == nil || !strings.Contains(err.Error(), "storage.dir") {
		t.Errorf("OpenDir under a regular file: %v", err)
	}
	root := t.TempDir()
	d, _ := OpenDir(root)
	os.WriteFile(filepath.Join(root, "firmware"), []byte("x"), 0o600)
	if _, err := d.Bucket("firmware"); err == nil {
		t.Error("a bucket over a regular file opened")
	}
}

func TestWatched(t *testing.T) {
	for _, c := range []struct {
		prefix, key string
		want        bool
	}{
		{"", "state", true},
		{"lamps/", "lamps/bedroom", true},
		{"lamps/", "lamps-epoch", false},
		{"state", "state", true},
		{"state", "states", false},
		{"state", "state/x", false},
	} {
		if got := Watched(c.prefix, c.key); got != c.want {
			t.Errorf("Watched(%q, %q) = %v, want %v", c.prefix, c.key, got, c.want)
		}
	}
}
