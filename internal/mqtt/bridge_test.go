package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/logtest"
	"github.com/cloudcloud/cloudcloud/internal/mqtt/mqtttest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"
)

// fakeLamps is the lamp registry of issue 13 as this package sees it.
type fakeLamps struct {
	bus *events.Bus
	mu  sync.Mutex
	ls  []Lamp
	got []string // what was asked of it, in order
}

func (f *fakeLamps) List() []Lamp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ls)
}

// change edits lamp id (or adds it) and announces it on the bus.
func (f *fakeLamps) change(id string, edit func(*Lamp)) {
	f.mu.Lock()
	i := slices.IndexFunc(f.ls, func(l Lamp) bool { return l.ID == id })
	if i < 0 {
		f.ls = append(f.ls, Lamp{ID: id, Label: id, Online: true, Light: Light{State: state.Default(), Brightness: 100}})
		i = len(f.ls) - 1
	}
	if edit != nil {
		edit(&f.ls[i])
	}
	f.mu.Unlock()
	f.bus.Publish(events.Event{Type: events.TypeDevice})
}

func (f *fakeLamps) forget(id string) {
	f.mu.Lock()
	f.ls = slices.DeleteFunc(f.ls, func(l Lamp) bool { return l.ID == id })
	f.mu.Unlock()
	f.bus.Publish(events.Event{Type: events.TypeDevice})
}

func (f *fakeLamps) record(s string) {
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
}

func (f *fakeLamps) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// Apply validates the change as the registry would (through the same
// state rules), then stores it.
func (f *fakeLamps) Apply(id string, c Command) (Light, error) {
	f.mu.Lock()
	i := slices.IndexFunc(f.ls, func(l Lamp) bool { return l.ID == id })
	if i < 0 {
		f.mu.Unlock()
		return Light{}, fmt.Errorf("no lamp %q", id)
	}
	l := f.ls[i].Light
	if c.Change.Mode != nil {
		l.State.Mode = *c.Change.Mode
	}
	if c.Change.Color != nil {
		l.State.Color = *c.Change.Color
	}
	if c.Change.Pulse != nil {
		l.State.Pulse = *c.Change.Pulse
	}
	if c.Brightness != nil {
		l.Brightness = *c.Brightness
	}
	f.ls[i].Light = l
	f.got = append(f.got, fmt.Sprintf("apply %s %s %v %d", id, l.State.Mode, l.State.Color.Hex(), l.Brightness))
	f.mu.Unlock()
	f.bus.Publish(events.Event{Type: events.TypeDevice})
	return l, nil
}

func (f *fakeLamps) Reboot(id string) error { f.record("reboot " + id); return nil }
func (f *fakeLamps) Update(id string) error { f.record("update " + id); return nil }
func (f *fakeLamps) SetDebug(id string, on bool) error {
	f.record(fmt.Sprintf("debug %s %v", id, on))
	f.change(id, func(l *Lamp) { l.Debug = on })
	return nil
}

type fakeFirmware struct{ version string }

func (f fakeFirmware) Current() (firmware.Info, bool) {
	return firmware.Info{Version: f.version}, f.version != ""
}

type fakeWeather struct{}

func (fakeWeather) Report() weather.Report {
	return weather.Report{Reading: weather.Reading{Code: protocol.WeatherCloudy, Intensity: 7}, Description: "broken clouds", Status: "ok"}
}

// harness is a bridge on a real broker with a real state.Store.
type harness struct {
	t      *testing.T
	broker *mqtttest.Broker
	bus    *events.Bus
	store  *state.Store
	lamps  *fakeLamps
	bridge *Bridge
	logs   *logtest.Buffer
	stop   func()
}

func newHarness(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, broker: mqtttest.Start(t), bus: events.NewBus()}
	dir, err := storage.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h.logs = new(logtest.Buffer)
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if h.store, err = state.Open(dir, h.bus, log); err != nil {
		t.Fatal(err)
	}
	h.lamps = &fakeLamps{bus: h.bus}
	h.lamps.change("kitchen", func(l *Lamp) { l.Label, l.Firmware = "Kitchen", "1.4.2" })
	o := Options{
		URL: h.broker.URL(), ClientID: "cloudcloud-test", Discovery: true,
		PublicURL: "http://lamps.example.org", Version: "test",
		Bus: h.bus, Shared: StoreShared{Store: h.store}, Lamps: h.lamps,
		Firmware: fakeFirmware{"1.5.0"}, Weather: fakeWeather{}, Logger: log,
		backoff: func(int) time.Duration { return 50 * time.Millisecond },
	}
	if edit != nil {
		edit(&o)
	}
	if h.bridge, err = New(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.bridge.Run(ctx); close(done) }()
	h.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(h.stop)
	return h
}

