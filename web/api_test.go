package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// errorBody decodes {"error": "..."} and fails the test for anything else:
// every error on the API has that shape.
func errorBody(t *testing.T, res response) string {
	t.Helper()
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error answered with Content-Type %q: %s", ct, res.body)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(res.body), &v); err != nil || v["error"] == "" || v["message"] == "" || len(v) != 2 {
		t.Fatalf(`error body is not {"error": "...", "message": "..."}: %s`, res.body)
	}
	return v["error"]
}

func decode[T any](t *testing.T, res response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(res.body), &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, res.body)
	}
	return v
}

func TestGetState(t *testing.T) {
	e := newEnv(t)
	res := e.call(t, http.MethodGet, "/api/state", "")
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(res.body), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "color", "pulse", "weather", "weather_override", "packet", "updated_at"} {
		if _, ok := v[k]; !ok {
			t.Errorf("state lacks %q: %s", k, res.body)
		}
	}
	if v["packet"] != "[cc:0:?:?]" || v["mode"] != "off" || v["color"] != "#ff41ae" {
		t.Errorf("fresh state: %s", res.body)
	}
}

func TestPutState(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	tests := []struct {
		name   string
		body   string
		packet string
		check  func(state.State) bool
	}{
		{"manual colour in rgb()", `{"mode": "manual", "color": "rgb(1, 2, 3)"}`, "[cc:2:1,2,3:0]", func(s state.State) bool { return s.Color.Hex() == "#010203" }},
		{"colour as r,g,b and pulse", `{"color": "255,162,174", "pulse": 3}`, "[cc:2:255,162,174:3]", nil},
		{"upper-case hex", `{"color": "#FF41AE", "pulse": 0}`, "[cc:2:255,65,174:0]", func(s state.State) bool { return s.Color.Hex() == "#ff41ae" }},
		{"weather with a preview", `{"mode": "weather", "weather_override": {"code": 5, "intensity": 7.25}}`, "[cc:1:5:7.25]", nil},
		{"back to the live weather", `{"weather_override": null}`, "[cc:1:3:9]", func(s state.State) bool { return s.WeatherOverride == nil }},
		{"off", `{"mode": "off"}`, "[cc:0:?:?]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(t, http.MethodPut, "/api/state", tt.body)
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			st := decode[state.State](t, res)
			if st.Packet != tt.packet {
				t.Errorf("answer's packet %s, want %s", st.Packet, tt.packet)
			}
			if tt.check != nil && !tt.check(st) {
				t.Errorf("answer %s", res.body)
			}
			if got := e.store.Get().Packet; got != tt.packet {
				t.Errorf("store has %s", got)
			}
			lamp.waitFor(t, tt.packet)
		})
	}
}

func TestPutStateRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	before := e.store.Get()
	big := `{"color": "` + strings.Repeat(" ", maxBody) + `#ffffff"}`
	tests := []struct {
		name   string
		body   string
		opts   []reqOption
		status int
		want   string // in the error sentence
	}{
		{"no content type", `{"mode": "off"}`, []reqOption{contentType("")}, 415, "Content-Type: application/json"},
		{"form content type", `mode=off`, []reqOption{contentType("application/x-www-form-urlencoded")}, 415, `got Content-Type "application/x-www-form-urlencoded"`},
		{"text content type", `{"mode": "off"}`, []reqOption{contentType("text/plain")}, 415, "application/json"},
		{"json with charset is fine but empty", ``, []reqOption{contentType("application/json; charset=utf-8")}, 400, "the body is empty"},
		{"over 64 KiB", big, nil, 413, "larger than 64 KiB"},
		{"unknown field", `{"mode": "off", "colour": "#fff"}`, nil, 400, `unknown field "colour"; the fields are mode, color, brightness, pulse, weather_override`},
		{"unknown mode", `{"mode": "disco"}`, nil, 400, `mode: "disco" is not a mode; use off, weather or manual`},
		{"mode of the wrong type", `{"mode": 2}`, nil, 400, `mode must be "off", "weather" or "manual", not a number 2`},
		{"pulse too high", `{"pulse": 12}`, nil, 400, "pulse: 12 is out of range 0-9"},
		{"pulse negative", `{"pulse": -1}`, nil, 400, "pulse: -1 is out of range 0-9"},
		{"pulse fractional", `{"pulse": 1.5}`, nil, 400, "pulse must be a whole number 0-9 (0 = steady), not a number 1.5"},
		{"pulse as a string", `{"pulse": "3"}`, nil, 400, `pulse must be a whole number 0-9`},
		{"brightness too high", `{"brightness": 101}`, nil, 400, "brightness: 101 is out of range 0-100"},
		{"brightness fractional", `{"brightness": 50.5}`, nil, 400, "brightness must be a whole number 0-100"},
		{"colour unreadable", `{"color": "pinkish"}`, nil, 400, `color: colour "pinkish": write #rrggbb, rgb(r,g,b) or r,g,b`},
		{"colour channel too big", `{"color": "256,0,0"}`, nil, 400, "channel 256 is above 255"},
		{"colour as a number", `{"color": 16711680}`, nil, 400, `color must be a string like "#ff41ae"`},
		{"override code out of range", `{"weather_override": {"code": 10, "intensity": 5}}`, nil, 400, "weather_override.code: 10 is out of range 1-9"},
		{"override intensity out of range", `{"weather_override": {"code": 4, "intensity": 11}}`, nil, 400, "weather_override.intensity: intensity 11 is out of range 0-10"},
		{"storm at 10", `{"weather_override": {"code": 6, "intensity": 10}}`, nil, 400, "weather_override.intensity: intensity 10 is out of range 1-9 for weather code 6 (storm)"},
		{"rain at 0", `{"weather_override": {"code": 5, "intensity": 0}}`, nil, 400, "weather_override.intensity: intensity 0 is out of range 1-9 for weather code 5 (rain)"},
		{"override intensity with three decimals", `{"weather_override": {"code": 4, "intensity": 4.125}}`, nil, 400, "more than two decimals"},
		{"override unknown field", `{"weather_override": {"code": 4, "brightness": 3}}`, nil, 400, `weather_override must be null or {"code": 1-9, "intensity": 0-10}: json: unknown field "brightness"`},
		{"override of the wrong type", `{"weather_override": "rain"}`, nil, 400, `weather_override must be null or {"code": 1-9, "intensity": 0-10}`},
		{"not an object", `["mode", "off"]`, nil, 400, "the body must be a JSON object"},
		{"null body", `null`, nil, 400, "not null"},
		{"broken json", `{"mode": "off"`, nil, 400, "not valid JSON"},
		{"two objects", `{"mode": "off"} {"mode": "manual"}`, nil, 400, "send exactly one object"},
		{"duplicate field", `{"mode": "off", "pulse": 1, "mode": "manual"}`, nil, 400, `field "mode" appears twice`},
		{"duplicate nested field", `{"weather_override": {"code": 4, "intensity": 3, "code": 5}}`, nil, 400, `field "weather_override.code" appears twice`},
		{"nothing to change", `{}`, nil, 400, "nothing to change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(t, http.MethodPut, "/api/state", tt.body, tt.opts...)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if msg := errorBody(t, res); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}
	if after := e.store.Get(); after.Packet != before.Packet || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("bad requests changed the state: %+v", after)
	}
	lamp.quietFor(t, 100*time.Millisecond)
}

func TestMethodsAndUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		want, allow  string
	}{
		{http.MethodPost, "/api/state", 405, "POST is not allowed on /api/state; use GET or PUT", "GET"},
		{http.MethodDelete, "/api/devices", 405, "use GET", "GET"},
		{http.MethodGet, "/api/commands", 405, "use POST", "POST"},
		{http.MethodPut, "/api/events", 405, "use GET", "GET"},
		{http.MethodGet, "/api/nothing-here", 404, "nothing at GET /api/nothing-here", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := e.call(t, tt.method, tt.path, "")
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if msg := errorBody(t, res); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if tt.allow != "" && !strings.Contains(res.header.Get("Allow"), tt.allow) {
				t.Errorf("Allow %q does not list %s", res.header.Get("Allow"), tt.allow)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	res := e.call(t, http.MethodGet, "/api/devices", "")
	if res.status != http.StatusOK || strings.TrimSpace(res.body) != "[]" {
		t.Fatalf("no lamps: %d %s", res.status, res.body)
	}
	lamp := e.lamp(t)
	devs := decode[[]map[string]any](t, e.call(t, http.MethodGet, "/api/devices", ""))
	if len(devs) != 1 || devs[0]["id"] != lamp.id {
		t.Fatalf("devices %v, want the lamp %s", devs, lamp.id)
	}
	for _, k := range []string{"id", "name", "remote_addr", "connected_at", "last_seen", "authenticated", "synchronized", "debug", "packets_sent", "packets_received"} {
		if _, ok := devs[0][k]; !ok {
			t.Errorf("device object lacks %q", k)
		}
	}
}

func TestCommands(t *testing.T) {
	e := newEnv(t)
	a, b := e.lamp(t), e.lamp(t)
	type result struct {
		Command string   `json:"command"`
		SentTo  []string `json:"sent_to"`
	}
	t.Run("reset one lamp", func(t *testing.T) {
		res := e.call(t, http.MethodPost, "/api/commands", fmt.Sprintf(`{"command": "reset", "devices": [%q]}`, a.id))
		if res.status != http.StatusOK {
			t.Fatalf("%d %s", res.status, res.body)
		}
		if r := decode[result](t, res); r.Command != "reset" || len(r.SentTo) != 1 || r.SentTo[0] != a.id {
			t.Errorf("answer %s", res.body)
		}
		a.waitFor(t, "[cc:r:?:?]")
		b.quietFor(t, 100*time.Millisecond)
	})
	t.Run("update every lamp", func(t *testing.T) {
		res := e.call(t, http.MethodPost, "/api/commands", `{"command": "update"}`)
		if r := decode[result](t, res); res.status != 200 || len(r.SentTo) != 2 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		a.waitFor(t, "[cc:u:?:?]")
		b.waitFor(t, "[cc:u:?:?]")
	})
	t.Run("debug on for one lamp", func(t *testing.T) {
		res := e.call(t, http.MethodPost, "/api/commands", fmt.Sprintf(`{"command": "debug", "on": true, "devices": [%q]}`, b.id))
		if res.status != http.StatusOK {
			t.Fatalf("%d %s", res.status, res.body)
		}
		b.waitFor(t, "[cc:d:1:?]")
	})
	t.Run("an unknown id is a 404 naming it, and nothing is sent", func(t *testing.T) {
		res := e.call(t, http.MethodPost, "/api/commands", fmt.Sprintf(`{"command": "reset", "devices": [%q, "d-nope"]}`, a.id))
		if res.status != http.StatusNotFound {
			t.Fatalf("%d %s", res.status, res.body)
		}
		if msg := errorBody(t, res); !strings.Contains(msg, `"d-nope"`) || !strings.Contains(msg, "nothing was sent") {
			t.Errorf("error %q", msg)
		}
		a.quietFor(t, 150*time.Millisecond)
	})
	bad := []struct {
		name, body, want string
		opts             []reqOption
	}{
		{"debug without on", `{"command": "debug"}`, "on is required for debug", nil},
		{"unknown command", `{"command": "explode"}`, `command "explode" is not known; use reset, update or debug`, nil},
		{"no command", `{"devices": []}`, "command is required", nil},
		{"on of the wrong type", `{"command": "debug", "on": "yes"}`, "on must be true or false", nil},
		{"devices not a list", `{"command": "reset", "devices": "d-1"}`, "devices must be a list of lamp ids", nil},
		{"empty device id", `{"command": "reset", "devices": [""]}`, "devices[0] is empty", nil},
		{"unknown field", `{"command": "reset", "targets": []}`, `unknown field "targets"`, nil},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(t, http.MethodPost, "/api/commands", tt.body, tt.opts...)
			if res.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if msg := errorBody(t, res); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}
	t.Run("no lamps answers an empty list", func(t *testing.T) {
		e2 := newEnv(t)
		res := e2.call(t, http.MethodPost, "/api/commands", `{"command": "reset"}`)
		if res.status != 200 || !strings.Contains(res.body, `"sent_to":[]`) {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	a, b := e.lamp(t), e.lamp(t)
	// Lines from two connections are stored in arrival order, so each is
	// awaited before the next is sent.
	for i, l := range []struct {
		lamp *testLamp
		msg  string
	}{{a, "d:hello from a"}, {b, "d:hello from b"}, {a, "d:second from a"}} {
		l.lamp.send(t, l.msg)
		waitFor(t, fmt.Sprintf("%d log lines", i+1), func() bool { return len(e.gw.Logs("", 10)) == i+1 })
	}

	lines := decode[[]device.LogLine](t, e.call(t, http.MethodGet, "/api/logs", ""))
	if len(lines) != 3 || lines[2].Message != "second from a" {
		t.Fatalf("logs %+v", lines)
	}
	var raw []map[string]any
	_ = json.Unmarshal([]byte(e.call(t, http.MethodGet, "/api/logs?limit=1", "").body), &raw)
	if len(raw) != 1 || raw[0]["message"] != "second from a" {
		t.Errorf("limit=1 gave %v", raw)
	}
	for _, k := range []string{"time", "device", "name", "message"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("log line lacks %q", k)
		}
	}
	if got := decode[[]device.LogLine](t, e.call(t, http.MethodGet, "/api/logs?device="+b.id, "")); len(got) != 1 || got[0].Message != "hello from b" {
		t.Errorf("device filter gave %+v", got)
	}
	if got := e.call(t, http.MethodGet, "/api/logs?device=d-none", ""); strings.TrimSpace(got.body) != "[]" {
		t.Errorf("unknown lamp's log: %s", got.body)
	}
	for _, limit := range []string{"0", "-3", "ten", "1001", "10000"} {
		res := e.call(t, http.MethodGet, "/api/logs?limit="+limit, "")
		if res.status != 400 || !strings.Contains(errorBody(t, res), "use a whole number 1-1000") {
			t.Errorf("limit=%s: %d %s", limit, res.status, res.body)
		}
	}
	t.Run("download as text", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/logs.txt?device="+a.id, "")
		if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%d %s", res.status, res.header.Get("Content-Type"))
		}
		if !strings.Contains(res.header.Get("Content-Disposition"), "attachment") {
			t.Errorf("Content-Disposition %q", res.header.Get("Content-Disposition"))
		}
		if n := strings.Count(res.body, "\n"); n != 2 || !strings.Contains(res.body, a.id+" hello from a") || strings.Contains(res.body, "from b") {
			t.Errorf("text log:\n%s", res.body)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWeather(t *testing.T) {
	e := newEnv(t)
	res := e.call(t, http.MethodGet, "/api/weather", "")
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	var v map[string]any
	_ = json.Unmarshal([]byte(res.body), &v)
	for _, k := range []string{"reading", "description", "source", "observation", "fetched_at", "status", "error", "failures", "next_fetch"} {
		if _, ok := v[k]; !ok {
			t.Errorf("weather report lacks %q: %s", k, res.body)
		}
	}
	res = e.call(t, http.MethodPost, "/api/weather/refresh", "")
	e.weather.mu.Lock()
	refreshes := e.weather.refreshes
	e.weather.mu.Unlock()
	if res.status != http.StatusAccepted || refreshes != 1 {
		t.Errorf("refresh: %d, %d refreshes", res.status, refreshes)
	}
	t.Run("without a weather service", func(t *testing.T) {
		e := newEnv(t, func(o *Options, d *Deps) { d.Weather = nil })
		for _, r := range []response{e.call(t, http.MethodGet, "/api/weather", ""), e.call(t, http.MethodPost, "/api/weather/refresh", "")} {
			if r.status != http.StatusServiceUnavailable || !strings.Contains(errorBody(t, r), "not running") {
				t.Errorf("%d %s", r.status, r.body)
			}
		}
		if page := e.call(t, http.MethodGet, "/", ""); page.status != 200 || !strings.Contains(page.body, "Not running") {
			t.Errorf("page without weather: %d", page.status)
		}
	})
}

func TestFavorites(t *testing.T) {
	e := newEnv(t)
	type body struct {
		Colors []string `json:"colors"`
	}
	got := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", ""))
	if len(got.Colors) != len(favorites.Defaults) {
		t.Fatalf("defaults: %v", got.Colors)
	}
	res := e.call(t, http.MethodPut, "/api/favorites", `{"colors": ["#FF0000", "0,255,0", "rgb(0,0,255)"]}`)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if got := decode[body](t, res); strings.Join(got.Colors, " ") != "#ff0000 #00ff00 #0000ff" {
		t.Errorf("answer %v", got.Colors)
	}
	disk, err := os.ReadFile(filepath.Join(e.dir, "favorites.json"))
	if err != nil || !strings.Contains(string(disk), "#00ff00") {
		t.Errorf("favorites.json: %v %s", err, disk)
	}
	seventeen := make([]string, 17)
	for i := range seventeen {
		seventeen[i] = fmt.Sprintf(`"#%02x0000"`, i)
	}
	bad := []struct{ name, body, want string }{
		{"too many", `{"colors": [` + strings.Join(seventeen, ",") + `]}`, "17 colours is too many; keep at most 16"},
		{"duplicate", `{"colors": ["#ffffff", "#FFFFFF"]}`, "colors[1]: #ffffff is already colors[0]"},
		{"bad colour names its place", `{"colors": ["#ffffff", "blue"]}`, `colors[1]: colour "blue"`},
		{"not a list", `{"colors": "#ffffff"}`, "colors must be a list"},
		{"missing", `{}`, "colors is required"},
		{"unknown field", `{"colors": [], "names": []}`, `unknown field "names"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(t, http.MethodPut, "/api/favorites", tt.body)
			if res.status != 400 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if msg := errorBody(t, res); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}
	if got := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", "")); len(got.Colors) != 3 {
		t.Errorf("refused lists changed the favourites: %v", got.Colors)
	}
}

// TestFavoritesRevision: a phone that saves the list it read earlier, after
// another phone changed it, is told so (409) and overwrites nothing.
func TestFavoritesRevision(t *testing.T) {
	e := newEnv(t)
	type body struct {
		Colors   []string `json:"colors"`
		Revision uint64   `json:"revision"`
	}
	read := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", ""))
	res := e.call(t, http.MethodPut, "/api/favorites", fmt.Sprintf(`{"colors": ["#010101"], "revision": %d}`, read.Revision))
	if res.status != 200 {
		t.Fatalf("saving the list read: %d %s", res.status, res.body)
	}
	now := decode[body](t, res)
	if now.Revision == read.Revision {
		t.Fatalf("the revision did not change: %d", now.Revision)
	}
	res = e.call(t, http.MethodPut, "/api/favorites", fmt.Sprintf(`{"colors": ["#020202"], "revision": %d}`, read.Revision))
	if res.status != http.StatusConflict || !strings.Contains(errorBody(t, res), "reload them and try again") {
		t.Fatalf("saving a stale list: %d %s", res.status, res.body)
	}
	if got := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", "")); strings.Join(got.Colors, " ") != "#010101" {
		t.Errorf("a stale list overwrote the favourites: %v", got.Colors)
	}
	if res := e.call(t, http.MethodPut, "/api/favorites", `{"colors": [], "revision": -1}`); res.status != 400 {
		t.Errorf("a negative revision: %d %s", res.status, res.body)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.lamp(t)
	res := e.call(t, http.MethodGet, "/healthz", "", noAuth())
	if res.status != 200 || res.body != "ok" {
		t.Errorf("healthz: %d %q", res.status, res.body)
	}
	if res := e.call(t, http.MethodHead, "/healthz", "", noAuth()); res.status != 200 {
		t.Errorf("HEAD healthz: %d", res.status)
	}
	e.call(t, http.MethodGet, "/api/state", "")
	e.call(t, http.MethodGet, "/api/nope", "")
	res = e.call(t, http.MethodGet, "/metrics", "", noAuth())
	if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", res.status, res.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`cloudcloud_http_requests_total{code="200",method="GET",route="/api/state"} 1`,
		`cloudcloud_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`cloudcloud_http_request_duration_seconds_bucket{route="/api/state"`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestFavoriteAddRemoveOne(t *testing.T) {
	e := newEnv(t)
	type body struct {
		Colors []string `json:"colors"`
	}
	if res := e.call(t, http.MethodPut, "/api/favorites", `{"colors": []}`); res.status != 200 {
		t.Fatalf("clear: %d %s", res.status, res.body)
	}
	// Two phones saving at the same moment both keep their colour.
	var wg sync.WaitGroup
	for _, c := range []string{"#111111", "#222222", "#333333", "#444444"} {
		wg.Go(func() {
			if res := e.call(t, http.MethodPost, "/api/favorites", `{"color": "`+c+`"}`); res.status != 200 {
				t.Errorf("add %s: %d %s", c, res.status, res.body)
			}
		})
	}
	wg.Wait()
	got := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", ""))
	if len(got.Colors) != 4 {
		t.Fatalf("after four adds at once: %v", got.Colors)
	}
	// Adding one that is there changes nothing; removing takes the hex with
	// or without the "#".
	if got := decode[body](t, e.call(t, http.MethodPost, "/api/favorites", `{"color": "17,17,17"}`)); len(got.Colors) != 4 {
		t.Errorf("adding a colour twice: %v", got.Colors)
	}
	for _, path := range []string{"/api/favorites/111111", "/api/favorites/%23222222"} {
		if res := e.call(t, http.MethodDelete, path, ""); res.status != 200 {
			t.Errorf("DELETE %s: %d %s", path, res.status, res.body)
		}
	}
	if got := decode[body](t, e.call(t, http.MethodGet, "/api/favorites", "")); strings.Join(got.Colors, " ") != strings.Join(slices.DeleteFunc(slices.Clone(got.Colors), func(c string) bool { return c == "#111111" || c == "#222222" }), " ") || len(got.Colors) != 2 {
		t.Errorf("after removing two: %v", got.Colors)
	}
	for _, tt := range []struct{ method, path, body, want string }{
		{http.MethodPost, "/api/favorites", `{"color": "blue"}`, `color: colour "blue"`},
		{http.MethodPost, "/api/favorites", `{}`, "color is required"},
		{http.MethodPost, "/api/favorites", `{"colors": ["#ffffff"]}`, `unknown field "colors"`},
		{http.MethodDelete, "/api/favorites/zzzzzz", "", "color: "},
	} {
		res := e.call(t, tt.method, tt.path, tt.body)
		if res.status != 400 || !strings.Contains(errorBody(t, res), tt.want) {
			t.Errorf("%s %s %s: %d %s, want 400 with %q", tt.method, tt.path, tt.body, res.status, res.body, tt.want)
		}
	}
}

func TestErrorsForPeople(t *testing.T) {
	// The API keeps the detail in "error" and adds the sentence for people.
	e := newFirmwareEnv(t, fwConfig{})
	res := e.call(t, http.MethodPost, "/api/commands", `{"command": "update"}`)
	var body struct{ Error, Message string }
	if err := json.Unmarshal([]byte(res.body), &body); err != nil || res.status != http.StatusConflict {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if !strings.Contains(body.Error, "POST /api/firmware") || strings.Contains(body.Message, "/api/") || !strings.HasPrefix(body.Message, "No firmware image") {
		t.Errorf("error %q, message %q", body.Error, body.Message)
	}
}

// TestLampFollowsSharedAgain: DELETE /api/lamps/<id>/state gives one lamp
// the shared packet again and leaves the others' own states alone.
func TestLampFollowsSharedAgain(t *testing.T) {
	e := newEnv(t)
	bedroom, hall := e.namedLamp(t, "bedroom"), e.namedLamp(t, "hall")
	shared := e.store.Get().Packet
	for _, id := range []string{"bedroom", "hall"} {
		if res := e.call(t, http.MethodPut, "/api/lamps/"+id+"/state", `{"mode": "manual", "color": "#0000ff"}`); res.status != http.StatusOK {
			t.Fatalf("PUT %s state: %d %s", id, res.status, res.body)
		}
	}
	bedroom.waitFor(t, "[cc:2:0,0,255:0]")
	hall.waitFor(t, "[cc:2:0,0,255:0]")

	res := e.call(t, http.MethodDelete, "/api/lamps/bedroom/state", "")
	if res.status != http.StatusOK {
		t.Fatalf("DELETE /api/lamps/bedroom/state: %d %s", res.status, res.body)
	}
	if l := decode[lamps.Lamp](t, res); l.ID != "bedroom" || !l.FollowsShared || l.State.Packet != shared {
		t.Errorf("DELETE answered %+v", l)
	}
	bedroom.waitFor(t, shared)
	if l := decode[lamps.Lamp](t, e.call(t, http.MethodGet, "/api/lamps/hall", "")); l.FollowsShared {
		t.Errorf("the hall follows the shared state too: %+v", l)
	}
	if res := e.call(t, http.MethodDelete, "/api/lamps/attic/state", ""); res.status != http.StatusNotFound || !strings.Contains(res.body, "attic") {
		t.Errorf("DELETE of an unknown lamp's state: %d %s", res.status, res.body)
	}
}
