package mqtt

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/mqtt/mqtttest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// waitFor polls cond for up to 10 s; the bridge works asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCommandsBothWays drives the shared state and a lamp from MQTT and
// sees changes made elsewhere (as through the API) on the state topics.
func TestCommandsBothWays(t *testing.T) {
	h := newHarness(t, nil)
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/status", "online")
	ha.WaitHas("cloudcloud/lamp/kitchen/availability", "online")

	ha.Publish("cloudcloud/all/set", `{"state": "ON", "color": {"r": 10, "g": 20, "b": 30}, "brightness": 255}`, false)
	waitFor(t, "the store in manual #0a141e", func() bool {
		s := h.store.Get()
		return s.Mode == state.ModeManual && s.Color == protocol.RGB{R: 10, G: 20, B: 30}
	})
	ha.WaitEq("cloudcloud/all/state", `{"state":"ON","color_mode":"rgb","color":{"r":10,"g":20,"b":30},"brightness":255,"effect":"Steady"}`)

	// A change made elsewhere (the API goes through the same Store).
	pulse, weatherMode := 3, state.ModeWeather
	if _, err := h.store.Apply(state.Change{Pulse: &pulse}); err != nil {
		t.Fatal(err)
	}
	ha.WaitHas("cloudcloud/all/state", `"effect":"Pulse 3"`)
	if _, err := h.store.Apply(state.Change{Mode: &weatherMode}); err != nil {
		t.Fatal(err)
	}
	ha.WaitHas("cloudcloud/all/state", `"effect":"Weather"`)

	// OFF, then a bare ON brings back weather mode.
	ha.Publish("cloudcloud/all/set", `{"state": "OFF"}`, false)
	ha.WaitHas("cloudcloud/all/state", `"state":"OFF"`)
	ha.Publish("cloudcloud/all/set", `{"state": "ON"}`, false)
	ha.WaitHas("cloudcloud/all/state", `"effect":"Weather"`)
	if m := h.store.Get().Mode; m != state.ModeWeather {
		t.Fatalf("after OFF and ON the mode is %s, want weather", m)
	}

	// The lamp's own light: brightness 128 of 255 is 50 %.
	ha.Publish("cloudcloud/lamp/kitchen/set", `{"state": "ON", "brightness": 128, "effect": "Pulse 2"}`, false)
	ha.WaitHas("cloudcloud/lamp/kitchen/state", `"brightness":128`)
	ha.WaitHas("cloudcloud/lamp/kitchen/state", `"effect":"Pulse 2"`)
	ha.Publish("cloudcloud/lamp/kitchen/reboot", "PRESS", false)
	ha.Publish("cloudcloud/lamp/kitchen/debug/set", "ON", false)
	ha.WaitEq("cloudcloud/lamp/kitchen/debug/state", "ON")
	ha.Publish("cloudcloud/lamp/kitchen/update/install", "install", false)
	want := []string{"apply kitchen manual #ff41ae 50", "reboot kitchen", "debug kitchen true", "update kitchen"}
	waitFor(t, "the lamp commands", func() bool { return slices.Equal(h.lamps.asked(), want) })
}

// TestBadCommandsChangeNothing: each is dropped whole and logged, and a
// good command after them still works.
func TestBadCommandsChangeNothing(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Firmware = fakeFirmware{} })
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/status", "online")
	ha.WaitHas("cloudcloud/lamp/kitchen/availability", "online")
	before := h.store.Get()
	bad := []struct{ topic, payload, log string }{
		{"cloudcloud/all/set", `{"state": "ON", "color": {"r": 300, "g": 0, "b": 0}}`, "color.r"},
		{"cloudcloud/all/set", `{"color": {"r": 1, "g": 2, "b": 3}, "effect": "Weather"}`, "effect"},
		{"cloudcloud/all/set", `{"effect": "Pulse 10"}`, "Pulse 10"},
		{"cloudcloud/all/set", `{"state": "DIM"}`, "DIM"},
		{"cloudcloud/all/set", `{"state": "ON", "brightness": 100}`, "brightness"}, // no shared brightness yet
		{"cloudcloud/all/set", `not json`, "payload"},
		{"cloudcloud/lamp/kitchen/reboot", `NOW`, "PRESS"},
		{"cloudcloud/lamp/kitchen/debug/set", `maybe`, "ON or OFF"},
		{"cloudcloud/lamp/kitchen/update/install", `install`, "no firmware image"},
		{"cloudcloud/lamp/nosuch/set", `{"state": "ON"}`, "nosuch"},
	}
	for _, b := range bad {
		ha.Publish(b.topic, b.payload, false)
		waitFor(t, "the log to say why "+b.payload+" was dropped", func() bool {
			return strings.Contains(h.logs.String(), b.log)
		})
	}
	if got := h.store.Get(); got.Mode != before.Mode || got.Color != before.Color || got.Pulse != before.Pulse {
		t.Errorf("bad commands changed the state: %+v, was %+v", got, before)
	}
	if got := h.lamps.asked(); len(got) != 0 {
		t.Errorf("bad commands reached the lamp: %v", got)
	}
	ha.Publish("cloudcloud/all/set", `{"effect": "Weather"}`, false)
	waitFor(t, "weather mode", func() bool { return h.store.Get().Mode == state.ModeWeather })
}

