package lamps

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// dirBuckets is one data directory shared by n registries: its watch sees
// the writes made through the same Dir.
func dirBuckets(t *testing.T, n int) []storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]storage.Bucket, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// node opens a shared state store and a registry on b, as a cloudcloud
// node does.
func node(t testing.TB, b storage.Bucket) *env {
	t.Helper()
	bus := events.NewBus()
	st, err := state.Open(b, bus, quiet)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := Open(Options{Records: b, Shared: st, Bus: bus, Logger: quiet, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gw := &displays{own: map[string]string{}}
	reg.Attach(gw)
	t.Cleanup(reg.Close)
	return &env{bucket: b, store: st, reg: reg, gw: gw, bus: bus}
}

// eventually polls cond for up to 10 s (a bound, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("not reached in 10 s: %s", what)
}

// lampOf is lamp id on e; the zero Lamp while e does not know it.
func lampOf(e *env, id string) Lamp {
	l, _ := e.reg.Lamp(id)
	return l
}

// TestTwoNodesFollowEachOther: a lamp seen, given a state, a label and
// forgotten through one node is followed by the other, whose gateway shows
// the lamp's own state.
func TestTwoNodesFollowEachOther(t *testing.T) {
	for name, buckets := range map[string]func(*testing.T, int) []storage.Bucket{"jetstream": func(t *testing.T, n int) []storage.Bucket { return natstest.SharedBuckets(t, n) }, "dir": dirBuckets} {
		t.Run(name, func(t *testing.T) {
			b := buckets(t, 2)
			a, other := node(t, b[0]), node(t, b[1])
			sub := other.bus.Subscribe(64, events.TypeLamp)
			a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", FirmwareVersion: "1.4.2", Online: true, Time: time.Now()})
			a.reg.flush(time.Time{})
			eventually(t, "B knows the lamp A saw", func() bool { return lampOf(other, "bedroom").FirmwareVersion == "1.4.2" })
			if l := lampOf(other, "bedroom"); l.Online || !l.FollowsShared {
				t.Errorf("on B the lamp connected to A is %+v", l)
			}

			st, err := a.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{R: 255}})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "B shows A's own state", func() bool { return other.gw.get("bedroom") == st.Packet })
			if l := lampOf(other, "bedroom"); l.FollowsShared || l.State.Packet != st.Packet {
				t.Errorf("on B: %+v", l)
			}
			if _, err := other.reg.SetLabel("bedroom", "Bed"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "A has B's label", func() bool { return lampOf(a, "bedroom").Label == "Bed" })
			if l := lampOf(a, "bedroom"); !l.Online || l.State.Packet != st.Packet {
				t.Errorf("B's label changed more on A: %+v", l)
			}
			if _, err := other.reg.Follow("bedroom"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "A's lamp follows after B's Follow", func() bool { return a.gw.get("bedroom") == "" && lampOf(a, "bedroom").FollowsShared })

			// Forgotten through B while connected to A: A keeps it and
			// writes it back.
			if err := other.reg.Forget("bedroom"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "A marks the lamp to be written back", func() bool {
				a.reg.mu.Lock()
				defer a.reg.mu.Unlock()
				return a.reg.lamps["bedroom"].rev == 0
			})
			a.reg.flush(time.Time{})
			eventually(t, "B knows the lamp again", func() bool { return lampOf(other, "bedroom").Label == "Bed" })

			a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", Online: false, Time: time.Now()})
			a.reg.flush(time.Time{})
			if err := other.reg.Forget("bedroom"); err != nil {
				t.Fatal(err)
			}
			var unknown *UnknownError
			eventually(t, "A forgets the lamp", func() bool { _, err := a.reg.Lamp("bedroom"); return errors.As(err, &unknown) })
			changed, forgotten := 0, false
			for !forgotten {
				select {
				case ev := <-sub.C:
					c := ev.Data.(Changed)
					forgotten = c.Forgotten
					if c.ID == "bedroom" && !c.Forgotten {
						changed++
					}
				default:
					t.Fatal("B published no event of the forgotten lamp")
				}
			}
			// Before the first forget: the lamp A saw, its own state set
			// through A, B's label and B's Follow.
			if changed != 4 {
				t.Errorf("B published %d changes of the lamp before it was forgotten, want 4", changed)
			}
		})
	}
}

