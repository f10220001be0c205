package lamps

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ptr[T any](v T) *T { return &v }

// displays records what the registry asks the gateway to show: the
// interface boundary to device.Gateway, whose side device's own tests
// cover with real lamps.
type displays struct {
	mu  sync.Mutex
	own map[string]string
}

func (d *displays) SetLampDisplay(id string, p protocol.Packet) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.own[id] = p.String()
	return nil
}

func (d *displays) FollowShared(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(ids) == 0 {
		clear(d.own)
	}
	for _, id := range ids {
		delete(d.own, id)
	}
}

func (d *displays) LampDevices(string) []device.Info { return nil }

func (d *displays) get(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.own[id]
}

type env struct {
	dir    string
	bucket storage.Bucket
	store  *state.Store
	reg    *Registry
	gw     *displays
	bus    *events.Bus
}

func open(t *testing.T, dir string) *env { return openWith(t, dir) }

func openWith(t testing.TB, dir string) *env {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Bucket("")
	if err != nil {
		t.Fatal(err)
	}
	e := node(t, b)
	e.dir = dir
	return e
}

func seen(e *env, id string, online bool) {
	e.reg.Seen(device.LampSeen{Lamp: id, Addr: "192.0.2.7", Online: online, Time: time.Now()})
}

// TestOwnStatesAcrossRestartsAndEpochs: own states survive a restart; a
// shared change replaces them, on disk too, without rewriting their
// records; new lamps reach the disk through the flusher.
func TestOwnStatesAcrossRestartsAndEpochs(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	seen(e, "bedroom", true)
	seen(e, "living", true)
	seen(e, "::1", true) // an address that is no storage key
	if _, err := e.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual), Brightness: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.SetState("::1", state.Change{Mode: ptr(state.ModeWeather)}); err != nil {
		t.Fatal(err)
	}
	if got := e.gw.get("bedroom"); got != "[cc:2:26,7,17:0]" {
		t.Errorf("bedroom shows %q", got)
	}
	e.reg.Close() // writes the lamps only seen so far

	e = open(t, dir)
	if l, _ := e.reg.Lamp("bedroom"); l.FollowsShared || l.State.Packet != "[cc:2:26,7,17:0]" || l.Online {
		t.Errorf("bedroom after a restart: %+v", l)
	}
	if got := e.gw.get("bedroom"); got != "[cc:2:26,7,17:0]" {
		t.Errorf("after a restart the gateway shows %q for the bedroom", got)
	}
	if l, err := e.reg.Lamp("living"); err != nil || !l.FollowsShared {
		t.Errorf("living after a restart: %+v, %v", l, err)
	}
	// The live weather reaches a lamp of its own in weather mode.
	if _, err := e.store.SetWeather(state.Weather{Code: 5, Intensity: 4, Description: "rain", Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := e.gw.get("::1"); got != "[cc:1:5:4]" {
		t.Errorf("::1 in weather mode shows %q after the weather changed", got)
	}

	before, _ := os.ReadFile(filepath.Join(dir, "lamps", "bedroom.json"))
	if _, err := e.reg.Apply(state.Change{Pulse: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "lamps", "bedroom.json"))
	if string(before) != string(after) {
		t.Errorf("a shared change rewrote a lamp's record")
	}
	if e.gw.get("bedroom") != "" || e.gw.get("::1") != "" {
		t.Errorf("lamps still show their own state after a shared change: %v", e.gw.own)
	}
	e.reg.Close()
	e = open(t, dir)
	for _, l := range e.reg.Lamps() {
		if !l.FollowsShared || l.State.Pulse != 3 {
			t.Errorf("%s after a shared change and a restart: %+v", l.ID, l)
		}
	}
}

// brokenDisk is a bucket whose writes fail, as on a full disk.
type brokenDisk struct{ storage.Bucket }

func (brokenDisk) Put(string, []byte) (uint64, error) {
	return 0, errors.New("write: no space left on device")
}

func (brokenDisk) Update(string, []byte, uint64) (uint64, error) {
	return 0, errors.New("write: no space left on device")
}

func TestFailedWritesChangeNothing(t *testing.T) {
	e := open(t, t.TempDir())
	seen(e, "bedroom", true)
	if _, err := e.reg.SetState("bedroom", state.Change{Mode: ptr(state.ModeManual)}); err != nil {
		t.Fatal(err)
	}
	e.reg.opt.Records = brokenDisk{e.bucket}
	if _, err := e.reg.SetState("bedroom", state.Change{Pulse: ptr(4)}); err == nil {
		t.Fatal("SetState succeeded on a full disk")
	}
	if _, err := e.reg.SetLabel("bedroom", "Bed"); err == nil {
		t.Fatal("SetLabel succeeded on a full disk")
	}
	// The shared change cannot raise the epoch: nothing changes anywhere.
	if _, err := e.reg.Apply(state.Change{Pulse: ptr(5)}); err == nil {
		t.Fatal("Apply succeeded on a full disk")
	}
	l, _ := e.reg.Lamp("bedroom")
	if l.State.Pulse != 0 || l.Label != "" || l.FollowsShared || e.store.Get().Pulse != 0 {
		t.Errorf("a failed write changed something: %+v, shared %+v", l, e.store.Get())
	}
	if got := e.gw.get("bedroom"); got != "[cc:2:255,65,174:0]" {
		t.Errorf("the gateway shows %q", got)
	}
}

func TestForgetAndCorruptRecords(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	seen(e, "bedroom", true)
	var oe *OnlineError
	if err := e.reg.Forget("bedroom"); !errors.As(err, &oe) {
		t.Errorf("forgetting a connected lamp: %v", err)
	}
	seen(e, "bedroom", false)
	if err := e.reg.Forget("bedroom"); err != nil {
		t.Fatal(err)
	}
	var ue *UnknownError
	if _, err := e.reg.Lamp("bedroom"); !errors.As(err, &ue) {
		t.Errorf("a forgotten lamp: %v", err)
	}
	e.reg.Close()

	os.MkdirAll(filepath.Join(dir, "lamps"), 0o700)
	os.WriteFile(filepath.Join(dir, "lamps", "broken.json"), []byte("{nope"), 0o600)
	os.WriteFile(filepath.Join(dir, "lamps", "moved.json"), []byte(`{"id": "other"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "lamps", "loud.json"), []byte(`{"id": "loud", "state": {"mode": "manual", "brightness": 500}}`), 0o600)
	e = open(t, dir)
	if n := len(e.reg.Lamps()); n != 0 {
		t.Errorf("%d lamps loaded from unusable records", n)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "lamps", "*.corrupt-*")); len(m) != 3 {
		t.Errorf("set aside: %v", m)
	}
}

// TestFirmwareAndEvents: the updater's version is kept for the lamp last
// seen at its address; every change of a lamp is announced by id.
func TestFirmwareAndEvents(t *testing.T) {
	e := open(t, t.TempDir())
	sub := e.bus.Subscribe(64, events.TypeLamp)
	seen(e, "bedroom", true) // from 192.0.2.7
	e.reg.Seen(device.LampSeen{Lamp: "porch", Addr: "192.0.2.8", FirmwareVersion: "1.0", Online: true, Time: time.Now()})
	e.reg.FirmwareFromAddress("192.0.2.7", "2.1.0")
	if l, _ := e.reg.Lamp("bedroom"); l.FirmwareVersion != "2.1.0" {
		t.Errorf("bedroom runs %q", l.FirmwareVersion)
	}
	if l, _ := e.reg.Lamp("porch"); l.FirmwareVersion != "1.0" {
		t.Errorf("porch runs %q", l.FirmwareVersion)
	}
	e.reg.SetLabel("porch", "Porch")
	seen(e, "bedroom", false)
	e.reg.Forget("bedroom")
	var got []string
	for range 6 {
		c := (<-sub.C).Data.(Changed)
		got = append(got, fmt.Sprintf("%s/%v", c.ID, c.Forgotten))
	}
	want := "bedroom/false porch/false bedroom/false porch/false bedroom/false bedroom/true"
	if strings.Join(got, " ") != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

// TestFollow: one lamp gives up its own state (the UI's "Follow all
// lamps"), on the gateway, in the registry and after a restart; the others
// keep theirs.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	seen(e, "bedroom", true)
	seen(e, "hall", true)
	for _, id := range []string{"bedroom", "hall"} {
		if _, err := e.reg.SetState(id, state.Change{Mode: ptr(state.ModeManual), Color: &protocol.RGB{G: 255}}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := e.reg.Follow("bedroom")
	if err != nil || !l.FollowsShared || l.State.Packet != e.store.Get().Packet {
		t.Fatalf("Follow answered %+v, %v", l, err)
	}
	if got := e.gw.get("bedroom"); got != "" {
		t.Errorf("the gateway still shows %q for the bedroom", got)
	}
	if got := e.gw.get("hall"); got != "[cc:2:0,255,0:0]" {
		t.Errorf("the hall shows %q; it should keep its own", got)
	}
	if _, err := e.reg.Follow("bedroom"); err != nil {
		t.Errorf("following again: %v", err)
	}
	var unknown *UnknownError
	if _, err := e.reg.Follow("attic"); !errors.As(err, &unknown) {
		t.Errorf("Follow of an unknown lamp: %v", err)
	}
	e.reg.Close()
	e = open(t, dir)
	if l, _ := e.reg.Lamp("bedroom"); !l.FollowsShared {
		t.Errorf("bedroom after a restart: %+v", l)
	}
	if l, _ := e.reg.Lamp("hall"); l.FollowsShared {
		t.Errorf("hall after a restart: %+v", l)
	}
}
