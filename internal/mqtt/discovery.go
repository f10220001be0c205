package mqtt

import (
	"encoding/json"
	"maps"
	"strings"

	"github.com/cloudcloud/cloudcloud/internal/state"
)

// topics names every topic of MQTT.md.
type topics struct{ base, discovery string }

func (t topics) status() string       { return t.base + "/status" }
func (t topics) allState() string     { return t.base + "/all/state" }
func (t topics) allSet() string       { return t.base + "/all/set" }
func (t topics) weatherState() string { return t.base + "/weather/state" }
func (t topics) haStatus() string     { return t.discovery + "/status" }

// lamp is cloudcloud/lamp/<tid>/<leaf>; tid is already a topic id (or +).
func (t topics) lamp(tid, leaf string) string { return t.base + "/lamp/" + tid + "/" + leaf }

// scene is cloudcloud/scene/<tid>/set.
func (t topics) scene(tid string) string { return t.base + "/scene/" + tid + "/set" }

// config is a discovery topic: <prefix>/<component>/<node>/<object>/config.
func (t topics) config(component, node, object string) string {
	return t.discovery + "/" + component + "/" + node + "/" + object + "/config"
}

// order publishes discovery messages before states, so Home Assistant has
// the entity when its state arrives, and otherwise sorts by name.
func (t topics) order(a, b string) int {
	ca, cb := t.isConfig(a), t.isConfig(b)
	if ca != cb {
		if ca {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func (t topics) isConfig(topic string) bool {
	rest, ok := strings.CutPrefix(topic, t.discovery)
	return ok && strings.HasPrefix(rest, "/")
}

// serverID is the server device's identifier; lamps name it as via_device.
const serverID = "cloudcloud_server"

// desired is every retained topic and its payload as things stand now. It
// also refreshes the topic-id → lamp-id map and the modes before "off" that
// commands use.
func (b *Bridge) desired() map[string][]byte {
	t := b.topics
	n := 0
	if b.opt.Lamps != nil {
		n = len(b.configs)
	}
	want := make(map[string][]byte, 8+8*n)
	all := b.opt.Shared.Get()
	want[t.allState()] = stateJSON(all)
	lastOn := map[string]state.Mode{}
	if all.State.Mode != state.ModeOff {
		lastOn["all"] = all.State.Mode
	}
	if b.opt.Weather != nil {
		r := b.opt.Weather.Report()
		want[t.weatherState()] = mustJSON(map[string]any{
			"code": r.Reading.Code, "intensity": r.Reading.Intensity, "description": r.Description, "status": r.Status,
		})
	}
	serverAvail := []map[string]string{{"topic": t.status()}}
	if b.opt.Discovery {
		dev := b.device(serverID, "cloudcloud", "lamp server", b.opt.Version, false)
		want[t.config("light", serverID, "all")] = mustJSON(b.lightConfig("All lamps", serverID+"_all", t.allState(), t.allSet(), dev, serverAvail))
		if b.opt.Weather != nil {
			want[t.config("sensor", serverID, "weather")] = mustJSON(map[string]any{
				"name": "Weather", "unique_id": serverID + "_weather", "icon": "mdi:weather-partly-cloudy",
				"state_topic": t.weatherState(), "value_template": "{{ value_json.description }}",
				"json_attributes_topic": t.weatherState(),
				"device":                dev, "origin": b.origin(), "availability": serverAvail,
			})
		}
	}
	scenes := map[string]string{}
	if b.opt.Scenes != nil {
		for _, sc := range b.opt.Scenes.List() {
			tid := topicID(sc.ID)
			if _, taken := scenes[tid]; taken {
				b.log.Warn("two scene ids share one MQTT topic id; the second is left out of MQTT", "topic_id", tid, "second", sc.ID)
				continue
			}
			scenes[tid] = sc.ID
			if b.opt.Discovery {
				want[t.config("scene", serverID, "scene_"+tid)] = mustJSON(map[string]any{
					"name": sc.Name, "unique_id": serverID + "_scene_" + tid,
					"command_topic": t.scene(tid), "payload_on": "ON",
					"device": b.device(serverID, "cloudcloud", "lamp server", b.opt.Version, false), "origin": b.origin(), "availability": serverAvail,
				})
			}
		}
	}
	ids := map[string]string{}
	var lamps []Lamp
	if b.opt.Lamps != nil {
		lamps = b.opt.Lamps.List()
	}
	latest := b.latest()
	cache := make(map[string]cachedConfigs, len(lamps))
	for _, l := range lamps {
		tid := topicID(l.ID)
		if other, taken := ids[tid]; taken {
			b.log.Warn("two lamp ids share one MQTT topic id; the second is left out of MQTT", "topic_id", tid, "first", other, "second", l.ID)
			continue
		}
		ids[tid] = l.ID
		if l.Light.State.Mode != state.ModeOff {
			lastOn[l.ID] = l.Light.State.Mode
		}
		avail := t.lamp(tid, "availability")
		want[avail] = []byte(map[bool]string{true: "online", false: "offline"}[l.Online])
		want[t.lamp(tid, "state")] = stateJSON(l.Light)
		want[t.lamp(tid, "debug/state")] = []byte(map[bool]string{true: "ON", false: "OFF"}[l.Debug])
		want[t.lamp(tid, "update/state")] = mustJSON(updateState{Installed: l.Firmware, Latest: latest, InProgress: l.Updating})
		if b.opt.Discovery {
			maps.Copy(want, b.lampConfigs(l, tid, cache))
		}
	}
	b.configs = cache
	b.mu.Lock()
	b.ids, b.scenes, b.lastOn = ids, scenes, mergeModes(b.lastOn, lastOn, ids)
	b.mu.Unlock()
	return want
}

// updateState is the update entity's state JSON. A version that is not
// known is left out: Home Assistant drops a message with a null one.
type updateState struct {
	Installed  string `json:"installed_version,omitempty"`
	Latest     string `json:"latest_version,omitempty"`
	InProgress bool   `json:"in_progress"`
}

// cachedConfigs are a lamp's discovery messages and what they were made
// from: building them is most of a sync's work with many lamps, and they
// change only with a lamp's label or firmware version.
type cachedConfigs struct {
	label, firmware string
	msgs            map[string][]byte
}

// lampConfigs are the discovery messages of lamp l (topic id tid), from
// the previous sync's b.configs when l has not changed; next gets them.
func (b *Bridge) lampConfigs(l Lamp, tid string, next map[string]cachedConfigs) map[string][]byte {
	if c, ok := b.configs[tid]; ok && c.label == l.Label && c.firmware == l.Firmware {
		next[tid] = c
		return c.msgs
	}
	t := b.topics
	node := "cloudcloud_" + tid
	label := l.Label
	if label == "" {
		label = l.ID
	}
	dev := b.device(node, label, "cloud lamp", l.Firmware, true)
	av := []map[string]string{{"topic": t.status()}, {"topic": t.lamp(tid, "availability")}}
	common := func(m map[string]any) []byte {
		m["device"], m["origin"], m["availability"], m["availability_mode"] = dev, b.origin(), av, "all"
		return mustJSON(m)
	}
	msgs := map[string][]byte{
		// name null: the light is the device's main entity and takes its name.
		t.config("light", node, "light"): mustJSON(b.lightConfig(nil, node+"_light", t.lamp(tid, "state"), t.lamp(tid, "set"), dev, av)),
		t.config("button", node, "reboot"): common(map[string]any{
			"name": "Reboot", "unique_id": node + "_reboot", "device_class": "restart", "entity_category": "config",
			"command_topic": t.lamp(tid, "reboot"), "payload_press": "PRESS",
		}),
		t.config("switch", node, "debug"): common(map[string]any{
			"name": "Debug log", "unique_id": node + "_debug", "entity_category": "config", "icon": "mdi:bug",
			"state_topic": t.lamp(tid, "debug/state"), "command_topic": t.lamp(tid, "debug/set"),
			"payload_on": "ON", "payload_off": "OFF",
		}),
		t.config("update", node, "firmware"): common(map[string]any{
			"name": "Firmware", "unique_id": node + "_firmware", "device_class": "firmware", "entity_category": "config",
			"state_topic": t.lamp(tid, "update/state"), "command_topic": t.lamp(tid, "update/install"),
			"payload_install": "install",
		}),
	}
	next[tid] = cachedConfigs{label: l.Label, firmware: l.Firmware, msgs: msgs}
	return msgs
}

// mergeModes keeps the remembered mode of lights that are off now and
// forgets the lamps that are gone.
func mergeModes(old, now map[string]state.Mode, ids map[string]string) map[string]state.Mode {
	live := map[string]bool{"all": true}
	for _, id := range ids {
		live[id] = true
	}
	for k, m := range old {
		if _, ok := now[k]; !ok && live[k] {
			now[k] = m
		}
	}
	return now
}

// lightConfig is a JSON schema light (Home Assistant's MQTT light, schema
// json). name is a string, or nil for a device's main light.
func (b *Bridge) lightConfig(name any, uniqueID, stateTopic, commandTopic string, dev map[string]any, avail []map[string]string) map[string]any {
	return map[string]any{
		"name": name, "unique_id": uniqueID, "schema": "json",
		"state_topic": stateTopic, "command_topic": commandTopic,
		"supported_color_modes": []string{"rgb"},
		"brightness":            true, "brightness_scale": 255,
		"effect": true, "effect_list": effectList(),
		"device": dev, "origin": b.origin(), "availability": avail, "availability_mode": "all",
	}
}

// device is the device block of a discovery message.
func (b *Bridge) device(id, name, model, sw string, viaServer bool) map[string]any {
	d := map[string]any{"identifiers": []string{id}, "name": name, "manufacturer": "cloudcloud", "model": model}
	if sw != "" {
		d["sw_version"] = sw
	}
	if viaServer {
		d["via_device"] = serverID
	}
	if b.opt.PublicURL != "" {
		d["configuration_url"] = b.opt.PublicURL
	}
	return d
}

// origin says which software published the discovery message.
func (b *Bridge) origin() map[string]string {
	o := map[string]string{"name": "cloudcloud"}
	if b.opt.Version != "" {
		o["sw_version"] = b.opt.Version
	}
	return o
}

// mustJSON marshals maps of strings, numbers, bools and slices, which
// cannot fail.
func mustJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return out
}
