package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/firmware"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// The firmware routes against a real firmware.Store: every refusal leaves
// the current image in place and still downloadable.

// statusBody is GET /api/firmware, decoded loosely enough to see nulls.
type statusBody struct {
	Current  *firmware.Info    `json:"current"`
	Previous *firmware.Info    `json:"previous"`
	Updates  []json.RawMessage `json:"updates"`
}

func (e *env) firmwareStatus(t *testing.T) statusBody {
	t.Helper()
	res := e.call(t, http.MethodGet, "/api/firmware", "")
	if res.status != http.StatusOK {
		t.Fatalf("GET /api/firmware: %d %s", res.status, res.body)
	}
	return decode[statusBody](t, res)
}

// assertCurrent checks that want is current and is what lamps download.
func (e *env) assertCurrent(t *testing.T, want []byte) {
	t.Helper()
	st := e.firmwareStatus(t)
	if st.Current == nil || st.Current.Size != int64(len(want)) {
		t.Fatalf("current image is %+v, want the %d-byte image", st.Current, len(want))
	}
	code, got := e.firmwareBin(t)
	if code != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("/firmware.bin on the device port: %d, %d bytes, equal to the current image: %v", code, len(got), bytes.Equal(got, want))
	}
	web := e.call(t, http.MethodGet, "/firmware.bin", "")
	if web.status != http.StatusOK || web.body != string(want) {
		t.Fatalf("/firmware.bin on the web port: %d, %d bytes", web.status, len(web.body))
	}
}

func TestFirmwareUploadAndStatus(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	if st := e.firmwareStatus(t); st.Current != nil || st.Previous != nil || st.Updates == nil || len(st.Updates) != 0 {
		t.Fatalf("a new store: %+v", st)
	}
	// The raw shape: current first, nulls and an empty list, never absent.
	if body := e.call(t, http.MethodGet, "/api/firmware", "").body; !strings.HasPrefix(body, `{"current":null,"previous":null,"updates":[]}`) {
		t.Errorf("empty status body %s", body)
	}

	img := firmwaretest.Build(firmwaretest.Image{Payload: 4000})
	info := e.uploadImage(t, img)
	if info.Project != "cloud-lamp" || info.Version != "1.2.3" || info.IDFVersion != "v5.3.1" ||
		info.BuildDate != "Nov 21 2026" || info.BuildTime != "22:00:00" || info.Chip != "esp32" ||
		info.Size != int64(len(img)) || len(info.SHA256) != 64 || info.UploadedAt.IsZero() {
		t.Errorf("upload answered %+v", info)
	}
	st := e.firmwareStatus(t)
	if st.Current == nil || st.Current.SHA256 != info.SHA256 || st.Previous != nil {
		t.Errorf("status after the first upload: %+v", st)
	}
	e.assertCurrent(t, img)

	t.Run("the original's field name binfile", func(t *testing.T) {
		img2 := firmwaretest.Build(firmwaretest.Image{Version: "1.2.4", Payload: 4000, Seed: 2})
		res := e.upload(t, "/api/firmware", []formPart{fileField(fieldFirmwareLegacy, img2)})
		if res.status != http.StatusOK || decode[firmware.Info](t, res).Version != "1.2.4" {
			t.Fatalf("%d %s", res.status, res.body)
		}
		st := e.firmwareStatus(t)
		if st.Current.Version != "1.2.4" || st.Previous == nil || st.Previous.SHA256 != info.SHA256 {
			t.Errorf("after a second upload: current %+v previous %+v", st.Current, st.Previous)
		}
		e.assertCurrent(t, img2)
	})
}

