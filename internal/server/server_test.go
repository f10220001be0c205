package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/logtest"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/credentials"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type running struct {
	addrs Addrs
	dir   string
	creds credentials.Credentials
	stop  context.CancelFunc
	done  chan error
	once  sync.Once
}

func start(t *testing.T, dir string, edit func(*config.Config)) *running {
	t.Helper()
	cfg := config.Default()
	cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", "127.0.0.1:0", dir
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{dir: dir, stop: cancel, done: make(chan error, 1)}
	ready := make(chan Addrs, 1)
	srv, err := New(cfg, Options{Logger: quiet, Ready: func(a Addrs) { ready <- a }})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	go func() { r.done <- srv.Run(ctx) }()
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10s")
	}
	r.creds = readCredentials(t, dir)
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// readCredentials reads what the server generated, as a person would.
func readCredentials(t *testing.T, dir string) credentials.Credentials {
	t.Helper()
	var c credentials.Credentials
	data, err := os.ReadFile(filepath.Join(dir, credentials.Key+".json"))
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		t.Fatalf("read the generated credentials: %v", err)
	}
	return c
}

func (r *running) shutdown(t *testing.T) {
	r.once.Do(func() {
		r.stop()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(2 * ShutdownTimeout):
			t.Error("server did not stop")
		}
	})
}

func lampConnect(t *testing.T, addr, secret string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.WriteMessage(websocket.TextMessage, []byte(secret))
	for _, want := range []string{"ok", "[cc:0:?:?]"} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil || string(b) != want {
			t.Fatalf("handshake: got %q, %v; want %q", b, err, want)
		}
	}
	return c
}

func TestServeGeneratesSecretsAndShutsDownGracefully(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, nil)
	if r.creds.DeviceSecret == "" {
		t.Fatal("no generated lamp secret")
	}
	c := lampConnect(t, r.addrs.Device, r.creds.DeviceSecret)

	resp, err := http.Get("http://" + r.addrs.Web + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if code := firmwareStatus(t, "http://"+r.addrs.Device, nil); code != http.StatusUnauthorized {
		t.Errorf("firmware.bin without a login: %d", code)
	}
	if code := firmwareStatus(t, "http://"+r.addrs.Device, url.UserPassword("lamp", r.creds.DeviceSecret)); code != http.StatusNotFound {
		t.Errorf("firmware.bin with the generated lamp secret and no image: %d", code)
	}

	began := time.Now()
	r.shutdown(t)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("lamp got %v at shutdown, want close 1001", err)
	}
	if took := time.Since(began); took > ShutdownTimeout {
		t.Errorf("shutdown took %s", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Errorf("no state on disk after shutdown: %v", err)
	}

	// The next start reuses the secret: the lamp gets back in.
	r2 := start(t, dir, nil)
	lampConnect(t, r2.addrs.Device, r.creds.DeviceSecret)
}

// firmwareStatus is the status of GET base/firmware.bin with login (nil:
// none) as Arduino's updater sends it.
func firmwareStatus(t *testing.T, base string, login *url.Userinfo) int {
	t.Helper()
	u, err := url.Parse(base + "/firmware.bin")
	if err != nil {
		t.Fatal(err)
	}
	u.User = login
	a, err := firmwaretest.ArduinoDownload(context.Background(), nil, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

// TestFirmwareListener: firmware.listen serves /firmware.bin and nothing
// else, with every login of the other ports, as lamps built for the
// original server download.
func TestFirmwareListener(t *testing.T) {
	r := start(t, t.TempDir(), func(c *config.Config) {
		c.Firmware.Listen = "127.0.0.1:0"
		c.Firmware.DownloadUsername, c.Firmware.DownloadPassword = "cloud-cloud", "original-password"
		c.Device.Secrets = []config.NamedSecret{{Name: "kitchen", Secret: "kitchen-secret"}}
	})
	if r.addrs.Firmware == "" {
		t.Fatal("no firmware listener address")
	}
	base := "http://" + r.addrs.Firmware
	for _, login := range []*url.Userinfo{
		url.UserPassword("cloud-cloud", "original-password"),
		url.UserPassword("any", r.creds.DeviceSecret),
		url.UserPassword("any", "kitchen-secret"),
		url.UserPassword("admin", r.creds.WebPassword),
	} {
		if code := firmwareStatus(t, base, login); code != http.StatusNotFound {
			t.Errorf("login %s: %d, want the 404 of no image yet", login.Username(), code)
		}
	}
	if code := firmwareStatus(t, base, url.UserPassword("cloud-cloud", "wrong")); code != http.StatusUnauthorized {
		t.Errorf("a wrong login: %d", code)
	}
	resp, err := http.Get(base + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/state on the firmware listener: %d, want 404", resp.StatusCode)
	}
}

// TestOpenDownloadsWarnAtStart: download_auth = false serves without a
// login, and says so at every start.
func TestOpenDownloadsWarnAtStart(t *testing.T) {
	var logs logtest.Buffer
	dir := t.TempDir()
	for range 2 {
		cfg := config.Default()
		cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", "127.0.0.1:0", dir
		cfg.Firmware.DownloadAuth = false
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan Addrs, 1), make(chan error, 1)
		srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Ready: func(a Addrs) { ready <- a }})
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- srv.Run(ctx) }()
		select {
		case a := <-ready:
			if code := firmwareStatus(t, "http://"+a.Device, nil); code != http.StatusNotFound {
				t.Errorf("without a login, download_auth off: %d, want the 404 of no image yet", code)
			}
		case err := <-done:
			t.Fatalf("server did not start: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("server did not start in 10s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"firmware.download_auth is false"); n != 2 {
		t.Errorf("%d warnings about open downloads in two starts, want 2:\n%s", n, logs.String())
	}
}

