package device

import (
	"slices"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// lampAt dials with a query and completes the handshake.
func (ts *testServer) lampAt(t *testing.T, query, secret, wantPacket string) *websocket.Conn {
	t.Helper()
	c := dial(t, ts.url+"?"+query, nil)
	send(t, c, secret)
	expect(t, c, "ok", wantPacket)
	return c
}

// nothingBefore checks that the next frame lamp c gets is the reset
// command sent to it now: whatever display packet had been queued for it
// would come first.
func (ts *testServer) nothingBefore(t *testing.T, c *websocket.Conn, lamp, what string) {
	t.Helper()
	if _, err := ts.gw.Command(protocol.Reset(), []string{lamp}); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c); got != protocol.Reset().String() {
		t.Errorf("%s got %q, want nothing", what, got)
	}
}

func manual(t *testing.T, r, g, b uint8) protocol.Packet {
	t.Helper()
	p, err := protocol.Manual(protocol.RGB{R: r, G: g, B: b}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLampIdentity: named secret, else ?lamp= (lower-cased; an unusable
// value is ignored), else the address; ?fw= is kept; OnLamp hears of
// every lamp that comes and goes.
func TestLampIdentity(t *testing.T) {
	var mu sync.Mutex
	var seen []LampSeen
	ts := newServer(t, Options{Named: []NamedSecret{{Name: "porch", Secret: "porch-secret"}}, OnLamp: func(s LampSeen) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}}, nil)
	ts.lampAt(t, "lamp=Kitchen&fw=1.4.2", secret, "[cc:0:?:?]")
	ts.lampAt(t, "lamp=bad%20name", secret, "[cc:0:?:?]")
	porch := ts.lampAt(t, "lamp=kitchen", "porch-secret", "[cc:0:?:?]")
	ids := func() []string {
		var out []string
		for _, d := range ts.gw.Devices() {
			out = append(out, d.LampID+"/"+d.FirmwareVersion)
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, "three lamps", func() bool { return len(ids()) == 3 })
	if got, want := ids(), []string{"127.0.0.1/", "kitchen/1.4.2", "porch/"}; !slices.Equal(got, want) {
		t.Errorf("lamps %v, want %v", got, want)
	}
	porch.Close()
	waitFor(t, "porch offline", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 4 && !seen[3].Online && seen[3].Lamp == "porch"
	})
	mu.Lock()
	if seen[0].Lamp != "kitchen" || seen[0].FirmwareVersion != "1.4.2" || !seen[0].Online {
		t.Errorf("first seen %+v", seen[0])
	}
	mu.Unlock()
}

// TestOwnDisplayPackets: a lamp with its own packet gets it, and only it;
// shared changes skip it; it gets it again when it reconnects; back on the
// shared state it gets the current shared packet.
func TestOwnDisplayPackets(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	living := ts.lampAt(t, "lamp=living", secret, "[cc:0:?:?]")
	bed := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]")
	bed2 := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]") // two connections, one lamp

	red := manual(t, 255, 0, 0)
	if err := ts.gw.SetLampDisplay("bedroom", red); err != nil {
		t.Fatal(err)
	}
	expect(t, bed, red.String())
	expect(t, bed2, red.String())
	ts.nothingBefore(t, living, "living", "the living room, after a bedroom change")

	blue := manual(t, 0, 0, 255)
	ts.gw.SetDisplay(blue)
	expect(t, living, blue.String())
	ts.nothingBefore(t, bed, "bedroom", "the bedroom, after a shared change")
	expect(t, bed2, protocol.Reset().String())

	waitFor(t, "synchronized", func() bool {
		for _, d := range ts.gw.Devices() {
			if !d.Synchronized {
				return false
			}
		}
		return true
	})
	if got := len(ts.gw.LampDevices("bedroom")); got != 2 {
		t.Errorf("LampDevices(bedroom) = %d connections, want 2", got)
	}

	bed.Close()
	// The gateway notices a closed connection on its own time; the count
	// below is of the live ones.
	waitFor(t, "the closed bedroom connection gone", func() bool { return len(ts.gw.LampDevices("bedroom")) == 1 })
	ts.lampAt(t, "lamp=bedroom", secret, red.String()) // its own state on reconnect
	ts.lampAt(t, "lamp=hall", secret, blue.String())   // a new lamp: the shared one

	ts.gw.FollowShared()
	expect(t, bed2, blue.String())
	ts.nothingBefore(t, living, "living", "the living room, when the bedroom returns to the shared state")
	green := manual(t, 0, 255, 0)
	ts.gw.SetDisplay(green)
	expect(t, bed2, green.String())
	expect(t, living, green.String())

	// Commands by lamp id reach every connection of that lamp.
	if sent, err := ts.gw.Command(protocol.Reset(), []string{"bedroom"}); err != nil || len(sent) != 2 {
		t.Errorf("reset bedroom sent to %v, %v; want its two connections", sent, err)
	}
}

