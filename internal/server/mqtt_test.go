package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/mqtt/mqtttest"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// readUntil reads frames from a lamp until want arrives.
func readUntil(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.SetReadDeadline(deadline)
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("lamp waited for %q: %v", want, err)
		}
		if string(b) == want {
			return
		}
	}
}

// TestMQTTShowsARealLamp: with mqtt.url set, a lamp that connects appears
// in Home Assistant's discovery, is driven from MQTT, and goes offline
// when it leaves; the server says offline when it stops.
func TestMQTTShowsARealLamp(t *testing.T) {
	broker := mqtttest.Start(t)
	ha := mqtttest.NewObserver(t, broker, "#")
	r := start(t, t.TempDir(), func(c *config.Config) {
		c.MQTT.URL = broker.URL()
		c.Device.Secrets = []config.NamedSecret{{Name: "kitchen", Secret: "kitchen-secret"}}
	})
	ha.WaitEq("cloudcloud/status", "online")
	ha.WaitHas("homeassistant/light/cloudcloud_server/all/config", `"All lamps"`)

	lamp := lampConnect(t, r.addrs.Device, "kitchen-secret")
	ha.WaitHas("homeassistant/light/cloudcloud_kitchen/light/config", `"via_device":"cloudcloud_server"`)
	ha.WaitEq("cloudcloud/lamp/kitchen/availability", "online")

	ha.Publish("cloudcloud/all/set", `{"state": "ON", "color": {"r": 0, "g": 128, "b": 255}}`, false)
	p, err := protocol.Manual(protocol.RGB{G: 128, B: 255}, 0)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, lamp, p.String())
	ha.WaitHas("cloudcloud/lamp/kitchen/state", `"color":{"r":0,"g":128,"b":255}`)
	ha.Publish("cloudcloud/lamp/kitchen/reboot", "PRESS", false)
	readUntil(t, lamp, protocol.Reset().String())

	lamp.Close()
	ha.WaitEq("cloudcloud/lamp/kitchen/availability", "offline")
	r.shutdown(t)
	ha.WaitEq("cloudcloud/status", "offline")
}

// metricsText is /metrics.
func metricsText(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get("http://" + r.addrs.Web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMQTTMetrics: /metrics has the MQTT series only with mqtt.url set.
func TestMQTTMetrics(t *testing.T) {
	broker := mqtttest.Start(t)
	ha := mqtttest.NewObserver(t, broker, "cloudcloud/status")
	r := start(t, t.TempDir(), func(c *config.Config) { c.MQTT.URL = broker.URL() })
	ha.WaitEq("cloudcloud/status", "online")
	m := metricsText(t, r)
	for _, want := range []string{"cloudcloud_mqtt_connected 1", "cloudcloud_mqtt_messages_published_total", "cloudcloud_mqtt_messages_received_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	broker.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metricsText(t, r), "cloudcloud_mqtt_connected 0") {
		if time.Now().After(deadline) {
			t.Fatal("/metrics still says connected 10 s after the broker stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}

	off := start(t, t.TempDir(), nil)
	if m := metricsText(t, off); strings.Contains(m, "cloudcloud_mqtt") {
		t.Errorf("/metrics of a server without mqtt.url has MQTT series")
	}
}