func TestConfiguredSecretsWin(t *testing.T) {
	r := start(t, t.TempDir(), func(c *config.Config) {
		c.Device.AuthSecret = "configured-secret"
		c.Device.Secrets = []config.NamedSecret{{Name: "kitchen", Secret: "kitchen-secret"}}
	})
	lampConnect(t, r.addrs.Device, "configured-secret")
	lampConnect(t, r.addrs.Device, "kitchen-secret")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+r.addrs.Device+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte(r.creds.DeviceSecret))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if err == nil || !strings.Contains(err.Error(), "1008") {
		t.Errorf("generated secret accepted although one is configured: %v", err)
	}
}

func TestPortInUseIsAClearError(t *testing.T) {
	r := start(t, t.TempDir(), nil)
	cfg := config.Default()
	cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", r.addrs.Device, t.TempDir()
	srv, err := New(cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "device.listen") {
		t.Errorf("Run on a busy port: %v", err)
	}
}

// TestScenesAndSchedulesReachOpenPages: a scene or schedule saved through
// the API is announced on the event stream, so another phone's lists
// follow without a reload.
func TestScenesAndSchedulesReachOpenPages(t *testing.T) {
	r := start(t, t.TempDir(), func(c *config.Config) { c.Web.Password = "pages-password" })
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.addrs.Web+"/api/events", nil)
	req.SetBasicAuth("admin", "pages-password")
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for _, call := range []struct{ path, body, event string }{
		{"/api/scenes", `{"name": "Evening", "from_current": true}`, "event: scenes"},
		{"/api/schedules", `{"name": "Night", "at": "23:00", "do": {"state": {"mode": "off"}}}`, "event: schedules"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.addrs.Web+call.path, strings.NewReader(call.body))
		req.SetBasicAuth("admin", "pages-password")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", call.path, res.Status)
		}
		deadline := time.After(5 * time.Second)
		for found := false; !found; {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the event stream ended")
				}
				found = l == call.event
			case <-deadline:
				t.Fatalf("no %q on the stream after POST %s", call.event, call.path)
			}
		}
	}
}

// TestASceneRestoresEachLampsOwnState: through the real wiring (lamp
// registry, scenes, gateway), a scene saved from what the lamps show keeps
// a lamp's own state, and applying it later gives that lamp its own packet
// again while the other lamp gets the shared one.
func TestASceneRestoresEachLampsOwnState(t *testing.T) {
	r := start(t, t.TempDir(), func(c *config.Config) { c.Web.Password = "scene-password" })
	call := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+r.addrs.Web+path, strings.NewReader(body))
		req.SetBasicAuth("admin", "scene-password")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %s", method, path, res.Status)
		}
	}
	dialLamp := func(id string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+r.addrs.Device+"/?lamp="+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.WriteMessage(websocket.TextMessage, []byte(r.creds.DeviceSecret))
		return c
	}
	bedroom, kitchen := dialLamp("bedroom"), dialLamp("kitchen")
	waitFor := func(c *websocket.Conn, want string) {
		t.Helper()
		var seen []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			c.SetReadDeadline(deadline)
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v (saw %q)", want, err, seen)
			}
			if string(b) == want {
				return
			}
			seen = append(seen, string(b))
		}
		t.Fatalf("never got %s (saw %q)", want, seen)
	}
	waitFor(bedroom, "ok")
	waitFor(kitchen, "ok")
	call(http.MethodPut, "/api/state", `{"mode": "manual", "color": "#0000ff"}`)
	call(http.MethodPut, "/api/lamps/bedroom/state", `{"mode": "manual", "color": "#ff0000", "brightness": 50}`)
	waitFor(bedroom, "[cc:2:128,0,0:0]")
	call(http.MethodPost, "/api/scenes", `{"name": "Evening", "from_current": true}`)
	call(http.MethodPut, "/api/state", `{"mode": "off"}`)
	waitFor(bedroom, "[cc:0:?:?]")
	waitFor(kitchen, "[cc:0:?:?]")
	call(http.MethodPost, "/api/scenes/evening/apply", "")
	waitFor(kitchen, "[cc:2:0,0,255:0]")
	waitFor(bedroom, "[cc:2:128,0,0:0]")
}