func TestFirmwareUploadRefusals(t *testing.T) {
	const maxSize = 64 << 10
	e := newFirmwareEnv(t, fwConfig{maxSize: maxSize})
	good := firmwaretest.Build(firmwaretest.Image{Payload: 3000})
	e.uploadImage(t, good)

	truncated := good[:len(good)-100]
	tooLarge := firmwaretest.Build(firmwaretest.Image{Payload: maxSize})
	other := firmwaretest.Build(firmwaretest.Image{Project: "garage-door", Payload: 3000, Seed: 3})
	tests := []struct {
		name   string
		parts  []formPart
		opts   []reqOption
		status int
		want   []string
	}{
		{"a text file", []formPart{fileField("firmware", []byte("hello, this is not firmware\n"))}, nil, 400, []string{"text file"}},
		{"a bootloader", []formPart{fileField("firmware", firmwaretest.Bootloader())}, nil, 400, []string{"bootloader"}},
		{"a truncated image", []formPart{fileField("firmware", truncated)}, nil, 400, []string{"incomplete"}},
		{"an ELF file", []formPart{fileField("firmware", append([]byte("\x7fELF"), make([]byte, 60)...))}, nil, 400, []string{".elf"}},
		{"too large", []formPart{fileField("firmware", tooLarge)}, nil, 413, []string{"firmware.max_size", "64 KiB", strconv.Itoa(maxSize)}},
		{"another project", []formPart{fileField("firmware", other)}, nil, 409, []string{`"garage-door"`, `"cloud-lamp"`, "allow project change", "allow_project_change=1"}},
		{"the override after the file", []formPart{fileField("firmware", other), textField("allow_project_change", "1")}, nil, 409, []string{"came after the file", "-F allow_project_change=1 -F firmware=@"}},
		{"a bad override value", []formPart{textField("allow_project_change", "maybe"), fileField("firmware", other)}, nil, 400, []string{"allow_project_change must be 1"}},
		{"no file field", []formPart{textField("version", "1.2.3")}, nil, 400, []string{`"firmware"`, `"binfile"`}},
		{"no file chosen", []formPart{{name: "firmware", filename: ""}}, nil, 400, []string{"no file was chosen"}},
		{"an empty file", []formPart{fileField("firmware", nil)}, nil, 400, []string{"empty"}},
		{"JSON instead of a form", nil, []reqOption{contentType("application/json")}, 415, []string{"multipart/form-data", "curl -F firmware=@"}},
		{"no Content-Type", nil, []reqOption{contentType("")}, 415, []string{"no Content-Type"}},
		{"multipart without a boundary", nil, []reqOption{contentType("multipart/form-data")}, 400, []string{"boundary"}},
		{"a broken multipart body", nil, []reqOption{contentType("multipart/form-data; boundary=xyz")}, 400, []string{"could not be read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res response
			if tt.parts != nil {
				res = e.upload(t, "/api/firmware", tt.parts, tt.opts...)
			} else {
				res = e.call(t, http.MethodPost, "/api/firmware", "--xyz\r\nnot a header line\r\n\r\ndata\r\n--xyz--\r\n", tt.opts...)
			}
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			msg := errorBody(t, res)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			e.assertCurrent(t, good)
		})
	}

	t.Run("a body larger than the limit is refused by its length", func(t *testing.T) {
		body := strings.Repeat("x", maxSize+multipartSlack+1)
		res := e.call(t, http.MethodPost, "/api/firmware", body, contentType("multipart/form-data; boundary=xyz"))
		if res.status != http.StatusRequestEntityTooLarge || !strings.Contains(errorBody(t, res), "firmware.max_size") {
			t.Fatalf("%d %s", res.status, res.body)
		}
		e.assertCurrent(t, good)
	})

	t.Run("another project with the override", func(t *testing.T) {
		info := e.uploadImage(t, other, textField("allow_project_change", "1"))
		if info.Project != "garage-door" {
			t.Fatalf("uploaded %+v", info)
		}
		e.assertCurrent(t, other)
	})
}

