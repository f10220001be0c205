package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// fwConfig is how newFirmwareEnv sets up firmware.
type fwConfig struct {
	maxSize int64  // firmware.max_size; 0 = the default
	chip    string // firmware.chip
}

// newFirmwareEnv is newEnv with firmware wired as server.go does it: a real
// firmware.Store on a temp dir, a real rollout.Tracker following the bus,
// and one handler (with the tracker's progress hook, behind the login
// rule) serving /firmware.bin on both ports.
func newFirmwareEnv(t *testing.T, cfg fwConfig, opts ...envOption) *env {
	t.Helper()
	var fw *firmware.Store
	var tracker *rollout.Tracker
	wire := func(o *Options, d *Deps) {
		bus := d.Events.(*events.Bus)
		fw = openFirmware(t, t.TempDir(), bus)
		records := bucket(t, t.TempDir())
		var err error
		tracker, err = rollout.Open(records, bus, quiet, 5*time.Minute, func() string {
			info, _ := fw.Current()
			return info.Version
		})
		if err != nil {
			t.Fatal(err)
		}
		o.FirmwareHandler = firmwareAccess().Guard(fw.Handler(firmware.Hooks{Served: tracker.Served}))
		o.FirmwareMaxSize, o.FirmwareChip = cfg.maxSize, cfg.chip
		d.Firmware, d.Rollout = fw, tracker
	}
	e := newEnv(t, append([]envOption{wire}, opts...)...)
	e.fw, e.updates = fw, tracker

	// The tracker must be listening before a test tells a lamp to update.
	before := e.bus.Subscribers()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { tracker.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, "the rollout tracker to subscribe", func() bool { return e.bus.Subscribers() > before })
	return e
}

// bucket opens the top level of a data directory.
func bucket(t testing.TB, dir string) storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// openFirmware opens a firmware store on dir's firmware/, as the server does.
func openFirmware(t testing.TB, dir string, bus events.Publisher) *firmware.Store {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	records, err := d.Bucket("firmware")
	if err != nil {
		t.Fatal(err)
	}
	images, err := d.Objects("firmware")
	if err != nil {
		t.Fatal(err)
	}
	fw, err := firmware.OpenStore(records, images, bus, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// formPart is one part of a multipart body: a field, or a file when
// filename is set.
type formPart struct {
	name, filename string
	data           []byte
}

func fileField(name string, data []byte) formPart {
	return formPart{name: name, filename: "firmware.bin", data: data}
}

func textField(name, value string) formPart { return formPart{name: name, data: []byte(value)} }

// multipartBody builds a form in the order given.
func multipartBody(t *testing.T, parts ...formPart) (body, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		var pw io.Writer
		var err error
		if p.filename != "" || p.name == fieldFirmware || p.name == fieldFirmwareLegacy {
			pw, err = w.CreateFormFile(p.name, p.filename)
		} else {
			pw, err = w.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), w.FormDataContentType()
}

// upload posts a multipart form (basic auth unless opts change it).
func (e *env) upload(t *testing.T, path string, parts []formPart, opts ...reqOption) response {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	return e.call(t, http.MethodPost, path, body, append([]reqOption{contentType(ct)}, opts...)...)
}

// uploadImage uploads img as the "firmware" field and expects success.
func (e *env) uploadImage(t *testing.T, img []byte, extra ...formPart) firmware.Info {
	t.Helper()
	res := e.upload(t, "/api/firmware", append(extra, fileField(fieldFirmware, img)))
	if res.status != http.StatusOK {
		t.Fatalf("upload: %d %s", res.status, res.body)
	}
	return decode[firmware.Info](t, res)
}

// firmwareAccess is who may download the firmware, as server.go sets it
// up for this env's logins: the lamp secrets, the UI login and the
// original's default download login.
func firmwareAccess() firmware.Access {
	return firmware.Access{
		Secrets: []string{lampSecret, kitchenSecret},
		Logins:  []firmware.Login{{Username: testUser, Password: testPassword}, {Username: "cloud-cloud", Password: originalPassword}},
		Backoff: backoff.New(time.Nanosecond, time.Nanosecond, nil), // over before the next request
		Logger:  quiet,
	}
}

// originalPassword is the download password of lamps built for the
// original server.
const originalPassword = "original-download-password"

// firmwareBin downloads /firmware.bin from the device port, as a lamp does
// (with its secret as the password).
func (e *env) firmwareBin(t *testing.T) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.lampSrv.URL+"/firmware.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("lamp", lampSecret)
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// otaLamp is a lamp that behaves like the firmware on [cc:u:?:?]: it
// downloads /firmware.bin from the device port over plain HTTP with its
// secret as the password, "flashes" it (keeps the bytes), drops the
// connection and connects again.
type otaLamp struct {
	secret  string
	version string // what it reports running, as Arduino's updater does
	updater updater
	tracker *rollout.Tracker

	mu        sync.Mutex
	downloads [][]byte
	connects  int
	err       error
}

// maxOTAConnects bounds the lamp's reconnect loop.
const maxOTAConnects = 20

// updater is the code in the lamp's firmware that downloads the image.
type updater string

const (
	arduinoUpdater updater = "Arduino HTTPUpdate"    // HTTP/1.0, the login with the first request
	idfUpdater     updater = "ESP-IDF esp_https_ota" // the URL's login after a 401
)

func (e *env) otaLamp(t *testing.T, secret, version string, u updater) *otaLamp {
	t.Helper()
	l := &otaLamp{secret: secret, version: version, updater: u, tracker: e.updates}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for range maxOTAConnects {
			if ctx.Err() != nil {
				return
			}
			if err := l.session(ctx, e); err != nil && ctx.Err() == nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l
}

// session is one connection: handshake, then frames until an update.
func (l *otaLamp) session(ctx context.Context, e *env) error {
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, e.lampURL, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(l.secret)); err != nil {
		return err
	}
	if _, b, err := conn.ReadMessage(); err != nil || string(b) != "ok" {
		return fmt.Errorf("handshake: %q %v", b, err)
	}
	l.mu.Lock()
	l.connects++
	l.mu.Unlock()
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		if string(b) != "[cc:u:?:?]" {
			continue
		}
		l.awaitTracker()
		img, err := l.download(ctx, e.lampSrv.URL+"/firmware.bin")
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.downloads = append(l.downloads, img)
		l.mu.Unlock()
		return nil // "flash and reboot": the deferred Close drops the connection
	}
}

// awaitTracker waits (bounded) until the rollout tracker has recorded the
// update it is about to download for. It learns of the update from the
// bus, asynchronously; a real lamp takes seconds to start its download,
// this one microseconds.
func (l *otaLamp) awaitTracker() {
	if l.tracker == nil {
		return
	}
	for range 500 {
		for _, u := range l.tracker.Updates() {
			if u.State == rollout.StateAsked {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *otaLamp) download(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.User = url.UserPassword("lamp", l.secret)
	var a firmwaretest.Answer
	switch l.updater {
	case idfUpdater:
		a, err = firmwaretest.IDFDownload(ctx, nil, u.String())
	default:
		a, err = firmwaretest.ArduinoDownload(ctx, nil, u.String(), map[string]string{"x-ESP32-version": l.version})
	}
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /firmware.bin: %d %s", a.Status, a.Body)
	}
	return a.Body, nil
}

func (l *otaLamp) state() (connects int, downloads [][]byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connects, append([][]byte(nil), l.downloads...), l.err
}
