package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/device"
)

// leave makes the lamp go the way a lamp that is switched off politely does:
// a close frame with code, then the connection ends. It waits for the
// server's side to end first, so the close frame, not a reset, is what the
// server reads.
func (l *testLamp) leave(t *testing.T, code int) {
	t.Helper()
	msg := websocket.FormatCloseMessage(code, "")
	if err := l.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("send the close frame: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-l.frames:
		case <-deadline:
			t.Fatal("the server did not end the connection within 5 s of the lamp's close frame")
		}
	}
	_ = l.conn.Close()
}

// waitOffline waits until the gateway remembers the lamp with that id as
// gone.
func waitOffline(t *testing.T, e *env, id string) device.Info {
	t.Helper()
	var found device.Info
	waitFor(t, "lamp "+id+" listed as offline", func() bool {
		for _, i := range e.gw.Offline() {
			if i.ID == id {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

func ids(devs []device.Info) []string {
	out := make([]string, 0, len(devs))
	for _, d := range devs {
		out = append(out, d.ID+"/"+string(d.Phase))
	}
	return out
}

// offlineReason is what the gateway says of a lamp that sent close code 1001.
const offlineReason = "lamp closed the connection (code 1001)"

func TestDevicesIncludeOffline(t *testing.T) {
	e := newEnv(t)
	gone := e.lamp(t)
	stays := e.lamp(t)
	gone.leave(t, websocket.CloseGoingAway)
	waitOffline(t, e, gone.id)

	t.Run("plain GET lists connected lamps only", func(t *testing.T) {
		devs := decode[[]device.Info](t, e.call(t, http.MethodGet, "/api/devices", ""))
		if len(devs) != 1 || devs[0].ID != stays.id || devs[0].Phase == "offline" {
			t.Errorf("GET /api/devices = %v, want only the connected lamp %s", ids(devs), stays.id)
		}
	})

	t.Run("include=offline adds the lamp that left, with why", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/api/devices?include=offline", "")
		if res.status != http.StatusOK || res.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d, Cache-Control %q: %s", res.status, res.header.Get("Cache-Control"), res.body)
		}
		devs := decode[[]device.Info](t, res)
		if len(devs) != 2 || devs[0].ID != stays.id || devs[1].ID != gone.id {
			t.Fatalf("got %v, want the connected %s then the offline %s", ids(devs), stays.id, gone.id)
		}
		off := devs[1]
		if off.Phase != "offline" || off.Reason != offlineReason || off.DisconnectedAt == nil || off.RemoteAddr == "" || !off.Authenticated {
			t.Errorf("offline lamp %+v, want phase offline, reason %q, disconnected_at and its last address", off, offlineReason)
		}
		if devs[0].Phase == "offline" || devs[0].Reason != "" || devs[0].DisconnectedAt != nil {
			t.Errorf("connected lamp %+v carries offline fields", devs[0])
		}
		// The JSON names of API.md, as scripts read them.
		raw := decode[[]map[string]any](t, res)
		for _, k := range []string{"phase", "disconnected_at", "reason", "last_seen", "remote_addr"} {
			if _, ok := raw[1][k]; !ok {
				t.Errorf("offline device object lacks %q: %v", k, raw[1])
			}
		}
		if _, ok := raw[0]["disconnected_at"]; ok {
			t.Errorf("connected device object has disconnected_at: %v", raw[0])
		}
	})

	t.Run("another include is refused, naming the allowed value", func(t *testing.T) {
		for _, q := range []string{"include=all", "include=", "include=OFFLINE", "include=offline,connected", "include=offline&include=x"} {
			res := e.call(t, http.MethodGet, "/api/devices?"+q, "")
			if msg := errorBody(t, res); res.status != http.StatusBadRequest || !strings.Contains(msg, "include=offline") {
				t.Errorf("?%s: %d %q, want 400 naming include=offline", q, res.status, msg)
			}
		}
		// Repeating the one allowed value is still that value.
		if res := e.call(t, http.MethodGet, "/api/devices?include=offline&include=offline", ""); res.status != http.StatusOK {
			t.Errorf("include=offline twice: %d %s", res.status, res.body)
		}
	})

	t.Run("the event stream's snapshot has the offline lamp", func(t *testing.T) {
		s := e.openEvents(t)
		var devs []device.Info
		if err := json.Unmarshal([]byte(s.next(t, "devices").data), &devs); err != nil {
			t.Fatal(err)
		}
		if len(devs) != 2 || devs[0].ID != stays.id || devs[1].ID != gone.id || devs[1].Phase != "offline" || devs[1].Reason != offlineReason {
			t.Errorf("devices snapshot %v, want %s then %s offline because %q", ids(devs), stays.id, gone.id, offlineReason)
		}
	})

	t.Run("the page shows an offline row without commands", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/", "")
		if res.status != http.StatusOK {
			t.Fatalf("%d", res.status)
		}
		row := deviceRowHTML(t, res.body, gone.id)
		for _, want := range []string{
			`data-status="offline"`, ">Offline<", "Lamp closed the connection (code 1001)", ">127.0.0.1<", // named by its address
			`class="device-actions" data-when="live" hidden`, // no Reboot, Update or Debug
		} {
			if !strings.Contains(row, want) {
				t.Errorf("offline row lacks %q:\n%s", want, row)
			}
		}
		live := deviceRowHTML(t, res.body, stays.id)
		if strings.Contains(live, `class="device-actions" data-when="live" hidden`) || strings.Contains(live, ">Offline<") {
			t.Errorf("the connected lamp's row looks offline:\n%s", live)
		}
		if strings.Index(res.body, `data-id="`+stays.id) > strings.Index(res.body, `data-id="`+gone.id) {
			t.Error("the offline lamp is listed above the connected one")
		}
		if !strings.Contains(res.body, `id="lamp-count" title="Connected lamps">1<`) {
			t.Error("the lamp count badge does not count only the connected lamp")
		}
		// The script starts from the same list.
		if !strings.Contains(res.body, `"reason":"`+offlineReason+`"`) {
			t.Error("the boot data lacks the offline lamp")
		}
	})

	t.Run("a lamp that comes back is no longer offline", func(t *testing.T) {
		back := e.lamp(t) // unnamed, from the same address: the same lamp to the gateway
		devs := decode[[]device.Info](t, e.call(t, http.MethodGet, "/api/devices?include=offline", ""))
		if len(devs) != 2 || devs[0].ID != stays.id || devs[1].ID != back.id || devs[1].Phase == "offline" {
			t.Errorf("after the lamp came back: %v, want %s and %s, both connected", ids(devs), stays.id, back.id)
		}
	})
}

// deviceRowHTML cuts one lamp's row out of the page.
func deviceRowHTML(t *testing.T, page, id string) string {
	t.Helper()
	start := strings.Index(page, `<li class="device" data-id="`+id+`"`)
	if start < 0 {
		t.Fatalf("the page has no row for %s", id)
	}
	end := strings.Index(page[start:], "</li>")
	if end < 0 {
		t.Fatalf("the row of %s does not end", id)
	}
	return page[start : start+end]
}

func TestParseInclude(t *testing.T) {
	tests := []struct {
		values  []string
		offline bool
		err     string
	}{
		{nil, false, ""},
		{[]string{"offline"}, true, ""},
		{[]string{"offline", "offline"}, true, ""},
		{[]string{""}, false, `include "" is not known; the only value is include=offline`},
		{[]string{"all"}, false, `include "all" is not known`},
		{[]string{"offline", "Offline"}, false, `include "Offline" is not known`},
	}
	for _, tt := range tests {
		got, err := parseInclude(tt.values)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.values, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one containing %q", tt.values, err, tt.err)
		case got != tt.offline:
			t.Errorf("%q: offline %v, want %v", tt.values, got, tt.offline)
		}
	}
}

func TestOfflineDeviceView(t *testing.T) {
	now := time.Date(2026, 11, 21, 22, 44, 0, 0, time.Local)
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	tests := []struct {
		name                      string
		info                      device.Info
		label, status, since, why string
		offline                   bool
	}{
		{"connected", device.Info{ID: "d-1", RemoteAddr: "192.0.2.7:5000", Authenticated: true, Synchronized: true, Phase: "synchronized"},
			"d-1", "online", "", "", false},
		{"unnamed lamp that left: its address", device.Info{ID: "d-2", RemoteAddr: "192.0.2.7:5000", Authenticated: true, Phase: "offline", DisconnectedAt: at(12 * time.Minute), Reason: "no sign of life for 45s"},
			"192.0.2.7", "offline", "22:32 (12 min)", "No sign of life for 45s", true},
		{"named lamp that left: its name", device.Info{ID: "d-3", Name: "kitchen", RemoteAddr: "[2001:db8::1]:80", Authenticated: true, Phase: "offline", DisconnectedAt: at(50 * time.Hour), Reason: "lamp closed the connection (code 1001)"},
			"kitchen", "offline", "19 Nov 20:44 (2 d 2 h)", "Lamp closed the connection (code 1001)", true},
		{"left without a time or reason", device.Info{ID: "d-4", RemoteAddr: "[2001:db8::1]:80", Phase: "offline"},
			"2001:db8::1", "offline", "—", "Unknown", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := deviceView(tt.info, now)
			if v.Label != tt.label || v.Status != tt.status || v.OfflineSinceText != tt.since || v.Reason != tt.why || v.Offline != tt.offline {
				t.Errorf("label %q status %q since %q reason %q offline %v; want %q %q %q %q %v",
					v.Label, v.Status, v.OfflineSinceText, v.Reason, v.Offline, tt.label, tt.status, tt.since, tt.why, tt.offline)
			}
			if tt.offline && tt.info.DisconnectedAt != nil && v.OfflineSince == "" {
				t.Error("no machine-readable offline time for the script")
			}
		})
	}
}