func TestFirmwareChip(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{chip: "ESP32-S3"})
	res := e.upload(t, "/api/firmware", []formPart{fileField("firmware", firmwaretest.Build(firmwaretest.Image{}))})
	if res.status != http.StatusConflict {
		t.Fatalf("an esp32 image on an esp32s3 server: %d %s", res.status, res.body)
	}
	if msg := errorBody(t, res); !strings.Contains(msg, "built for esp32,") || !strings.Contains(msg, "firmware.chip") {
		t.Errorf("error %q", msg)
	}
	if st := e.firmwareStatus(t); st.Current != nil {
		t.Errorf("a refused image became current: %+v", st.Current)
	}
	if code, _ := e.firmwareBin(t); code != http.StatusNotFound {
		t.Errorf("/firmware.bin after a refusal: %d", code)
	}
	info := e.uploadImage(t, firmwaretest.Build(firmwaretest.Image{ChipID: 9})) // esp32s3
	if info.Chip != "esp32s3" {
		t.Errorf("chip %q", info.Chip)
	}
	if _, err := New(Options{Username: "a", Password: "b", SessionKey: make([]byte, 32), Sessions: e.data, FirmwareChip: "esp8266"},
		Deps{State: e.store, Devices: e.gw, Favorites: e.favs, Events: e.bus}); err == nil || !strings.Contains(err.Error(), "firmware.chip") {
		t.Errorf("an unknown chip in the options: %v", err)
	}
}

func TestFirmwareRollback(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	res := e.call(t, http.MethodPost, "/api/firmware/rollback", "")
	if res.status != http.StatusNotFound || !strings.Contains(errorBody(t, res), "no previous firmware image") {
		t.Fatalf("rollback with nothing uploaded: %d %s", res.status, res.body)
	}
	one := firmwaretest.Build(firmwaretest.Image{Version: "1.0.0", Payload: 1000})
	two := firmwaretest.Build(firmwaretest.Image{Version: "2.0.0", Payload: 1000, Seed: 1})
	e.uploadImage(t, one)
	if res := e.call(t, http.MethodPost, "/api/firmware/rollback", ""); res.status != http.StatusNotFound {
		t.Fatalf("rollback with one image: %d %s", res.status, res.body)
	}
	e.uploadImage(t, two)
	res = e.call(t, http.MethodPost, "/api/firmware/rollback", "")
	if res.status != http.StatusOK || decode[firmware.Info](t, res).Version != "1.0.0" {
		t.Fatalf("rollback: %d %s", res.status, res.body)
	}
	st := e.firmwareStatus(t)
	if st.Current.Version != "1.0.0" || st.Previous == nil || st.Previous.Version != "2.0.0" {
		t.Errorf("after rollback: current %+v previous %+v", st.Current, st.Previous)
	}
	e.assertCurrent(t, one)
}

func TestFirmwareNeedsLogin(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	img := firmwaretest.Build(firmwaretest.Image{})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/api/firmware"}, {"POST", "/api/firmware"}, {"POST", "/api/firmware/rollback"}, {"GET", "/firmware.bin"},
	} {
		body, ct := multipartBody(t, fileField("firmware", img))
		res := e.call(t, tt.method, tt.path, body, noAuth(), contentType(ct))
		if res.status != http.StatusUnauthorized {
			t.Errorf("%s %s without login: %d", tt.method, tt.path, res.status)
			continue
		}
		if msg := errorBody(t, res); !strings.Contains(msg, "log in") {
			t.Errorf("%s %s: %q", tt.method, tt.path, msg)
		}
	}
	if st := e.firmwareStatus(t); st.Current != nil {
		t.Error("an upload without login was saved")
	}
	// The form route sends a browser to the login page instead.
	body, ct := multipartBody(t, fileField("firmware", img))
	if res := e.call(t, http.MethodPost, "/ui/firmware", body, noAuth(), contentType(ct)); res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/login") {
		t.Errorf("form without login: %d %s", res.status, res.header.Get("Location"))
	}
}