func decode(t *testing.T, topic string, p []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatalf("%s: %q is not a JSON object: %v", topic, p, err)
	}
	return m
}

// TestDiscoveryAsHomeAssistantReadsIt checks, from a client that connects
// after everything was published (as Home Assistant after a restart), the
// retained discovery and state messages key by key.
func TestDiscoveryAsHomeAssistantReadsIt(t *testing.T) {
	h := newHarness(t, nil)
	first := mqtttest.NewObserver(t, h.broker, "#")
	first.WaitEq("cloudcloud/status", "online")
	first.WaitHas("homeassistant/update/cloudcloud_kitchen/firmware/config", "firmware")
	ha := mqtttest.NewObserver(t, h.broker, "#")

	configs := map[string]string{ // topic → component
		"homeassistant/light/cloudcloud_server/all/config":        "light",
		"homeassistant/sensor/cloudcloud_server/weather/config":   "sensor",
		"homeassistant/light/cloudcloud_kitchen/light/config":     "light",
		"homeassistant/button/cloudcloud_kitchen/reboot/config":   "button",
		"homeassistant/switch/cloudcloud_kitchen/debug/config":    "switch",
		"homeassistant/update/cloudcloud_kitchen/firmware/config": "update",
	}
	unique := map[string]string{}
	for topic, component := range configs {
		c := decode(t, topic, ha.WaitHas(topic, "unique_id"))
		id, _ := c["unique_id"].(string)
		if !strings.HasPrefix(id, "cloudcloud_") {
			t.Errorf("%s: unique_id %q does not start with cloudcloud_", topic, id)
		}
		if other, dup := unique[id]; dup {
			t.Errorf("unique_id %q is used by %s and %s", id, other, topic)
		}
		unique[id] = topic
		dev, _ := c["device"].(map[string]any)
		if dev["manufacturer"] != "cloudcloud" || dev["configuration_url"] != "http://lamps.example.org" {
			t.Errorf("%s: device %v lacks manufacturer cloudcloud and the configuration_url", topic, dev)
		}
		avail, _ := c["availability"].([]any)
		var availTopics []string
		for _, a := range avail {
			availTopics = append(availTopics, a.(map[string]any)["topic"].(string))
		}
		lampEntity := strings.Contains(topic, "cloudcloud_kitchen")
		want := []string{"cloudcloud/status"}
		if lampEntity {
			want = append(want, "cloudcloud/lamp/kitchen/availability")
			if c["availability_mode"] != "all" {
				t.Errorf("%s: availability_mode %v, want all", topic, c["availability_mode"])
			}
			ids, _ := dev["identifiers"].([]any)
			if len(ids) != 1 || ids[0] != "cloudcloud_kitchen" || dev["via_device"] != "cloudcloud_server" || dev["name"] != "Kitchen" || dev["sw_version"] != "1.4.2" {
				t.Errorf("%s: device %v, want identifiers [cloudcloud_kitchen] via cloudcloud_server named Kitchen at 1.4.2", topic, dev)
			}
		}
		if !slices.Equal(availTopics, want) {
			t.Errorf("%s: availability %v, want %v", topic, availTopics, want)
		}
		// Every topic the entity reads must be published and retained.
		for _, key := range []string{"state_topic", "json_attributes_topic"} {
			if st, ok := c[key].(string); ok {
				ha.WaitHas(st, "")
			}
		}
		for _, a := range availTopics {
			ha.WaitEq(a, "online")
		}
		if component == "light" {
			modes, _ := c["supported_color_modes"].([]any)
			effects, _ := c["effect_list"].([]any)
			if c["schema"] != "json" || len(modes) != 1 || modes[0] != "rgb" || c["brightness"] != true || c["effect"] != true ||
				len(effects) != 11 || effects[0] != "Steady" || effects[1] != "Pulse 1" || effects[10] != "Weather" {
				t.Errorf("%s: not a JSON schema rgb light with brightness and the effects Steady, Pulse 1-9, Weather: %s", topic, ha.Get(topic))
			}
			if c["command_topic"] == nil {
				t.Errorf("%s: no command_topic", topic)
			}
		}
	}
	if n := decode(t, "", ha.Get("homeassistant/light/cloudcloud_server/all/config"))["name"]; n != "All lamps" {
		t.Errorf("server light named %v, want All lamps", n)
	}
	all := decode(t, "cloudcloud/all/state", ha.WaitHas("cloudcloud/all/state", "state"))
	if all["state"] != "OFF" || all["color_mode"] != "rgb" || all["effect"] != "Steady" {
		t.Errorf("all/state = %v, want OFF, color_mode rgb, Steady (the default state)", all)
	}
	if _, ok := all["brightness"]; ok {
		t.Errorf("all/state carries a brightness while OFF: %v", all)
	}
	upd := decode(t, "", ha.WaitHas("cloudcloud/lamp/kitchen/update/state", "latest_version"))
	if upd["installed_version"] != "1.4.2" || upd["latest_version"] != "1.5.0" || upd["in_progress"] != false {
		t.Errorf("update/state = %v", upd)
	}
	w := decode(t, "", ha.WaitHas("cloudcloud/weather/state", "description"))
	if w["description"] != "broken clouds" || w["code"] != float64(protocol.WeatherCloudy) || w["status"] != "ok" {
		t.Errorf("weather/state = %v", w)
	}
	ha.WaitEq("cloudcloud/lamp/kitchen/debug/state", "OFF")
}

