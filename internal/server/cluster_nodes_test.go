package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// testLamp is a lamp that answers pings by reading all the time (gorilla
// answers a ping while a read is under way), handing the packets to msgs.
type testLamp struct {
	c    *websocket.Conn
	msgs chan string // closed when the connection ends
}

// dialLamp connects lamp id (?lamp=) to a node's device port and waits for
// "ok".
func dialLamp(t *testing.T, addr, id string) *testLamp {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/?lamp="+id, nil)
	if err != nil {
		t.Fatalf("lamp %s: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WriteMessage(websocket.TextMessage, []byte(clusterSecret)); err != nil {
		t.Fatal(err)
	}
	l := &testLamp{c: c, msgs: make(chan string, 64)}
	go func() {
		defer close(l.msgs)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			l.msgs <- string(b)
		}
	}()
	l.wait(t, "ok")
	return l
}

// wait reads packets until want comes.
func (l *testLamp) wait(t *testing.T, want string) {
	t.Helper()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-l.msgs:
			if !ok {
				t.Fatalf("the lamp's connection ended while it waited for %s (saw %q)", want, seen)
			}
			if m == want {
				return
			}
			seen = append(seen, m)
		case <-timeout:
			t.Fatalf("the lamp never got %s (saw %q)", want, seen)
		}
	}
}

// waitClosed waits for the lamp's connection to end.
func (l *testLamp) waitClosed(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-l.msgs:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the lamp's connection did not end")
		}
	}
}

// callAPI makes an API call to a cluster node.
func callAPI(t *testing.T, web, method, path, body string) (int, []byte) {
	t.Helper()
	return webCall(t, web, clusterPassword, method, path, body)
}

// eventually polls cond for up to 10 s; cond says what it saw.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var saw string
	for range 200 {
		var ok bool
		if ok, saw = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: never happened; last saw %s", what, saw)
}

// nodesOfDevices is the node of each authenticated connection GET
// /api/devices lists on web, by lamp id.
func nodesOfDevices(t *testing.T, web string) map[string]string {
	t.Helper()
	status, body := callAPI(t, web, http.MethodGet, "/api/devices", "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/devices: %d %s", status, body)
	}
	var list []device.Info
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range list {
		if d.Authenticated {
			out[d.LampID] = d.Node
		}
	}
	return out
}

// fastKeepalive makes a silent node (and lamp) gone within 1.5 s.
func fastKeepalive(c *config.Config) {
	c.Device.PingInterval, c.Device.KeepaliveTimeout = config.Duration(300*time.Millisecond), config.Duration(1500*time.Millisecond)
}

