package rollout

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTracker(t *testing.T, dir string, bus Bus) (*Tracker, *time.Time) {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(d, bus, quiet, 5*time.Minute, func() string { return "v2.0" })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)
	tr.now = func() time.Time { return now }
	return tr, &now
}

// history returns a lamp's updates, newest last.
func history(t *Tracker, lamp string) []Update {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.history[lamp])
}

func TestUpdateLifecycle(t *testing.T) {
	dir := t.TempDir()
	bus := events.NewBus()
	sub := bus.Subscribe(100, events.TypeFirmware)
	tr, now := newTracker(t, dir, bus)

	tr.Device(device.Info{ID: "d-1", Name: "bedroom", RemoteAddr: "192.0.2.5:4000", Event: "updating"})
	tr.Device(device.Info{ID: "d-2", RemoteAddr: "192.0.2.6:4000", Event: "updating"})
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.5:5000", Sent: 65536, Total: 200000, ClientVersion: "v1.0"})
	tr.Served(firmware.Download{RemoteAddr: "198.51.100.1:1", Sent: 10, Total: 10, Done: true}) // not a lamp we told
	if u := history(tr, "bedroom"); len(u) != 1 || u[0].State != StateDownloading || u[0].Sent != 65536 || u[0].RunningVersion != "v1.0" {
		t.Fatalf("after progress: %+v", u)
	}
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.5:5000", Sent: 200000, Total: 200000, Done: true})
	*now = now.Add(40 * time.Second)
	tr.Device(device.Info{ID: "d-3", Name: "bedroom", RemoteAddr: "192.0.2.5:4001", Event: "authenticated"})
	u := history(tr, "bedroom")[0]
	if u.State != StateBack || u.BackAt == nil || u.BackAt.Sub(u.AskedAt) != 40*time.Second || u.DeviceID != "d-3" || u.Version != "v2.0" {
		t.Errorf("after return: %+v", u)
	}

	// The anonymous lamp never comes back.
	tr.checkOverdue(now.Add(6 * time.Minute))
	if u := history(tr, "192.0.2.6"); u[0].State != StateOverdue {
		t.Errorf("anonymous lamp: %+v", u)
	}
	if got := tr.Updates(); len(got) != 2 {
		t.Errorf("Updates = %+v", got)
	}

	var states []string
	for len(sub.C) > 0 {
		states = append(states, (<-sub.C).Data.(Update).State)
	}
	want := []string{"asked", "asked", "downloading", "downloaded", "back", "overdue"}
	if len(states) != len(want) {
		t.Fatalf("events %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Errorf("event %d = %s, want %s", i, states[i], want[i])
		}
	}

	again, _ := newTracker(t, dir, nil)
	if h := history(again, "bedroom"); len(h) != 1 || h[0].State != StateBack {
		t.Errorf("history not kept on disk: %+v", h)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	tr, _ := newTracker(t, t.TempDir(), nil)
	for range keep + 5 {
		tr.Device(device.Info{Name: "kitchen", Event: "updating"})
		tr.Device(device.Info{Name: "kitchen", Event: "authenticated"})
	}
	if n := len(history(tr, "kitchen")); n != keep {
		t.Errorf("%d updates kept, want %d", n, keep)
	}
	// A lamp connecting without having been told to update changes nothing.
	tr.Device(device.Info{Name: "hall", Event: "authenticated"})
	if len(history(tr, "hall")) != 0 {
		t.Error("an ordinary connect was recorded as an update")
	}
}

func TestDownloadEndAfterTheLampIsBack(t *testing.T) {
	tr, _ := newTracker(t, t.TempDir(), nil)
	// The end of a download reported after the lamp is back still counts,
	// without changing its state; a later, unrelated download does not.
	tr.Device(device.Info{ID: "d-7", Name: "hall", RemoteAddr: "192.0.2.9:1", Event: "updating"})
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:2", Sent: 1000, Total: 5000})
	tr.Device(device.Info{ID: "d-8", Name: "hall", RemoteAddr: "192.0.2.9:3", Event: "authenticated"})
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:2", Sent: 5000, Total: 5000, Done: true})
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:4", Sent: 10, Total: 99, Done: true})
	if u := history(tr, "hall")[0]; u.State != StateBack || u.Sent != 5000 || u.Total != 5000 {
		t.Errorf("late end of download: %+v", u)
	}

}

// TestProgressStaysInMemory: a download reports every 64 KiB, and every
// report reaches the bus, but the file is written only when the update
// changes state (asked, downloading, downloaded) or a download ends.
func TestProgressStaysInMemory(t *testing.T) {
	dir := t.TempDir()
	bus := events.NewBus()
	sub := bus.Subscribe(100, events.TypeFirmware)
	tr, _ := newTracker(t, dir, bus)
	var writes []string
	write := tr.write
	tr.write = func(data []byte) error {
		if !tr.mu.TryLock() {
			t.Error("the history was written under the tracker's lock")
		} else {
			tr.mu.Unlock()
		}
		var h map[string][]Update
		if err := json.Unmarshal(data, &h); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, h["hall"][0].State)
		return write(data)
	}

	tr.Device(device.Info{Name: "hall", RemoteAddr: "192.0.2.9:1", Event: "updating"})
	const total = 40 * 65536
	for sent := int64(65536); sent < total; sent += 65536 {
		tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:2", Sent: sent, Total: total})
	}
	// A first attempt breaks off; the lamp resumes and finishes.
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:2", Sent: total - 100, Total: total, Done: true})
	tr.Served(firmware.Download{RemoteAddr: "192.0.2.9:3", Sent: total, Total: total, Done: true})

	if want := []string{StateAsked, StateDownloading, StateDownloading, StateDownloaded}; !slices.Equal(writes, want) {
		t.Errorf("the file was written with states %v, want %v", writes, want)
	}
	if n := len(sub.C); n != 1+39+2 {
		t.Errorf("%d firmware events, want one per report (42)", n)
	}
	again, _ := newTracker(t, dir, nil)
	if h := history(again, "hall"); len(h) != 1 || h[0].State != StateDownloaded || h[0].Sent != total {
		t.Errorf("on disk: %+v", h)
	}
}

