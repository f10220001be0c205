package web

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
)

// fakeStatus is a part that reports a status and announces its changes on
// the bus as event type typ: the MQTT bridge, the cluster.
type fakeStatus[T any] struct {
	mu  sync.Mutex
	st  T
	typ events.Type
}

func (f *fakeStatus[T]) Status() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// set changes the status and announces it as the part does.
func (f *fakeStatus[T]) set(bus *events.Bus, st T) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	bus.Publish(events.Event{Type: f.typ, Data: st})
}

// fakeMQTT is the MQTT bridge's status.
type fakeMQTT = fakeStatus[mqtt.Status]

func newFakeMQTT(st mqtt.Status) *fakeMQTT { return &fakeMQTT{st: st, typ: events.TypeMQTT} }

func withMQTT(f *fakeMQTT) envOption { return func(_ *Options, d *Deps) { d.MQTT = f } }

var downStatus = mqtt.Status{Enabled: true, Broker: "mqtt://broker.lan:1883", Error: "connection refused"}

func TestMQTTStatusOnThePage(t *testing.T) {
	off := newEnv(t)
	if res := off.call(t, http.MethodGet, "/", ""); strings.Contains(res.body, "mqtt-status") || strings.Contains(res.body, `"mqtt"`) {
		t.Error("the page of a server without MQTT mentions it")
	}

	f := newFakeMQTT(downStatus)
	e := newEnv(t, withMQTT(f))
	res := e.call(t, http.MethodGet, "/", "")
	for _, want := range []string{
		`id="mqtt-status"`, "MQTT: not connected to mqtt://broker.lan:1883 (connection refused); retrying.",
		`"mqtt":{"enabled":true,"connected":false,"broker":"mqtt://broker.lan:1883","error":"connection refused"`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	s := e.openEvents(t)
	if ev := s.next(t, "mqtt"); !strings.Contains(ev.data, `"connected":false`) {
		t.Errorf("mqtt snapshot %s", ev.data)
	}
	f.set(e.bus, mqtt.Status{Enabled: true, Connected: true, Broker: downStatus.Broker})
	if ev := s.next(t, "mqtt"); !strings.Contains(ev.data, `"connected":true`) {
		t.Errorf("mqtt event %s", ev.data)
	}
}

// TestBrowserMQTTStatus: the status line follows the broker connection
// without a reload.
func TestBrowserMQTTStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are slow; skipped with -short")
	}
	b := newBrowser(t)
	f := newFakeMQTT(downStatus)
	e := newEnv(t, withMQTT(f))
	ctx := b.ctx
	b.signIn(t, ctx, e.web.URL)
	b.waitJS(t, ctx, "the status line", `document.querySelector('#mqtt-status').textContent.includes('not connected')`)
	f.set(e.bus, mqtt.Status{Enabled: true, Connected: true, Broker: downStatus.Broker})
	b.waitJS(t, ctx, "the line to say connected",
		`document.querySelector('#mqtt-status').textContent === 'MQTT: connected to mqtt://broker.lan:1883; Home Assistant finds the lamps by itself.'`)
}