// TestThreeNodesActAsOne: three nodes on one NATS server, a lamp on each.
// A change through each node reaches every lamp; every node lists every
// lamp with its node; a command and the debug switch through one node reach
// a lamp on another; that lamp's debug lines are in every node's log and
// live stream; a node that stops loses its lamps from the lists, and they
// reconnect to another node and get the current state, while what they
// said there stays in every node's log; a node that goes
// silent without a word is forgotten within the keepalive timeout.
func TestThreeNodesActAsOne(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	names := []string{"a", "b", "c"}
	var nodes []*clusterNode
	for _, n := range names {
		nodes = append(nodes, startNode(t, ns.ClientURL(), n, fastKeepalive))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	lampsOn := []*testLamp{dialLamp(t, a.Device, "one"), dialLamp(t, b.Device, "two"), dialLamp(t, c.Device, "three")}

	var last string
	for i, n := range nodes {
		pulse := i + 2
		if status, body := callAPI(t, n.Web, http.MethodPut, "/api/state", fmt.Sprintf(`{"mode": "manual", "color": "#203040", "pulse": %d}`, pulse)); status != http.StatusOK {
			t.Fatalf("PUT /api/state through node %s: %d %s", names[i], status, body)
		}
		p, _ := protocol.Manual(protocol.RGB{R: 0x20, G: 0x30, B: 0x40}, pulse)
		last = p.String()
		for _, l := range lampsOn {
			l.wait(t, last)
		}
	}

	want := map[string]string{"one": "a", "two": "b", "three": "c"}
	for i, n := range nodes {
		eventually(t, "node "+names[i]+" lists every lamp with its node", func() (bool, string) {
			got := nodesOfDevices(t, n.Web)
			return mapsEqual(got, want), jsonText(got)
		})
	}
	status, body := callAPI(t, b.Web, http.MethodGet, "/api/cluster", "")
	var st cluster.Status
	if err := json.Unmarshal(body, &st); status != http.StatusOK || err != nil || st.Node != "b" || len(st.Nodes) != 3 || st.NATS != "connected" {
		t.Fatalf("GET /api/cluster on b: %d %s", status, body)
	}

	// A command through a for the lamp on c is carried out by c.
	status, body = callAPI(t, a.Web, http.MethodPost, "/api/commands", `{"command": "reset", "devices": ["three"]}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"d-c-`) {
		t.Fatalf("reset of the lamp on c through a: %d %s", status, body)
	}
	lampsOn[2].wait(t, protocol.Reset().String())
	if status, body := callAPI(t, a.Web, http.MethodPost, "/api/commands", `{"command": "reset", "devices": ["nowhere"]}`); status != http.StatusNotFound || !strings.Contains(string(body), "nowhere") {
		t.Fatalf("a command for a lamp no node holds: %d %s, want 404 naming it", status, body)
	}

	// Its debug switch, through b; its lines reach a's log and a's stream.
	events := openStream(t, a.Web)
	if status, body := callAPI(t, b.Web, http.MethodPost, "/api/commands", `{"command": "debug", "on": true, "devices": ["three"]}`); status != http.StatusOK {
		t.Fatalf("debug on for the lamp on c through b: %d %s", status, body)
	}
	lampsOn[2].wait(t, protocol.Debug(true).String())
	if err := lampsOn[2].c.WriteMessage(websocket.TextMessage, []byte("d:hello from three")); err != nil {
		t.Fatal(err)
	}
	events.waitFor(t, "log", `"hello from three"`)
	helloInLog := func(n *clusterNode, query string) func() (bool, string) {
		return func() (bool, string) {
			_, body := callAPI(t, n.Web, http.MethodGet, "/api/logs"+query, "")
			var lines []device.LogLine
			_ = json.Unmarshal(body, &lines)
			return slices.ContainsFunc(lines, func(l device.LogLine) bool { return l.Message == "hello from three" && l.Node == "c" }), string(body)
		}
	}
	eventually(t, "a's log has the line of the lamp on c", helloInLog(a, ""))

	// c stops: its lamp reconnects to a and gets the current state; no node
	// lists it on c any more.
	c.stop()
	events.waitUntil(t, "cluster", "nodes a and b only", func(data string) bool {
		var st cluster.Status
		return json.Unmarshal([]byte(data), &st) == nil && len(st.Nodes) == 2 && st.Nodes[0].Name == "a" && st.Nodes[1].Name == "b"
	})
	lampsOn[2].waitClosed(t)
	moved := dialLamp(t, a.Device, "three")
	moved.wait(t, last)
	// Its debug switch, set through b while it was on c, came with it.
	moved.wait(t, protocol.Debug(true).String())
	// What it said on c is still in the log, from c's last save.
	eventually(t, "b's log keeps the line the lamp sent to the stopped node", helloInLog(b, ""))
	want["three"] = "a"
	eventually(t, "b lists the lamp that moved on a", func() (bool, string) {
		got := nodesOfDevices(t, b.Web)
		return mapsEqual(got, want), jsonText(got)
	})

	// b goes silent without a word (its NATS link is cut): a forgets its
	// lamp within the keepalive timeout.
	b.srv.nats.Close()
	delete(want, "two")
	eventually(t, "a forgets the lamp of the silent node", func() (bool, string) {
		got := nodesOfDevices(t, a.Web)
		return mapsEqual(got, want), jsonText(got)
	})
	// It is offline, saying why, on every node left.
	_, body = callAPI(t, a.Web, http.MethodGet, "/api/devices?include=offline", "")
	var list []device.Info
	_ = json.Unmarshal(body, &list)
	if !slices.ContainsFunc(list, func(d device.Info) bool {
		return d.LampID == "two" && d.Phase == device.PhaseOffline && d.Node == "b" && strings.Contains(d.Reason, "node b")
	}) {
		t.Fatalf("a does not list the silent node's lamp as offline: %s", body)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// stream is an open GET /api/events.
type stream struct {
	lines chan string
}

func openStream(t *testing.T, web string) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+web+"/api/events", nil)
	req.SetBasicAuth("admin", clusterPassword)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	s := &stream{lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default: // the test reads only what it waits for
			}
		}
	}()
	return s
}