// TestEveryNodeKeepsTheSameHistory: in a cluster a lamp is told to update
// through node a, downloads from node b and comes back on node c; each
// node passes its steps to the others (Remote), and all three end with the
// same history.
func TestEveryNodeKeepsTheSameHistory(t *testing.T) {
	var nodes []*Tracker
	var subs []*events.Subscription
	for range 3 {
		bus := events.NewBus()
		subs = append(subs, bus.Subscribe(100, events.TypeFirmware))
		tr, _ := newTracker(t, t.TempDir(), bus)
		nodes = append(nodes, tr)
	}
	// relay hands what node i published to the others, as the cluster does.
	relay := func(i int) {
		for {
			select {
			case e := <-subs[i].C:
				for j, tr := range nodes {
					if j != i {
						tr.Remote(e.Data.(Update))
					}
				}
			default:
				return
			}
		}
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.Device(device.Info{ID: "d-a-1", LampID: "bedroom", RemoteAddr: "192.0.2.5:4000", Event: device.EventUpdating})
	relay(0)
	b.Served(firmware.Download{RemoteAddr: "192.0.2.5:5000", Sent: 200000, Total: 200000, Done: true})
	relay(1)
	c.Device(device.Info{ID: "d-c-1", LampID: "bedroom", RemoteAddr: "192.0.2.5:4001", Event: device.EventAuthenticated})
	relay(2)
	want := history(c, "bedroom")
	if len(want) != 1 || want[0].State != StateBack || want[0].Sent != 200000 || want[0].DeviceID != "d-c-1" {
		t.Fatalf("node c's history: %+v", want)
	}
	for i, tr := range nodes[:2] {
		if got := history(tr, "bedroom"); !slices.EqualFunc(got, want, func(x, y Update) bool {
			bx, _ := json.Marshal(x)
			by, _ := json.Marshal(y)
			return string(bx) == string(by)
		}) {
			t.Errorf("node %d's history %+v, want %+v", i, got, want)
		}
	}
	// A step seen twice changes nothing more.
	c.Remote(want[0])
	if got := history(c, "bedroom"); len(got) != 1 {
		t.Errorf("a repeated step added an update: %+v", got)
	}
}
