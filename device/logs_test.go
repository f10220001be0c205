package device

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

func storedBytes(b *logBook) (total int, perKey map[string]int) {
	perKey = map[string]int{}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, r := range b.rings {
		for _, l := range r.lines[r.head:] {
			perKey[k] += l.cost()
			total += l.cost()
		}
	}
	return total, perKey
}

// The log is bounded in bytes per lamp and in total, whatever the line
// size and however many lamps (anonymous lamps reconnecting get new keys).
func TestLogBookIsBoundedInBytes(t *testing.T) {
	b := newLogBook(1000, 8<<10, 20<<10, 256)
	big := strings.Repeat("x", 4000)
	for i := range 500 {
		b.add("named", LogLine{Message: big})
		b.add("d-"+string(rune('a'+i%26))+string(rune('a'+i/26)), LogLine{Message: big})
	}
	total, perKey := storedBytes(b)
	if total > 20<<10 || b.bytes != total {
		t.Errorf("stored %d bytes (book says %d), bound 20 KiB", total, b.bytes)
	}
	for k, n := range perKey {
		if n > 8<<10 {
			t.Errorf("lamp %s keeps %d bytes, bound 8 KiB", k, n)
		}
	}
	if perKey["named"] == 0 {
		t.Error("the lamp that is sending lost its whole log")
	}
	// A line longer than a lamp's bound is cut (at a character), not dropped.
	b.add("huge", LogLine{Message: strings.Repeat("é", 10000)})
	got := b.query(func(l LogLine) bool { return true }, 1)[0].Message
	if len(got) > 8<<10 || !strings.HasPrefix(got, "éé") || strings.ToValidUTF8(got, "?") != got {
		t.Errorf("a huge line became %d bytes", len(got))
	}
}

// Heap after a flood of 40 MB of debug lines stays near the bound.
func TestLogBookMemoryUnderAFlood(t *testing.T) {
	const bound = 4 << 20
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b := newLogBook(1000, 256<<10, bound, 256)
	before := heap()
	for i := range 10000 {
		// A fresh string per line, as frames from the wire are.
		b.add("d-"+strings.Repeat("k", i%300), LogLine{Message: strings.Repeat("x", 4000) + string(rune(i))})
	}
	grew := int64(heap()) - int64(before)
	if grew > 2*bound {
		t.Errorf("heap grew by %d MiB for a %d MiB log", grew>>20, bound>>20)
	}
	runtime.KeepAlive(b)
}

// Past its budget a lamp's lines are kept but not sent live; the next
// live line says how many were skipped.
func TestLiveLinesAreThrottled(t *testing.T) {
	b := newLogBook(100000, 64<<20, 64<<20, 256)
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	live := 0
	for range 1000 {
		if _, ok := b.add("lamp", LogLine{Message: "flood"}); ok {
			live++
		}
	}
	if live != liveBurst {
		t.Errorf("%d of 1000 lines at one instant went live, want the burst of %d", live, liveBurst)
	}
	now = now.Add(time.Second)
	line, ok := b.add("lamp", LogLine{Message: "later"})
	if !ok || line.Skipped != 1000-liveBurst {
		t.Errorf("next line live %v skipped %d, want %d", ok, line.Skipped, 1000-liveBurst)
	}
	if n := len(b.query(nil, 0)); n != 1001 {
		t.Errorf("%d lines kept, want all 1001", n)
	}
}

// The debug log is on disk: a restart keeps it, bounded; a corrupt file
// is set aside and the log starts empty.
func TestDebugLogSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Records: bucket(t, dir), Named: []NamedSecret{{Name: "bedroom", Secret: "bedroom-secret"}}}
	ts := newServer(t, opt, nil)
	bed := ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	for _, m := range []string{"d:one", "d:two", "d:three"} {
		send(t, bed, m)
	}
	waitFor(t, "three lines", func() bool { return len(ts.gw.Logs("bedroom", 0)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	opt.Secret, opt.Logger = secret, quiet
	again, err := New(opt, protocol.Off())
	if err != nil {
		t.Fatal(err)
	}
	got := again.Logs("bedroom", 0)
	if len(got) != 3 || got[0].Message != "one" || got[2].Message != "three" || got[0].Name != "bedroom" {
		t.Errorf("after a restart: %+v", got)
	}
	again.Shutdown(ctx)

	if err := os.WriteFile(filepath.Join(dir, "debug-log.json"), []byte(`{"lamps": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := New(opt, protocol.Off())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Shutdown(ctx)
	if n := len(third.Logs("", 0)); n != 0 {
		t.Errorf("%d lines from a corrupt file", n)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "debug-log.json.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("corrupt file not kept aside: %v", aside)
	}
}

// All lamps together are sent live within a byte budget.
func TestLiveBytesAreBoundedForAllLamps(t *testing.T) {
	b := newLogBook(100000, 64<<20, 64<<20, 100000)
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	sent := 0
	big := strings.Repeat("x", 4000)
	for i := range 1000 {
		if l, ok := b.add(strings.Repeat("k", i%500+1), LogLine{Message: big}); ok {
			sent += l.cost()
		}
	}
	if sent > liveBytesBurst || sent < liveBytesBurst-5000 {
		t.Errorf("%d bytes went live at one instant, want the burst of %d", sent, liveBytesBurst)
	}
}

// Nodes sharing one bucket keep their debug switches and debug log under
// keys of their own (Options.Node), and a node starts from the switches
// saved last by any; without a node the keys are those a single server
// always used.
func TestNodesKeepTheirOwnRecords(t *testing.T) {
	dir := t.TempDir()
	records := bucket(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "debug.json"), []byte(`{"all": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(node string) *Gateway {
		t.Helper()
		g, err := New(Options{Secret: secret, Records: records, Node: node, Logger: quiet}, protocol.Off())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Shutdown(context.Background()) })
		return g
	}
	single, a, b := open(""), open("Node-A"), open("node-b")
	if !single.debugAll || a.debugAll || b.debugAll {
		t.Fatalf("debug for all lamps: single %v, node-a %v, node-b %v; want only the single server's on", single.debugAll, a.debugAll, b.debugAll)
	}
	if _, err := a.SetDebug(true, nil); err != nil {
		t.Fatal(err)
	}
	a.logs.add("bedroom", LogLine{Time: time.Now().UTC(), Device: "bedroom", Message: "from node a"})
	a.saveLogs()
	for _, name := range []string{"debug/node-a.json", "debug-log/node-a.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("node a's record: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "debug-log.json")); err == nil {
		t.Error("node a wrote the single server's debug log")
	}
	if again := open("Node-A"); !again.debugAll || len(again.Logs("bedroom", 0)) != 1 {
		t.Errorf("node a after a restart: debug %v, log %+v", again.debugAll, again.Logs("bedroom", 0))
	}
	// Node b starts from the switches saved last, node a's (it missed the
	// change), but keeps its own log.
	if again := open("node-b"); !again.debugAll || len(again.Logs("", 0)) != 0 {
		t.Errorf("node b after a restart: debug %v (want node a's newer switches), log %+v (want its own, empty)", again.debugAll, again.Logs("", 0))
	}

	for _, bad := range []string{"Node A", "a/b", "ü"} {
		if _, err := New(Options{Secret: secret, Records: records, Node: bad, Logger: quiet}, protocol.Off()); err == nil || !strings.Contains(err.Error(), "node name") {
			t.Errorf("node %q: %v", bad, err)
		}
	}
}
