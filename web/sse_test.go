package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

func TestEventsStartWithSnapshots(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	s := e.openEvents(t)
	if ct := s.res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := s.res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	// The current state comes first, so a reconnecting page resyncs.
	first := <-s.events
	if first.name != "state" {
		t.Fatalf("first event %q, want state", first.name)
	}
	var st state.State
	if err := json.Unmarshal([]byte(first.data), &st); err != nil || st.Packet != "[cc:0:?:?]" {
		t.Errorf("state snapshot %s (%v)", first.data, err)
	}
	var devs []device.Info
	if err := json.Unmarshal([]byte(s.next(t, "devices").data), &devs); err != nil || len(devs) != 1 || devs[0].ID != lamp.id {
		t.Errorf("devices snapshot %+v (%v)", devs, err)
	}
	if w := s.next(t, "weather"); !strings.Contains(w.data, `"status":"ok"`) {
		t.Errorf("weather snapshot %s", w.data)
	}
	if f := s.next(t, "favorites"); !strings.Contains(f.data, `"colors":["#ff41ae"`) {
		t.Errorf("favorites snapshot %s", f.data)
	}
}

func TestEventsStream(t *testing.T) {
	e := newEnv(t)
	s := e.openEvents(t)
	s.next(t, "favorites") // the last snapshot

	t.Run("a PUT produces a state event", func(t *testing.T) {
		res := e.call(t, http.MethodPut, "/api/state", `{"mode": "manual", "color": "#00ff00"}`)
		if res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		ev := s.next(t, "state")
		var st state.State
		if err := json.Unmarshal([]byte(ev.data), &st); err != nil || st.Packet != "[cc:2:0,255,0:0]" || st.Color.Hex() != "#00ff00" {
			t.Errorf("state event %s", ev.data)
		}
	})
	var lamp *testLamp
	outer := t // the lamp lives on for the later subtests
	t.Run("a lamp connecting produces device events", func(t *testing.T) {
		lamp = e.lamp(outer)
		for {
			var d device.Info
			if err := json.Unmarshal([]byte(s.next(t, "device").data), &d); err != nil {
				t.Fatal(err)
			}
			if d.Event == "authenticated" {
				if d.ID != lamp.id {
					t.Errorf("device event for %s, want %s", d.ID, lamp.id)
				}
				break
			}
		}
	})
	t.Run("a debug line produces a log event", func(t *testing.T) {
		lamp.send(t, "d:boot ok")
		var l device.LogLine
		if err := json.Unmarshal([]byte(s.next(t, "log").data), &l); err != nil || l.Message != "boot ok" || l.Device != lamp.id {
			t.Errorf("log event %+v (%v)", l, err)
		}
	})
	t.Run("a weather event carries the current report", func(t *testing.T) {
		r := sampleReport()
		r.Description = "fresh rain"
		e.weather.set(r)
		e.bus.Publish(events.Event{Type: events.TypeWeather, Data: "whatever the publisher sent"})
		if ev := s.next(t, "weather"); !strings.Contains(ev.data, `"description":"fresh rain"`) {
			t.Errorf("weather event %s", ev.data)
		}
	})
	t.Run("saving a favourite produces a favorites event", func(t *testing.T) {
		if res := e.call(t, http.MethodPut, "/api/favorites", `{"colors": ["#123456"]}`); res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		ev := s.next(t, "favorites")
		var got favorites.List
		if err := json.Unmarshal([]byte(ev.data), &got); err != nil || len(got.Colors) != 1 || got.Colors[0].Hex() != "#123456" || got.Revision != e.favs.Get().Revision {
			t.Errorf("favorites event %s (%v)", ev.data, err)
		}
	})
}

// The heartbeat is a devices snapshot, so "last seen" and the packet
// counters the page shows follow the gateway between device events.
func TestEventsHeartbeatRefreshesDevices(t *testing.T) {
	e := newEnv(t)
	e.srv.heartbeat = 20 * time.Millisecond
	l := e.lamp(t)
	s := e.openEvents(t)
	s.next(t, "devices")
	l.send(t, "d:hello")
	l.send(t, "d:again")
	want := e.gw.Devices()[0].PacketsReceived
	for range 100 {
		ev := s.next(t, "devices")
		var list []struct {
			PacketsReceived uint64 `json:"packets_received"`
		}
		if err := json.Unmarshal([]byte(ev.data), &list); err != nil || len(list) != 1 {
			t.Fatalf("devices event %s: %v", ev.data, err)
		}
		if list[0].PacketsReceived >= want {
			return
		}
	}
	t.Fatalf("no devices snapshot with %d packets received", want)
}

// lagSource hands out subscriptions with room for one event, so a burst
// makes the stream lag.
type lagSource struct{ bus *events.Bus }

func (l lagSource) Subscribe(_ int, types ...events.Type) *events.Subscription {
	return l.bus.Subscribe(1, types...)
}

func TestEventsEndWhenLagging(t *testing.T) {
	bus := events.NewBus()
	e := newEnv(t, func(_ *Options, d *Deps) { d.Events = lagSource{bus} })
	s := e.openEvents(t)
	s.next(t, "favorites")
	// Publish until the stream ends; the burst outruns any writer long
	// before the bound.
	ended := false
	for i := 0; i < 100000 && !ended; i++ {
		bus.Publish(events.Event{Type: events.TypeLog, Data: device.LogLine{Message: "burst"}})
		if i%100 == 99 {
			select {
			case _, ok := <-s.events:
				for ok {
					_, ok = <-s.events
				}
				ended = true
			case <-time.After(time.Millisecond):
			}
		}
	}
	if !ended {
		t.Fatal("the stream did not end while lagging")
	}
	if bus.Subscribers() != 0 {
		t.Errorf("%d subscriptions left after the stream ended", bus.Subscribers())
	}
}

func TestEventsUnsubscribeWhenClientLeaves(t *testing.T) {
	e := newEnv(t)
	s := e.openEvents(t)
	s.next(t, "favorites")
	if n := e.bus.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers", n)
	}
	s.res.Body.Close()
	waitFor(t, "the subscription to end", func() bool { return e.bus.Subscribers() == 0 })
}