// waitFor reads the stream until an event of type typ whose data contains
// part.
func (s *stream) waitFor(t *testing.T, typ, part string) {
	t.Helper()
	s.waitUntil(t, typ, "data with "+part, func(data string) bool { return strings.Contains(data, part) })
}

// waitUntil reads the stream until an event of type typ whose data ok
// accepts.
func (s *stream) waitUntil(t *testing.T, typ, what string, accept func(data string) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	current := ""
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("the event stream ended before a %s event with %s", typ, what)
			}
			if name, ok := strings.CutPrefix(line, "event: "); ok {
				current = name
			} else if data, found := strings.CutPrefix(line, "data: "); found && current == typ && accept(data) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event with %s on the stream", typ, what)
		}
	}
}

// lampState is GET /api/lamps/<id>/state on web.
func lampState(t *testing.T, web, id string) (int, state.State) {
	t.Helper()
	status, body := callAPI(t, web, http.MethodGet, "/api/lamps/"+id+"/state", "")
	var st state.State
	_ = json.Unmarshal(body, &st)
	return status, st
}

// quietLast reads packets until none came for a while and returns the last.
func (l *testLamp) quietLast(t *testing.T) string {
	t.Helper()
	last := ""
	for range 1000 {
		select {
		case m, ok := <-l.msgs:
			if !ok {
				t.Fatal("the lamp's connection ended")
			}
			last = m
		case <-time.After(500 * time.Millisecond):
			return last
		}
	}
	t.Fatal("the lamp never went quiet")
	return ""
}

// TestTwoNodesChangeOneLampAtOnce: a person changes a lamp through node a
// while another changes it through node b, again and again at the same
// moment. Both nodes end agreeing on one state, and the lamp (on b) shows
// that state. The lamp appears in a's GET /api/lamps as online on b.
func TestTwoNodesChangeOneLampAtOnce(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := startNode(t, ns.ClientURL(), "a")
	b := startNode(t, ns.ClientURL(), "b")
	lamp := dialLamp(t, b.Device, "desk")
	eventually(t, "a lists the lamp on b as online", func() (bool, string) {
		_, body := callAPI(t, a.Web, http.MethodGet, "/api/lamps/desk", "")
		var l lamps.Lamp
		_ = json.Unmarshal(body, &l)
		return l.Online && len(l.Devices) == 1 && l.Devices[0].Node == "b", string(body)
	})

	var wg sync.WaitGroup
	for i := range 10 {
		for j, n := range []*clusterNode{a, b} {
			body := fmt.Sprintf(`{"mode": "manual", "color": "#%02x%02x00", "pulse": %d}`, i*20, j*200, j+1)
			wg.Go(func() {
				if status, got := callAPI(t, n.Web, http.MethodPut, "/api/lamps/desk/state", body); status != http.StatusOK {
					t.Errorf("PUT through %s: %d %s", n.Web, status, got)
				}
			})
		}
		wg.Wait()
	}
	var final state.State
	eventually(t, "both nodes agree on the lamp's state", func() (bool, string) {
		sa, ona := lampState(t, a.Web, "desk")
		sb, onb := lampState(t, b.Web, "desk")
		final = onb
		return sa == http.StatusOK && sb == http.StatusOK && ona.Packet == onb.Packet && ona.Color == onb.Color, ona.Packet + " / " + onb.Packet
	})
	if got := lamp.quietLast(t); got != final.Packet {
		t.Fatalf("the lamp shows %s, but both nodes say %s", got, final.Packet)
	}
}

// TestANodeThatJoinsLateKeepsTheDebugSwitches: a node that was not running
// when a lamp's debug switch was set starts from the switches the others
// saved, so the lamp keeps it when it moves there.
func TestANodeThatJoinsLateKeepsTheDebugSwitches(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := startNode(t, ns.ClientURL(), "a")
	porch := dialLamp(t, a.Device, "porch")
	if status, body := callAPI(t, a.Web, http.MethodPost, "/api/commands", `{"command": "debug", "on": true, "devices": ["porch"]}`); status != http.StatusOK {
		t.Fatalf("debug on for porch: %d %s", status, body)
	}
	porch.wait(t, protocol.Debug(true).String())

	b := startNode(t, ns.ClientURL(), "b")
	porch.c.Close()
	moved := dialLamp(t, b.Device, "porch")
	moved.wait(t, protocol.Debug(true).String())
}

