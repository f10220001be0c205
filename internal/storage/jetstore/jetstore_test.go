package jetstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/internal/storage/jetstore"
)

func open(t *testing.T, url string) *jetstore.Store {
	t.Helper()
	s, err := jetstore.Open(url, 1, t.TempDir(), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestBucketOnJetStream(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	one, two := open(t, ns.ClientURL()), open(t, ns.ClientURL())
	a, err := one.Bucket("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := two.Bucket("") // another node, the same bucket
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get("state"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}

	var mu sync.Mutex
	// The two watches deliver on their own goroutines, so each keeps its
	// own list: their order is kept within a watch, not between them.
	var seen, seenKey []string
	stop := b.Watch("lamps/", func(e storage.Entry) {
		mu.Lock()
		defer mu.Unlock()
		if e.Deleted {
			seen = append(seen, "-"+e.Key)
		} else {
			seen = append(seen, e.Key+"="+string(e.Value))
		}
	})
	defer stop()
	// A watch of one key takes that key only.
	stopKey := b.Watch("state", func(e storage.Entry) {
		mu.Lock()
		defer mu.Unlock()
		seenKey = append(seenKey, e.Key)
	})
	defer stopKey()
	a.Put("state/x", []byte("x"))
	a.Put("states", []byte("x"))

	r1, err := a.Update("lamps/bedroom", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update("lamps/bedroom", []byte("x"), 0); err == nil {
		t.Fatal("a second create of the same key succeeded")
	}
	r2, err := b.Update("lamps/bedroom", []byte("2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("update at the current revision: %d %v", r2, err)
	}
	_, err = a.Update("lamps/bedroom", []byte("stale"), r1)
	var conflict *storage.ConflictError
	if !errors.As(err, &conflict) || conflict.Current != r2 {
		t.Fatalf("a stale update: %v", err)
	}
	if e, err := a.Get("lamps/bedroom"); err != nil || string(e.Value) != "2" || e.Revision != r2 {
		t.Fatalf("Get after a refused update: %+v %v", e, err)
	}
	a.Put("state", []byte("s"))
	keys, err := b.Keys("lamps/")
	if err != nil || !slices.Equal(keys, []string{"lamps/bedroom"}) {
		t.Fatalf("Keys(lamps/) = %q %v", keys, err)
	}
	if keys, err := b.Keys("scenes/"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of a prefix nothing has = %q %v, want none", keys, err)
	}
	if err := a.Delete("lamps/bedroom"); err != nil {
		t.Fatal(err)
	}
	want := []string{"lamps/bedroom=1", "lamps/bedroom=2", "-lamps/bedroom"}
	wantKey := []string{"state"}
	for range 200 {
		mu.Lock()
		done := len(seen) >= len(want) && len(seenKey) >= len(wantKey)
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if !slices.Equal(seen, want) {
		t.Errorf("the other node watched %q, want %q", seen, want)
	}
	if !slices.Equal(seenKey, wantKey) {
		t.Errorf("the other node's watch of one key saw %q, want %q", seenKey, wantKey)
	}
	mu.Unlock()

	a.Put("favorites", []byte("{broken"))
	where, err := a.SetAside("favorites")
	if err != nil || where == "" {
		t.Fatalf("SetAside: %q %v", where, err)
	}
	if _, err := b.Get("favorites"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a set-aside record is still there: %v", err)
	}
	if keys, _ := b.Keys(""); !slices.Equal(keys, []string{"state", "state/x", "states"}) {
		t.Errorf("the set-aside copy shows among the keys: %q", keys)
	}
}

func TestObjectsOnJetStream(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	one, two := open(t, ns.ClientURL()), open(t, ns.ClientURL())
	a, err := one.Objects("firmware")
	if err != nil {
		t.Fatal(err)
	}
	b, err := two.Objects("firmware")
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "image bytes")
	head := make([]byte, 5)
	if _, err := w.ReadAt(head, 0); err != nil || string(head) != "image" {
		t.Fatalf("ReadAt before commit: %q %v", head, err)
	}
	if err := w.Commit("abc123"); err != nil {
		t.Fatal(err)
	}
	r, err := b.Open("abc123") // the other node fetches it
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if string(data) != "image bytes" || r.Size() != 11 {
		t.Fatalf("the other node read %q (%d bytes)", data, r.Size())
	}
	if names, _ := b.Names(); !slices.Equal(names, []string{"abc123"}) {
		t.Errorf("Names = %q", names)
	}
	if err := a.Delete("abc123"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open("abc123"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open after Delete on another node: %v", err)
	}
}

// TestNATSDownIsUnavailable: while NATS is gone a change fails at once with
// storage.ErrUnavailable (the web layer answers 503), and works again once
// NATS is back on the same port with the same data.
func TestNATSDownIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	ns := natstest.Start(t, 0, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	s := open(t, ns.ClientURL())
	b, err := s.Bucket("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("state", []byte("before")); err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	_, err = b.Put("state", []byte("during"))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("a write while NATS is down: %v, want ErrUnavailable", err)
	}
	natstest.Start(t, port, dir)
	for range 300 {
		if _, err = b.Put("state", []byte("after")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("writes do not work again after NATS came back: %v", err)
	}
	if e, err := b.Get("state"); err != nil || string(e.Value) != "after" {
		t.Errorf("after NATS came back: %q %v", e.Value, err)
	}
}

// TestOpenSaysWhatIsWrongWithTheNATSServer: no server at the URL, or one
// with JetStream off, is an error that says what to do.
func TestOpenSaysWhatIsWrongWithTheNATSServer(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	defer ns.Shutdown()
	if _, err := jetstore.Open(ns.ClientURL(), 1, t.TempDir()); err == nil || !strings.Contains(err.Error(), "JetStream off; start it with -js") {
		t.Errorf("a NATS server without JetStream: %v", err)
	}
	addr := ns.Addr().String()
	ns.Shutdown()
	ns.WaitForShutdown()
	if _, err := jetstore.Open("nats://"+addr, 1, t.TempDir()); err == nil || !strings.Contains(err.Error(), "cannot reach NATS") {
		t.Errorf("no NATS server: %v", err)
	}
}

// TestLargeValues: a value larger than a NATS message (a node's debug log
// of several MiB) is stored, read, compared-and-set, watched and set aside
// as any other, through another node too.
func TestLargeValues(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a, err := open(t, ns.ClientURL()).Bucket("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(t, ns.ClientURL()).Bucket("") // another node
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var watched []string
	stop := b.Watch("debug-log/", func(e storage.Entry) {
		mu.Lock()
		defer mu.Unlock()
		watched = append(watched, fmt.Sprintf("%d:%.8s", len(e.Value), e.Value))
	})
	defer stop()

	value := func(fill string, n int) []byte { return []byte(strings.Repeat(fill, n/len(fill))) }
	big1, big2 := value(`{"one":1}`, 3<<20), value(`{"two":2}`, 2<<20)
	r1, err := a.Update("debug-log/node-a", big1, 0)
	if err != nil {
		t.Fatalf("a record of 3 MiB: %v", err)
	}
	if e, err := b.Get("debug-log/node-a"); err != nil || !bytes.Equal(e.Value, big1) || e.Revision != r1 {
		t.Fatalf("the other node read %d bytes at revision %d (%v), want %d at %d", len(e.Value), e.Revision, err, len(big1), r1)
	}
	r2, err := b.Update("debug-log/node-a", big2, r1)
	if err != nil {
		t.Fatal(err)
	}
	var conflict *storage.ConflictError
	if _, err := a.Update("debug-log/node-a", big1, r1); !errors.As(err, &conflict) || conflict.Current != r2 {
		t.Fatalf("a stale update of a large record: %v", err)
	}
	if e, _ := a.Get("debug-log/node-a"); !bytes.Equal(e.Value, big2) {
		t.Fatalf("after a refused update the record has %.10q…, want the second value", e.Value)
	}
	// A small value that looks like the pointer a large one leaves is kept
	// as it is.
	odd := []byte("\x00cloudcloud-object:debug-log.node-a@0")
	if _, err := a.Put("debug-log/node-a", odd); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.Get("debug-log/node-a"); !bytes.Equal(e.Value, odd) {
		t.Errorf("a value like a pointer read back as %q", e.Value)
	}
	if _, err := a.Put("debug-log/node-a", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := b.Keys(""); !slices.Equal(keys, []string{"debug-log/node-a"}) {
		t.Errorf("keys %q, want the record alone", keys)
	}
	var want []string
	for _, v := range [][]byte{big1, big2, odd, []byte("small")} {
		want = append(want, fmt.Sprintf("%d:%.8s", len(v), v))
	}
	for range 300 {
		mu.Lock()
		n := len(watched)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if !slices.Equal(watched, want) {
		t.Errorf("the other node watched %q, want %q", watched, want)
	}
	mu.Unlock()

	if _, err := a.Put("updates", big1); err != nil {
		t.Fatal(err)
	}
	if where, err := a.SetAside("updates"); err != nil || where == "" {
		t.Fatalf("setting a large record aside: %q %v", where, err)
	}
}