// TestEpochRaisedElsewhere: a shared change through B makes A's lamps with
// an own state follow it.
func TestEpochRaisedElsewhere(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	a, other := node(t, b[0]), node(t, b[1])
	for _, id := range []string{"bedroom", "hall"} {
		a.reg.Seen(device.LampSeen{Lamp: id, Addr: "192.0.2.7", Online: true, Time: time.Now()})
	}
	a.reg.flush(time.Time{})
	green, err := a.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{G: 255}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B shows the bedroom's own state", func() bool { return other.gw.get("bedroom") == green.Packet })
	st, err := other.reg.Apply(state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{B: 255}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's bedroom follows the shared change made through B", func() bool {
		l := lampOf(a, "bedroom")
		return l.FollowsShared && l.State.Packet == st.Packet && a.gw.get("bedroom") == ""
	})
	// An own state set after the raise stands, on both.
	own, err := a.reg.SetState("hall", state.Change{Pulse: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B shows the hall's new own state", func() bool { return other.gw.get("hall") == own.Packet })
	if l := lampOf(a, "hall"); l.FollowsShared {
		t.Errorf("a state set after the epoch was raised reads as following: %+v", l)
	}
}

// TestConcurrentChangesConverge: both nodes change one lamp at once, from
// several goroutines each, while A's flusher writes the lamp's last-seen
// time and firmware; no write undoes another's (A's last label and
// firmware stand), and in the end both nodes agree with the record, and
// both gateways show it.
func TestConcurrentChangesConverge(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	a, other := node(t, b[0]), node(t, b[1])
	a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", Online: true, Time: time.Now()})
	a.reg.flush(time.Time{})
	eventually(t, "B knows the lamp", func() bool { _, err := other.reg.Lamp("bedroom"); return err == nil })

	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded, lastLabel := 0, ""
	note := func(err error) bool {
		var conflict *storage.ConflictError
		if err != nil && !errors.As(err, &conflict) {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			succeeded++
		}
		return err == nil
	}
	for n, e := range []*env{a, other, other} {
		wg.Go(func() {
			for i := range 20 {
				_, err := e.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Brightness: ptr(1 + n*30 + i)})
				note(err)
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			label := fmt.Sprintf("label %d", i)
			if _, err := a.reg.SetLabel("bedroom", label); note(err) {
				lastLabel = label // one goroutine: the last success is the last write
			}
		}
	})
	wg.Go(func() {
		for i := range 20 {
			a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", FirmwareVersion: fmt.Sprintf("1.0.%d", i), Online: i%2 == 0, Time: time.Now()})
			a.reg.flush(time.Time{})
		}
	})
	wg.Wait()
	a.reg.flush(time.Time{})
	if succeeded < 40 {
		t.Errorf("only %d of 80 changes succeeded", succeeded)
	}

	var want record
	eventually(t, "both nodes and both gateways agree with the record", func() bool {
		se, err := b[0].Get(keyFor("bedroom"))
		want = record{}
		if err != nil || json.Unmarshal(se.Value, &want) != nil || want.State == nil {
			return false
		}
		for _, e := range []*env{a, other} {
			l := lampOf(e, "bedroom")
			if l.State.Packet != want.State.Packet || l.Label != want.Label || l.FirmwareVersion != want.FirmwareVersion || e.gw.get("bedroom") != want.State.Packet {
				return false
			}
		}
		return true
	})
	if want.Label != lastLabel || want.FirmwareVersion != "1.0.19" {
		t.Errorf("a write undid another: the record has label %q and firmware %q, want %q and 1.0.19", want.Label, want.FirmwareVersion, lastLabel)
	}
}

