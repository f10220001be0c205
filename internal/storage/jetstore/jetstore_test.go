package jetstore_test

import (
	"errors"
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
