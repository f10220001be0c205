package jetstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestSweepDeletesObjectsNoRecordPointsTo: once a large record is replaced
// (by another large value, a small one, or a deletion) its old object goes
// at the next sweep after sweepAge, and the current one stays.
func TestSweepDeletesObjectsNoRecordPointsTo(t *testing.T) {
	// natstest would import this package; start the server here.
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	defer ns.Shutdown()
	s, err := Open(ns.ClientURL(), 1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sb, err := s.Bucket("")
	if err != nil {
		t.Fatal(err)
	}
	b := sb.(*bucket)
	now := time.Now()
	b.large.now = func() time.Time { return now }
	big := func(c string) []byte { return []byte(strings.Repeat(c, 2<<20)) }

	for _, v := range [][]byte{big("a"), big("b")} {
		if _, err := b.Put("updates", v); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range [][]byte{big("c"), []byte("small")} {
		if _, err := b.Put("debug-log/node-a", v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put("debug-log/node-b", big("d")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("debug-log/node-b"); err != nil {
		t.Fatal(err)
	}
	objects := func() []string {
		t.Helper()
		infos, err := b.large.obs.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range infos {
			names = append(names, strings.Split(i.Name, "@")[0])
		}
		slices.Sort(names)
		return names
	}
	b.sweep(b.large.obs, now)
	if got, want := objects(), []string{"debug-log.node-a", "debug-log.node-b", "updates", "updates"}; !slices.Equal(got, want) {
		t.Errorf("objects right after the writes %q, want all %q: a write elsewhere may not have stored its pointer yet", got, want)
	}
	b.sweep(b.large.obs, now.Add(sweepAge+time.Second))
	if got, want := objects(), []string{"updates"}; !slices.Equal(got, want) {
		t.Errorf("objects after the sweep %q, want %q", got, want)
	}
	if e, err := b.Get("updates"); err != nil || string(e.Value[:1]) != "b" || len(e.Value) != 2<<20 {
		t.Errorf("the current large record after the sweep: %d bytes, %v", len(e.Value), err)
	}
}