// TestAvailabilityFollowsLampsAndServer: a lamp that leaves is offline, a
// forgotten one vanishes, a server that dies leaves its will, and one that
// stops says offline itself.
func TestAvailabilityFollowsLampsAndServer(t *testing.T) {
	h := newHarness(t, nil)
	h.lamps.change("hall", nil)
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/lamp/hall/availability", "online")
	ha.WaitHas("homeassistant/light/cloudcloud_hall/light/config", "cloudcloud_hall_light")

	h.lamps.change("hall", func(l *Lamp) { l.Online = false })
	ha.WaitEq("cloudcloud/lamp/hall/availability", "offline")

	h.lamps.forget("hall")
	for _, topic := range []string{
		"homeassistant/light/cloudcloud_hall/light/config", "homeassistant/button/cloudcloud_hall/reboot/config",
		"homeassistant/switch/cloudcloud_hall/debug/config", "homeassistant/update/cloudcloud_hall/firmware/config",
		"cloudcloud/lamp/hall/state", "cloudcloud/lamp/hall/availability",
	} {
		ha.WaitGone(topic)
	}
	if ha.Get("homeassistant/light/cloudcloud_kitchen/light/config") == nil {
		t.Fatal("forgetting hall cleared kitchen")
	}

	// A lost connection (no DISCONNECT): the broker publishes the will,
	// and the bridge reconnects and says online again.
	h.bridge.mu.Lock()
	cm := h.bridge.cm
	h.bridge.mu.Unlock()
	cm.TerminateConnectionForTest()
	ha.WaitEq("cloudcloud/status", "offline")
	ha.WaitEq("cloudcloud/status", "online")

	h.stop()
	ha.WaitEq("cloudcloud/status", "offline")
}

// TestBrokerGoesAwayAndComesBack: the status says so, changes made
// meanwhile are kept, and everything is published again on the new broker
// (which lost its retained messages).
func TestBrokerGoesAwayAndComesBack(t *testing.T) {
	h := newHarness(t, nil)
	status := h.bus.Subscribe(64, events.TypeMQTT)
	defer status.Close()
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/status", "online")
	waitFor(t, "connected", h.bridge.Connected)

	h.broker.Stop()
	waitFor(t, "the bridge to notice", func() bool { return !h.bridge.Connected() })
	if st := h.bridge.Status(); st.Error == "" || !st.Enabled {
		t.Errorf("status while the broker is away = %+v, want enabled with an error", st)
	}
	sawDown := false
	for !sawDown {
		select {
		case e := <-status.C:
			sawDown = !e.Data.(Status).Connected
		case <-time.After(10 * time.Second):
			t.Fatal("no mqtt event said the broker is gone")
		}
	}
	mode := state.ModeManual
	if _, err := h.store.Apply(state.Change{Mode: &mode, Color: &protocol.RGB{R: 1, G: 2, B: 3}}); err != nil {
		t.Fatal(err)
	}

	h.broker.Restart()
	waitFor(t, "the bridge to reconnect", h.bridge.Connected)
	again := mqtttest.NewObserver(t, h.broker, "#")
	again.WaitEq("cloudcloud/status", "online")
	again.WaitHas("cloudcloud/all/state", `"color":{"r":1,"g":2,"b":3}`)
	again.WaitHas("homeassistant/light/cloudcloud_kitchen/light/config", "cloudcloud_kitchen_light")
	again.WaitEq("cloudcloud/lamp/kitchen/availability", "online")
	// Commands work on the new connection.
	again.Publish("cloudcloud/all/set", `{"state": "OFF"}`, false)
	again.WaitHas("cloudcloud/all/state", `"state":"OFF"`)
}

// TestHomeAssistantBirthRepublishes: Home Assistant's online message gets
// every discovery message again (it may have lost them).
func TestHomeAssistantBirthRepublishes(t *testing.T) {
	h := newHarness(t, nil)
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitHas("homeassistant/light/cloudcloud_kitchen/light/config", "cloudcloud_kitchen_light")
	topic := "homeassistant/light/cloudcloud_kitchen/light/config"
	before := ha.Count(topic)
	ha.Publish("homeassistant/status", "online", false)
	waitFor(t, "the discovery message again", func() bool { return ha.Count(topic) > before })
}

