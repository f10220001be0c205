package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// call sends a request with the UI login and returns status and body.
func (r *running) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	return webCall(t, r.addrs.Web, r.creds.WebPassword, method, path, body)
}

// webCall makes an API call to the web port at web with the UI login
// (admin, password) and returns the status and body.
func webCall(t *testing.T, web, password, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+web+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (r *running) lamp(t *testing.T, id string) lamps.Lamp {
	t.Helper()
	status, body := r.call(t, http.MethodGet, "/api/lamps/"+id, "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/lamps/%s: %d %s", id, status, body)
	}
	var l lamps.Lamp
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// lampDial connects a lamp at query and returns it with the packet it got.
func lampDial(t *testing.T, addr, query, secret string) (*websocket.Conn, string) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.WriteMessage(websocket.TextMessage, []byte(secret))
	if got := readFrame(t, c); got != "ok" {
		t.Fatalf("handshake: got %q", got)
	}
	return c, readFrame(t, c)
}

func readFrame(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// untilOnline waits until the registry has seen lamp id connect (the
// lamp's handshake answer comes just before).
func (r *running) untilOnline(t *testing.T, id string, online bool) {
	t.Helper()
	for range 500 {
		if status, body := r.call(t, http.MethodGet, "/api/lamps/"+id, ""); status == http.StatusOK && bytes.Contains(body, []byte(`"online":`+map[bool]string{true: "true", false: "false"}[online])) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("lamp %s never became online=%v", id, online)
}

// TestLampsEndToEnd drives the lamp API against real WebSocket lamps: each
// lamp its own state, shared changes reaching every lamp, labels, commands
// by lamp id, forgetting, bad input changing nothing, and each lamp's own
// state surviving a restart.
func TestLampsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *config.Config) {
		c.Device.Secrets = []config.NamedSecret{{Name: "porch", Secret: "porch-secret-123"}}
	}
	r := start(t, dir, edit)
	secret := r.creds.DeviceSecret
	living, p := lampDial(t, r.addrs.Device, "lamp=living&fw=1.4.2", secret)
	if p != "[cc:0:?:?]" {
		t.Fatalf("living got %s", p)
	}
	bed, _ := lampDial(t, r.addrs.Device, "lamp=Bedroom", secret)
	lampDial(t, r.addrs.Device, "lamp=ignored", "porch-secret-123")
	for _, id := range []string{"living", "bedroom", "porch"} {
		r.untilOnline(t, id, true)
	}
	if l := r.lamp(t, "living"); l.FirmwareVersion != "1.4.2" || !l.FollowsShared || len(l.Devices) != 1 || l.Devices[0].LampID != "living" {
		t.Errorf("living = %+v", l)
	}

	// One lamp: only it gets the packet; the answer is its new state.
	status, body := r.call(t, http.MethodPut, "/api/lamps/bedroom/state", `{"mode": "manual", "color": "#ff41ae", "brightness": 50}`)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"packet":"[cc:2:128,33,87:0]"`)) {
		t.Fatalf("PUT bedroom state: %d %s", status, body)
	}
	if got := readFrame(t, bed); got != "[cc:2:128,33,87:0]" {
		t.Errorf("bedroom got %s", got)
	}
	if l := r.lamp(t, "bedroom"); l.FollowsShared || l.State.Brightness != 50 {
		t.Errorf("bedroom after its change: %+v", l)
	}
	// Commands by lamp id: the living room gets a reset and nothing before
	// it, so the bedroom's packet did not reach it.
	status, body = r.call(t, http.MethodPost, "/api/commands", `{"command": "reset", "lamps": ["living"]}`)
	if status != http.StatusOK {
		t.Fatalf("reset living: %d %s", status, body)
	}
	if got := readFrame(t, living); got != protocol.Reset().String() {
		t.Errorf("living got %s, want only the reset", got)
	}

	// Bad input: a clear 4xx and nothing changed.
	bad := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{http.MethodPut, "/api/lamps/bedroom/state", `{"brightness": 101}`, 400, "brightness: 101 is out of range 0-100"},
		{http.MethodPut, "/api/lamps/bedroom/state", `{"colour": "#fff"}`, 400, `unknown field "colour"`},
		{http.MethodPut, "/api/lamps/bedroom/state", `{}`, 400, "nothing to change"},
		{http.MethodPut, "/api/lamps/nope/state", `{"mode": "off"}`, 404, `no lamp with id "nope" is known`},
		{http.MethodGet, "/api/lamps/nope", "", 404, `no lamp with id "nope" is known`},
		{http.MethodPatch, "/api/lamps/bedroom", `{"label": ""}`, 400, "label: must be 1-64 characters"},
		{http.MethodPatch, "/api/lamps/bedroom", `{"label": "` + strings.Repeat("x", 65) + `"}`, 400, "label: must be 1-64 characters (it has 65)"},
		{http.MethodPatch, "/api/lamps/bedroom", `{"label": "a\nb"}`, 400, "control characters"},
		{http.MethodPatch, "/api/lamps/bedroom", `{"name": "x"}`, 400, `unknown field "name"`},
		{http.MethodDelete, "/api/lamps/bedroom", "", 409, `lamp "bedroom" is connected`},
		{http.MethodPost, "/api/commands", `{"command": "reset", "lamps": ["nope"]}`, 404, `no lamp with id "nope" is known`},
	}
	for _, b := range bad {
		status, body := r.call(t, b.method, b.path, b.body)
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if status != b.status || !strings.Contains(e.Error, b.want) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", b.method, b.path, b.body, status, body, b.status, b.want)
		}
	}
	if l := r.lamp(t, "bedroom"); l.State.Brightness != 50 || l.Label != "" {
		t.Errorf("bad input changed the bedroom: %+v", l)
	}

	status, body = r.call(t, http.MethodPatch, "/api/lamps/bedroom", `{"label": "Bedroom upstairs"}`)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"label":"Bedroom upstairs"`)) {
		t.Errorf("PATCH label: %d %s", status, body)
	}

	// Restart: the bedroom keeps its own state and its label; it gets its
	// own packet when it connects again, the living room the shared one.
	r.shutdown(t)
	r = start(t, dir, edit)
	if l := r.lamp(t, "bedroom"); l.FollowsShared || l.Label != "Bedroom upstairs" || l.State.Packet != "[cc:2:128,33,87:0]" || l.Online {
		t.Errorf("bedroom after a restart: %+v", l)
	}
	if l := r.lamp(t, "living"); l.FirmwareVersion != "1.4.2" || l.LastSeen.IsZero() {
		t.Errorf("living after a restart: %+v", l)
	}
	bed, p = lampDial(t, r.addrs.Device, "lamp=bedroom", secret)
	if p != "[cc:2:128,33,87:0]" {
		t.Errorf("bedroom got %s after the restart, want its own state", p)
	}
	living, p = lampDial(t, r.addrs.Device, "lamp=living", secret)
	if p != "[cc:0:?:?]" {
		t.Errorf("living got %s after the restart, want the shared state", p)
	}
	r.untilOnline(t, "bedroom", true)

	// The shared state goes to every lamp and replaces the bedroom's own.
	status, body = r.call(t, http.MethodPut, "/api/state", `{"mode": "manual", "color": "#0000ff"}`)
	if status != http.StatusOK {
		t.Fatalf("PUT /api/state: %d %s", status, body)
	}
	for name, c := range map[string]*websocket.Conn{"living": living, "bedroom": bed} {
		if got := readFrame(t, c); got != "[cc:2:0,0,255:0]" {
			t.Errorf("%s got %s after the shared change", name, got)
		}
	}
	if l := r.lamp(t, "bedroom"); !l.FollowsShared {
		t.Errorf("bedroom still has its own state after a shared change")
	}

	// Forget an offline lamp; it is gone, also after a restart.
	bed.Close()
	r.untilOnline(t, "bedroom", false)
	if status, body := r.call(t, http.MethodDelete, "/api/lamps/bedroom", ""); status != http.StatusNoContent {
		t.Errorf("DELETE bedroom: %d %s", status, body)
	}
	if status, _ := r.call(t, http.MethodGet, "/api/lamps/bedroom", ""); status != http.StatusNotFound {
		t.Errorf("a forgotten lamp answers %d", status)
	}
	r.shutdown(t)
	r = start(t, dir, edit)
	status, body = r.call(t, http.MethodGet, "/api/lamps", "")
	var list []lamps.Lamp
	json.Unmarshal(body, &list)
	var ids []string
	for _, l := range list {
		ids = append(ids, l.ID)
		if !l.FollowsShared || l.State.Packet != "[cc:2:0,0,255:0]" {
			t.Errorf("%s after the last restart: %+v", l.ID, l)
		}
	}
	if status != http.StatusOK || strings.Join(ids, ",") != "living,porch" {
		t.Errorf("GET /api/lamps after forgetting: %d %v", status, ids)
	}
}
