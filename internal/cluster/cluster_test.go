package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// fakeGateway is a node's gateway: connections and what was sent to them.
type fakeGateway struct {
	mu    sync.Mutex
	devs  []device.Info
	sent  []string // "<packet> <id>"
	lines []device.LogLine
}

func (g *fakeGateway) Devices() []device.Info {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.devs)
}
func (g *fakeGateway) Offline() []device.Info { return nil }
func (g *fakeGateway) Connections() int       { return len(g.Devices()) }
func (g *fakeGateway) find(ids []string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out, unknown []string
	for _, id := range ids {
		i := slices.IndexFunc(g.devs, func(d device.Info) bool { return d.AnswersTo(id) })
		if i < 0 {
			unknown = append(unknown, id)
			continue
		}
		out = append(out, g.devs[i].ID)
	}
	if len(ids) == 0 {
		for _, d := range g.devs {
			out = append(out, d.ID)
		}
	}
	if len(unknown) > 0 {
		return nil, &device.UnknownDeviceError{IDs: unknown}
	}
	return out, nil
}
func (g *fakeGateway) Command(p protocol.Packet, ids []string) ([]string, error) {
	out, err := g.find(ids)
	g.mu.Lock()
	for _, id := range out {
		g.sent = append(g.sent, p.String()+" "+id)
	}
	g.mu.Unlock()
	return out, err
}
func (g *fakeGateway) SetDebug(on bool, ids []string) ([]string, error) {
	return g.Command(protocol.Debug(on), ids)
}
func (g *fakeGateway) RememberDebug(on bool, keys []string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		g.sent = append(g.sent, fmt.Sprintf("remember debug %v %s", on, k))
	}
	return nil
}
func (g *fakeGateway) Logs(dev string, limit int) []device.LogLine {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(g.lines), func(l device.LogLine) bool { return dev != "" && l.Device != dev && l.Name != dev })
}
func (g *fakeGateway) LampDevices(id string) []device.Info {
	var out []device.Info
	for _, d := range g.Devices() {
		if d.LampID == id {
			out = append(out, d)
		}
	}
	return out
}
func (g *fakeGateway) SetLampDisplay(string, protocol.Packet) error { return nil }
func (g *fakeGateway) FollowShared(...string)                       {}

func (g *fakeGateway) sentTo() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sent)
}