// TestDebugSwitchFollowsTheLampID: a lamp with a ?lamp= id keeps its debug
// switch across reconnects, as one with a named secret does.
// TestARememberedDebugSwitch: a switch remembered for a lamp that is not
// connected (another node of a cluster set it) is the lamp's when it
// connects.
func TestARememberedDebugSwitch(t *testing.T) {
	ts := newServer(t, Options{Records: bucket(t, t.TempDir())}, nil)
	if err := ts.gw.RememberDebug(true, []string{"bedroom"}); err != nil {
		t.Fatal(err)
	}
	c := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]")
	expect(t, c, protocol.Debug(true).String())
	if err := ts.gw.RememberDebug(false, []string{"bedroom"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	other := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]")
	ts.nothingBefore(t, other, "bedroom", "a lamp whose remembered switch is off")
}

func TestDebugSwitchFollowsTheLampID(t *testing.T) {
	ts := newServer(t, Options{Records: bucket(t, t.TempDir())}, nil)
	c := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]")
	other := ts.lampAt(t, "", secret, "[cc:0:?:?]")
	if _, err := ts.gw.SetDebug(true, []string{"bedroom"}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, protocol.Debug(true).String())
	c.Close()
	again := ts.lampAt(t, "lamp=bedroom", secret, "[cc:0:?:?]")
	expect(t, again, protocol.Debug(true).String())
	ts.nothingBefore(t, other, "127.0.0.1", "a lamp known by its address")
}

// TestTheDebugLogFollowsTheLampID: a lamp with a ?lamp= id keeps one debug
// log across reconnects, found by its lamp id; each line still names the
// connection that sent it.
func TestTheDebugLogFollowsTheLampID(t *testing.T) {
	ts := newServer(t, Options{Records: bucket(t, t.TempDir())}, nil)
	say := func(c *websocket.Conn, msg string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte("d:"+msg)); err != nil {
			t.Fatal(err)
		}
	}
	first := ts.lampAt(t, "lamp=porch", secret, "[cc:0:?:?]")
	say(first, "before")
	waitFor(t, "the first line", func() bool { return len(ts.gw.Logs("porch", 0)) == 1 })
	firstID := ts.gw.Logs("porch", 0)[0].Device
	first.Close()
	second := ts.lampAt(t, "lamp=porch", secret, "[cc:0:?:?]")
	say(second, "after")
	waitFor(t, "both lines", func() bool { return len(ts.gw.Logs("porch", 0)) == 2 })
	lines := ts.gw.Logs("porch", 0)
	if lines[0].Message != "before" || lines[1].Message != "after" || lines[0].Lamp != "porch" || lines[1].Device == firstID {
		t.Errorf("porch's log: %+v", lines)
	}
	if got := ts.gw.Logs(firstID, 0); len(got) != 1 || got[0].Message != "before" {
		t.Errorf("the first connection's lines: %+v", got)
	}
}