// TestALoginThroughOneNodeIsOneOnEvery: behind a load balancer each request
// of a browser may reach another node. A login through one node lets the
// browser in on the others, and signing out through one ends it on all.
func TestALoginThroughOneNodeIsOneOnEvery(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := startNode(t, ns.ClientURL(), "a")
	b := startNode(t, ns.ClientURL(), "b")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(node, path string, form url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+node+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+node)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	state := func(node string) int {
		t.Helper()
		resp, err := browser.Get("http://" + node + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if resp := post(a.Web, "/login", url.Values{"username": {"admin"}, "password": {clusterPassword}, "next": {"/"}}); resp.StatusCode != http.StatusSeeOther || len(jar.Cookies(resp.Request.URL)) == 0 {
		t.Fatalf("login through a: %d, cookies %v", resp.StatusCode, jar.Cookies(resp.Request.URL))
	}
	if status := state(b.Web); status != http.StatusOK {
		t.Fatalf("GET /api/state on b with a's login: %d, want 200", status)
	}
	// The cookie is kept for a moment: signing out clears it in the browser,
	// but a copy of it must be refused too.
	cookies := jar.Cookies(&url.URL{Scheme: "http", Host: a.Web})
	// The sign-out form carries the page's CSRF token.
	resp, err := browser.Get("http://" + b.Web + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("b's page (%d) has no CSRF token", resp.StatusCode)
	}
	if resp := post(b.Web, "/logout", url.Values{"csrf": {string(m[1])}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out through b: %d", resp.StatusCode)
	}
	jar.SetCookies(&url.URL{Scheme: "http", Host: a.Web}, cookies)
	eventually(t, "a refuses the login signed out through b", func() (bool, string) {
		status := state(a.Web)
		return status == http.StatusUnauthorized, fmt.Sprint(status)
	})
}

// TestAnUploadThroughOneNodeIsEveryNodesImage: a firmware image uploaded
// through one node is the image the other node shows and serves its lamps;
// a rollback through the other is followed back.
func TestAnUploadThroughOneNodeIsEveryNodesImage(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())
	a := startNode(t, ns.ClientURL(), "a")
	b := startNode(t, ns.ClientURL(), "b")
	upload := func(img []byte) {
		t.Helper()
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		part, _ := w.CreateFormFile("firmware", "lamp.bin")
		part.Write(img)
		w.Close()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Web+"/api/firmware", &body)
		req.SetBasicAuth("admin", clusterPassword)
		req.Header.Set("Content-Type", w.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("upload through a: %d %s", resp.StatusCode, msg)
		}
	}
	current := func(n *clusterNode) (string, string) {
		_, body := callAPI(t, n.Web, http.MethodGet, "/api/firmware", "")
		var st struct{ Current, Previous *firmware.Info }
		_ = json.Unmarshal(body, &st)
		var cur, prev string
		if st.Current != nil {
			cur = st.Current.Version
		}
		if st.Previous != nil {
			prev = st.Previous.Version
		}
		return cur, prev
	}
	first, second := firmwaretest.Build(firmwaretest.Image{Version: "1.4.0", Seed: 1}), firmwaretest.Build(firmwaretest.Image{Version: "1.5.0", Seed: 2})
	upload(first)
	upload(second)
	eventually(t, "b shows the image uploaded through a", func() (bool, string) {
		cur, prev := current(b)
		return cur == "1.5.0" && prev == "1.4.0", cur + " / " + prev
	})
	// A lamp of b downloads it from b.
	u := "http://lamp:" + clusterSecret + "@" + b.Device + "/firmware.bin"
	got, err := firmwaretest.ArduinoDownload(context.Background(), nil, u, nil)
	if err != nil || got.Status != http.StatusOK || !bytes.Equal(got.Body, second) {
		t.Fatalf("download from b: status %d, %d bytes (want %d), %v", got.Status, len(got.Body), len(second), err)
	}
	if status, body := callAPI(t, b.Web, http.MethodPost, "/api/firmware/rollback", ""); status != http.StatusOK {
		t.Fatalf("rollback through b: %d %s", status, body)
	}
	eventually(t, "a follows the rollback through b", func() (bool, string) {
		cur, prev := current(a)
		return cur == "1.4.0" && prev == "1.5.0", cur + " / " + prev
	})
}