// TestUnknownVersionsAreLeftOut: Home Assistant drops an update message
// with a null version, so unknown versions are absent.
func TestUnknownVersionsAreLeftOut(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Firmware = fakeFirmware{} })
	h.lamps.change("kitchen", func(l *Lamp) { l.Firmware = "" })
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/lamp/kitchen/update/state", `{"in_progress":false}`)
	dev := decode(t, "", ha.WaitHas("homeassistant/light/cloudcloud_kitchen/light/config", "device"))["device"].(map[string]any)
	if _, ok := dev["sw_version"]; ok {
		t.Errorf("device %v has a sw_version for an unknown version", dev)
	}
}

// TestDiscoveryFollowsLabelAndFirmware: a renamed or updated lamp gets
// its discovery messages again, and a newer image shows as an update.
func TestDiscoveryFollowsLabelAndFirmware(t *testing.T) {
	h := newHarness(t, nil)
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitHas("homeassistant/light/cloudcloud_kitchen/light/config", `"name":"Kitchen"`)
	h.lamps.change("kitchen", func(l *Lamp) { l.Label, l.Firmware = "Kitchen window", "1.5.0" })
	for _, topic := range []string{
		"homeassistant/light/cloudcloud_kitchen/light/config", "homeassistant/button/cloudcloud_kitchen/reboot/config",
		"homeassistant/switch/cloudcloud_kitchen/debug/config", "homeassistant/update/cloudcloud_kitchen/firmware/config",
	} {
		ha.WaitHas(topic, `"name":"Kitchen window"`)
		ha.WaitHas(topic, `"sw_version":"1.5.0"`)
	}
	ha.WaitEq("cloudcloud/lamp/kitchen/update/state", `{"installed_version":"1.5.0","latest_version":"1.5.0","in_progress":false}`)
	h.lamps.change("kitchen", func(l *Lamp) { l.Updating = true })
	ha.WaitEq("cloudcloud/lamp/kitchen/update/state", `{"installed_version":"1.5.0","latest_version":"1.5.0","in_progress":true}`)
}

// TestDiscoveryOff: mqtt.discovery = false publishes the state topics and
// no discovery message.
func TestDiscoveryOff(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Discovery = false })
	ha := mqtttest.NewObserver(t, h.broker, "#")
	ha.WaitEq("cloudcloud/lamp/kitchen/availability", "online")
	ha.WaitHas("cloudcloud/lamp/kitchen/update/state", "latest_version")
	ha.WaitHas("cloudcloud/all/state", "color_mode")
	for _, topic := range []string{"homeassistant/light/cloudcloud_server/all/config", "homeassistant/light/cloudcloud_kitchen/light/config"} {
		if p := ha.Get(topic); p != nil {
			t.Errorf("%s published with discovery off: %s", topic, p)
		}
	}
}