func connect(t *testing.T, ns *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

type testNode struct {
	*Cluster
	gw   *fakeGateway
	bus  *events.Bus
	stop func()
}

// join runs node name on ns with a fast heartbeat (a silent node is gone
// after 600 ms).
func join(t *testing.T, ns *natsserver.Server, name string, devs ...device.Info) *testNode {
	t.Helper()
	gw := &fakeGateway{devs: devs}
	bus := events.NewBus()
	forward := map[events.Type]func([]byte) (any, error){"note": func(b []byte) (any, error) {
		var s string
		return s, json.Unmarshal(b, &s)
	}}
	c, err := New(Options{Conn: connect(t, ns), Node: name, Gateway: gw, Bus: bus, Forward: forward,
		Expiry: 600 * time.Millisecond, Heartbeat: 100 * time.Millisecond, Counters: 100 * time.Millisecond, Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", name)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &testNode{Cluster: c, gw: gw, bus: bus, stop: stop}
}

func conn(node, id, lamp string) device.Info {
	return device.Info{ID: id, LampID: lamp, Node: node, Authenticated: true, Phase: device.PhaseSynchronized, ConnectedAt: time.Now().UTC()}
}

// ids is the connection ids of list, sorted.
func ids(list []device.Info) []string {
	out := make([]string, len(list))
	for i, d := range list {
		out[i] = d.ID
	}
	slices.Sort(out)
	return out
}

func eventually(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	var saw any
	for range 200 {
		var ok bool
		if ok, saw = cond(); ok {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never happened; last saw %v", what, saw)
}

func TestNodesSeeEachOthersLampsAndForgetASilentOne(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a", conn("a", "d-a-1", "one"))
	b := join(t, ns, "b", conn("b", "d-b-1", "two"), conn("b", "d-b-2", "two"))
	eventually(t, "a lists b's lamps", func() (bool, any) {
		got := ids(a.Devices())
		return slices.Equal(got, []string{"d-a-1", "d-b-1", "d-b-2"}), got
	})
	if got := ids(a.LampDevices("two")); !slices.Equal(got, []string{"d-b-1", "d-b-2"}) {
		t.Fatalf("a's LampDevices(two) = %v", got)
	}

	// A connection of b that comes and one that goes reach a by b's bus.
	b.gw.mu.Lock()
	b.gw.devs = append(b.gw.devs[1:], conn("b", "d-b-3", "three"))
	b.gw.mu.Unlock()
	gone := conn("b", "d-b-1", "two")
	gone.Event = device.EventDisconnected
	added := conn("b", "d-b-3", "three")
	added.Event = device.EventConnected
	sub := a.bus.Subscribe(16, events.TypeDevice)
	b.bus.Publish(events.Event{Type: events.TypeDevice, Data: gone})
	b.bus.Publish(events.Event{Type: events.TypeDevice, Data: added})
	eventually(t, "a follows b's connections", func() (bool, any) {
		got := ids(a.Devices())
		return slices.Equal(got, []string{"d-a-1", "d-b-2", "d-b-3"}), got
	})
	select {
	case e := <-sub.C:
		if i := e.Data.(device.Info); i.Node != "b" {
			t.Fatalf("the event on a's bus is of node %q", i.Node)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's device events are not on a's bus")
	}

	// b goes silent (its link is cut, so it cannot say bye): a forgets its
	// lamps after the expiry.
	b.nc.Close()
	b.stop()
	eventually(t, "a forgets b", func() (bool, any) {
		got := ids(a.Devices())
		return slices.Equal(got, []string{"d-a-1"}) && len(a.Nodes()) == 1, got
	})
	// Its lamps are offline now, with why, until they come back anywhere.
	var lamps []string
	for _, i := range a.Offline() {
		lamps = append(lamps, i.Lamp())
		if i.Phase != device.PhaseOffline || i.Reason != "node b stopped answering" || i.Node != "b" {
			t.Errorf("a lamp of the lost node: %+v", i)
		}
	}
	if slices.Sort(lamps); !slices.Equal(lamps, []string{"three", "two"}) {
		t.Fatalf("a lists %q offline, want the lost node's lamps", lamps)
	}
	a.gw.mu.Lock()
	a.gw.devs = append(a.gw.devs, conn("a", "d-a-2", "two"))
	a.gw.mu.Unlock()
	if got := a.Offline(); len(got) != 1 || got[0].Lamp() != "three" {
		t.Fatalf("after lamp two came back on a, a lists offline %+v", got)
	}
}

// TestPacketCountsFollow: the packet counts and last-seen time of another
// node's lamp, which change with every packet and are in no device batch,
// are as fresh as its last counts message.
func TestPacketCountsFollow(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	b := join(t, ns, "b", conn("b", "d-b-1", "porch"))
	eventually(t, "a lists porch", func() (bool, any) { return len(a.LampDevices("porch")) == 1, a.Devices() })
	seen := time.Now().UTC().Add(time.Minute).Truncate(time.Millisecond)
	b.gw.mu.Lock()
	b.gw.devs[0].PacketsSent, b.gw.devs[0].PacketsReceived, b.gw.devs[0].LastSeen = 7, 3, seen
	b.gw.mu.Unlock()
	eventually(t, "a has porch's new counts", func() (bool, any) {
		got := a.LampDevices("porch")
		return len(got) == 1 && got[0].PacketsSent == 7 && got[0].PacketsReceived == 3 && got[0].LastSeen.Equal(seen), got
	})
	if list := a.Devices(); len(list) != 1 || list[0].PacketsSent != 7 {
		t.Fatalf("a's device list: %+v", list)
	}
}

func TestLostDeviceBatchesAreMadeGoodByTheHeartbeatsCount(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	b := join(t, ns, "b", conn("b", "d-b-1", "one"))
	eventually(t, "a lists b's lamp", func() (bool, any) { return len(a.Devices()) == 1, ids(a.Devices()) })
	// Two connections appear on b without any device event (as if the
	// batch was lost): b's heartbeats count 3, so a asks for the list.
	b.gw.mu.Lock()
	b.gw.devs = append(b.gw.devs, conn("b", "d-b-2", "two"), conn("b", "d-b-3", "three"))
	b.gw.mu.Unlock()
	eventually(t, "a asks b for its whole list", func() (bool, any) {
		got := ids(a.Devices())
		return slices.Equal(got, []string{"d-b-1", "d-b-2", "d-b-3"}), got
	})
}

func TestCommandsGoToTheNodeHoldingTheLamp(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a", conn("a", "d-a-1", "one"))
	b := join(t, ns, "b", conn("b", "d-b-1", "two"))
	eventually(t, "a and b know each other", func() (bool, any) {
		return len(a.Devices()) == 2 && len(b.Devices()) == 2, ids(a.Devices())
	})
	sent, err := a.Command(protocol.Reset(), []string{"two"})
	if err != nil || !slices.Equal(sent, []string{"d-b-1"}) {
		t.Fatalf("reset two through a: %v, %v", sent, err)
	}
	if got := b.gw.sentTo(); !slices.Equal(got, []string{protocol.Reset().String() + " d-b-1"}) {
		t.Fatalf("b sent %v", got)
	}
	if got := a.gw.sentTo(); len(got) != 0 {
		t.Fatalf("a sent %v, but holds no connection of two", got)
	}
	// No ids: every lamp of every node.
	sent, err = b.SetDebug(true, nil)
	if err != nil || !slices.Equal(sent, []string{"d-a-1", "d-b-1"}) {
		t.Fatalf("debug on for every lamp through b: %v, %v", sent, err)
	}
	// A lamp's switch set through a node is kept by every node, for when
	// the lamp moves.
	before := len(a.gw.sentTo())
	if _, err := a.SetDebug(true, []string{"two"}); err != nil {
		t.Fatal(err)
	}
	if got := a.gw.sentTo()[before:]; !slices.Equal(got, []string{"remember debug true two"}) {
		t.Errorf("a, which does not hold lamp two, keeps %q", got)
	}
	if got := b.gw.sentTo(); !slices.Contains(got, protocol.Debug(true).String()+" d-b-1") || !slices.Contains(got, "remember debug true two") {
		t.Errorf("b, which holds lamp two, got %q", got)
	}
	// An id no node holds sends nothing anywhere.
	before = len(a.gw.sentTo()) + len(b.gw.sentTo())
	var ude *device.UnknownDeviceError
	if _, err := a.Command(protocol.Update(), []string{"one", "nowhere"}); !errors.As(err, &ude) || !slices.Equal(ude.IDs, []string{"nowhere"}) {
		t.Fatalf("a command naming an unknown lamp: %v", err)
	}
	if after := len(a.gw.sentTo()) + len(b.gw.sentTo()); after != before {
		t.Fatalf("a command naming an unknown lamp sent %d packets", after-before)
	}
}

func TestACommandForANodeThatDoesNotAnswerSaysSo(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	// A node that beats and announces a lamp but answers nothing.
	mute := connect(t, ns)
	hb, _ := json.Marshal(heartbeat{Node: "mute", Instance: "x", Lamps: 1})
	lamp, _ := json.Marshal(deviceBatch{Instance: "x", Devices: []device.Info{conn("mute", "d-mute-1", "far")}})
	eventually(t, "a learns of the mute node's lamp", func() (bool, any) {
		_ = mute.Publish(subject("mute", "heartbeat"), hb)
		_ = mute.Publish(subject("mute", "devices"), lamp)
		return len(a.Devices()) == 1, ids(a.Devices())
	})
	var ne *NodeError
	if _, err := a.Command(protocol.Reset(), []string{"far"}); !errors.As(err, &ne) || ne.Node != "mute" {
		t.Fatalf("a command for the mute node's lamp: %v, want a NodeError naming it", err)
	}
}

func TestLogsComeFromEveryNode(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	b := join(t, ns, "b")
	now := time.Now().UTC()
	a.gw.lines = []device.LogLine{{Time: now, Message: "a1", Node: "a"}, {Time: now.Add(2 * time.Second), Message: "a2", Node: "a"}}
	b.gw.lines = []device.LogLine{{Time: now.Add(time.Second), Message: "b1", Node: "b"}}
	eventually(t, "a knows b", func() (bool, any) { return len(a.Nodes()) == 2, a.Nodes() })
	var got []string
	for _, l := range a.Logs("", 2) {
		got = append(got, l.Message)
	}
	if !slices.Equal(got, []string{"b1", "a2"}) {
		t.Fatalf("the newest 2 lines of every node, oldest first: %v", got)
	}
	// A live line of b reaches a's bus.
	sub := a.bus.Subscribe(16, events.TypeLog)
	b.bus.Publish(events.Event{Type: events.TypeLog, Data: device.LogLine{Time: now, Message: "live", Node: "b"}})
	select {
	case e := <-sub.C:
		if l := e.Data.(device.LogLine); l.Message != "live" || l.Node != "b" {
			t.Fatalf("a got %+v", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's live line did not reach a")
	}
	// So do the events of the types to forward, decoded, with their node;
	// a's own are not sent back to it.
	notes := a.bus.Subscribe(16, "note")
	b.bus.Publish(events.Event{Type: "note", Data: "from b"})
	a.bus.Publish(events.Event{Type: "note", Data: "from a"})
	seen := map[any]string{}
	for range 2 {
		select {
		case e := <-notes.C:
			seen[e.Data] = e.Node
		case <-time.After(5 * time.Second):
			t.Fatalf("a's bus has only %v", seen)
		}
	}
	if len(seen) != 2 || seen["from a"] != "" || seen["from b"] != "b" {
		t.Fatalf("a's bus has %v (data: node), want from a: \"\", from b: b", seen)
	}
	select {
	case e := <-notes.C:
		t.Fatalf("a's bus has %+v too", e)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestLogsOfANodeThatIsGoneComeFromItsLastSave: the lines of a node that
// no longer runs are read from the record it saved; a node that answers is
// not read twice.
func TestLogsOfANodeThatIsGoneComeFromItsLastSave(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	records := natstest.Buckets(t, ns, 1)[0]
	a := join(t, ns, "a")
	b := join(t, ns, "B")
	a.opt.Records = records
	now := time.Now().UTC()
	b.gw.lines = []device.LogLine{{Time: now, Message: "b live", Node: "B"}}
	saved := func(node, message string, at time.Time) {
		t.Helper()
		data, _ := json.Marshal(map[string]any{"lamps": map[string][]device.LogLine{"porch": {{Time: at, Device: "d-x", Name: "porch", Message: message, Node: node}}}})
		if _, err := records.Put(device.LogKey+"/"+strings.ToLower(node), data); err != nil {
			t.Fatal(err)
		}
	}
	saved("c", "c saved", now.Add(-time.Second))
	saved("B", "b saved", now.Add(-time.Second))
	eventually(t, "a knows b", func() (bool, any) { return len(a.Nodes()) == 2, a.Nodes() })
	var got []string
	for _, l := range a.Logs("", 10) {
		got = append(got, l.Node+": "+l.Message)
	}
	if want := []string{"c: c saved", "B: b live"}; !slices.Equal(got, want) {
		t.Fatalf("a's log %q, want %q", got, want)
	}
	if lines := a.Logs("porch", 10); len(lines) != 1 || lines[0].Message != "c saved" {
		t.Fatalf("a's log of the lamp porch: %+v", lines)
	}
}

// TestALogLargerThanOneMessageSendsItsNewestLines: lamps may send lines of
// up to 4 KiB, so a node's 1000 newest can exceed one NATS message; it
// sends the newest that fit rather than nothing.
func TestALogLargerThanOneMessageSendsItsNewestLines(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	b := join(t, ns, "b")
	now := time.Now().UTC()
	for i := range 600 {
		b.gw.lines = append(b.gw.lines, device.LogLine{Time: now.Add(time.Duration(i) * time.Millisecond), Message: fmt.Sprintf("%04d %s", i, strings.Repeat("x", 4000)), Node: "b"})
	}
	eventually(t, "a knows b", func() (bool, any) { return len(a.Nodes()) == 2, a.Nodes() })
	lines := a.Logs("", 1000)
	if len(lines) < 100 || len(lines) >= 600 || !strings.HasPrefix(lines[len(lines)-1].Message, "0599 ") {
		t.Fatalf("a got %d of b's 600 lines of 4 KiB, want the newest that fit in 1 MB", len(lines))
	}
}

func TestANodeThatRestartsLosesItsOldLamps(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := join(t, ns, "a")
	mute := connect(t, ns)
	beat := func(instance string, lamps int) {
		hb, _ := json.Marshal(heartbeat{Node: "b", Instance: instance, Lamps: lamps})
		_ = mute.Publish(subject("b", "heartbeat"), hb)
	}
	lamp, _ := json.Marshal(deviceBatch{Instance: "first", Devices: []device.Info{conn("b", "d-b-1", "one")}})
	eventually(t, "a learns of b's lamp", func() (bool, any) {
		beat("first", 1)
		_ = mute.Publish(subject("b", "devices"), lamp)
		return len(a.Devices()) == 1, ids(a.Devices())
	})
	// b again, a new process (its snapshot request goes unanswered): the
	// old process's lamps are gone.
	eventually(t, "a drops the lamps of b's old process", func() (bool, any) {
		beat("second", 0)
		return len(a.Devices()) == 0 && len(a.Nodes()) == 2, ids(a.Devices())
	})
	// A batch of the old process that comes late is not the new one's: it
	// is taken in order before the new process's next batch.
	_ = mute.Publish(subject("b", "devices"), lamp)
	fresh, _ := json.Marshal(deviceBatch{Instance: "second", Devices: []device.Info{conn("b", "d-b-2", "two")}})
	_ = mute.Publish(subject("b", "devices"), fresh)
	eventually(t, "a takes the new process's lamp only", func() (bool, any) {
		got := ids(a.Devices())
		return slices.Equal(got, []string{"d-b-2"}), got
	})
}

// FuzzPeerMessages: whatever another node (or anything on the subjects)
// sends, a node does not fail, and refuses what does not decode.
func FuzzPeerMessages(f *testing.F) {
	hb, _ := json.Marshal(heartbeat{Node: "b", Instance: "x", Lamps: 1})
	devs, _ := json.Marshal(deviceBatch{Instance: "x", Devices: []device.Info{conn("b", "d-b-1", "one")}})
	f.Add("heartbeat", hb)
	f.Add("devices", devs)
	f.Add("log", []byte(`{"message":"hi"}`))
	f.Add("bye", []byte("x"))
	f.Add("devices", []byte(`{"instance":"x","devices":[{"id":"d-b-1","event":"disconnected"}]}`))
	f.Add("heartbeat", []byte(`{"node":"a"}`))
	ns := natstest.Start(f, 0, f.TempDir())
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		f.Fatal(err)
	}
	defer nc.Close()
	// Not subscribed: the fuzzer calls the handlers itself. Questions it
	// makes (a snapshot of a new node) go unanswered, quickly.
	c := &Cluster{opt: Options{Conn: nc, Node: "a", Gateway: &fakeGateway{}, Bus: events.NewBus(), Expiry: time.Minute, Timeout: 10 * time.Millisecond},
		nc: nc, log: slog.New(slog.DiscardHandler), peers: map[string]*peer{}, byLamp: map[string]map[string]device.Info{}, left: map[string]device.Info{}}
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		m := &nats.Msg{Subject: subject("b", kind), Data: data}
		switch kind {
		case "heartbeat":
			c.onHeartbeat(m)
		case "devices":
			c.onDevices(m)
		case "log":
			c.onLog(m)
		case "bye":
			c.onBye(m)
		}
		// The index and the lists agree.
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, p := range c.peers {
			for _, i := range p.devices {
				if i.LampID != "" {
					n++
					if _, ok := c.byLamp[i.LampID]["b/"+i.ID]; !ok {
						t.Fatalf("connection %s of lamp %s is not indexed", i.ID, i.LampID)
					}
				}
			}
		}
		indexed := 0
		for _, m := range c.byLamp {
			indexed += len(m)
		}
		if indexed != n {
			t.Fatalf("%d connections indexed, %d listed", indexed, n)
		}
	})
}