// TestFloodIsCoalesced: 1,000 commands in a burst reach the store and the
// lamp as the latest command per topic, not 1,000 changes. The command
// rounds' clock is the test's: it ticks once, after all have arrived.
func TestFloodIsCoalesced(t *testing.T) {
	tick := make(chan time.Time)
	h := newHarness(t, func(o *Options) { o.tick = tick })
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/status", "online")
	ha.WaitHas("cloudcloud/lamp/kitchen/availability", "online")
	changes := h.bus.Subscribe(2000, events.TypeState)
	defer changes.Close()
	in, _ := h.bridge.Counters()
	const n = 1000
	for i := range n {
		if i%2 == 0 {
			ha.Publish("cloudcloud/all/set", `{"color": {"r": `+itoa(i%256)+`, "g": 0, "b": 0}}`, false)
		} else {
			ha.Publish("cloudcloud/lamp/kitchen/set", `{"brightness": `+itoa(i%256)+`}`, false)
		}
	}
	waitFor(t, "all 1,000 commands to arrive", func() bool { got, _ := h.bridge.Counters(); return got-in >= n })
	tick <- time.Now()
	waitFor(t, "the last colour", func() bool { return h.store.Get().Color == protocol.RGB{R: (n - 2) % 256} })
	waitFor(t, "the last brightness", func() bool {
		got := h.lamps.asked()
		return len(got) > 0 && strings.HasSuffix(got[len(got)-1], " 91") // 231 of 255
	})
	// One round before the tick (the first command), one after.
	if got := len(h.lamps.asked()); got > 2 {
		t.Errorf("the lamp was set %d times for %d commands, want at most 2", got, n/2)
	}
	applied := 0
	for len(changes.C) > 0 {
		<-changes.C
		applied++
	}
	if applied > 2 {
		t.Errorf("the store changed %d times for %d commands, want at most 2", applied, n/2)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestTLS: mqtts:// dials TLS and checks the broker's certificate.
func TestTLS(t *testing.T) {
	broker, roots := mqtttest.StartTLS(t)
	untrusted := newHarness(t, func(o *Options) { o.URL = broker.URL() })
	waitFor(t, "a certificate error", func() bool { return strings.Contains(untrusted.bridge.Status().Error, "certificate") })
	untrusted.stop()

	h := newHarness(t, func(o *Options) { o.URL, o.TLS = broker.URL(), &tls.Config{RootCAs: roots} })
	ha := mqtttest.NewObserver(t, broker, "#")
	ha.WaitEq("cloudcloud/status", "online")
	ha.Publish("cloudcloud/all/set", `{"effect": "Weather"}`, false)
	waitFor(t, "weather mode", func() bool { return h.store.Get().Mode == state.ModeWeather })
}

// fakeScenes is the scenes of issue 14 as this package sees them.
type fakeScenes struct {
	mu      sync.Mutex
	list    []Scene
	applied []string
}

func (f *fakeScenes) List() []Scene {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeScenes) Apply(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, id)
	return nil
}

// TestScenes: each scene is a Home Assistant scene of the server device;
// activating it applies it, and a deleted one is cleared.
func TestScenes(t *testing.T) {
	scenes := &fakeScenes{list: []Scene{{ID: "evening", Name: "Evening"}, {ID: "night light", Name: "Night light"}}}
	h := newHarness(t, func(o *Options) { o.Scenes = scenes; o.MoreEvents = []events.Type{"scenes"} })
	ha := mqtttest.NewObserver(t, h.broker, "#")
	c := ha.WaitHas("homeassistant/scene/cloudcloud_server/scene_night_light/config", `"name":"Night light"`)
	for _, want := range []string{`"unique_id":"cloudcloud_server_scene_night_light"`, `"command_topic":"cloudcloud/scene/night_light/set"`, `"payload_on":"ON"`, `"identifiers":["cloudcloud_server"]`} {
		if !strings.Contains(string(c), want) {
			t.Errorf("scene config lacks %s: %s", want, c)
		}
	}
	ha.Publish("cloudcloud/scene/night_light/set", "OFF", false)
	waitFor(t, "the log to say why OFF was dropped", func() bool { return strings.Contains(h.logs.String(), "send ON") })
	ha.Publish("cloudcloud/scene/night_light/set", "ON", false)
	waitFor(t, "the scene to be applied", func() bool {
		scenes.mu.Lock()
		defer scenes.mu.Unlock()
		return slices.Equal(scenes.applied, []string{"night light"})
	})
	scenes.mu.Lock()
	scenes.list = scenes.list[:1]
	scenes.mu.Unlock()
	h.bus.Publish(events.Event{Type: "scenes"})
	ha.WaitGone("homeassistant/scene/cloudcloud_server/scene_night_light/config")
	ha.WaitHas("homeassistant/scene/cloudcloud_server/scene_evening/config", "Evening")
}

// TestRetainedCommandsAreIgnored: a command left retained on the broker
// would run again at every connection; it is not applied at all.
func TestRetainedCommandsAreIgnored(t *testing.T) {
	h := newHarness(t, nil)
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/lamp/kitchen/availability", "online")
	// Live, it is a command like any other (the broker clears the retain
	// flag for subscribers already there); a reconnect then delivers it
	// retained, as at every restart.
	ha.Publish("cloudcloud/lamp/kitchen/reboot", "PRESS", true)
	waitFor(t, "the live command", func() bool { return len(h.lamps.asked()) == 1 })
	h.bridge.mu.Lock()
	cm := h.bridge.cm
	h.bridge.mu.Unlock()
	cm.TerminateConnectionForTest()
	waitFor(t, "the log to say the retained command was ignored", func() bool { return strings.Contains(h.logs.String(), "retained message") })
	if got := h.lamps.asked(); len(got) != 1 {
		t.Errorf("the retained command reached the lamp again: %v", got)
	}
}

// TestAClusterIsOnlineWhileAnyNodeIs: two nodes' bridges share the topics
// (Options.Cluster). When one stops (it says offline, as its will would if it
// died), the other says online again; the status is offline only when no
// node runs.
func TestAClusterIsOnlineWhileAnyNodeIs(t *testing.T) {
	one := newHarness(t, func(o *Options) { o.Cluster, o.ClientID = true, "cloudcloud-node-1" })
	two := newHarness(t, func(o *Options) {
		o.Cluster, o.ClientID, o.URL = true, "cloudcloud-node-2", one.broker.URL()
	})
	ha := mqtttest.NewObserver(t, one.broker, "cloudcloud/status")
	ha.WaitEq("cloudcloud/status", "online")
	waitFor(t, "both bridges connected", func() bool { return one.bridge.Status().Connected && two.bridge.Status().Connected })

	// Node 1 says offline before it disconnects, and node 2 answers with
	// online at once: the offline may be gone before the observer looks,
	// so node 2's log and the count of messages tell.
	before := ha.Count("cloudcloud/status")
	one.stop()
	waitFor(t, "node 1's offline, then node 2's online", func() bool {
		return strings.Contains(two.logs.String(), "another node said offline") &&
			ha.Count("cloudcloud/status") >= before+2 && string(ha.Get("cloudcloud/status")) == "online"
	})

	two.stop()
	ha.WaitEq("cloudcloud/status", "offline")
	if got := string(ha.Get("cloudcloud/status")); got != "offline" {
		t.Fatalf("with no node left the status is %q", got)
	}
}

// TestACommandGoesToOneNodeOfACluster: the bridges of a cluster's nodes
// share the command topics, and the broker hands each command to one of
// them (a shared subscription), so a reboot from Home Assistant reboots
// once.
func TestACommandGoesToOneNodeOfACluster(t *testing.T) {
	one := newHarness(t, func(o *Options) { o.Cluster, o.ClientID = true, "cloudcloud-node-1" })
	two := newHarness(t, func(o *Options) {
		o.Cluster, o.ClientID, o.URL = true, "cloudcloud-node-2", one.broker.URL()
	})
	ha := mqtttest.NewObserver(t, one.broker, "cloudcloud/status")
	// Each bridge takes commands for the lamps it has published.
	knows := func(b *Bridge) bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		_, ok := b.ids["kitchen"]
		return ok
	}
	waitFor(t, "both bridges published the lamp", func() bool { return knows(one.bridge) && knows(two.bridge) })
	asked := func() []string { return append(one.lamps.asked(), two.lamps.asked()...) }
	for i := range 4 {
		ha.Publish("cloudcloud/lamp/kitchen/reboot", "PRESS", false)
		waitFor(t, fmt.Sprintf("reboot %d carried out", i+1), func() bool { return len(asked()) >= i+1 })
	}
	// A last command to another topic: the broker has delivered what came
	// before it to each node by the time it is carried out.
	ha.Publish("cloudcloud/lamp/kitchen/update/install", "install", false)
	waitFor(t, "the update carried out", func() bool { return slices.Contains(asked(), "update kitchen") })
	if got := asked(); len(got) != 5 {
		t.Fatalf("4 reboots and an update from Home Assistant were carried out %d times in all: %q", len(got), got)
	}
}
