package web

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/weather"
)

// The test environment is the real thing wherever it can be: a state.Store
// on a temp dir, an events.Bus, a device.Gateway with lamps that are real
// WebSocket clients, and the web server on 127.0.0.1. Only the weather
// poller is a small fake (the real one would need the internet).

const (
	testUser     = "admin"
	testPassword = "correct horse battery staple"
	lampSecret   = "lamp-secret"
	// kitchenSecret is a named lamp's secret: such a lamp is known by its
	// name across reconnects (the firmware rollout follows it by name).
	kitchenSecret = "kitchen-secret"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakeWeather struct {
	mu        sync.Mutex
	report    weather.Report
	refreshes int
}

func (f *fakeWeather) Report() weather.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.report
}

func (f *fakeWeather) Refresh() {
	f.mu.Lock()
	f.refreshes++
	f.mu.Unlock()
}

func (f *fakeWeather) set(r weather.Report) {
	f.mu.Lock()
	f.report = r
	f.mu.Unlock()
}

func sampleReport() weather.Report {
	obs := &weather.Observation{ConditionID: 803, Main: "Clouds", Description: "broken clouds", CloudCover: 75,
		WindSpeed: 3.1, TempC: 11.6, Place: "Utrecht", ObservedAt: time.Now().Add(-3 * time.Minute)}
	return weather.Report{
		Reading:     weather.Reading{Code: 4, Intensity: 8},
		Description: "broken clouds, 75 % cover → cloudy, intensity 8",
		Source:      weather.SourceOpenWeatherMap,
		Observation: obs,
		FetchedAt:   time.Now().Add(-3 * time.Minute),
		Status:      weather.StatusOK,
		NextFetch:   time.Now().Add(7 * time.Minute),
	}
}

type env struct {
	t       *testing.T
	srv     *Server
	web     *httptest.Server
	data    *storage.Dir   // the data directory the stores keep their records in
	records storage.Bucket // its top level: state, favourites, update history
	store   *state.Store
	favs    *favorites.Store
	bus     *events.Bus
	gw      *device.Gateway
	lamps   *lamps.Registry // every lamp ever seen, each with its own state
	lampURL string
	lampSrv *httptest.Server // the device port: lamps, and /firmware.bin when firmware is set up
	dir     string
	weather *fakeWeather
	reg     *prometheus.Registry

	// Set by newFirmwareEnv.
	fw      *firmware.Store
	updates *rollout.Tracker
}

type envOption func(*Options, *Deps)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), bus: events.NewBus(), weather: &fakeWeather{report: sampleReport()}, reg: prometheus.NewRegistry()}
	var err error
	if e.data, err = storage.OpenDir(e.dir); err != nil {
		t.Fatal(err)
	}
	if e.records, err = e.data.Bucket(""); err != nil {
		t.Fatal(err)
	}
	if e.store, err = state.Open(e.records, e.bus, quiet); err != nil {
		t.Fatal(err)
	}
	if e.favs, err = favorites.Open(e.records, e.bus, quiet); err != nil {
		t.Fatal(err)
	}
	if e.lamps, err = lamps.Open(lamps.Options{Records: e.records, Shared: e.store, Bus: e.bus, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.lamps.Close)
	e.gw, err = device.New(device.Options{
		Secret: lampSecret, Named: []device.NamedSecret{{Name: "kitchen", Secret: kitchenSecret}},
		Bus: e.bus, Logger: quiet, AuthBackoff: time.Millisecond, OnLamp: e.lamps.Seen,
	}, e.store.Get().DisplayPacket())
	if err != nil {
		t.Fatal(err)
	}
	// As server.go wires them: the store drives the shared packet, the
	// registry each lamp's own.
	e.store.Watch(func(st state.State) { _ = e.gw.SetDisplay(st.DisplayPacket()) })
	e.lamps.Attach(e.gw)

	opt := Options{
		Username: testUser, Password: testPassword,
		SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		Sessions:   e.data, Logger: quiet, Registry: e.reg, Version: "test",
	}
	deps := Deps{State: e.lamps, Lamps: e.lamps, Devices: e.gw, Favorites: e.favs, Weather: e.weather, Events: e.bus}
	for _, o := range opts {
		o(&opt, &deps)
	}
	e.srv, err = New(opt, deps)
	if err != nil {
		t.Fatal(err)
	}
	// The device port as server.go builds it: the firmware the web port
	// serves, without a login, and every other path for lamps.
	lampMux := http.NewServeMux()
	if opt.FirmwareHandler != nil {
		lampMux.Handle("/firmware.bin", opt.FirmwareHandler)
	}
	lampMux.Handle("/", e.gw)
	e.lampSrv = httptest.NewServer(lampMux)
	e.lampURL = "ws" + strings.TrimPrefix(e.lampSrv.URL, "http") + "/"
	e.web = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.web.CloseClientConnections()
		e.web.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.gw.Shutdown(ctx)
		e.lampSrv.Close()
	})
	return e
}

// reqOption adjusts a test request.
type reqOption func(*http.Request)

func noAuth() reqOption { return func(r *http.Request) { r.Header.Del("Authorization") } }

func basic(user, pass string) reqOption { return func(r *http.Request) { r.SetBasicAuth(user, pass) } }