// TestStaleWatchEntryDoesNotRollBack: an older write arriving after a
// newer one (as from another node, overtaken) changes nothing.
func TestStaleWatchEntryDoesNotRollBack(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	a, other := node(t, b[0]), node(t, b[1])
	a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", Online: true, Time: time.Now()})
	a.reg.flush(time.Time{})
	if _, err := a.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Brightness: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	old, err := b[0].Get(keyFor("bedroom"))
	if err != nil {
		t.Fatal(err)
	}
	now, err := a.reg.SetState("bedroom", state.Change{Brightness: ptr(90)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B shows the newer state", func() bool { return other.gw.get("bedroom") == now.Packet })
	other.reg.follow(old)
	a.reg.follow(old)
	for name, e := range map[string]*env{"A": a, "B": other} {
		if l := lampOf(e, "bedroom"); l.State.Packet != now.Packet || e.gw.get("bedroom") != now.Packet {
			t.Errorf("%s rolled back to an older write: %+v, shows %q", name, l, e.gw.get("bedroom"))
		}
	}
}

// deaf is a bucket whose watch brings nothing, as one far behind: its
// registry learns of other nodes' writes only when a write of its own
// finds the record changed.
type deaf struct{ storage.Bucket }

func (deaf) Watch(string, func(storage.Entry)) func() { return func() {} }

// TestWritesMergeAChangeNotYetSeen: A's flusher and A's person's change
// meet records B changed since A read them: A reads them, keeps B's label
// and own state, adds its own change, and shows B's state.
func TestWritesMergeAChangeNotYetSeen(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	a, other := node(t, deaf{b[0]}), node(t, b[1])
	a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", Online: true, Time: time.Now()})
	a.reg.flush(time.Time{})
	eventually(t, "B knows the lamp", func() bool { _, err := other.reg.Lamp("bedroom"); return err == nil })

	st, err := other.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{R: 255}})
	if err != nil {
		t.Fatal(err)
	}
	seenAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", FirmwareVersion: "2.0.0", Online: true, Time: seenAt})
	a.reg.flush(time.Time{})
	var rec record
	se, err := b[0].Get(keyFor("bedroom"))
	if err != nil || json.Unmarshal(se.Value, &rec) != nil {
		t.Fatal(se, err)
	}
	if rec.State == nil || rec.State.Packet != st.Packet || !rec.LastSeen.Equal(seenAt) || rec.FirmwareVersion != "2.0.0" {
		t.Errorf("after A's flush the record is %+v; want B's state %s with A's last-seen time and firmware", rec, st.Packet)
	}
	if a.gw.get("bedroom") != st.Packet {
		t.Errorf("A shows %q, not B's state %s", a.gw.get("bedroom"), st.Packet)
	}

	if _, err := other.reg.SetState("bedroom", state.Change{Pulse: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.SetLabel("bedroom", "Bed"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B has A's label", func() bool { return lampOf(other, "bedroom").Label == "Bed" })
	if l := lampOf(other, "bedroom"); l.State.Pulse != 3 {
		t.Errorf("A's label undid B's state: %+v", l)
	}
	if l := lampOf(a, "bedroom"); l.State.Pulse != 3 || a.gw.get("bedroom") != l.State.Packet {
		t.Errorf("A did not take in B's state when its label met it: %+v, shows %q", l, a.gw.get("bedroom"))
	}
}

// TestAnOwnStateSetBeforeTheEpochArrives: B changes every lamp (raising the
// epoch), and A, whose watch has not brought that yet, then gives a lamp a
// state of its own. A's change came last and was answered as done: it
// stands, on both nodes.
func TestAnOwnStateSetBeforeTheEpochArrives(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	a, other := node(t, deaf{b[0]}), node(t, b[1])
	a.reg.Seen(device.LampSeen{Lamp: "bedroom", Addr: "192.0.2.7", Online: true, Time: time.Now()})
	a.reg.flush(time.Time{})
	green, err := a.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{G: 255}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B shows the bedroom's own state", func() bool { return other.gw.get("bedroom") == green.Packet })
	if _, err := other.reg.Apply(state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{B: 255}}); err != nil {
		t.Fatal(err)
	}
	own, err := a.reg.SetState("bedroom", state.Change{Pulse: ptr(4)})
	if err != nil {
		t.Fatal(err)
	}
	if l := lampOf(a, "bedroom"); l.FollowsShared || l.State.Pulse != 4 {
		t.Errorf("A reads its own change as following: %+v", l)
	}
	eventually(t, "B shows A's later own state", func() bool {
		l := lampOf(other, "bedroom")
		return !l.FollowsShared && l.State.Packet == own.Packet && other.gw.get("bedroom") == own.Packet
	})
}