func TestFirmwareCSRF(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	cookie, token := e.login(t)
	img := func(seed uint64) formPart {
		return fileField("firmware", firmwaretest.Build(firmwaretest.Image{Payload: 100, Seed: seed}))
	}
	tests := []struct {
		name   string
		path   string
		parts  []formPart
		opts   []reqOption
		status int
	}{
		{"no token", "/api/firmware", []formPart{img(1)}, nil, 403},
		{"a wrong header token", "/api/firmware", []formPart{csrfPart(token), img(2)}, []reqOption{header(csrfHeader, "forged")}, 403},
		{"a wrong form token", "/api/firmware", []formPart{textField("csrf", "forged"), img(3)}, nil, 403},
		{"the form token after the file", "/api/firmware", []formPart{img(4), csrfPart(token)}, nil, 403},
		{"a form token but no file", "/api/firmware", []formPart{csrfPart(token)}, nil, 400},
		{"the header token", "/api/firmware", []formPart{img(5)}, []reqOption{header(csrfHeader, token)}, 200},
		{"the form token before the file", "/api/firmware", []formPart{csrfPart(token), img(6)}, nil, 200},
		{"the no-script form", "/ui/firmware", []formPart{csrfPart(token), img(7)}, nil, 303},
		{"the no-script form without a token", "/ui/firmware", []formPart{img(8)}, nil, 403},
		{"rollback without a token", "/api/firmware/rollback", nil, nil, 403},
		{"rollback with the header", "/api/firmware/rollback", nil, []reqOption{header(csrfHeader, token)}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.firmwareStatus(t).Current
			opts := append([]reqOption{withCookie(cookie)}, tt.opts...)
			var res response
			if tt.parts != nil {
				res = e.upload(t, tt.path, tt.parts, opts...)
			} else {
				res = e.call(t, http.MethodPost, tt.path, "", opts...)
			}
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 403 {
				if strings.HasPrefix(tt.path, "/api/") && !strings.Contains(errorBody(t, res), "CSRF") {
					t.Errorf("403 says %s", res.body)
				}
				if after := e.firmwareStatus(t).Current; (before == nil) != (after == nil) || (before != nil && before.SHA256 != after.SHA256) {
					t.Error("a refused request changed the current image")
				}
			}
		})
	}
}

func csrfPart(token string) formPart { return textField("csrf", token) }