func header(k, v string) reqOption { return func(r *http.Request) { r.Header.Set(k, v) } }

func contentType(ct string) reqOption {
	return func(r *http.Request) {
		if ct == "" {
			r.Header.Del("Content-Type")
		} else {
			r.Header.Set("Content-Type", ct)
		}
	}
}

func withCookie(c *http.Cookie) reqOption {
	return func(r *http.Request) { r.Header.Del("Authorization"); r.AddCookie(c) }
}

type response struct {
	status int
	header http.Header
	body   string
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// call sends a request with basic auth and, when there is a body, JSON's
// Content-Type; options change either.
func (e *env) call(t *testing.T, method, path, body string, opts ...reqOption) response {
	t.Helper()
	req, err := http.NewRequest(method, e.web.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) form(t *testing.T, path string, values url.Values, opts ...reqOption) response {
	t.Helper()
	return e.call(t, http.MethodPost, path, values.Encode(), append([]reqOption{contentType("application/x-www-form-urlencoded")}, opts...)...)
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)

// login signs in through the form and returns the session cookie and the
// page's CSRF token.
func (e *env) login(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	res := e.form(t, "/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {"/"}}, noAuth())
	if res.status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", res.status, res.body)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("login set no session cookie")
	}
	page := e.call(t, http.MethodGet, "/", "", withCookie(cookie))
	m := csrfMeta.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("page after login: %d, csrf meta found: %v", page.status, m != nil)
	}
	return cookie, m[1]
}

// testLamp is a lamp: a WebSocket client that did the handshake. A reader
// goroutine collects frames (and answers the server's pings, as gorilla
// does while reading).
type testLamp struct {
	conn   *websocket.Conn
	frames chan string
	id     string
}

func (e *env) lamp(t *testing.T) *testLamp {
	t.Helper()
	return e.lampAt(t, e.lampURL)
}

// namedLamp is a lamp that connects with ?lamp=<id>, so it is lamp id in
// the registry.
func (e *env) namedLamp(t *testing.T, id string) *testLamp {
	t.Helper()
	return e.lampAt(t, e.lampURL+"?lamp="+id)
}

func (e *env) lampAt(t *testing.T, url string) *testLamp {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WriteMessage(websocket.TextMessage, []byte(lampSecret)); err != nil {
		t.Fatal(err)
	}
	l := &testLamp{conn: c, frames: make(chan string, 256)}
	go func() {
		defer close(l.frames)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			l.frames <- string(b)
		}
	}()
	if got := l.next(t); got != "ok" {
		t.Fatalf("handshake answered %q", got)
	}
	l.next(t) // the display packet
	// The lamp's id, from the gateway's registry (the newest connection).
	for range 500 {
		devs := e.gw.Devices()
		if len(devs) > 0 && devs[len(devs)-1].Authenticated {
			l.id = devs[len(devs)-1].ID
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l.id == "" {
		t.Fatal("the lamp did not show up in the registry")
	}
	return l
}

// next returns the next frame within 5 seconds.
func (l *testLamp) next(t *testing.T) string {
	t.Helper()
	select {
	case f, ok := <-l.frames:
		if !ok {
			t.Fatal("lamp connection closed")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("the lamp received nothing within 5 s")
	}
	return ""
}

// waitFor reads frames until want arrives (display packets may be
// coalesced, so earlier ones can be skipped), within 10 seconds. It
// returns the frames that came before.
func (l *testLamp) waitFor(t *testing.T, want string) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case f, ok := <-l.frames:
			if !ok {
				t.Fatalf("lamp connection closed waiting for %q (saw %q)", want, seen)
			}
			if f == want {
				return seen
			}
			seen = append(seen, f)
		case <-deadline:
			t.Fatalf("lamp never received %q (saw %q)", want, seen)
		}
	}
}

// drain forgets the frames received so far.
func (l *testLamp) drain() {
	for {
		select {
		case <-l.frames:
		default:
			return
		}
	}
}

// quietFor asserts the lamp receives nothing for a short while.
func (l *testLamp) quietFor(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case f := <-l.frames:
		t.Fatalf("lamp received %q, want nothing", f)
	case <-time.After(d):
	}
}

func (l *testLamp) send(t *testing.T, s string) {
	t.Helper()
	if err := l.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, data string }

// sseStream reads events (and heartbeat comments, as name ":") from a
// response body.
type sseStream struct {
	res    *http.Response
	events chan sseEvent
}

func (e *env) openEvents(t *testing.T, opts ...reqOption) *sseStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.web.URL+"/api/events", nil)
	req.SetBasicAuth(testUser, testPassword)
	for _, o := range opts {
		o(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/events: %d", res.StatusCode)
	}
	s := &sseStream{res: res, events: make(chan sseEvent, 1024)}
	t.Cleanup(func() { res.Body.Close() })
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.name = ":"
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next returns the next event with one of the names (others are skipped),
// within 5 seconds.
func (s *sseStream) next(t *testing.T, names ...string) sseEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("event stream ended waiting for %v", names)
			}
			for _, n := range names {
				if ev.name == n {
					return ev
				}
			}
		case <-deadline:
			t.Fatalf("no %v event within 5 s", names)
		}
	}
}