// TestFirmwareForms is the page without its script: upload and rollback
// post forms, land back on the panel, and see the outcome once.
func TestFirmwareForms(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	cookie, token := e.login(t)
	page := func() string {
		res := e.call(t, http.MethodGet, "/", "", withCookie(cookie))
		if res.status != 200 {
			t.Fatalf("page: %d", res.status)
		}
		return res.body
	}
	// post sends a form and returns where it went and the page it lands on.
	post := func(path string, parts []formPart, values url.Values) string {
		t.Helper()
		var res response
		if parts != nil {
			res = e.upload(t, path, parts, withCookie(cookie))
		} else {
			res = e.form(t, path, values, withCookie(cookie))
		}
		if res.status != http.StatusSeeOther || res.header.Get("Location") != "/#firmware" {
			t.Fatalf("%s: %d %q %s", path, res.status, res.header.Get("Location"), res.body)
		}
		var flashCk *http.Cookie
		for _, c := range (&http.Response{Header: res.header}).Cookies() {
			if c.Name == flashCookie {
				flashCk = c
			}
		}
		if flashCk == nil {
			t.Fatalf("%s set no flash message", path)
		}
		landed := e.call(t, http.MethodGet, "/", "", withCookie(cookie), func(r *http.Request) { r.AddCookie(flashCk) })
		if !strings.Contains(landed.header.Get("Set-Cookie"), flashCookie+"=;") {
			t.Errorf("the flash message is not cleared once shown: %q", landed.header.Get("Set-Cookie"))
		}
		return landed.body
	}

	if body := page(); !strings.Contains(body, "No firmware uploaded yet") || !strings.Contains(body, `id="fw-update-all" data-confirm="Tap again to update every lamp" data-confirm-label="Tap again to update every lamp" disabled`) {
		t.Error("the empty panel does not say there is no image, or lets lamps be updated")
	}

	one := firmwaretest.Build(firmwaretest.Image{Version: "1.0.0", Payload: 500})
	body := post("/ui/firmware", []formPart{csrfPart(token), fileField("firmware", one)}, nil)
	for _, want := range []string{`class="flash ok"`, "Uploaded cloud-lamp 1.0.0", `data-field="fw-project">cloud-lamp<`, "v5.3.1", "Nov 21 2026 22:00:00", ">esp32<"} {
		if !strings.Contains(body, want) {
			t.Errorf("after the upload the page lacks %q", want)
		}
	}
	if strings.Contains(page(), "Uploaded cloud-lamp 1.0.0") {
		t.Error("the flash message shows twice")
	}

	body = post("/ui/firmware", []formPart{csrfPart(token), fileField("firmware", []byte("not firmware at all"))}, nil)
	if !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, "This is a text file") {
		t.Error("a refused upload does not show the refusal")
	}

	two := firmwaretest.Build(firmwaretest.Image{Version: "2.0.0", Payload: 500, Seed: 1})
	post("/ui/firmware", []formPart{csrfPart(token), fileField("firmware", two)}, nil)
	body = post("/ui/firmware/rollback", nil, url.Values{"csrf": {token}})
	if !strings.Contains(body, "Rolled back: lamps now get cloud-lamp 1.0.0") {
		t.Error("the rollback does not say what is current now")
	}
	e.assertCurrent(t, one)

	// A forged flash cookie shows nothing.
	forged := &http.Cookie{Name: flashCookie, Value: "b2sAaGVsbG8.AAAA"}
	if res := e.call(t, http.MethodGet, "/", "", withCookie(cookie), func(r *http.Request) { r.AddCookie(forged) }); strings.Contains(res.body, "hello") {
		t.Error("an unsigned flash message reached the page")
	}

	t.Run("update all from the panel returns to it", func(t *testing.T) {
		res := e.form(t, "/ui/command", url.Values{"csrf": {token}, "command": {"update"}, "back": {"firmware"}, "confirmed": {"yes"}}, withCookie(cookie))
		if res.status != http.StatusSeeOther || res.header.Get("Location") != "/#firmware" {
			t.Errorf("%d %q", res.status, res.header.Get("Location"))
		}
	})
}

func TestUpdateNeedsAnImage(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	lamp := e.lamp(t)
	res := e.call(t, http.MethodPost, "/api/commands", `{"command": "update"}`)
	if res.status != http.StatusConflict || !strings.Contains(errorBody(t, res), "no firmware image has been uploaded yet") {
		t.Fatalf("update without an image: %d %s", res.status, res.body)
	}
	lamp.quietFor(t, 100*time.Millisecond)
	e.uploadImage(t, firmwaretest.Build(firmwaretest.Image{}))
	if res := e.call(t, http.MethodPost, "/api/commands", `{"command": "update"}`); res.status != http.StatusOK {
		t.Fatalf("update with an image: %d %s", res.status, res.body)
	}
	lamp.waitFor(t, "[cc:u:?:?]")
}

func TestFirmwareNotSetUp(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ method, path string }{{"GET", "/api/firmware"}, {"POST", "/api/firmware"}, {"POST", "/api/firmware/rollback"}} {
		res := e.call(t, tt.method, tt.path, "")
		if res.status != http.StatusServiceUnavailable || !strings.Contains(errorBody(t, res), "not set up") {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, res.status, res.body)
		}
	}
	if body := e.call(t, http.MethodGet, "/", "").body; strings.Contains(body, `id="firmware"`) {
		t.Error("the page shows a firmware panel on a server without firmware")
	}
}

func TestFirmwarePanel(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{maxSize: 2 << 20, chip: "esp32"})
	info := e.uploadImage(t, firmwaretest.Build(firmwaretest.Image{Payload: 2000}))
	body := e.call(t, http.MethodGet, "/", "").body
	for _, want := range []string{
		`id="firmware"`, `action="/ui/firmware"`, `enctype="multipart/form-data"`, `name="allow_project_change"`,
		`action="/ui/firmware/rollback"`, `data-max-size="2097152"`, "up to 2 MiB, built for esp32",
		shortSHA(info.SHA256), `title="` + info.SHA256 + `"`, firmware.FormatSize(info.Size), ">esp32 only<",
		`"firmware":{"current":{"project":"cloud-lamp"`, // the script's boot data
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{" style=", "<style", " onclick=", "javascript:"} {
		if strings.Contains(body, bad) {
			t.Errorf("the panel contains %q, which the CSP forbids", bad)
		}
	}
	// The override and the token come before the file in the form.
	form := body[strings.Index(body, `action="/ui/firmware"`):]
	if c, a, f := strings.Index(form, `name="csrf"`), strings.Index(form, `name="allow_project_change"`), strings.Index(form, `name="firmware"`); c < 0 || a < c || f < a {
		t.Errorf("form field order: csrf %d, allow_project_change %d, firmware %d", c, a, f)
	}
}

// TestFirmwareDownloadLogins: /firmware.bin on the web port and the device
// port takes the same logins, through both updaters' download paths, and
// refuses the rest with 401, a Basic challenge and the JSON error.
func TestFirmwareDownloadLogins(t *testing.T) {
	e := newFirmwareEnv(t, fwConfig{})
	img := firmwaretest.Build(firmwaretest.Image{Payload: 100 << 10})
	e.uploadImage(t, img)
	ports := map[string]string{"web port": e.web.URL, "device port": e.lampSrv.URL}
	download := func(t *testing.T, u updater, rawURL string) firmwaretest.Answer {
		t.Helper()
		var a firmwaretest.Answer
		var err error
		if u == idfUpdater {
			a, err = firmwaretest.IDFDownload(context.Background(), nil, rawURL)
		} else {
			a, err = firmwaretest.ArduinoDownload(context.Background(), nil, rawURL, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	withLogin := func(base string, login *url.Userinfo) string {
		u, err := url.Parse(base + "/firmware.bin")
		if err != nil {
			t.Fatal(err)
		}
		u.User = login
		return u.String()
	}
	for port, base := range ports {
		for _, u := range []updater{arduinoUpdater, idfUpdater} {
			t.Run(port+"/"+string(u), func(t *testing.T) {
				for _, login := range []*url.Userinfo{
					url.UserPassword("lamp", lampSecret),
					url.UserPassword("kitchen", kitchenSecret),
					url.UserPassword(testUser, testPassword),
					url.UserPassword("cloud-cloud", originalPassword),
				} {
					if a := download(t, u, withLogin(base, login)); a.Status != http.StatusOK || !bytes.Equal(a.Body, img) {
						t.Errorf("login %s: %d, %d bytes", login.Username(), a.Status, len(a.Body))
					}
				}
				for _, login := range []*url.Userinfo{nil, url.UserPassword(testUser, lampSecret+"x")} {
					a := download(t, u, withLogin(base, login))
					if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic ") {
						t.Errorf("login %v: %d, WWW-Authenticate %q; want 401 with a Basic challenge", login, a.Status, a.Header.Get("WWW-Authenticate"))
					}
					var body struct{ Error string }
					if err := json.Unmarshal(a.Body, &body); err != nil || !strings.Contains(body.Error, "lamp secret") {
						t.Errorf("login %v: the body is not the JSON error: %q", login, a.Body)
					}
				}
			})
		}
	}
}
